// smallfirst dashboard: fetch /dashboard/api/all for the chosen window and draw every panel.
// The window lives in the URL hash (#since=24h or #since=<iso>&until=<iso>) so a reload or a
// shared link shows the same range.
"use strict";

(() => {
  const PREFIX = document.body.dataset.prefix;
  const TIER_COLORS = { tiny: "#7c3aed", small: "#16a34a", medium: "#f59e0b", large: "#dc2626" };
  const PALETTE = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777",
    "#65a30d", "#ea580c", "#4b5563"];
  const REFRESH_MS = 30000;
  const $ = (id) => document.getElementById(id);
  let latest = null;
  let timer = null;

  const usd = (v) => {
    if (v == null) return "–";
    const a = Math.abs(v);
    if (a === 0) return "$0";
    if (a >= 100) return "$" + v.toFixed(0);
    if (a >= 1) return "$" + v.toFixed(2);
    return "$" + Number(v.toPrecision(3));
  };
  const pct = (v) => (v == null ? "–" : (100 * v).toFixed(1) + "%");
  const ms = (v) => (v == null ? "–" : v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v) + " ms");
  const count = (v) => (v == null ? "–" : Math.round(v).toLocaleString("en-US"));
  const colorFor = (group, name, i) =>
    group === "tier" && TIER_COLORS[name] ? TIER_COLORS[name] : PALETTE[i % PALETTE.length];

  function rangeFromHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    return { since: params.get("since") || "24h", until: params.get("until") || "" };
  }

  function setRange(since, until) {
    const params = new URLSearchParams({ since });
    if (until) params.set("until", until);
    location.hash = params.toString();
  }

  function bucketLabel(ts, bucket) {
    const d = new Date(ts * 1000);
    const two = (n) => String(n).padStart(2, "0");
    const day = `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
    if (bucket >= 86400) return day;
    return (bucket >= 3 * 3600 ? day.slice(5) + " " : "") + `${two(d.getHours())}:${two(d.getMinutes())}`;
  }

  function toLocalInput(ts) {
    const d = new Date(ts * 1000 - new Date(ts * 1000).getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 16);
  }

  function kpi(name, value, sub, cls) {
    const el = document.createElement("div");
    el.className = "kpi" + (cls ? " " + cls : "");
    el.dataset.kpi = name;
    const parts = [["name", name], ["value", value], ["sub", sub || "\u00a0"]];
    for (const [c, t] of parts) {
      const div = document.createElement("div");
      div.className = c;
      div.textContent = t;
      el.appendChild(div);
    }
    return el;
  }

  function drawKpis(s) {
    const saved = s.savings_pct == null ? "no baseline" : s.savings_pct.toFixed(1) + "% less";
    $("kpis").replaceChildren(
      kpi("requests", count(s.requests), `${count(s.errors)} errors (${pct(s.error_rate)})`),
      kpi("spent", usd(s.cost_usd), `${count(s.input_tokens)} in / ${count(s.output_tokens)} out tok`),
      kpi("always-large baseline", usd(s.baseline_usd), "same tokens on the baseline model"),
      kpi("saved", usd(s.savings_usd), saved, s.savings_usd > 0 ? "good" : ""),
      kpi("escalation rate", pct(s.escalation_rate), `${count(s.escalated)} escalated`),
      kpi("latency p50", ms(s.latency.p50_ms), `p95 ${ms(s.latency.p95_ms)} · ` +
        `p99 ${ms(s.latency.p99_ms)} · TTFT p50 ${ms(s.latency.ttft_p50_ms)}`),
    );
  }

  function drawTraffic(series) {
    const group = $("split").value;
    const metric = $("metric").value;
    const groups = group === "tier" ? series.by_tier : series.by_model;
    const names = Object.keys(groups).sort((a, b) => {
      const order = ["tiny", "small", "medium", "large"];
      return group === "tier" ? order.indexOf(a) - order.indexOf(b) : a.localeCompare(b);
    });
    Charts.stackedBars($("chart-traffic"), {
      labels: series.buckets.map((t) => bucketLabel(t, series.bucket_s)),
      series: names.map((n, i) => ({ name: n, color: colorFor(group, n, i), values: groups[n][metric] })),
      format: metric === "cost_usd" ? usd : count,
    });
  }

  function cumulative(values) {
    let total = 0;
    return values.map((v) => (total += v));
  }

  function drawSavings(series) {
    Charts.lines($("chart-savings"), {
      labels: series.buckets.map((t) => bucketLabel(t, series.bucket_s)),
      series: [
        { name: "spent", color: "#2563eb", values: cumulative(series.cost_usd) },
        { name: "always-large baseline", color: "#dc2626", dashed: true,
          values: cumulative(series.baseline_usd) },
      ],
      format: usd,
      shadeBetween: true,
    });
  }

  function table(el, headers, rows) {
    const head = document.createElement("tr");
    for (const [label, cls] of headers) {
      const th = document.createElement("th");
      th.textContent = label;
      if (cls) th.className = cls;
      head.appendChild(th);
    }
    const body = rows.map((cells) => {
      const tr = document.createElement("tr");
      cells.forEach((cell, i) => {
        const td = document.createElement("td");
        if (headers[i][1]) td.className = headers[i][1];
        if (cell instanceof Node) td.appendChild(cell);
        else td.textContent = cell;
        tr.appendChild(td);
      });
      return tr;
    });
    el.replaceChildren(head, ...body);
  }

  function drawRoutes(routes) {
    Charts.hbars($("chart-escalation"), {
      rows: routes.map((r) => ({ label: r.route, value: r.escalation_rate,
        note: `${r.escalated} of ${r.requests}` })),
      format: pct, max: 1, color: "#f59e0b",
    });
    table($("table-routes"), [["route"], ["requests", "num"], ["escalated", "num"], ["spent", "num"],
      ["saved", "num"]],
    routes.map((r) => [r.route, count(r.requests), pct(r.escalation_rate), usd(r.cost_usd),
      usd(r.savings_usd)]));
  }

  function drawLatency(rows) {
    Charts.groupedBars($("chart-latency"), {
      categories: rows.map((r) => r.model),
      series: [["p50", "#93c5fd"], ["p90", "#3b82f6"], ["p99", "#1e3a8a"]].map(([p, color]) => ({
        name: p, color, values: rows.map((r) => r[p + "_ms"]) })),
      format: ms,
    });
    table($("table-latency"), [["model"], ["tier"], ["requests", "num"], ["p50", "num"],
      ["p95", "num"], ["TTFT p50", "num"]],
    rows.map((r) => [r.model, r.tier, count(r.requests), ms(r.p50_ms), ms(r.p95_ms),
      ms(r.ttft_p50_ms)]));
  }

  function drawKeys(keys) {
    Charts.hbars($("chart-keys"), {
      rows: keys.map((k) => ({ label: k.key_name, value: k.cost_usd,
        note: `${k.requests} requests, saved ${usd(k.savings_usd)}` })),
      format: usd,
    });
  }

  function drawTiers(series) {
    const tiers = Object.entries(series.by_tier).map(([name, v]) => ({
      label: name, value: v.requests.reduce((a, b) => a + b, 0), color: colorFor("tier", name, 0),
    }));
    Charts.hbars($("chart-tiers"), { rows: tiers.sort((a, b) => b.value - a.value), format: count });
  }

  function tierTag(tier) {
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = tier || "–";
    tag.style.background = TIER_COLORS[tier] || "#9ca3af";
    return tag;
  }

  function drawRecent(items) {
    table($("table-recent"), [["time"], ["key"], ["asked"], ["served"], ["tier"], ["route"],
      ["why", "reason"], ["path", "reason"], ["tokens", "num"], ["$", "num"], ["latency", "num"],
      ["status", "num"]],
    items.map((r) => {
      const path = r.hops.map((h) => `${h.step}${h.model ? ":" + h.model : ""}` +
        (h.outcome ? `(${h.outcome})` : "")).join(" → ");
      const status = document.createElement("span");
      status.textContent = r.status;
      if (r.status >= 400) status.className = "status-bad";
      return [new Date(r.ts * 1000).toLocaleString(), r.key_name || "–", r.requested_model || "–",
        r.model || "–", tierTag(r.tier), r.router || "direct", r.route_reason || r.error || "",
        path || "–", `${r.input_tokens}+${r.output_tokens}`, usd(r.cost_usd), ms(r.latency_ms),
        status];
    }));
  }

  // The task's share per tier in each time bucket of the window (learning/tier_series.py).
  function tierSeries(t) {
    const buckets = t.series ? t.series.buckets : [];
    if (!buckets.length) return "–";
    const cell = document.createElement("span");
    const order = ["tiny", "small", "medium", "large"];
    const names = [...new Set(buckets.flatMap((b) => Object.keys(b.tiers)))]
      .sort((a, b) => order.indexOf(a) - order.indexOf(b));
    Charts.shareBars(cell, {
      labels: buckets.map((b) => bucketLabel(b.start, t.series.bucket_s)),
      series: names.map((n, i) => ({ name: n, color: colorFor("tier", n, i),
        values: buckets.map((b) => b.tiers[n] || 0) })),
      counts: buckets.map((b) => b.requests),
    });
    return cell;
  }

  function drawTasks(tasks) {
    $("panel-tasks").hidden = tasks.length === 0;
    const tiers = (t) => Object.entries(t.tiers).map(([tier, share]) => `${tier} ${pct(share)}`)
      .join(" · ") || "–";
    table($("table-tasks"), [["task"], ["requests", "num"], ["spent", "num"], ["tiers"],
      ["tiers over time"], ["evidence", "num"], ["policy"], ["saved", "num"]],
    tasks.map((t) => [t.task, count(t.requests), usd(t.cost_usd), tiers(t), tierSeries(t),
      count(t.evidence), t.policy_text, usd(t.saved_usd)]));
  }

  function drawAll(d) {
    drawKpis(d.summary);
    drawTraffic(d.series);
    drawSavings(d.series);
    drawRoutes(d.routes);
    drawLatency(d.latency);
    drawKeys(d.keys);
    drawTiers(d.series);
    drawRecent(d.recent);
    drawTasks(d.tasks);
  }

  function showStatus(message, isError) {
    const el = $("status");
    el.textContent = message;
    el.classList.toggle("error", !!isError);
  }

  function markRange(range, span) {
    for (const b of document.querySelectorAll(".presets button")) {
      b.classList.toggle("active", !range.until && b.dataset.since === range.since);
    }
    if (span) {
      $("since").value = toLocalInput(span.since);
      $("until").value = toLocalInput(span.until);
    }
  }

  async function load() {
    const range = rangeFromHash();
    markRange(range, null);
    const query = new URLSearchParams({ since: range.since });
    if (range.until) query.set("until", range.until);
    const response = await fetch(`${PREFIX}/api/all?${query}`, { credentials: "same-origin" });
    if (response.status === 401) {
      location.reload();
      return;
    }
    const body = await response.json();
    if (!response.ok) {
      showStatus(body.error ? body.error.message : `error ${response.status}`, true);
      return;
    }
    latest = body;
    drawAll(body);
    const span = body.summary.range;
    markRange(range, span);
    document.body.dataset.loaded = query.toString();
    showStatus(`${count(body.summary.requests)} requests from ${new Date(span.since * 1000)
      .toLocaleString()} to ${new Date(span.until * 1000).toLocaleString()} · updated ` +
      new Date().toLocaleTimeString());
  }

  function refresh() {
    clearTimeout(timer);
    load()
      .catch((err) => showStatus(`could not load the dashboard data: ${err.message}`, true))
      .finally(() => { timer = setTimeout(refresh, REFRESH_MS); });
  }

  for (const b of document.querySelectorAll(".presets button")) {
    b.addEventListener("click", () => setRange(b.dataset.since, ""));
  }
  $("range").addEventListener("submit", (event) => {
    event.preventDefault();
    const since = $("since").value;
    const until = $("until").value;
    if (!since) {
      showStatus("pick a start time (or a preset)", true);
      return;
    }
    if (until && new Date(since) >= new Date(until)) {
      showStatus("the start must be before the end", true);
      return;
    }
    setRange(new Date(since).toISOString(), until ? new Date(until).toISOString() : "");
  });
  for (const id of ["split", "metric"]) {
    $(id).addEventListener("change", () => latest && drawTraffic(latest.series));
  }
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => latest && drawAll(latest), 150);
  });
  window.addEventListener("hashchange", refresh);
  refresh();
})();
