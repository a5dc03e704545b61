// A minimal EventSource for Node 20 (which has none), over fetch: what a browser's
// EventSource does for centrifuge-js's sse transport (onopen, onmessage per `data:`
// event, onerror when the stream ends or fails, close()). No reconnect: centrifuge-js
// closes it on error and reconnects itself.
export class NodeEventSource {
  constructor(url) {
    this.url = url;
    this.onopen = null;
    this.onmessage = null;
    this.onerror = null;
    this._abort = new AbortController();
    this._closed = false;
    this._run();
  }

  async _run() {
    try {
      const r = await fetch(this.url, { headers: { Accept: 'text/event-stream' }, signal: this._abort.signal });
      if (!r.ok) throw new Error('status ' + r.status);
      if (this.onopen) this.onopen();
      const decoder = new TextDecoder();
      let buf = '';
      for await (const chunk of r.body) {
        buf += decoder.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, ''));
          if (data.length && this.onmessage && !this._closed) this.onmessage({ data: data.join('\n') });
        }
      }
      throw new Error('stream ended');
    } catch (e) {
      if (!this._closed && this.onerror) this.onerror(e);
    }
  }

  close() {
    this._closed = true;
    this._abort.abort();
  }
}
