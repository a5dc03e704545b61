// Drives centrifuge-js (JSON build or protobuf build) through the full list of
// tests/interop/test_centrifuge_js.py; the test (the other side of stdin/stdout)
// acts on the server. One JSON event per stdout line; "done" on stdin ends it.
//   node scenario.mjs <ws url> <json|protobuf> <token> <refresh token>
import readline from 'node:readline';
import WebSocket from 'ws';

const [url, mode, token, refreshToken] = process.argv.slice(2);
const { Centrifuge } = await import(mode === 'protobuf' ? 'centrifuge/build/protobuf' : 'centrifuge');
const enc = new TextEncoder();
const dec = new TextDecoder();
// protobuf: payloads are bytes (JSON bytes here); JSON: payloads are values
const pack = (v) => (mode === 'protobuf' ? enc.encode(JSON.stringify(v)) : v);
const unpack = (d) => (d instanceof Uint8Array ? JSON.parse(dec.decode(d)) : d === undefined ? null : d);
const emit = (event, body = {}) => process.stdout.write(JSON.stringify({ event, ...body }) + '\n');
const fail = (where, e) => emit('error', { where, message: String(e && (e.message || JSON.stringify(e))) });
const timer = setTimeout(() => { emit('error', { where: 'timeout' }); process.exit(1); }, 40000);

const client = new Centrifuge(url, {
  websocket: WebSocket, token, minReconnectDelay: 100, maxReconnectDelay: 300,
  getToken: async () => { emit('get_token'); return refreshToken; },
});
client.on('connected', (ctx) => emit('connected', { client: ctx.client, transport: ctx.transport }));
client.on('disconnected', (ctx) => emit('disconnected', { code: ctx.code }));
client.on('error', (ctx) => fail('client', ctx.error));
client.on('subscribed', (ctx) => emit('server_subscribed', { channel: ctx.channel, recoverable: !!ctx.recoverable }));
client.on('publication', (ctx) => emit('server_pub', { channel: ctx.channel, offset: ctx.offset, data: unpack(ctx.data) }));

const sub = client.newSubscription('chat:js', { joinLeave: true });
let pubs = 0;
sub.on('publication', (ctx) => { pubs++; emit('pub', { offset: ctx.offset, data: unpack(ctx.data) }); });
sub.on('error', (ctx) => fail('sub', ctx.error));
let first = true;
sub.on('subscribed', async (ctx) => {
  emit('subscribed', { wasRecovering: !!ctx.wasRecovering, recovered: !!ctx.recovered, offset: ctx.streamPosition && ctx.streamPosition.offset });
  if (!first) return;
  first = false;
  try {
    for (let i = 0; i < 3; i++) await sub.publish(pack({ n: i }));
    while (pubs < 3) await new Promise((r) => setTimeout(r, 20));
    const p = await sub.presence();
    const stats = await sub.presenceStats();
    const page1 = await sub.history({ limit: 2, since: { offset: 0, epoch: '' } });
    const page2 = await sub.history({ limit: 2, since: { offset: 2, epoch: page1.epoch } });
    const back = await sub.history({ limit: 2, reverse: true });
    const rpc = await client.rpc('echo', pack({ q: 1 }));
    emit('report', {
      presence: Object.values(p.clients).map((c) => ({ user: c.user, connInfo: unpack(c.connInfo) })),
      stats: { clients: stats.numClients, users: stats.numUsers },
      pages: [page1.publications.map((x) => x.offset), page2.publications.map((x) => x.offset)],
      pageData: page1.publications.map((x) => unpack(x.data)),
      back: back.publications.map((x) => x.offset),
      top: back.offset,
      rpc: unpack(rpc.data),
    });
  } catch (e) {
    fail('report', e);
  }
});
sub.subscribe();
client.connect();

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'done') {
    clearTimeout(timer);
    client.disconnect();
    emit('bye');
    setTimeout(() => process.exit(0), 50);
  }
});
