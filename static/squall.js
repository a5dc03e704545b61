// squall.js: a small client for Centrifugo's bidirectional protocol v2 (JSON
// over WebSocket), written for Squall. Plain ES module, no dependencies, no
// build step. See docs/CLIENT_JS.md for the API and its events.

export const VERSION = '0.1.0';

/** Connection states, in the order a healthy client goes through them. */
export const State = Object.freeze({
  DISCONNECTED: 'disconnected',
  CONNECTING: 'connecting',
  CONNECTED: 'connected',
});

/** Subscription states. */
export const SubState = Object.freeze({
  UNSUBSCRIBED: 'unsubscribed',
  SUBSCRIBING: 'subscribing',
  SUBSCRIBED: 'subscribed',
});

/**
 * Codes the client itself reports (server codes are 100+ for errors and
 * 3000+ for disconnects, so these never collide with them).
 */
export const ClientCode = Object.freeze({
  DISCONNECT_CALLED: 0,
  TRANSPORT_CLOSED: 1,
  NO_PING: 2,
  TIMEOUT: 3,
  BAD_PROTOCOL: 4,
  UNSUBSCRIBE_CALLED: 0,
});

/** An error reply from the server, or a client-side failure (timeout, closed). */
export class SquallError extends Error {
  constructor(code, message, temporary = false) {
    super(message);
    this.name = 'SquallError';
    this.code = code;
    this.temporary = temporary;
  }
}

/** Disconnect codes after which reconnecting would not help (Centrifugo's ranges). */
export function isPermanentDisconnect(code) {
  return (code >= 3500 && code <= 3999) || (code >= 4500 && code <= 4999);
}

/** Server unsubscribe codes 2500-2999 ask the client to subscribe again. */
export function isResubscribeCode(code) {
  return code >= 2500 && code <= 2999;
}

/**
 * Exponential backoff with full jitter: a uniform delay in [0, cap) where the
 * cap doubles per attempt up to maxDelay, so a crowd of clients dropped at the
 * same moment spreads its reconnects instead of returning all at once.
 */
