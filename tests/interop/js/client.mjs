// Drives centrifuge-js against a Squall URL; prints one JSON line of results.
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const url = process.argv[2];
const channel = process.argv[3];
const out = { connected: false, publications: [], presence: 0, history: [], errors: [] };
const timer = setTimeout(() => { out.errors.push('timeout'); finish(1); }, 15000);

const client = new Centrifuge(url, { websocket: WebSocket, minReconnectDelay: 100 });
client.on('error', (ctx) => out.errors.push(String(ctx.error && ctx.error.message)));
const sub = client.newSubscription(channel, { joinLeave: true });
sub.on('publication', (ctx) => out.publications.push({ offset: ctx.offset, data: ctx.data }));
sub.on('error', (ctx) => out.errors.push('sub: ' + String(ctx.error && ctx.error.message)));

function finish(code) {
  clearTimeout(timer);
  client.disconnect();
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(code);
}

client.on('connected', () => { out.connected = true; });
sub.on('subscribed', async () => {
  try {
    for (let i = 0; i < 3; i++) await sub.publish({ n: i });
    while (out.publications.length < 3) await new Promise((r) => setTimeout(r, 20));
    const p = await sub.presence();
    out.presence = Object.keys(p.clients).length;
    const h = await sub.history({ limit: 10 });
    out.history = h.publications.map((x) => x.offset);
    finish(0);
  } catch (e) {
    out.errors.push(String(e && (e.message || JSON.stringify(e))));
    finish(1);
  }
});
sub.subscribe();
client.connect();
