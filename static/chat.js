// The chat page: rooms are channels chat:<room>. Messages carry the sender's
// nickname in their data ({nick, text, ts}). The server's conn_info (the name
// presence, the admin page and the server API show) comes from the connect
// data through the demo's connect hook, so a rename is announced in the room
// ({nick, rename: old, ts}) and then the page reconnects with the new name:
// its room is resubscribed with recovery, and the others skip that leave and
// join. Presence names: the latest nickname learnt from the room, else
// conn_info.name.
import { Client, State, SubState } from './squall.js';
import { EmulatedSocket } from './squall_emulation.js';

const DEFAULT_ROOMS = ['lobby', 'random'];
const ROOM_RE = /^[a-z0-9_.-]{1,32}$/;
const HISTORY_LIMIT = 50;
const MAX_RENDERED = 500;
const NICK_MAX = 32;

const $ = (id) => document.getElementById(id);
const el = {
  conn: $('conn'),
  connState: $('conn-state'),
  connReconnects: $('conn-reconnects'),
  nickForm: $('nick-form'),
  nick: $('nick'),
  rooms: $('rooms'),
  roomForm: $('room-form'),
  roomName: $('room-name'),
  roomTitle: $('room-title'),
  roomState: $('room-state'),
  messages: $('messages'),
  composer: $('composer'),
  text: $('composer-text'),
  online: $('online'),
  onlineCount: $('online-count'),
};

// ---------------------------------------------------------------- storage
function load(key, fallback) {
  try {
    const v = localStorage.getItem(`squall.${key}`);
    return v === null ? fallback : JSON.parse(v);
  } catch (e) {
    return fallback; // storage blocked or junk: use the default
  }
}

function save(key, value) {
  try {
    localStorage.setItem(`squall.${key}`, JSON.stringify(value));
  } catch (e) {
    // storage blocked (private mode): settings last for this page only
  }
}

const params = new URLSearchParams(location.search);
const cleanNick = (s) => String(s || '').trim().slice(0, NICK_MAX);

let nick = cleanNick(params.get('nick')) || cleanNick(load('nick', '')) ||
  `guest-${Math.floor(1000 + Math.random() * 9000)}`;
const rooms = [...new Set([...DEFAULT_ROOMS, ...load('rooms', []).filter((r) => ROOM_RE.test(r))])];
let startRoom = (params.get('room') || load('room', 'lobby')).toLowerCase();
if (!ROOM_RE.test(startRoom)) startRoom = 'lobby';
if (!rooms.includes(startRoom)) rooms.push(startRoom);

// ------------------------------------------------------------------ state
// ?transport=sse: Server-Sent Events plus POSTs instead of WebSocket (for networks that block it)
const emulated = params.get('transport') === 'sse' ? { WebSocket: EmulatedSocket } : {};
const client = new Client(undefined, { data: { name: nick }, ...emulated });
const myClientIds = new Set(); // every id this page had, across reconnects
const nickByClient = new Map(); // learnt from messages, for presence names
const RENAME_REJOIN_MS = 15000; // how long a rename's reconnect is expected
const renamedAway = new Map(); // client id that announced a rename -> time: its leave is no news
const rejoining = new Map(); // new name of a renamed client -> time: its join is no news

let room = '';
let sub = null;
let presence = new Map(); // client id -> ClientInfo
let rendered = new Set(); // offsets shown in this room
let epoch = '';
let historyLoading = false;
let queued = []; // live publications held back while history loads
let roomError = null; // the room's last temporary error (a backend outage) until it is live again

