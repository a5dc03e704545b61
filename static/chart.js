// A small live line chart on <canvas>: a sliding time window with a time
// axis, auto-scaled y axis (never below `min` when given), crisp on high-DPI
// screens. No dependencies.

const GRID_LINES = 4;
const TIME_TICKS = 4; // labelled time ticks across the window, plus "now"

/** "now", "-15s", "-1m"...: where a tick sits relative to the right edge. */
export function timeLabel(agoMs) {
  const s = Math.round(agoMs / 1000);
  if (s <= 0) return 'now';
  if (s % 60 === 0) return `-${s / 60}m`;
  return `-${s}s`;
}

export class LineChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{color?: string, windowMs?: number, maxPoints?: number, digits?: number, min?: number,
   *          empty?: string}} options
   */
  constructor(canvas, options = {}) {
    this.canvas = canvas;
    this.color = options.color || '#2f5bd3';
    this.windowMs = options.windowMs || 60_000;
    this.maxPoints = options.maxPoints || 4000;
    this.digits = options.digits ?? 1;
    this.min = options.min ?? -Infinity; // the y axis never goes below this (0 for latencies, rates)
    this.empty = options.empty || 'waiting for data…';
    this.points = []; // [timeMs, value], oldest first
    this.dirty = true;
    this.axis = null; // what the last draw showed: {lo, hi, times}, for tests and tooltips
  }

  /** Add a point; points older than the window are dropped. */
  push(t, v) {
    const pts = this.points;
    if (pts.length && t < pts[pts.length - 1][0]) t = pts[pts.length - 1][0];
    pts.push([t, v]);
    const horizon = t - this.windowMs;
    let drop = 0;
    while (drop < pts.length - 1 && pts[drop][0] < horizon) drop++;
    if (pts.length - drop > this.maxPoints) drop = pts.length - this.maxPoints;
    if (drop) pts.splice(0, drop);
    this.dirty = true;
  }

  clear() {
    this.points = [];
    this.dirty = true;
  }

  _resize() {
    const c = this.canvas;
    const ratio = globalThis.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(c.clientWidth * ratio));
    const h = Math.max(1, Math.round(c.clientHeight * ratio));
    if (c.width !== w || c.height !== h) {
      c.width = w;
      c.height = h;
    }
    return ratio;
  }

  /** Redraw when something changed (or the canvas was resized). */
  draw(now = Date.now(), force = false) {
    const ratio = this._resize();
    if (!this.dirty && !force) return;
    this.dirty = false;
    const c = this.canvas;
    const ctx = c.getContext('2d');
    if (!ctx) return;
    const W = c.width;
    const H = c.height;
    const style = getComputedStyle(c);
    const muted = style.getPropertyValue('--chart-muted').trim() || '#8a93a3';
    const gridColor = style.getPropertyValue('--chart-grid').trim() || 'rgba(128,128,128,0.18)';
    ctx.clearRect(0, 0, W, H);
    const padL = 44 * ratio;
    const padR = 8 * ratio;
    const padT = 8 * ratio;
    const padB = 20 * ratio; // room for the time axis
    const pw = W - padL - padR;
    const ph = H - padT - padB;
    const pts = this.points;
    let lo = Infinity;
    let hi = -Infinity;
    for (const [, v] of pts) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!pts.length) {
      lo = 0;
      hi = 1;
    }
    if (hi - lo < 1e-9) {
      hi += 1;
      lo -= 1;
    }
    const margin = (hi - lo) * 0.08;
    lo -= margin;
    hi += margin;
    if (lo < this.min) lo = this.min; // e.g. no p99 axis below zero; only the floor moves
    const t1 = Math.max(now, pts.length ? pts[pts.length - 1][0] : now);
    const t0 = t1 - this.windowMs;
    const x = (t) => padL + ((t - t0) / this.windowMs) * pw;
    const y = (v) => padT + (1 - (v - lo) / (hi - lo)) * ph;

    ctx.font = `${11 * ratio}px system-ui, sans-serif`;
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    ctx.lineWidth = 1;
    for (let i = 0; i <= GRID_LINES; i++) {
      const v = lo + ((hi - lo) * i) / GRID_LINES;
      const yy = Math.round(y(v)) + 0.5;
      ctx.strokeStyle = gridColor;
      ctx.beginPath();
      ctx.moveTo(padL, yy);
      ctx.lineTo(W - padR, yy);
      ctx.stroke();
      ctx.fillStyle = muted;
      if (pts.length) ctx.fillText(v.toFixed(this.digits), padL - 6 * ratio, yy); // no scale without data
    }
    // time axis: ticks at fixed distances from "now", labelled relative to it
    ctx.textBaseline = 'top';
    ctx.textAlign = 'center';
    const times = [];
    for (let i = 0; i <= TIME_TICKS; i++) {
      const ago = (this.windowMs * (TIME_TICKS - i)) / TIME_TICKS;
      const xx = Math.round(x(t1 - ago)) + 0.5;
      ctx.strokeStyle = gridColor;
      ctx.beginPath();
      ctx.moveTo(xx, padT + ph);
      ctx.lineTo(xx, padT + ph + 4 * ratio);
      ctx.stroke();
      const label = timeLabel(ago);
      times.push(label);
      ctx.fillStyle = muted;
      if (i === 0) ctx.textAlign = 'left';
      else if (i === TIME_TICKS) ctx.textAlign = 'right';
      else ctx.textAlign = 'center';
      ctx.fillText(label, i === 0 ? Math.max(xx, padL) : xx, padT + ph + 5 * ratio);
    }
    this.axis = { lo, hi, times };
    if (!pts.length) {
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillStyle = muted;
      ctx.fillText(this.empty, padL + pw / 2, padT + ph / 2);
      return;
    }
    if (pts.length < 2) {
      // one point is still data: a dot rather than nothing
      ctx.fillStyle = this.color;
      ctx.beginPath();
      ctx.arc(x(pts[0][0]), y(pts[0][1]), 2.5 * ratio, 0, 2 * Math.PI);
      ctx.fill();
      return;
    }
    ctx.save();
    ctx.beginPath();
    ctx.rect(padL, 0, pw, H);
    ctx.clip();
    ctx.strokeStyle = this.color;
    ctx.lineWidth = 1.6 * ratio;
    ctx.lineJoin = 'round';
    ctx.beginPath();
    pts.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
    ctx.stroke();
    // a light fill under the line
    ctx.lineTo(x(pts[pts.length - 1][0]), padT + ph);
    ctx.lineTo(x(pts[0][0]), padT + ph);
    ctx.closePath();
    ctx.globalAlpha = 0.12;
    ctx.fillStyle = this.color;
    ctx.fill();
    ctx.restore();
  }
}
