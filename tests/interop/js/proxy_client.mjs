// centrifuge-js against a Squall whose connect, subscribe, publish and rpc go
// to a proxy backend; prints one JSON line of what it saw.
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const [url, channel] = process.argv.slice(2);
const out = { connectData: null, subscribeData: null, publications: [], rpc: null, refused: null, errors: [] };
const timer = setTimeout(() => { out.errors.push('timeout'); finish(1); }, 15000);

const client = new Centrifuge(url, {
  websocket: WebSocket,
  data: { from: 'js' },
  name: 'js-app',
  version: '9.9.9',
  headers: { 'X-Emulated': 'yes', 'X-Not-Allowed': 'no', 'Authorization': 'Bearer emulated' },
  minReconnectDelay: 100,
});
client.on('error', (ctx) => out.errors.push(String(ctx.error && ctx.error.message)));

function finish(code) {
  clearTimeout(timer);
  client.disconnect();
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(code);
}

client.on('connected', (ctx) => { out.connectData = ctx.data || null; });
const sub = client.newSubscription(channel, { data: { want: channel } });
sub.on('publication', (ctx) => out.publications.push(ctx.data));
sub.on('subscribed', async (ctx) => {
  out.subscribeData = ctx.data || null;
  try {
    await sub.publish({ text: 'hi' });
    while (out.publications.length < 1) await new Promise((r) => setTimeout(r, 20));
    const r = await client.rpc('echo', { v: 1 });
    out.rpc = r.data;
    try {
      await sub.publish({ text: 'refuse me' });
    } catch (e) {
      out.refused = e.code;
    }
    finish(0);
  } catch (e) {
    out.errors.push(String(e && (e.message || JSON.stringify(e))));
    finish(1);
  }
});
sub.subscribe();
client.connect();