// ---------------------------------------------------------------- helpers
function hue(s) {
  let h = 0;
  for (const ch of s) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function formatTime(ts) {
  const d = new Date(ts);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function displayName(info) {
  if (!info) return 'someone';
  if (myClientIds.has(info.client)) return nick;
  // learnt from the room (messages, renames) is newer than the name given at connect
  if (nickByClient.has(info.client)) return nickByClient.get(info.client);
  const ci = info.conn_info;
  if (ci && typeof ci === 'object' && typeof ci.name === 'string' && ci.name.trim()) {
    return cleanNick(ci.name);
  }
  if (info.user) return String(info.user);
  return `guest ${String(info.client || '').slice(0, 6)}`;
}

function scrolledToBottom() {
  const m = el.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 40;
}

function appendItem(li, offset = 0) {
  const stick = scrolledToBottom();
  if (offset > 0) {
    // Keep messages in stream order even when older ones arrive late (history).
    let before = null;
    for (const child of el.messages.children) {
      const o = Number(child.dataset.offset || 0);
      if (o > offset) {
        before = child;
        break;
      }
    }
    el.messages.insertBefore(li, before);
  } else {
    el.messages.appendChild(li);
  }
  while (el.messages.children.length > MAX_RENDERED) el.messages.firstElementChild.remove();
  if (stick) el.messages.scrollTop = el.messages.scrollHeight;
}

function notice(text, kind = 'info') {
  const li = document.createElement('li');
  li.className = `notice notice-${kind}`;
  li.textContent = text;
  appendItem(li);
}

// -------------------------------------------------------------- messages
function renderPublication(pub) {
  if (pub.offset > 0) {
    if (rendered.has(pub.offset)) return;
    rendered.add(pub.offset);
  }
  const data = pub.data && typeof pub.data === 'object' ? pub.data : { text: String(pub.data) };
  const info = pub.info || null;
  const name = cleanNick(typeof data.nick === 'string' ? data.nick : '') || displayName(info);
  if (info && info.client && typeof data.nick === 'string') nickByClient.set(info.client, name);
  if (typeof data.rename === 'string') {
    if (!(info && myClientIds.has(info.client))) {
      notice(`${cleanNick(data.rename) || 'someone'} is now ${name}`, 'info');
      if (info && info.client && !pub.recovered && !historyLoading) {
        // live: the renamer reconnects with the new name next (a new client id)
        renamedAway.set(info.client, Date.now());
        rejoining.set(name, Date.now());
      }
    }
    renderPresence();
    return;
  }
  const text = typeof data.text === 'string' ? data.text : JSON.stringify(pub.data);
  const ts = Number.isFinite(data.ts) ? data.ts : Date.now();

  const li = document.createElement('li');
  li.className = 'msg';
  if (info && myClientIds.has(info.client)) li.classList.add('msg-mine');
  if (pub.offset > 0) li.dataset.offset = String(pub.offset);
  const meta = document.createElement('div');
  meta.className = 'msg-meta';
  const who = document.createElement('span');
  who.className = 'msg-nick';
  who.style.setProperty('--hue', String(hue(name)));
  who.textContent = name;
  const time = document.createElement('time');
  time.dateTime = new Date(ts).toISOString();
  time.textContent = formatTime(ts);
  meta.append(who, ' ', time);
  const body = document.createElement('div');
  body.className = 'msg-text';
  body.textContent = text;
  li.append(meta, body);
  appendItem(li, pub.offset);
  renderPresence(); // a message may teach us a name
}

function onPublication(pub) {
  if (historyLoading) queued.push(pub);
  else renderPublication(pub);
}

async function loadHistory(forSub, afterLoad) {
  historyLoading = true;
  queued = [];
  try {
    const res = await forSub.history({ limit: HISTORY_LIMIT, reverse: true });
    if (forSub !== sub) return;
    if (res.epoch && res.epoch !== epoch) {
      epoch = res.epoch;
      rendered = new Set([...el.messages.querySelectorAll('[data-offset]')].map((n) => Number(n.dataset.offset)));
    }
    for (const pub of res.publications.reverse()) {
      renderPublication({ ...pub, offset: pub.offset || 0 });
    }
  } catch (e) {
    if (forSub === sub) notice(`Could not load history: ${e.message || e.code}`, 'error');
  } finally {
    if (forSub === sub) {
      historyLoading = false;
      const pending = queued;
      queued = [];
      if (afterLoad) afterLoad();
      pending.forEach(renderPublication);
    }
  }
}

// -------------------------------------------------------------- presence
function renderPresence() {
  const entries = [...presence.values()].map((info) => ({
    info,
    name: displayName(info),
    mine: myClientIds.has(info.client),
  }));
  entries.sort((a, b) => (b.mine - a.mine) || a.name.localeCompare(b.name));
  const items = entries.map(({ info, name, mine }) => {
    const li = document.createElement('li');
    li.dataset.client = info.client;
    const dot = document.createElement('span');
    dot.className = 'presence-dot';
    dot.setAttribute('aria-hidden', 'true');
    const label = document.createElement('span');
    label.className = 'presence-name';
    label.style.setProperty('--hue', String(hue(name)));
    label.textContent = name;
    li.append(dot, label);
    if (mine) {
      const you = document.createElement('span');
      you.className = 'presence-you';
      you.textContent = '(you)';
      li.append(' ', you);
    }
    return li;
  });
  el.online.replaceChildren(...items);
  el.onlineCount.textContent = String(entries.length);
}

async function refreshPresence(forSub) {
  try {
    const res = await forSub.presence();
    if (forSub !== sub || forSub.state !== SubState.SUBSCRIBED) return;
    presence = new Map(Object.entries(res.clients));
    renderPresence();
  } catch (e) {
    if (forSub === sub) notice(`Could not load who is online: ${e.message || e.code}`, 'error');
  }
}

// ----------------------------------------------------------------- rooms
function renderRooms() {
  const items = rooms.map((r) => {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'room';
    b.textContent = `#${r}`;
    b.dataset.room = r;
    if (r === room) b.setAttribute('aria-current', 'true');
    b.addEventListener('click', () => enterRoom(r));
    li.append(b);
    return li;
  });
  el.rooms.replaceChildren(...items);
}

function setRoomState(state) {
  const text = {
    [SubState.SUBSCRIBED]: 'live',
    [SubState.SUBSCRIBING]: 'joining…',
    [SubState.UNSUBSCRIBED]: 'not subscribed',
  }[state];
  el.roomState.textContent = text;
  el.roomState.dataset.state = state;
}

function setRoomError(err) {
  roomError = err;
  renderConnection(client.state);
}

function enterRoom(name) {
  if (name === room && sub) return;
  if (sub) client.removeSubscription(sub);
  setRoomError(null);
  room = name;
  save('room', room);
  const url = new URL(location.href);
  url.searchParams.set('room', room);
  history.replaceState(null, '', url);
  el.roomTitle.textContent = `#${room}`;
  document.title = `#${room} · Squall chat`;
  el.messages.replaceChildren();
  presence = new Map();
  rendered = new Set();
  epoch = '';
  historyLoading = false;
  queued = [];
  renderPresence();
  renderRooms();

  const s = client.newSubscription(`chat:${room}`, { joinLeave: true });
  sub = s;
  s.on('state', (ev) => { if (s === sub) setRoomState(ev.state); });
  s.on('publication', (pub) => { if (s === sub) onPublication(pub); });
  s.on('subscribed', (ev) => {
    if (s !== sub) return;
    setRoomError(null);
    onSubscribed(s, ev);
  });
  s.on('join', (ev) => {
    if (s !== sub) return;
    presence.set(ev.info.client, ev.info);
    renderPresence();
    const name = displayName(ev.info);
    if (expected(rejoining, name)) return; // a renamed client back under its new name
    if (!myClientIds.has(ev.info.client)) notice(`${name} joined`, 'join');
  });
  s.on('leave', (ev) => {
    if (s !== sub) return;
    const known = presence.get(ev.info.client) || ev.info;
    presence.delete(ev.info.client);
    renderPresence();
    if (expected(renamedAway, ev.info.client)) return; // reconnecting with its new name
    if (!myClientIds.has(ev.info.client)) notice(`${displayName(known)} left`, 'leave');
  });
  s.on('unsubscribed', (ev) => {
    if (s === sub && ev.code !== 0) notice(`Left #${room}: ${ev.reason} (${ev.code})`, 'error');
  });
  s.on('error', (ev) => {
    if (s !== sub) return;
    const err = ev.error;
    // a retried outage says so once, not on every retry
    if (!roomError || roomError.message !== err.message) notice(`Room error: ${err.message} (${err.code})`, 'error');
    setRoomError(err.temporary ? err : null);
  });
  setRoomState(s.state);
  s.subscribe();
}

/** Whether key was announced within RENAME_REJOIN_MS (and forget it: it is expected once). */
function expected(map, key) {
  const at = map.get(key);
  if (at === undefined) return false;
  map.delete(key);
  return Date.now() - at < RENAME_REJOIN_MS;
}

function onSubscribed(s, ev) {
  if (ev.epoch && epoch && ev.epoch !== epoch) rendered = new Set();
  if (ev.epoch) epoch = ev.epoch;
  if (!ev.wasRecovering) {
    // First entry: the past first, then the live flow.
    loadHistory(s, () => notice(`You joined #${room}`, 'self'));
  } else if (ev.recovered) {
    if (ev.publications > 0) notice(`Back online: ${ev.publications} missed message(s) recovered`, 'self');
  } else {
    notice('Back online: missed messages could not be recovered, reloading history', 'error');
    loadHistory(s, null);
  }
  refreshPresence(s);
}

// ------------------------------------------------------------ connection
function renderConnection(state) {
  // Connected but the room cannot be joined because a backend is down: degraded, with the server's reason.
  const degraded = state === State.CONNECTED && roomError;
  el.conn.dataset.state = degraded ? 'degraded' : state;
  el.connState.textContent = degraded ? `degraded: ${roomError.message}` : state;
  el.conn.title = degraded ? 'The server is up but one of its backends is not; retrying.' : '';
  el.connReconnects.textContent = String(client.reconnects);
}

client.on('state', (ev) => renderConnection(ev.state));
client.on('connected', (ev) => {
  myClientIds.add(ev.client);
  renderConnection(State.CONNECTED);
});
client.on('connecting', (ev) => {
  if (ev.code !== 0) presence = new Map(); // stale until resubscribed
  renderPresence();
});
client.on('disconnected', (ev) => {
  if (ev.code !== 0) notice(`Disconnected: ${ev.reason || 'no reason'} (${ev.code})`, 'error');
});

// ----------------------------------------------------------------- forms
el.nick.value = nick;
el.nickForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const v = cleanNick(el.nick.value);
  if (!v) return;
  const old = nick;
  el.nick.value = v;
  if (v === old) return;
  notice(`You are now ${v}`, 'self');
  nick = v;
  save('nick', v);
  client.options.data = { name: v }; // the connect data the demo hook makes conn_info from
  renderPresence();
  if (client.state !== State.CONNECTED) return; // the coming connect carries the new name
  // tell the room first (from this connection), so the others link the old name to the new one
  if (sub && sub.state === SubState.SUBSCRIBED) {
    try {
      await sub.publish({ nick: v, rename: old, ts: Date.now() });
    } catch (err) {
      // not announced: the others still see the new name after the reconnect
    }
  }
  if (nick !== v || client.state !== State.CONNECTED) return; // renamed again meanwhile, or already reconnecting
  // conn_info is set at connect: reconnect so presence, the admin page and the server API show the new name
  client.disconnect();
  client.connect();
});

