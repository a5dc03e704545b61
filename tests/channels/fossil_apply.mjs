// The reference decoder: centrifuge-js's own applyDelta (fossil.ts, bundled in the
// npm package; not exported, so its text is lifted out of the bundle unchanged).
// stdin: JSON [[source_b64, delta_b64], ...]; stdout: JSON [target_b64 | "error: ...", ...]
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(process.argv[2] + '/');
const bundle = readFileSync(require.resolve('centrifuge').replace(/index\.js$/, 'index.mjs'), 'utf8');
const start = bundle.indexOf('const zValue = [');
const fn = bundle.indexOf('function applyDelta(', start);
const end = bundle.indexOf('\n}\n', fn) + 3;
if (start < 0 || fn < 0 || end < 3) throw new Error('applyDelta not found in the centrifuge bundle');
const applyDelta = new Function(bundle.slice(start, end) + '\nreturn applyDelta;')();

const vectors = JSON.parse(readFileSync(0, 'utf8'));
const out = vectors.map(([src, delta]) => {
  try {
    const target = applyDelta(new Uint8Array(Buffer.from(src, 'base64')), new Uint8Array(Buffer.from(delta, 'base64')));
    return Buffer.from(target).toString('base64');
  } catch (e) {
    return 'error: ' + e.message;
  }
});
process.stdout.write(JSON.stringify(out));
