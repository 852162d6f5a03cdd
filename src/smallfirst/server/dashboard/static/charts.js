// Small SVG charts for the smallfirst dashboard: stacked bars, lines, horizontal and grouped
// bars. No dependencies, no network: everything is drawn from the data passed in.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const PAD = { top: 12, right: 16, bottom: 28, left: 56 };

  function node(name, attrs, parent) {
    const el = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    if (parent) parent.appendChild(el);
    return el;
  }

  function text(parent, x, y, value, attrs) {
    const el = node("text", Object.assign({ x, y }, attrs || {}), parent);
    el.textContent = value;
    return el;
  }

  function tip(el, value) {
    node("title", {}, el).textContent = value;
  }

  // Round tick values (1, 2, 5 x 10^n) covering [0, max].
  function ticks(max, count) {
    if (!(max > 0)) return [0, 1];
    const raw = max / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    for (let v = 0; v <= max + step * 0.001; v += step) out.push(v);
    if (out[out.length - 1] < max) out.push(out[out.length - 1] + step);
    return out;
  }

  function frame(el, height) {
    el.replaceChildren();
    const width = Math.max(el.clientWidth || 0, 280);
    const svg = node("svg", {
      width, height, viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart-svg",
    }, el);
    return { svg, width, height, w: width - PAD.left - PAD.right, h: height - PAD.top - PAD.bottom };
  }

  function yAxis(f, top, format) {
    const marks = ticks(top, 4);
    const max = marks[marks.length - 1];
    const y = (v) => PAD.top + f.h - (v / max) * f.h;
    for (const m of marks) {
      node("line", { x1: PAD.left, x2: PAD.left + f.w, y1: y(m), y2: y(m), class: "grid" }, f.svg);
      text(f.svg, PAD.left - 6, y(m) + 4, format(m), { class: "tick", "text-anchor": "end" });
    }
    return y;
  }

  function xLabels(f, labels, xOf) {
    const every = Math.max(1, Math.ceil(labels.length / Math.max(1, Math.floor(f.w / 70))));
    labels.forEach((label, i) => {
      if (i % every || xOf(i) + label.length * 3.2 > f.width) return;
      text(f.svg, xOf(i), PAD.top + f.h + 18, label, { class: "tick", "text-anchor": "middle" });
    });
  }

  function legend(el, series) {
    const box = document.createElement("div");
    box.className = "legend";
    for (const s of series) {
      const item = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.style.background = s.color;
      item.append(swatch, document.createTextNode(s.name));
      box.appendChild(item);
    }
    el.appendChild(box);
  }

  function empty(el, height, message) {
    const f = frame(el, height);
    text(f.svg, f.width / 2, height / 2, message || "no data in this range", {
      class: "empty", "text-anchor": "middle",
    });
  }

  // series: [{name, color, values: [..per x..]}]; labels: [..per x..]
  function stackedBars(el, { labels, series, format, height = 220 }) {
    const totals = labels.map((_, i) => series.reduce((a, s) => a + (s.values[i] || 0), 0));
    if (!series.length || !totals.some((t) => t > 0)) return empty(el, height);
    const f = frame(el, height);
    const y = yAxis(f, Math.max(...totals), format);
    const slot = f.w / labels.length;
    const barW = Math.max(1, slot * 0.8);
    const xOf = (i) => PAD.left + slot * i + slot / 2;
    labels.forEach((label, i) => {
      let base = 0;
      for (const s of series) {
        const v = s.values[i] || 0;
        if (v <= 0) continue;
        const rect = node("rect", {
          x: xOf(i) - barW / 2, y: y(base + v), width: barW, height: y(base) - y(base + v),
          fill: s.color, class: "bar",
        }, f.svg);
        tip(rect, `${label} · ${s.name}: ${format(v)}`);
        base += v;
      }
    });
    xLabels(f, labels, xOf);
    legend(el, series);
  }

  // series: [{name, color, values, dashed?}]; shades the gap between series 0 and 1 when asked.
  function lines(el, { labels, series, format, height = 220, shadeBetween = false }) {
    const all = series.flatMap((s) => s.values);
    if (!all.some((v) => v > 0)) return empty(el, height);
    const f = frame(el, height);
    const y = yAxis(f, Math.max(...all), format);
    const step = labels.length > 1 ? f.w / (labels.length - 1) : 0;
    const xOf = (i) => PAD.left + (labels.length > 1 ? step * i : f.w / 2);
    const path = (values) => values.map((v, i) => `${i ? "L" : "M"}${xOf(i)},${y(v)}`).join("");
    if (shadeBetween && series.length >= 2) {
      const upper = series[1].values.map((v, i) => `${i ? "L" : "M"}${xOf(i)},${y(v)}`).join("");
      const lower = series[0].values.map((v, i) => [xOf(i), y(v)]).reverse();
      const back = lower.map(([x, yy]) => `L${x},${yy}`).join("");
      node("path", { d: `${upper}${back}Z`, class: "savings-area" }, f.svg);
    }
    for (const s of series) {
      node("path", {
        d: path(s.values), fill: "none", stroke: s.color, "stroke-width": 2,
        "stroke-dasharray": s.dashed ? "5 4" : "none", class: "line",
      }, f.svg);
      s.values.forEach((v, i) => {
        const dot = node("circle", { cx: xOf(i), cy: y(v), r: 2.5, fill: s.color }, f.svg);
        tip(dot, `${labels[i]} · ${s.name}: ${format(v)}`);
      });
    }
    xLabels(f, labels, xOf);
    legend(el, series);
  }

  // rows: [{label, value, note?, color?}] drawn as labelled horizontal bars.
  function hbars(el, { rows, format, max, color = "#2563eb" }) {
    if (!rows.length) return empty(el, 80);
    const rowH = 26;
    const labelW = 150;
    const height = rows.length * rowH + 10;
    const f = frame(el, height);
    const top = max || Math.max(...rows.map((r) => r.value), 1e-12);
    const barSpace = f.width - labelW - 90;
    rows.forEach((r, i) => {
      const yy = 5 + i * rowH;
      const label = r.label.length > 22 ? r.label.slice(0, 21) + "…" : r.label;
      text(f.svg, labelW - 8, yy + 16, label, { class: "label", "text-anchor": "end" });
      const bar = node("rect", {
        x: labelW, y: yy + 4, width: Math.max(1, (r.value / top) * barSpace), height: rowH - 9,
        fill: r.color || color, class: "bar", rx: 2,
      }, f.svg);
      tip(bar, `${r.label}: ${format(r.value)}${r.note ? " · " + r.note : ""}`);
      text(f.svg, labelW + Math.max(1, (r.value / top) * barSpace) + 6, yy + 16,
        format(r.value), { class: "value" });
    });
  }

  // categories: [..]; series: [{name, color, values: [..per category..]}]
  function groupedBars(el, { categories, series, format, height = 220 }) {
    const all = series.flatMap((s) => s.values).filter((v) => v != null);
    if (!categories.length || !all.length) return empty(el, height);
    const f = frame(el, height);
    const y = yAxis(f, Math.max(...all), format);
    const slot = f.w / categories.length;
    const barW = Math.min(28, (slot * 0.8) / series.length);
    const xOf = (i) => PAD.left + slot * i + slot / 2;
    categories.forEach((cat, i) => {
      series.forEach((s, j) => {
        const v = s.values[i];
        if (v == null) return;
        const x = xOf(i) - (barW * series.length) / 2 + j * barW;
        const rect = node("rect", {
          x, y: y(v), width: barW - 2, height: PAD.top + f.h - y(v), fill: s.color, class: "bar",
        }, f.svg);
        tip(rect, `${cat} · ${s.name}: ${format(v)}`);
      });
    });
    xLabels(f, categories.map((c) => (c.length > 18 ? c.slice(0, 17) + "…" : c)), xOf);
    legend(el, series);
  }

  // A table cell's chart: one 100%-stacked bar per bucket, no axes; an empty bucket is a
  // baseline tick. series: [{name, color, values: [..share per bucket..]}]; counts: per bucket.
  function shareBars(el, { labels, series, counts, height = 22, barW = 4 }) {
    const width = labels.length * (barW + 1);
    const svg = node("svg", {
      width, height, viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart-svg spark",
    }, el);
    labels.forEach((label, i) => {
      const x = i * (barW + 1);
      const group = node("g", {}, svg);
      if (!counts[i]) {
        node("rect", { x, y: height - 1, width: barW, height: 1, class: "spark-empty" }, group);
        tip(group, `${label}: no requests`);
        return;
      }
      let base = 0;
      const parts = [];
      for (const s of series) {
        const v = s.values[i] || 0;
        if (v <= 0) continue;
        node("rect", {
          x, y: height * (1 - base - v), width: barW, height: height * v, fill: s.color,
        }, group);
        parts.push(`${s.name} ${(100 * v).toFixed(0)}%`);
        base += v;
      }
      tip(group, `${label} · ${counts[i]} requests · ${parts.join(" · ")}`);
    });
    return svg;
  }

  return { stackedBars, lines, hbars, groupedBars, shareBars, ticks };
})();
