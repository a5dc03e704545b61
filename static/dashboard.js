// The live dashboard: charts of metrics:* channels fed over unidirectional
// SSE (default) or the bidirectional WebSocket protocol (squall.js).
//
// SSE follows Centrifugo's uni protocol: the first message is
// {"connect": {..., "subs": {channel: {epoch, offset, publications}}}}, then
// {"channel": c, "pub": {...}} pushes, {} pings and a final {"disconnect": ...}.
// EventSource reconnects by itself after a network error and sends the last
// event id (our stream positions) so the server replays what was missed; when
// the server ends the stream with a disconnect that allows reconnecting, we
// reopen with the positions in cf_connect.

import { Client, isPermanentDisconnect, backoffDelay } from './squall.js';
import { LineChart } from './chart.js';

// min: the y axis floor (none of these can be negative)
const SERIES = {
  'metrics:cpu': { title: 'CPU', unit: '%', color: '#2f5bd3', digits: 1, min: 0 },
  'metrics:rps': { title: 'Requests', unit: 'req/s', color: '#1f8a4c', digits: 0, min: 0 },
  'metrics:mem': { title: 'Memory', unit: '%', color: '#8a4fd1', digits: 1, min: 0 },
  'metrics:latency': { title: 'Latency p99', unit: 'ms', color: '#c2372f', digits: 1, min: 0 },
};
const FALLBACK_COLORS = ['#b7791f', '#0f8b8d', '#d1495b', '#5d6675'];
const WINDOW_MS = 60_000;
// The last minute of every chart and its stream position survive a reload: the
// page draws them at once and the feed recovers only what came meanwhile.
const STORE_KEY = 'squall.dashboard.v1';

function loadSaved() {
  try {
    const v = JSON.parse(localStorage.getItem(STORE_KEY) || '{}');
    return v && typeof v === 'object' ? v : {};
  } catch {
    return {}; // storage blocked or junk: start empty
  }
}

function save(series) {
  const out = {};
  for (const s of series.values()) out[s.channel] = s.snapshot();
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(out));
  } catch {
    // storage blocked or full: the next load starts empty
  }
}

const $ = (sel, root = document) => root.querySelector(sel);

/** One card per channel: latest value, chart, and the channel's stream position. */
class Series {
  constructor(channel, index) {
    const meta = SERIES[channel] || {
      title: channel.split(':').pop(),
      unit: '',
      color: FALLBACK_COLORS[index % FALLBACK_COLORS.length],
      digits: 2,
    };
    this.channel = channel;
    this.meta = meta;
    const node = $('#card-template').content.firstElementChild.cloneNode(true);
    node.dataset.series = channel;
    node.dataset.count = '0';
    $('.title', node).textContent = meta.title;
    $('.channel', node).textContent = channel;
    $('.unit', node).textContent = meta.unit;
    $('canvas', node).setAttribute('aria-label', `${meta.title} over the last minute`);
    this.node = node;
    this.num = $('.num', node);
    this.chart = new LineChart($('canvas', node), {
      color: meta.color, windowMs: WINDOW_MS, digits: meta.digits, min: meta.min, empty: `waiting for ${channel}…`,
    });
    this.count = 0;
    this.offset = 0; // last offset seen (dedupe on overlap after recovery)
    this.epoch = '';
  }

  /** What a reload needs: the points still in the window, the stream position, the shown value. */
  snapshot() {
    return { epoch: this.epoch, offset: this.offset, points: this.chart.points, value: this.num.textContent };
  }

  /** Draw a snapshot saved by an earlier load; points older than the window are dropped. */
  restore(snap, now = Date.now()) {
    if (!snap || !Array.isArray(snap.points)) return;
    for (const p of snap.points) {
      if (Array.isArray(p) && Number.isFinite(p[0]) && Number.isFinite(p[1]) && now - p[0] < WINDOW_MS && p[0] <= now) {
        this.chart.push(p[0], p[1]);
      }
    }
    if (!this.chart.points.length) return; // all too old: the position would only replay stale points
    if (typeof snap.epoch === 'string') this.position(snap.epoch, Number(snap.offset) || 0);
    if (typeof snap.value === 'string') this.num.textContent = snap.value;
    this.node.dataset.restored = String(this.chart.points.length);
  }

  /** A stream position from a (re)subscribe: a new epoch resets dedupe. */
  position(epoch, offset) {
    if (epoch && epoch !== this.epoch) {
      this.epoch = epoch;
      this.offset = 0;
    }
    this.offset = Math.max(this.offset, offset || 0);
  }

  publication(pub) {
    const offset = pub.offset || 0;
    if (offset) {
      if (offset <= this.offset) return false;
      this.offset = offset;
    }
    const d = pub.data;
    const v = typeof d === 'number' ? d : Number(d && d.v);
    if (!Number.isFinite(v)) return false;
    const now = Date.now();
    // The feed's own timestamp keeps the shape of recovered points; a clock far
    // off from ours would push them out of the window, so then use arrival time.
    const t = d && Number.isFinite(d.t) && Math.abs(d.t - now) < 10_000 ? d.t : now;
    this.chart.push(t, v);
    this.num.textContent = v.toFixed(this.meta.digits);
    this.count += 1;
    this.node.dataset.count = String(this.count);
    return true;
  }
}

/** Connection state shown in the header, shared by both transports. */
class StatusView {
  constructor() {
    this.root = $('#conn');
  }