export function backoffDelay(attempt, minDelay, maxDelay, random = Math.random) {
  const cap = Math.min(maxDelay, minDelay * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}

/** The WebSocket endpoint on the page's own host. */
export function defaultUrl(loc = globalThis.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/connection/websocket`;
}

/** Minimal event emitter: on() returns a function that removes the handler. */

/**
 * Resolves with `value` on `okEvent`; rejects on `failEvent` (with its code
 * and reason) or after `timeoutMs`. Listeners are removed either way.
 */
function waitForEvent(emitter, okEvent, failEvent, timeoutMs, timeoutMessage, value) {
  return new Promise((resolve, reject) => {
    const offs = [];
    const done = (fn, arg) => {
      clearTimeout(timer);
      offs.forEach((off) => off());
      fn(arg);
    };
    const timer = setTimeout(() => done(reject, new SquallError(ClientCode.TIMEOUT, timeoutMessage, true)), timeoutMs);
    offs.push(emitter.on(okEvent, () => done(resolve, value)));
    offs.push(emitter.on(failEvent, (ev) => done(reject, new SquallError(ev.code, ev.reason))));
  });
}

class Emitter {
  constructor() {
    this._handlers = new Map();
  }

  on(event, fn) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(fn);
    return () => this.off(event, fn);
  }

  once(event, fn) {
    const off = this.on(event, (ev) => {
      off();
      fn(ev);
    });
    return off;
  }

  off(event, fn) {
    const set = this._handlers.get(event);
    if (set) set.delete(fn);
  }

  _emit(event, payload) {
    const set = this._handlers.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(payload);
      } catch (e) {
        // A broken handler must not break the protocol loop.
        console.error(`squall: "${event}" handler failed`, e);
      }
    }
  }
}

/** One channel subscription; survives reconnects and resubscribes with recovery. */
export class Subscription extends Emitter {
  constructor(client, channel, options = {}) {
    super();
    this.client = client;
    this.channel = channel;
    this.options = { recover: true, joinLeave: true, data: undefined, ...options };
    this.state = SubState.UNSUBSCRIBED;
    // Stream position of the last publication seen: what recovery asks from.
    this.offset = 0;
    this.epoch = '';
    this.recoverable = false;
    this._buffer = [];
    this._gen = 0;
    this._attempts = 0;
    this._retryTimer = null;
  }

  /** Start subscribing; sent at once when connected, else on connect. */
  subscribe() {
    if (this.state !== SubState.UNSUBSCRIBED) return;
    this._setState(SubState.SUBSCRIBING);
    if (this.client.state === State.CONNECTED) this.client._sendSubscribe(this);
  }

  /** Stop the subscription; the position is kept, so subscribe() later recovers. */
  unsubscribe() {
    if (this.state === SubState.UNSUBSCRIBED) return;
    const wasSubscribed = this.state === SubState.SUBSCRIBED;
    this._moveToUnsubscribed(ClientCode.UNSUBSCRIBE_CALLED, 'unsubscribe called');
    if (wasSubscribed && this.client.state === State.CONNECTED) {
      this.client._call('unsubscribe', { channel: this.channel }).catch((err) => {
        // Out of sync with the server: start clean.
        if (err.code !== ClientCode.TRANSPORT_CLOSED) this.client._reconnectNow('unsubscribe failed');
      });
    }
  }

  /** Resolves once subscribed; rejects on timeout or when unsubscribed. */
  ready(timeoutMs = this.client.options.timeout) {
    if (this.state === SubState.SUBSCRIBED) return Promise.resolve(this);
    if (this.state === SubState.UNSUBSCRIBED) {
      return Promise.reject(new SquallError(ClientCode.UNSUBSCRIBE_CALLED, 'not subscribing'));
    }
    return waitForEvent(this, 'subscribed', 'unsubscribed', timeoutMs, 'subscribe timeout', this);
  }

  publish(data) {
    return this.client.publish(this.channel, data);
  }

  presence() {
    return this.client.presence(this.channel);
  }

  presenceStats() {
    return this.client.presenceStats(this.channel);
  }

  history(opts = {}) {
    return this.client.history(this.channel, opts);
  }

  _setState(state) {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    const ev = { channel: this.channel, state, previous };
    this._emit('state', ev);
    this.client._emit('subscription_state', ev);
  }

  _moveToUnsubscribed(code, reason) {
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._gen += 1;
    this._buffer = [];
    this._setState(SubState.UNSUBSCRIBED);
    const ev = { channel: this.channel, code, reason };
    this._emit('unsubscribed', ev);
    this.client._emit('unsubscribed', ev);
  }

  /** Back to subscribing (connection lost or server asked): keeps the position. */
  _moveToSubscribing() {
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._gen += 1;
    this._buffer = [];
    this._setState(SubState.SUBSCRIBING);
  }

  _request() {
    const req = { channel: this.channel };
    if (this.options.joinLeave) req.join_leave = true;
    if (this.options.data !== undefined) req.data = this.options.data;
    if (this.options.recover && this.recoverable && this.epoch) {
      req.recover = true;
      req.offset = this.offset;
      req.epoch = this.epoch;
    }
    return req;
  }

  _onSubscribed(res) {
    this._attempts = 0;
    const epoch = res.epoch || '';
    const wasRecovering = !!res.was_recovering;
    const recovered = !!res.recovered;
    if (epoch !== this.epoch) {
      // A new stream: positions of the old one mean nothing here.
      this.epoch = epoch;
      this.offset = 0;
    }
    if (res.recoverable) this.recoverable = true;
    const pubs = Array.isArray(res.publications) ? res.publications : [];
    const ev = {
      channel: this.channel,
      recoverable: !!res.recoverable,
      wasRecovering,
      recovered,
      epoch,
      offset: res.offset || 0,
      publications: pubs.length,
      data: res.data,
    };
    const buffered = this._buffer;
    this._buffer = [];
    this._setState(SubState.SUBSCRIBED);
    this._emit('subscribed', ev);
    this.client._emit('subscribed', ev);
    for (const pub of pubs) this._deliver(pub, recovered);
    // Not recovered: continue from the top, the gap is reported by the event.
    this.offset = Math.max(this.offset, res.offset || 0);
    for (const pub of buffered) this._deliver(pub, false);
  }

  _onSubscribeError(err) {
    if (err.code === ClientCode.TRANSPORT_CLOSED) return; // resubscribed on reconnect
    if (err.code === ClientCode.TIMEOUT) {
      this.client._reconnectNow('subscribe timeout');
      return;
    }
    this._emit('error', { channel: this.channel, error: err });
    this.client._emit('error', { type: 'subscribe', channel: this.channel, error: err });
    if (err.temporary) {
      const delay = backoffDelay(
        this._attempts++,
        this.client.options.minReconnectDelay,
        this.client.options.maxReconnectDelay,
      );
      const gen = this._gen;
      this._retryTimer = setTimeout(() => {
        this._retryTimer = null;
        if (gen === this._gen && this.state === SubState.SUBSCRIBING && this.client.state === State.CONNECTED) {
          this.client._sendSubscribe(this);
        }
      }, delay);
      return;
    }
    this._moveToUnsubscribed(err.code, err.message);
  }

  _onPublication(pub) {
    if (this.state === SubState.SUBSCRIBING) {
      this._buffer.push(pub); // arrived before the subscribe reply
    } else if (this.state === SubState.SUBSCRIBED) {
      this._deliver(pub, false);
    }
  }

  /** Emit once per offset: a publication at or below the last offset is a duplicate. */
  _deliver(pub, recovered) {
    const offset = pub.offset || 0;
    if (offset > 0) {
      if (offset <= this.offset) return;
      this.offset = offset;
    }
    const ev = {
      channel: this.channel,
      data: pub.data,
      info: pub.info,
      offset,
      tags: pub.tags,
      recovered,
    };
    this._emit('publication', ev);
    this.client._emit('publication', ev);
  }
}

/**
 * A connection to a Squall (or Centrifugo) server. Options:
 *   token, data, name, version: sent in the connect command;
 *   minReconnectDelay, maxReconnectDelay (ms): backoff bounds;
 *   timeout (ms): per command; maxServerPingDelay (ms): ping grace;
 *   WebSocket: constructor to use (defaults to the global one).
 */
export class Client extends Emitter {
  constructor(url = defaultUrl(), options = {}) {
    super();
    this.url = url;
    this.options = {
      token: '',
      data: undefined,
      name: 'squall-js',
      version: VERSION,
      minReconnectDelay: 500,
      maxReconnectDelay: 20000,
      timeout: 10000,
      maxServerPingDelay: 10000,
      WebSocket: globalThis.WebSocket,
      ...options,
    };
    this.state = State.DISCONNECTED;
    this.clientId = '';
    this.reconnects = 0; // successful connects after the first one
    this._connectedOnce = false;
    this._attempts = 0;
    this._wantConnected = false;
    this._ws = null;
    this._nextId = 1;
    this._pending = new Map();
    this._outbox = [];
    this._flushQueued = false;
    this._subs = new Map();
    this._reconnectTimer = null;
    this._pingTimer = null;
    this._pingInterval = 0;
    this._sendPong = false;
  }

  /** The current WebSocket, or null (exposed for diagnostics and tests). */
  get transport() {
    return this._ws;
  }

  connect() {
    if (this.state !== State.DISCONNECTED) return;
    this._wantConnected = true;
    this._attempts = 0;
    this._setState(State.CONNECTING, ClientCode.DISCONNECT_CALLED, 'connect called');
    this._openTransport();
  }

  disconnect() {
    this._wantConnected = false;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    if (this._ws) {
      this._dropTransport(ClientCode.DISCONNECT_CALLED, 'disconnect called', 1000);
    } else if (this.state !== State.DISCONNECTED) {
      this._setState(State.DISCONNECTED, ClientCode.DISCONNECT_CALLED, 'disconnect called');
    }
  }

  /** A subscription object for channel (not yet subscribing). */
  newSubscription(channel, options = {}) {
    if (this._subs.has(channel)) throw new SquallError(105, `already have a subscription to ${channel}`);
    const sub = new Subscription(this, channel, options);
    this._subs.set(channel, sub);
    return sub;
  }

  /** newSubscription + subscribe, the common case. */
  subscribe(channel, options = {}) {
    const sub = this.newSubscription(channel, options);
    sub.subscribe();
    return sub;
  }

  getSubscription(channel) {
    return this._subs.get(channel) || null;
  }

  subscriptions() {
    return [...this._subs.values()];
  }

  removeSubscription(sub) {
    if (!sub) return;
    sub.unsubscribe();
    if (this._subs.get(sub.channel) === sub) this._subs.delete(sub.channel);
  }

  async publish(channel, data) {
    await this._ready();
    return this._call('publish', { channel, data });
  }

  /** {clients: {clientId: {user, client, conn_info, chan_info}}} */
  async presence(channel) {
    await this._ready();
    const res = await this._call('presence', { channel });
    return { clients: res.presence || {} };
  }

  /** {numClients, numUsers} */
  async presenceStats(channel) {
    await this._ready();
    const res = await this._call('presence_stats', { channel });
    return { numClients: res.num_clients || 0, numUsers: res.num_users || 0 };
  }

  /**
   * History of channel. opts: limit (0 = position only, -1 = all kept),
   * since {offset, epoch}, reverse. Returns {publications, offset, epoch}.
   */
  async history(channel, opts = {}) {
    await this._ready();
    const req = { channel };
    if (opts.limit !== undefined) req.limit = opts.limit;
    if (opts.since) req.since = { offset: opts.since.offset || 0, epoch: opts.since.epoch || '' };
    if (opts.reverse) req.reverse = true;
    const res = await this._call('history', req);
    return { publications: res.publications || [], offset: res.offset || 0, epoch: res.epoch || '' };
  }

  async rpc(method, data) {
    await this._ready();
    const res = await this._call('rpc', { method, data });
    return { data: res.data };
  }

  /** Asynchronous message to the server; no reply. */
  async send(data) {
    await this._ready();
    this._enqueue({ send: { data } });
  }

  // ------------------------------------------------------------ internals

  _setState(state, code, reason) {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this._emit('state', { state, previous, code, reason });
    if (state === State.CONNECTING) this._emit('connecting', { code, reason });
    if (state === State.DISCONNECTED) this._emit('disconnected', { code, reason });
  }

  /** Resolves when connected; rejects when the client will not connect. */
  _ready() {
    if (this.state === State.CONNECTED) return Promise.resolve();
    if (this.state === State.DISCONNECTED) {
      return Promise.reject(new SquallError(ClientCode.DISCONNECT_CALLED, 'client is disconnected'));
    }
    return waitForEvent(this, 'connected', 'disconnected', this.options.timeout, 'timeout waiting for connection');
  }

  _openTransport() {
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    let ws;
    try {
      ws = new this.options.WebSocket(this.url);
    } catch (e) {
      this._emit('error', { type: 'transport', error: e });
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    ws.onopen = () => {
      if (ws === this._ws) this._sendConnect();
    };
    ws.onmessage = (ev) => {
      if (ws === this._ws) this._onFrame(ws, ev.data);
    };
    ws.onclose = (ev) => {
      if (ws !== this._ws) return;
      this._ws = null;
      this._onTransportClosed(ev.code, ev.reason, true);
    };
  }

  /** Close the socket ourselves without waiting for the close handshake. */
  _dropTransport(code, reason, wsCode = 3000) {
    const ws = this._ws;
    if (!ws) return;
    this._ws = null;
    ws.onopen = ws.onmessage = ws.onclose = null;
    try {
      ws.close(wsCode, reason.slice(0, 100));
    } catch (e) {
      // closing an already closed socket: nothing to do
    }
    this._onTransportClosed(code, reason, false);
  }

  _reconnectNow(reason) {
    if (this._ws) this._dropTransport(ClientCode.TRANSPORT_CLOSED, reason);
  }

  _onTransportClosed(code, reason, fromSocket) {
    clearTimeout(this._pingTimer);
    this._pingTimer = null;
    this._outbox = [];
    if (fromSocket) {
      reason = parseCloseReason(reason);
      if (code === 1000 || code === 1005 || code === 1006) {
        reason = reason || 'transport closed';
        code = code === 1006 ? ClientCode.TRANSPORT_CLOSED : code;
      }
    }
    const closed = new SquallError(ClientCode.TRANSPORT_CLOSED, 'connection closed', true);
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.done(closed, null);
    }
    for (const sub of this._subs.values()) {
      if (sub.state !== SubState.UNSUBSCRIBED) sub._moveToSubscribing();
    }
    const reconnect = this._wantConnected && !isPermanentDisconnect(code);
    if (reconnect) {
      this._setState(State.CONNECTING, code, reason);
      this._scheduleReconnect();
    } else {
      this._wantConnected = false;
      this._setState(State.DISCONNECTED, code, reason);
    }
  }

  _scheduleReconnect() {
    clearTimeout(this._reconnectTimer);
    const delay = backoffDelay(this._attempts++, this.options.minReconnectDelay, this.options.maxReconnectDelay);
    this._reconnectTimer = setTimeout(() => {
      this._reconnectTimer = null;
      if (this._wantConnected && !this._ws) this._openTransport();
    }, delay);
  }

  _sendConnect() {
    const req = { name: this.options.name, version: this.options.version };
    if (this.options.token) req.token = this.options.token;
    if (this.options.data !== undefined) req.data = this.options.data;
    const ws = this._ws;
    this._command('connect', req, (err, res) => {
      if (ws !== this._ws) return;
      if (!err) {
        this._onConnected(res);
      } else if (err.temporary || err.code === ClientCode.TIMEOUT) {
        this._dropTransport(ClientCode.TRANSPORT_CLOSED, err.message);
      } else {
        this._wantConnected = false;
        this._emit('error', { type: 'connect', error: err });
        this._dropTransport(err.code, err.message);
      }
    });
  }


  _onConnected(res) {
    this.clientId = res.client || '';
    if (this._connectedOnce) this.reconnects += 1;
    this._connectedOnce = true;
    this._attempts = 0;
    this._pingInterval = res.ping || 0;
    this._sendPong = !!res.pong;
    this._restartPingTimer();
    this._setState(State.CONNECTED);
    this._emit('connected', {
      client: this.clientId,
      version: res.version || '',
      data: res.data,
      reconnects: this.reconnects,
    });
    // Server-side subscriptions (token `channels` claim): announced, not recovered.
    for (const [channel, r] of Object.entries(res.subs || {})) {
      this._emit('server_subscribed', { channel, ...r });
    }
    for (const sub of this._subs.values()) {
      if (sub.state === SubState.SUBSCRIBING) this._sendSubscribe(sub);
    }
  }

  _sendSubscribe(sub) {
    const gen = sub._gen;
    this._command('subscribe', sub._request(), (err, res) => {
      if (gen === sub._gen && sub.state === SubState.SUBSCRIBING) {
        if (err) sub._onSubscribeError(err);
        else sub._onSubscribed(res);
      } else if (!err && sub.state === SubState.UNSUBSCRIBED && this.state === State.CONNECTED) {
        // unsubscribe() was called while this subscribe was in flight
        this._call('unsubscribe', { channel: sub.channel }).catch(() => {});
      }
    });
  }


  /** No ping within ping + grace: the connection is dead even if TCP has not noticed. */
  _restartPingTimer() {
    clearTimeout(this._pingTimer);
    this._pingTimer = null;
    if (this._pingInterval <= 0) return;
    this._pingTimer = setTimeout(() => {
      this._pingTimer = null;
      this._dropTransport(ClientCode.NO_PING, 'no ping');
    }, this._pingInterval * 1000 + this.options.maxServerPingDelay);
  }

  /** Send a command; the reply settles the returned promise. */
  _call(method, params) {
    return new Promise((resolve, reject) => {
      this._command(method, params, (err, res) => (err ? reject(err) : resolve(res)));
    });
  }

  /**
   * Send a command and run done(err, result) synchronously when its reply is
   * read, so protocol state (connect, subscribe) changes before the pushes
   * that follow the reply in the same frame are handled.
   */
  _command(method, params, done) {
    const id = this._nextId++;
    const timer = setTimeout(() => {
      this._pending.delete(id);
      done(new SquallError(ClientCode.TIMEOUT, `${method} timeout`, true), null);
    }, this.options.timeout);
    this._pending.set(id, { method, done, timer });
    this._enqueue({ id, [method]: params });
  }

  /** Commands issued in the same turn go out in one frame, newline-separated. */
  _enqueue(cmd) {
    this._outbox.push(JSON.stringify(cmd));
    if (this._flushQueued) return;
    this._flushQueued = true;
    queueMicrotask(() => {
      this._flushQueued = false;
      if (!this._outbox.length || !this._ws || this._ws.readyState !== 1) return;
      const frame = this._outbox.join('\n');
      this._outbox = [];
      this._ws.send(frame);
    });
  }

  _onFrame(ws, data) {
    if (typeof data !== 'string') {
      this._emit('error', { type: 'protocol', error: new SquallError(ClientCode.BAD_PROTOCOL, 'binary frame') });
      return;
    }
    this._restartPingTimer();
    for (const line of data.split('\n')) {
      if (ws !== this._ws) return; // dropped while handling this frame
      if (!line.trim()) continue;
      let msg;
      try {
        msg = JSON.parse(line);
      } catch (e) {
        this._emit('error', { type: 'protocol', error: new SquallError(ClientCode.BAD_PROTOCOL, 'bad JSON') });
        continue;
      }
      if (!msg || typeof msg !== 'object') continue;
      if (msg.id) this._onReply(msg);
      else if (msg.push) this._onPush(msg.push);
      else if (Object.keys(msg).length === 0) this._onPing();
    }
  }

  _onPing() {
    if (this._sendPong && this._ws && this._ws.readyState === 1) this._ws.send('{}');
  }

  _onReply(msg) {
    const p = this._pending.get(msg.id);
    if (!p) return; // late reply to a timed-out command
    this._pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.error) {
      const e = msg.error;
      p.done(new SquallError(e.code, e.message || '', !!e.temporary), null);
    } else {
      p.done(null, msg[p.method] || {});
    }
  }

  _onPush(push) {
    const channel = push.channel || '';
    const sub = this._subs.get(channel);
    if (push.pub) {
      if (sub) sub._onPublication(push.pub);
      else this._emit('publication', { channel, ...push.pub, offset: push.pub.offset || 0, recovered: false });
    } else if (push.join || push.leave) {
      const kind = push.join ? 'join' : 'leave';
      const ev = { channel, info: (push.join || push.leave).info || {} };
      if (sub) {
        if (sub.state !== SubState.SUBSCRIBED) return;
        sub._emit(kind, ev);
      }
      this._emit(kind, ev);
    } else if (push.unsubscribe) {
      const { code = 0, reason = '' } = push.unsubscribe;
      if (!sub || sub.state === SubState.UNSUBSCRIBED) return;
      if (isResubscribeCode(code)) {
        sub._moveToSubscribing();
        if (this.state === State.CONNECTED) this._sendSubscribe(sub);
      } else {
        sub._moveToUnsubscribed(code, reason);
      }
    } else if (push.subscribe) {
      this._emit('server_subscribed', { channel, ...push.subscribe });
    } else if (push.message) {
      this._emit('message', { data: push.message.data });
    } else if (push.disconnect) {
      // The push carries the real code when the close frame may not; the
      // server closes the socket next, so do not wait for it.
      const { code = 0, reason = '' } = push.disconnect;
      this._dropTransport(code, reason, 1000);
    }
  }
}

/** Old servers put JSON {"reason": ..., "reconnect": ...} in the close reason. */
function parseCloseReason(reason) {
  if (reason && reason[0] === '{') {
    try {
      const obj = JSON.parse(reason);
      if (obj && typeof obj.reason === 'string') return obj.reason;
    } catch (e) {
      // plain text after all
    }
  }
  return reason || '';
}
