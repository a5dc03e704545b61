// centrifuge-js on a namespace in Centrifugo's cache recovery mode (force_recovery_mode "cache",
// auto_cache_recover). Usage: node cache_recovery.mjs <base> <apiKey> <channel>
// Publishes 2, subscribes (gets the latest), breaks the connection, publishes 3 more (gets only
// the latest after resubscribing), breaks it again with nothing new (gets nothing). One JSON line.
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const [base, apiKey, channel] = process.argv.slice(2);
const out = { publications: [], subscribed: [], errors: [] };
const timer = setTimeout(() => { out.errors.push('timeout'); finish(1); }, 20000);
const client = new Centrifuge(base.replace('http', 'ws') + '/connection/websocket', {
  websocket: WebSocket, minReconnectDelay: 200, maxReconnectDelay: 400,
});
client.on('error', (ctx) => out.errors.push(String(ctx.error && ctx.error.message)));
const sub = client.newSubscription(channel);
sub.on('publication', (ctx) => out.publications.push({ offset: ctx.offset, data: ctx.data }));
sub.on('error', (ctx) => out.errors.push('sub: ' + String(ctx.error && ctx.error.message)));

function finish(code) {
  clearTimeout(timer);
  client.disconnect();
  process.stdout.write(JSON.stringify(out) + '\n');
  setTimeout(() => process.exit(code), 50);
}
async function api(data) {
  const r = await fetch(base + '/api/publish', { method: 'POST', headers: { 'X-API-Key': apiKey }, body: JSON.stringify({ channel, data }) });
  if (!r.ok) throw new Error('api publish ' + r.status);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

sub.on('subscribed', async (ctx) => {
  out.subscribed.push({ wasRecovering: ctx.wasRecovering, recovered: ctx.recovered, offset: ctx.streamPosition && ctx.streamPosition.offset });
  try {
    await sleep(150);
    if (out.subscribed.length === 1) {
      client._transport.close();
      for (let i = 3; i <= 5; i++) await api({ n: i });
    } else if (out.subscribed.length === 2) {
      client._transport.close();
    } else {
      finish(0);
    }
  } catch (e) {
    out.errors.push(String(e && (e.message || JSON.stringify(e))));
    finish(1);
  }
});
await api({ n: 1 });
await api({ n: 2 });
sub.subscribe();
client.connect();
