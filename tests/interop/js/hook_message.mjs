// centrifuge-js clients receiving 'message' events a Squall hook sends them (tests/interop/test_hook_send.py).
// Usage: node hook_message.mjs <wsUrlA> <wsUrlB> <bobExpects> <carolExpects>
// bob connects to node B, carol to node A; prints {"bob": id, "carol": id}; carol then send()s
// {to: bob, text: 'hello bob'} (the on_message hook forwards it); once each has what it expects (and
// 400 ms more, to see duplicates) prints {"bob": [...], "carol": [...], "errors": [...]}.
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const [urlA, urlB, bobExpects, carolExpects] = process.argv.slice(2);
const out = { bob: [], carol: [], errors: [] };
const ids = {};
const timer = setTimeout(() => { out.errors.push('timeout'); finish(1); }, 20000);
const make = (url) => new Centrifuge(url, { websocket: WebSocket, minReconnectDelay: 200, maxReconnectDelay: 400 });
const bob = make(urlB);
const carol = make(urlA);
let done = false;

function finish(code) {
  clearTimeout(timer);
  bob.disconnect();
  carol.disconnect();
  process.stdout.write(JSON.stringify(out) + '\n');
  setTimeout(() => process.exit(code), 50);
}
function check() {
  if (!done && out.bob.length >= Number(bobExpects) && out.carol.length >= Number(carolExpects)) {
    done = true;
    setTimeout(() => finish(0), 400);
  }
}
for (const [name, c] of [['bob', bob], ['carol', carol]]) {
  c.on('error', (ctx) => out.errors.push(name + ': ' + String(ctx.error && ctx.error.message)));
  c.on('message', (ctx) => { out[name].push(ctx.data); check(); });
  c.on('connected', async (ctx) => {
    ids[name] = ctx.client;
    if (ids.bob && ids.carol && !ids.printed) {
      ids.printed = true;
      process.stdout.write(JSON.stringify({ bob: ids.bob, carol: ids.carol }) + '\n');
      try {
        await carol.send({ to: ids.bob, text: 'hello bob' });
      } catch (e) {
        out.errors.push('send: ' + String(e && e.message));
      }
    }
  });
  c.connect();
}
