// Inline SVG charts of a function's metrics over time: no chart library, no canvas, so the
// figures are text a screen reader and a test can read (each chart has a title and a table
// summary in its aria-label).

const SVG = "http://www.w3.org/2000/svg";
const W = 360, H = 160, PAD_L = 40, PAD_R = 8, PAD_T = 10, PAD_B = 22;

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * magnitude >= value) return step * magnitude;
  }
  return 10 * magnitude;
}

function timeLabel(t) {
  const d = new Date(t);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function frame(svg, points, max, unit) {
  const plotH = H - PAD_T - PAD_B;
  for (const fraction of [0, 0.5, 1]) {
    const y = PAD_T + plotH * (1 - fraction);
    svg.append(el("line", { class: "axis", x1: PAD_L, x2: W - PAD_R, y1: y, y2: y }));
    const v = max * fraction;
    svg.append(el("text", { x: PAD_L - 4, y: y + 3, "text-anchor": "end" },
      (Number.isInteger(v) ? v : v.toFixed(1)) + unit));
  }
  if (points.length > 0) {
    svg.append(el("text", { x: PAD_L, y: H - 6 }, timeLabel(points[0].t)));
    svg.append(el("text", { x: W - PAD_R, y: H - 6, "text-anchor": "end" },
      timeLabel(points[points.length - 1].t)));
  }
}

function xOf(i, n) {
  const plotW = W - PAD_L - PAD_R;
  return PAD_L + (n <= 1 ? plotW / 2 : (plotW * i) / (n - 1));
}

function yOf(v, max) {
  const plotH = H - PAD_T - PAD_B;
  return PAD_T + plotH * (1 - Math.min(v, max) / max);
}

// Calls and errors per bucket, as bars side by side.
export function barChart(points, label) {
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "data-chart": "calls" });
  const total = points.reduce((s, p) => s + p.calls, 0);
  const errors = points.reduce((s, p) => s + p.errors, 0);
  svg.setAttribute("aria-label", `${label}: ${total} calls, ${errors} errors in ${points.length} intervals`);
  svg.append(el("title", {}, label));
  const max = niceMax(Math.max(1, ...points.map((p) => p.calls)));
  frame(svg, points, max, "");
  const slot = (W - PAD_L - PAD_R) / Math.max(points.length, 1);
  const barW = Math.max(1, slot * 0.4);
  points.forEach((p, i) => {
    const x = PAD_L + slot * i + slot * 0.1;
    const base = yOf(0, max);
    if (p.calls > 0) {
      svg.append(el("rect", { class: "bar-calls", x, y: yOf(p.calls, max), width: barW,
        height: base - yOf(p.calls, max) }));
    }
    if (p.errors > 0) {
      svg.append(el("rect", { class: "bar-errors", x: x + barW, y: yOf(p.errors, max), width: barW,
        height: base - yOf(p.errors, max) }));
    }
  });
  return svg;
}

// p50 and p99 duration per bucket, as two lines (a bucket without calls leaves a gap).
export function latencyChart(points, label) {
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "data-chart": "latency" });
  const withCalls = points.filter((p) => p.p99 != null || p.p50 != null);
  const worst = Math.max(0, ...withCalls.map((p) => p.p99 ?? p.p50 ?? 0));
  svg.setAttribute("aria-label", `${label}: worst p99 ${worst.toFixed(1)} ms`);
  svg.append(el("title", {}, label));
  const max = niceMax(Math.max(1, worst));
  frame(svg, points, max, "ms");
  for (const [key, cls] of [["p50", "line-p50"], ["p99", "line-p99"]]) {
    let d = "";
    let pen = false;
    points.forEach((p, i) => {
      const v = p[key];
      if (v == null) { pen = false; return; }
      d += `${pen ? "L" : "M"}${xOf(i, points.length).toFixed(1)},${yOf(v, max).toFixed(1)} `;
      pen = true;
    });
    if (d) svg.append(el("path", { class: cls, d }));
    // A point without a neighbour draws no line (one busy minute among idle ones): mark it.
    points.forEach((p, i) => {
      const alone = p[key] != null && points[i - 1]?.[key] == null && points[i + 1]?.[key] == null;
      if (alone) {
        svg.append(el("circle", { class: `${cls} dot`, cx: xOf(i, points.length), cy: yOf(p[key], max), r: 3 }));
      }
    });
  }
  return svg;
}
