// A small live line chart on <canvas>: a sliding time window, auto-scaled
// y axis, crisp on high-DPI screens. No dependencies.

const GRID_LINES = 4;

export class LineChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{color?: string, windowMs?: number, maxPoints?: number, digits?: number}} options
   */
  constructor(canvas, options = {}) {
    this.canvas = canvas;
    this.color = options.color || '#2f5bd3';
    this.windowMs = options.windowMs || 60_000;
    this.maxPoints = options.maxPoints || 4000;
    this.digits = options.digits ?? 1;
    this.points = []; // [timeMs, value], oldest first
    this.dirty = true;
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
    const padB = 8 * ratio;
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
      ctx.fillText(v.toFixed(this.digits), padL - 6 * ratio, yy);
    }
    if (pts.length < 2) return;
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
