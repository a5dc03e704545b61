// Squall admin page. The admin token lives in sessionStorage (gone when the
// tab closes) and travels in the X-Admin-Token header, never in a URL.
// Everything from the server is shown with textContent: channel data is
// untrusted.

const TOKEN_KEY = "squall-admin-token";
const POLL_MS = 1000;
const LOG_MAX = 200;

const $ = (id) => document.getElementById(id);
let pollTimer = null;
let last = null; // previous stats sample, for rates
let inspector = null; // AbortController of the running inspect stream

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

class AuthError extends Error {}

async function api(path, { method = "GET", body } = {}) {
  const headers = { "X-Admin-Token": token() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) {
    logout();
    throw new AuthError("login required");
  }
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}

function show(loggedIn) {
  $("login").hidden = loggedIn;
  $("dashboard").hidden = !loggedIn;
  $("logout").hidden = !loggedIn;
}

function logout() {
  sessionStorage.removeItem(TOKEN_KEY);
  stopInspect();
  if (pollTimer !== null) clearTimeout(pollTimer);
  pollTimer = null;
  last = null;
  show(false);
}

function cell(row, text, numeric = false) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (numeric) td.className = "num";
  row.appendChild(td);
  return td;
}

function fillTable(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function renderStats(s) {
  $("node").textContent = `${s.node.name} · ${s.node.version}`;
  const now = s.time;
  if (last !== null && now > last.time) {
    const dt = now - last.time;
    $("rate-pub").textContent = ((s.counters.publications - last.counters.publications) / dt).toFixed(1);
    $("rate-del").textContent = ((s.counters.deliveries - last.counters.deliveries) / dt).toFixed(1);
  }
  last = s;
  $("stat-clients").textContent = s.clients;
  $("stat-users").textContent = s.users;
  $("stat-subs").textContent = s.subscriptions;
  $("stat-broker").textContent = s.broker_healthy ? "up" : "DOWN";
  fillTable($("nodes"), s.nodes.map((n) => {
    const tr = document.createElement("tr");
    cell(tr, n.name);
    cell(tr, n.num_clients, true);
    cell(tr, n.num_users, true);
    cell(tr, n.num_subs, true);
    cell(tr, n.num_channels, true);
    return tr;
  }));
  fillTable($("sdks"), (s.sdks || []).map((k) => {
    const tr = document.createElement("tr");
    cell(tr, k.name);
    cell(tr, k.version || "-");
    cell(tr, k.clients, true);
    return tr;
  }));
  fillTable($("channels"), s.channels.map((c) => {
    const tr = document.createElement("tr");
    tr.className = "clickable";
    tr.dataset.channel = c.channel;
    tr.title = "inspect, publish to, and show presence of this channel";
    cell(tr, c.channel);
    cell(tr, c.subscribers, true);
    tr.addEventListener("click", () => pickChannel(c.channel));
    return tr;
  }));
}

function pickChannel(channel) {
  for (const id of ["inspect-channel", "pub-channel", "presence-channel"]) $(id).value = channel;
}

async function poll() {
  pollTimer = null;
  try {
    renderStats(await api("/admin/api/stats"));
    $("poll-error").textContent = "";
  } catch (e) {
    if (e instanceof AuthError) return;
    $("poll-error").textContent = `stats: ${e.message}`;
  }
  if (token()) pollTimer = setTimeout(poll, POLL_MS);
}

function startDashboard() {
  show(true);
  if (pollTimer === null) poll();
}

// ---------------------------------------------------------------- inspector
function logLine(msg) {
  const li = document.createElement("li");
  const kind = document.createElement("span");
  kind.className = "kind";
  kind.textContent = msg.kind;
  li.appendChild(kind);
  const text = document.createElement("span");
  if (msg.kind === "pub") {
    text.textContent = `${msg.offset ? "#" + msg.offset + " " : ""}${JSON.stringify(msg.data)}`;
  } else if (msg.kind === "join" || msg.kind === "leave") {
    text.textContent = `user=${msg.info.user} client=${msg.info.client}`;
  } else {
    text.textContent = `${msg.channel} offset=${msg.offset ?? ""} epoch=${msg.epoch ?? ""}`;
  }
  li.appendChild(text);
  const log = $("inspect-log");
  log.prepend(li);
  while (log.childElementCount > LOG_MAX) log.lastElementChild.remove();
}

function stopInspect() {
  if (inspector !== null) inspector.abort();
  inspector = null;
  $("inspect-btn").disabled = false;
  $("inspect-stop").disabled = true;
}

async function inspect(channel) {
  stopInspect();
  const ctl = (inspector = new AbortController());
  $("inspect-btn").disabled = true;
  $("inspect-stop").disabled = false;
  $("inspect-log").replaceChildren();
  $("inspect-state").textContent = `connecting to ${channel}…`;
  try {
    const r = await fetch(`/admin/api/inspect?channel=${encodeURIComponent(channel)}`, {
      headers: { "X-Admin-Token": token() },
      signal: ctl.signal,
    });
    if (r.status === 401) return logout();
    if (!r.ok) {
      const data = await r.json().catch(() => ({}));
      throw new Error(data.error || `HTTP ${r.status}`);
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue; // keep-alive
        const msg = JSON.parse(line);
        if (msg.kind === "subscribed") $("inspect-state").textContent = `watching ${msg.channel}`;
        logLine(msg);
      }
    }
    $("inspect-state").textContent = "stream ended";
  } catch (e) {
    if (ctl.signal.aborted) {
      $("inspect-state").textContent = "not watching";
    } else {
      $("inspect-state").textContent = `inspector: ${e.message}`;
    }
  } finally {
    if (inspector === ctl) stopInspect();
  }
}