el.roomForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const r = el.roomName.value.trim().toLowerCase().replace(/^#/, '');
  if (!ROOM_RE.test(r)) {
    el.roomName.setCustomValidity('Use 1-32 lowercase letters, digits, - _ .');
    el.roomName.reportValidity();
    return;
  }
  el.roomName.setCustomValidity('');
  el.roomName.value = '';
  if (!rooms.includes(r)) {
    rooms.push(r);
    save('rooms', rooms.filter((x) => !DEFAULT_ROOMS.includes(x)));
  }
  enterRoom(r);
});
el.roomName.addEventListener('input', () => el.roomName.setCustomValidity(''));

el.composer.addEventListener('submit', async (e) => {
  e.preventDefault();
  const text = el.text.value.trim();
  if (!text || !sub) return;
  if (sub.state !== SubState.SUBSCRIBED) {
    // Publishing as a non-member would only be refused (103); say what is really wrong.
    const why = roomError ? `the server cannot join the room: ${roomError.message}` : 'still joining the room';
    notice(`Not sent: ${why}; try again in a moment`, 'error');
    return;
  }
  el.text.value = '';
  try {
    await sub.publish({ nick, text, ts: Date.now() });
  } catch (err) {
    notice(`Not sent: ${err.message || 'error'} (${err.code})`, 'error');
    if (!el.text.value) el.text.value = text;
  }
});

// ------------------------------------------------------------------ start
// Exposed for debugging in the console and for the browser tests.
window.squallChat = {
  client,
  get subscription() { return sub; },
  get room() { return room; },
  enterRoom,
};

renderConnection(client.state);
enterRoom(startRoom);
client.connect();
el.text.focus();
