// centrifuge-js: a fossil-delta subscription and a tags-filtered one, fed through the server API.
// Usage: node delta_tags.mjs <transport websocket|http_stream|sse> <base> <apiKey> <deltaChannel> <tagsChannel> <docsJson>
// Prints one JSON line: what each subscription decoded, and delta statistics.
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
import { readFileSync } from 'node:fs';
import { NodeEventSource } from './eventsource.mjs';

const [transport, base, apiKey, deltaChannel, tagsChannel, docsPath] = process.argv.slice(2);
const docs = JSON.parse(readFileSync(docsPath, 'utf8'));
const out = { delta: [], negotiated: null, stats: null, tags: [], errors: [] };
const timer = setTimeout(() => { out.errors.push('timeout'); finish(1); }, 20000);
const endpoint = transport === 'websocket' ? base.replace('http', 'ws') + '/connection/websocket'
  : base + (transport === 'sse' ? '/connection/sse' : '/connection/http_stream');
const client = new Centrifuge([{ transport, endpoint }], {
  websocket: WebSocket, eventsource: NodeEventSource, emulationEndpoint: base + '/emulation',
});
client.on('error', (ctx) => out.errors.push(String(ctx.error && ctx.error.message)));
const ds = client.newSubscription(deltaChannel, { delta: 'fossil' });
ds.on('publication', (ctx) => out.delta.push(ctx.data));
ds.on('subscribed', (ctx) => { out.negotiated = ds._delta_negotiated; });
const ts = client.newSubscription(tagsChannel, { tagsFilter: { op: 'or', nodes: [
  { key: 'ticker', cmp: 'eq', val: 'BTC' }, { key: 'price', cmp: 'gt', val: '100.5' }] } });
ts.on('publication', (ctx) => out.tags.push({ data: ctx.data, tags: ctx.tags || null }));
for (const s of [ds, ts]) s.on('error', (ctx) => out.errors.push('sub: ' + String(ctx.error && ctx.error.message)));

function finish(code) {
  clearTimeout(timer);
  client.disconnect();
  process.stdout.write(JSON.stringify(out) + '\n');
  setTimeout(() => process.exit(code), 50);
}
const until = async (cond) => { while (!cond()) await new Promise((r) => setTimeout(r, 20)); };
async function api(channel, data, tags) {
  const r = await fetch(base + '/api/publish', {
    method: 'POST', headers: { 'X-API-Key': apiKey }, body: JSON.stringify({ channel, data, tags }),
  });
  if (!r.ok) throw new Error('api publish ' + r.status);
}

let ready = 0;
async function go() {
  try {
    for (const d of docs) await api(deltaChannel, d);
    const tagged = [['BTC', '1'], ['ETH', '2'], ['ETH', '100.6'], ['XRP', '100.5'], ['BTC', 'x']];
    for (const [i, [ticker, price]] of tagged.entries()) await api(tagsChannel, { i }, { ticker, price });
    await until(() => out.delta.length >= docs.length && out.tags.length >= 3);
    await new Promise((r) => setTimeout(r, 200)); // nothing more may arrive
    out.stats = ds.deltaStats();
    finish(0);
  } catch (e) {
    out.errors.push(String(e && (e.message || JSON.stringify(e))));
    finish(1);
  }
}
for (const s of [ds, ts]) s.on('subscribed', () => { if (++ready === 2) go(); });
ds.subscribe();
ts.subscribe();
client.connect();
