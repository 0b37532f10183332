/* Hand-written SVG charts for the dashboard (no library, works offline). */
"use strict";
const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = { gold: "#c9a227", silver: "#8e9aa6", bronze: "#b87333", rejected: "#d64545", dlq: "#6b4fa3" };
  const W = 640, H = 220, L = 44, R = 8, T = 10, B = 24;

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  function label(parent, x, y, text, anchor) {
    const t = el("text", { x, y, "text-anchor": anchor || "middle" }, parent);
    t.textContent = text;
  }

  function hhmm(start) {
    const d = new Date(start * 1000);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  /* windows: [{start, tiers: {gold: n, ...}}], oldest first: stacked bars per minute, of record
     counts, or with opts.percent of each tier's share of the minute (tier shares over time). */
  function stacked(windows, tiers, opts) {
    const percent = !!(opts && opts.percent);
    const svg = el("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": percent ? "tier shares per minute" : "records per minute" });
    const n = windows.length;
    if (!n) return svg;
    const totals = windows.map(w => tiers.reduce((s, t) => s + (w.tiers[t] || 0), 0));
    const max = percent ? 100 : niceMax(Math.max(...totals));
    const x = i => L + (W - L - R) * (i + 0.5) / n;
    const y = v => T + (H - T - B) * (1 - v / max);
    for (let k = 0; k <= 4; k++) {
      const v = max * k / 4;
      el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e3e6ea" }, svg);
      label(svg, L - 4, y(v) + 4, percent ? `${v}%` : (v >= 1000 ? `${v / 1000}k` : `${+v.toFixed(1)}`), "end");
    }
    const step = Math.max(1, Math.ceil(n / 6));
    for (let i = 0; i < n; i += step) label(svg, x(i), H - 6, hhmm(windows[i].start));
    const bw = Math.max(1, (W - L - R) / n * 0.8);
    const base = new Array(n).fill(0);
    for (const tier of tiers) {
      const vals = windows.map((w, i) => {
        const v = w.tiers[tier] || 0;
        return percent ? (totals[i] ? 100 * v / totals[i] : 0) : v;
      });
      // Bars for both charts: a minute without records stays empty instead of being drawn as 0 %.
      vals.forEach((v, i) => {
        if (!v) return;
        el("rect", { x: x(i) - bw / 2, y: y(base[i] + v), width: bw, height: y(base[i]) - y(base[i] + v),
          fill: COLORS[tier] || "#999", "data-tier": tier }, svg);
      });
      vals.forEach((v, i) => { base[i] += v; });
    }
    return svg;
  }

  return { stacked, COLORS };
})();