// ---------------------------------------------------------------- forms
function bind() {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    try {
      const r = await fetch("/admin/api/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ password: $("password").value }),
      });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
      sessionStorage.setItem(TOKEN_KEY, data.token);
      $("password").value = "";
      startDashboard();
    } catch (e) {
      $("login-error").textContent = e.message;
    }
  });
  $("logout").addEventListener("click", logout);

  $("inspect-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    inspect($("inspect-channel").value.trim());
  });
  $("inspect-stop").addEventListener("click", stopInspect);

  $("publish-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("pub-result");
    let data;
    try {
      data = JSON.parse($("pub-data").value);
    } catch (e) {
      out.textContent = "data is not valid JSON";
      return;
    }
    try {
      const r = await api("/admin/api/publish", { method: "POST", body: { channel: $("pub-channel").value.trim(), data } });
      out.textContent = `published to ${r.channel}${r.offset ? " at offset " + r.offset : ""}`;
    } catch (e) {
      out.textContent = `publish failed: ${e.message}`;
    }
  });

  $("presence-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const channel = $("presence-channel").value.trim();
    try {
      const r = await api(`/admin/api/presence?channel=${encodeURIComponent(channel)}`);
      $("presence-result").textContent = `${r.clients.length} in ${r.channel}`;
      fillTable($("presence"), r.clients.map((c) => {
        const tr = document.createElement("tr");
        cell(tr, presenceName(c));
        cell(tr, c.client);
        return tr;
      }));
    } catch (e) {
      $("presence-result").textContent = `presence failed: ${e.message}`;
      fillTable($("presence"), []);
    }
  });

  $("disconnect-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const user = $("dc-user").value.trim();
    try {
      const r = await api("/admin/api/disconnect", { method: "POST", body: { user } });
      $("dc-result").textContent = disconnectSummary(user, r);
    } catch (e) {
      $("dc-result").textContent = `disconnect failed: ${e.message}`;
    }
  });
}

/** Who a presence entry is: the nickname in conn_info (as the chat page shows it), then the user. */
function presenceName(c) {
  const ci = c.conn_info;
  const nick = ci && typeof ci === "object" && typeof ci.name === "string" && ci.name.trim()
    ? ci.name.trim() : (typeof ci === "string" && ci.trim() ? ci.trim() : "");
  if (nick && c.user && c.user !== nick) return `${nick} (user ${c.user})`;
  return nick || c.user || "(anonymous)";
}

/** What a disconnect did: counted on this node, sent on to the others. */
function disconnectSummary(user, r) {
  const here = Number(r.disconnected) || 0;
  const others = Number(r.other_nodes) || 0;
  const conns = (n) => `${n} connection${n === 1 ? "" : "s"}`;
  if (!others) {
    return here ? `disconnected ${conns(here)} of user ${user}` : `nobody was disconnected: user ${user} has no connection`;
  }
  return `disconnected ${conns(here)} of user ${user} on this node; sent to ${others} other node${others === 1 ? "" : "s"}`;
}

bind();
if (token()) startDashboard();
else show(false);
