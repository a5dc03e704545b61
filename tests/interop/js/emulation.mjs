// centrifuge-js over its emulated transports only (http_stream or sse; no WebSocket).
// Usage: node emulation.mjs <transport> <streamBase> <emulationBase> <apiBase> <apiKey> <channel> [protobuf]
// The stream goes to <streamBase>, commands (POST /emulation) to <emulationBase>:
// with two nodes and no sticky routing, commands reach the session through the broker.
// Prints one JSON line of results.
import { NodeEventSource } from './eventsource.mjs';

const [transport, streamBase, emuBase, apiBase, apiKey, channel, format] = process.argv.slice(2);
// the protobuf build speaks protobuf over http_stream and to /emulation (application/octet-stream)
const { Centrifuge } = await import(format === 'protobuf' ? 'centrifuge/build/protobuf' : 'centrifuge');
const endpoint = streamBase + (transport === 'sse' ? '/connection/sse' : '/connection/http_stream');
const out = { connected: [], transport: '', publications: [], presence: 0, history: [], subscribed: [], errors: [] };
const timer = setTimeout(() => { out.errors.push('timeout'); finish(1); }, 20000);

const client = new Centrifuge([{ transport, endpoint }], {
  emulationEndpoint: emuBase + '/emulation',
  eventsource: NodeEventSource,
  minReconnectDelay: 300,
  maxReconnectDelay: 500,
});
client.on('error', (ctx) => out.errors.push(String(ctx.error && ctx.error.message)));
client.on('connected', (ctx) => { out.connected.push(ctx.client); out.transport = ctx.transport; out.codec = client._codec.name(); });
const sub = client.newSubscription(channel, { joinLeave: true });
const decode = (d) => (d instanceof Uint8Array ? JSON.parse(new TextDecoder().decode(d)) : d);
sub.on('publication', (ctx) => out.publications.push({ offset: ctx.offset, data: decode(ctx.data) }));
sub.on('error', (ctx) => out.errors.push('sub: ' + String(ctx.error && ctx.error.message)));

function finish(code) {
  clearTimeout(timer);
  client.disconnect();
  process.stdout.write(JSON.stringify(out) + '\n');
  setTimeout(() => process.exit(code), 50);
}

const until = async (cond) => { while (!cond()) await new Promise((r) => setTimeout(r, 20)); };

async function apiPublish(data) {
  const r = await fetch(apiBase + '/api/publish', {
    method: 'POST', headers: { 'X-API-Key': apiKey, 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, data }),
  });
  if (!r.ok) throw new Error('api publish ' + r.status);
}

let phase = 0;
sub.on('subscribed', async (ctx) => {
  out.subscribed.push({ wasRecovering: ctx.wasRecovering, recovered: ctx.recovered });
  try {
    if (phase === 0) {
      phase = 1;
      const enc = (v) => (format === 'protobuf' ? new TextEncoder().encode(JSON.stringify(v)) : v);
      for (let i = 0; i < 3; i++) await sub.publish(enc({ n: i }));
      await until(() => out.publications.length >= 3);
      const p = await sub.presence();
      out.presence = Object.keys(p.clients).length;
      const h = await sub.history({ limit: 10 });
      out.history = h.publications.map((x) => x.offset);
      // break the stream; publish while the client is away; it must recover both
      client._transport.close();
      await apiPublish({ n: 3 });
      await apiPublish({ n: 4 });
    } else {
      await until(() => out.publications.length >= 5);
      finish(0);
    }
  } catch (e) {
    out.errors.push(String(e && (e.message || JSON.stringify(e))));
    finish(1);
  }
});
sub.subscribe();
client.connect();
