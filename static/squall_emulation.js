// A WebSocket look-alike over Server-Sent Events plus POSTs to /emulation:
// Squall's (and Centrifugo's) bidirectional SSE emulation, for networks that
// block WebSocket. Give it to squall.js as its WebSocket constructor:
//   new Client(undefined, { WebSocket: EmulatedSocket })
// The first frame sent (squall.js's connect command) opens the event stream
// as ?cf_connect=...; the connect reply names the session and node, and every
// later frame is POSTed as {session, node, data} to /emulation. Frames sent
// before the connect reply wait for it. A disconnect push ends the stream the
// way a WebSocket close frame would (onclose with its code and reason).

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 3;

/** http(s)://host of a ws(s):// URL (or of the page when none is given). */
function httpBase(url) {
  const u = new URL(url || globalThis.location.href, globalThis.location.href);
  const scheme = u.protocol === 'wss:' || u.protocol === 'https:' ? 'https:' : 'http:';
  return `${scheme}//${u.host}`;
}

export class EmulatedSocket {
  constructor(url) {
    this.url = url;
    this.base = httpBase(url);
    this.readyState = CONNECTING;
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    this._es = null;
    this._session = '';
    this._node = '';
    this._waiting = []; // frames sent before the connect reply
    // Nothing to open until the first frame (the connect command) is known.
    queueMicrotask(() => {
      if (this.readyState !== CONNECTING) return;
      this.readyState = OPEN;
      if (this.onopen) this.onopen({});
    });
  }

  send(frame) {
    if (this.readyState !== OPEN) return;
    if (!this._es) {
      this._open(frame);
    } else if (!this._session) {
      this._waiting.push(frame);
    } else {
      this._post(frame);
    }
  }

  close(code = 1000, reason = '') {
    this._end(code, reason, false);
  }

  _open(first) {
    const es = new EventSource(`${this.base}/connection/sse?cf_connect=${encodeURIComponent(first)}`);
    this._es = es;
    es.onmessage = (ev) => this._onData(ev.data);
    es.onerror = () => this._end(1006, '', true);
  }

  _onData(data) {
    if (this.readyState !== OPEN) return;
    let msg = null;
    try {
      msg = JSON.parse(data);
    } catch (e) {
      // not JSON: squall.js reports it as a protocol error
    }
    if (msg && msg.connect && msg.connect.session && !this._session) {
      this._session = msg.connect.session;
      this._node = msg.connect.node || '';
    }
    const disconnect = msg && msg.push && msg.push.disconnect;
    if (disconnect) {
      this._end(disconnect.code, disconnect.reason || '', true);
      return;
    }
    if (this.onmessage) this.onmessage({ data });
    if (this._session && this._waiting.length) {
      const waiting = this._waiting;
      this._waiting = [];
      for (const f of waiting) this._post(f);
    }
  }

  _post(frame) {
    const body = JSON.stringify({ session: this._session, node: this._node, data: frame });
    fetch(`${this.base}/emulation`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body, credentials: 'same-origin',
    }).catch(() => this._end(1006, '', true));
  }

  _end(code, reason, notify) {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    if (this._es) this._es.close();
    this._waiting = [];
    if (notify && this.onclose) this.onclose({ code, reason });
  }
}