  set(state, reconnects, transport) {
    this.root.dataset.state = state;
    this.root.dataset.reconnects = String(reconnects);
    $('#conn-state').textContent = state;
    $('#conn-reconnects').textContent = String(reconnects);
    $('#conn-transport').textContent = transport === 'ws' ? 'WebSocket' : 'SSE';
  }
}

/** Unidirectional SSE with Last-Event-ID recovery. */
class SSEFeed {
  constructor(series, onPub, onState) {
    this.series = series;
    this.onPub = onPub;
    this.onState = onState;
    this.es = null;
    this.connects = 0;
    this.attempts = 0;
    this.timer = null;
    this.stopped = false;
  }

  get reconnects() {
    return Math.max(0, this.connects - 1);
  }

  url() {
    const subs = {};
    for (const s of this.series.values()) {
      subs[s.channel] = s.epoch ? { recover: true, offset: s.offset, epoch: s.epoch } : {};
    }
    const u = new URL('/connection/uni_sse', location.href);
    u.searchParams.set('cf_connect', JSON.stringify({ subs }));
    return u;
  }

  start() {
    this.stopped = false;
    this.onState('connecting');
    const es = new EventSource(this.url());
    this.es = es;
    es.onmessage = (ev) => this.message(ev.data);
    es.onerror = () => {
      if (this.es !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        this.retry(); // HTTP error: EventSource gives up, we do not
      } else {
        this.onState('connecting'); // EventSource reconnects with Last-Event-ID
      }
    };
  }

  retry() {
    if (this.es) this.es.close();
    this.es = null;
    if (this.stopped) return;
    this.onState('connecting');
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.start(), backoffDelay(this.attempts++, 500, 10_000));
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.es) this.es.close();
    this.es = null;
    this.onState('disconnected');
  }

  message(raw) {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      return;
    }
    if (msg.connect) {
      this.connects += 1;
      this.attempts = 0;
      for (const [channel, sub] of Object.entries(msg.connect.subs || {})) {
        const s = this.series.get(channel);
        if (!s) continue;
        for (const pub of sub.publications || []) this.onPub(s, pub);
        s.position(sub.epoch, sub.offset);
      }
      this.onState('connected');
    } else if (msg.pub && msg.channel) {
      const s = this.series.get(msg.channel);
      if (s) this.onPub(s, msg.pub);
    } else if (msg.disconnect) {
      if (isPermanentDisconnect(msg.disconnect.code)) {
        this.stop();
      } else {
        this.retry();
      }
    }
  }
}

/** Bidirectional WebSocket through squall.js (recovery is the client's). */
class WSFeed {
  constructor(series, onPub, onState) {
    this.series = series;
    this.client = new Client();
    this.client.on('state', (ev) => onState(ev.state));
    for (const s of series.values()) {
      const sub = this.client.newSubscription(s.channel);
      if (s.epoch) {
        // a position restored from an earlier load: recover from it rather than start at the top
        sub.epoch = s.epoch;
        sub.offset = s.offset;
        sub.recoverable = true;
      }
      sub.subscribe();
      sub.on('publication', (ev) => onPub(s, { data: ev.data, offset: ev.offset }));
    }
  }

  get reconnects() {
    return this.client.reconnects;
  }

  start() {
    this.client.connect();
  }

  stop() {
    this.client.disconnect();
  }
}

function channelsFromQuery() {
  const q = new URLSearchParams(location.search).get('channels');
  const list = q ? q.split(',').map((c) => c.trim()).filter(Boolean) : Object.keys(SERIES);
  return [...new Set(list)];
}

function main() {
  const series = new Map();
  const saved = loadSaved();
  channelsFromQuery().forEach((channel, i) => {
    const s = new Series(channel, i);
    s.restore(saved[channel]);
    series.set(channel, s);
    $('#cards').append(s.node);
  });
  addEventListener('pagehide', () => save(series));
  setInterval(() => save(series), 5000);
  const status = new StatusView();
  let updates = 0;
  const onPub = (s, pub) => {
    if (s.publication(pub)) updates += 1;
  };
  let feed = null;
  let transport = new URLSearchParams(location.search).get('transport') === 'ws' ? 'ws' : 'sse';
  const onState = (state) => status.set(state, feed ? feed.reconnects : 0, transport);

  function use(kind) {
    if (feed) feed.stop();
    transport = kind;
    const radio = $(`input[name="transport"][value="${kind}"]`);
    if (radio) radio.checked = true;
    feed = kind === 'ws' ? new WSFeed(series, onPub, onState) : new SSEFeed(series, onPub, onState);
    feed.start();
  }

  $('#transport').addEventListener('change', (ev) => use(ev.target.value));
  use(transport);

  // Charts scroll with time even when a series is quiet; redraw ~30 times a second.
  let lastRate = performance.now();
  let lastFrame = 0;
  const frame = (now) => {
    if (now - lastFrame >= 33) {
      lastFrame = now;
      const wall = Date.now();
      for (const s of series.values()) s.chart.draw(wall, true);
    }
    if (now - lastRate >= 1000) {
      $('#rate').textContent = String(Math.round((updates * 1000) / (now - lastRate)));
      updates = 0;
      lastRate = now;
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  globalThis.squallDashboard = { series, get feed() { return feed; }, use };
}

main();
