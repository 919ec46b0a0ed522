// The modelyard console: reads /console/api/* with the admin key (kept in this tab's sessionStorage, sent as
// a bearer header) and draws the ledger's series with uPlot (vendored beside this file). Every text from the
// server (tenant, model, workload names) goes into the page as text nodes, never as HTML.
"use strict";

(function () {
  const KEY = "modelyard.adminKey";
  const COLORS = ["#2f6fde", "#e07b24", "#1f8a4c", "#c23b22", "#7a4fc9", "#0f8a96", "#b7791f", "#d0459a",
    "#5d6677", "#3b9c3b", "#8c564b", "#17becf"];
  const WHOLE = [1, 2, 5].flatMap((m) => [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8].map((p) => m * p)).sort((a, b) => a - b);
  const $ = (id) => document.getElementById(id);
  const charts = {};
  let lastSeries = null;

  // -- DOM helpers ---------------------------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "class") el.className = value;
      else el.setAttribute(name, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }
  const fmtInt = new Intl.NumberFormat("en-US");
  const fmtUsd = (v) => v === null || v === undefined ? "—" :
    "$" + Number(v).toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: Number(v) < 1 ? 4 : 2});
  const fmtMs = (v) => v === null || v === undefined ? "—" : (v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v) + " ms");
  const groupName = (name) => name === null ? "(none)" : name;

  // -- the admin key and the API ---------------------------------------------------------------------------
  class Unauthorized extends Error {}

  async function api(path, params) {
    const key = sessionStorage.getItem(KEY);
    if (!key) throw new Unauthorized("sign in");
    const query = params ? "?" + new URLSearchParams(params).toString() : "";
    const response = await fetch("/console/api/" + path + query, {
      headers: {"Authorization": "Bearer " + key},
      cache: "no-store",
    });
    if (response.status === 401) throw new Unauthorized("the admin key was refused");
    const body = await response.json();
    if (!response.ok) throw new Error((body.error && body.error.message) || ("HTTP " + response.status));
    return body;
  }

  function showLogin(message) {
    sessionStorage.removeItem(KEY);
    $("app").hidden = true;
    $("controls").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("key").focus();
  }

  function showApp() {
    $("login").hidden = true;
    $("app").hidden = false;
    $("controls").hidden = false;
  }

  // -- charts ----------------------------------------------------------------------------------------------
  function chartWidth(el) {
    return Math.max(240, Math.floor(el.getBoundingClientRect().width));
  }

  function chartHeight() {
    return window.innerWidth < 760 ? 190 : 220;
  }

  // One line per group over the window's buckets; `value(point)` is the figure drawn, `empty` what a bucket
  // without requests counts as (0 for counts, null, a gap, for latencies).
  function draw(id, series, lines, axisLabel, format, whole) {
    const el = $(id);
    if (charts[id]) { charts[id].destroy(); delete charts[id]; }
    el.replaceChildren();
    let points = 0;
    const data = [series.buckets];
    const uSeries = [{}];
    lines.forEach((line, i) => {
      const values = series.buckets.map(() => line.empty);
      for (const point of line.points) {
        const at = series.buckets.indexOf(point.bucket);
        const value = line.value(point);
        if (at >= 0 && value !== null && value !== undefined) { values[at] = value; points += 1; }
      }
      data.push(values);
      uSeries.push({
        label: line.label,
        stroke: line.color || COLORS[i % COLORS.length],
        width: 2,
        spanGaps: false,
        points: {size: 4},
        value: (u, v) => v === null || v === undefined ? "—" : format(v),
      });
    });
    el.dataset.points = String(points);
    if (!lines.length) {
      el.append(h("p", {class: "empty"}, "No requests in this window."));
      return;
    }
    const options = {
      width: chartWidth(el),
      height: chartHeight(),
      series: uSeries,
      scales: {x: {time: true}},
      // Counts get whole-number ticks only (no "0.5 errors").
      axes: [{}, {label: axisLabel, size: 60, values: (u, ticks) => ticks.map(format), ...(whole ? {incrs: WHOLE} : {})}],
      legend: {live: window.innerWidth >= 760},
      cursor: {points: {size: 6}},
    };
    charts[id] = new uPlot(options, data, el);
  }

  function drawAll(series) {
    const groups = series.groups;
    const lines = (value, empty) => groups.map((group, i) => ({
      label: groupName(group.name), points: group.points, value, empty, color: COLORS[i % COLORS.length],
    }));
    const usd = (v) => "$" + (Math.abs(v) >= 100 ? Math.round(v) : Number(v.toPrecision(3)));
    const count = (v) => v >= 1e6 ? (v / 1e6).toFixed(1) + "M" : v >= 1e3 ? (v / 1e3).toFixed(1) + "k" : String(Math.round(v * 100) / 100);
    draw("chart-spend", series, lines((p) => p.cost_usd === null ? 0 : Number(p.cost_usd), 0), "USD", usd);
    draw("chart-requests", series, lines((p) => p.requests, 0), "requests", count, true);
    draw("chart-tokens", series, lines((p) => p.input_tokens + p.output_tokens, 0), "tokens", count, true);
    draw("chart-errors", series, lines((p) => p.errors, 0), "errors", count, true);
    const pct = $("pct").value;
    let latency;
    if (series.by === null && groups.length === 1) {
      // Everything together: its three percentiles as three lines.
      latency = ["50", "95", "99"].map((cut, i) => ({
        label: "p" + cut, points: groups[0].points, value: (p) => p["latency_p" + cut + "_ms"], empty: null,
        color: ["#1f8a4c", "#e07b24", "#c23b22"][i],
      }));
      $("latency-caption").textContent = "Latency p50 / p95 / p99 (successful requests)";
    } else {
      latency = lines((p) => p["latency_p" + pct + "_ms"], null);
      $("latency-caption").textContent = "Latency p" + pct + " per " + (series.by || "group") + " (successful requests)";
    }
    draw("chart-latency", series, latency, "latency", (v) => fmtMs(v));
  }

  // -- panels ----------------------------------------------------------------------------------------------
  function tiles(series) {
    let cost = 0, priced = false, requests = 0, errors = 0, tokens = 0, unpriced = 0;
    for (const group of series.groups) {
      const t = group.totals;
      if (t.cost_usd !== null) { cost += Number(t.cost_usd); priced = true; }
      requests += t.requests; errors += t.errors; unpriced += t.unpriced;
      tokens += t.input_tokens + t.output_tokens;
    }
    const p95 = series.groups.length === 1 ? fmtMs(series.groups[0].totals.latency_p95_ms) : null;
    const tile = (label, value, sub) => h("div", {class: "tile"},
      h("div", {class: "label"}, label), h("div", {class: "value"}, value), sub ? h("div", {class: "sub"}, sub) : null);
    $("tiles").replaceChildren(
      tile("Spend", priced ? fmtUsd(cost) : "—", unpriced ? fmtInt.format(unpriced) + " unpriced" : "all priced"),
      tile("Requests", fmtInt.format(requests)),
      tile("Tokens", fmtInt.format(tokens)),
      tile("Errors", fmtInt.format(errors), requests ? (100 * errors / requests).toFixed(1) + "% of requests" : ""),
      tile(p95 === null ? "Groups" : "Latency p95", p95 === null ? String(series.groups.length) : p95,
        p95 === null ? "drawn (largest by requests)" : "successful requests"),
    );
  }

  function groupsTable(series) {
    const head = h("tr", {}, h("th", {}, series.by || "group"),
      ["requests", "errors", "tokens in", "tokens out", "spend", "p50", "p95", "p99"].map(
        (name) => h("th", {class: "num"}, name)));
    const rows = series.groups.map((group, i) => {
      const t = group.totals;
      const swatch = h("span", {class: "swatch"});
      swatch.style.background = COLORS[i % COLORS.length];
      return h("tr", {},
        h("td", {}, swatch, groupName(group.name)),
        [fmtInt.format(t.requests), fmtInt.format(t.errors), fmtInt.format(t.input_tokens),
          fmtInt.format(t.output_tokens), fmtUsd(t.cost_usd) + (t.unpriced ? " +" + t.unpriced + " unpriced" : ""),
          fmtMs(t.latency_p50_ms), fmtMs(t.latency_p95_ms), fmtMs(t.latency_p99_ms)].map(
          (text) => h("td", {class: "num"}, text)));
    });
    $("groups").replaceChildren(h("thead", {}, head), h("tbody", {}, rows));
    $("groups-title").textContent = series.by ? "Per " + series.by : "Over the window";
    const from = new Date(series.since * 1000).toLocaleString(), to = new Date(series.until * 1000).toLocaleString();
    $("groups-note").textContent = from + " – " + to + ", buckets of " + Math.round(series.step / 60) + " min" +
      (series.other_groups ? "; " + series.other_groups + " smaller group(s) not drawn" : "");
  }

  function decision(doc) {
    const body = $("decision-body");
    if (!doc.available) {
      body.replaceChildren(
        h("p", {}, "No decision report at ", h("code", {}, doc.path), doc.problem ? " (" + doc.problem + ")" : "", "."),
        h("p", {class: "note"}, "To produce one: ", doc.how || ""));
      return;
    }
    const trigger = (t) => h("li", {},
      h("span", {class: "badge " + (t.fired ? "fired" : "quiet")}, t.fired ? "fired" : "quiet"),
      h("span", {}, t.name), h("span", {class: "evidence"}, t.evidence || ""));
    const fired = (list) => list.filter((t) => t.fired).length;
    const parts = [h("p", {class: "note"}, (doc.organisation || "") + " · run of " + (doc.generated_on || "?") +
      " · portfolio " + fmtUsd(doc.portfolio_total_usd) + " over " + doc.horizon_months + " months · " + doc.path)];
    if (doc.triggers.length) parts.push(h("ul", {class: "triggers"}, doc.triggers.map(trigger)));
    for (const w of doc.workloads) {
      parts.push(h("div", {class: "workload"},
        h("h3", {}, w.name + " — " + (w.recommendation.headline || w.recommendation.kind || "no recommendation")),
        h("p", {class: "why"}, w.recommendation.why || ""),
        h("details", {}, h("summary", {}, fired(w.triggers) + " of " + w.triggers.length + " triggers fired"),
          h("ul", {class: "triggers"}, w.triggers.map(trigger)))));
    }
    body.replaceChildren(...parts);
  }

  function governance(doc) {
    if (!doc.enabled) {
      $("budgets").replaceChildren();
      $("keys").replaceChildren();
      $("governance-note").textContent = doc.how || "";
      return;
    }
    const budgetRows = doc.budgets.map((b) => {
      const limit = Number(b.limit), used = Number(b.spent) + Number(b.reserved);
      const share = limit > 0 ? Math.min(used / limit, 1) : 1;
      const bar = h("span");
      bar.style.width = (100 * share).toFixed(1) + "%";
      const meter = h("span", {class: "meter" + (share >= 1 ? " over" : share >= 0.8 ? " high" : ""),
        title: (100 * share).toFixed(1) + "% used"}, bar);
      const amount = (v) => b.unit === "usd" ? fmtUsd(v) : fmtInt.format(Number(v));
      return h("tr", {}, h("td", {}, b.budget), h("td", {}, b.scope + ": " + b.subject), h("td", {}, meter),
        h("td", {class: "num"}, amount(b.spent)), h("td", {class: "num"}, amount(b.reserved)),
        h("td", {class: "num"}, amount(b.limit)), h("td", {}, b.mode), h("td", {}, b.window),
        h("td", {}, new Date(b.resets_at).toLocaleString()));
    });
    $("budgets").replaceChildren(
      h("thead", {}, h("tr", {}, ["budget", "subject", "used", "spent", "reserved", "limit", "mode", "window", "resets"].map(
        (name) => h("th", {class: ["spent", "reserved", "limit"].includes(name) ? "num" : ""}, name)))),
      h("tbody", {}, budgetRows.length ? budgetRows : h("tr", {}, h("td", {colspan: "9"}, "No budgets configured."))));
    const keyRows = doc.keys.map((k) => h("tr", {}, h("td", {}, k.id), h("td", {}, k.tenant),
      h("td", {}, (k.workloads || []).join(", ") || "any"), h("td", {}, k.source),
      h("td", {}, k.active ? "active" : "revoked"),
      h("td", {}, Object.entries(k.limits || {}).map(([n, v]) => n + " " + v).join(", ") || "—")));
    $("keys").replaceChildren(
      h("thead", {}, h("tr", {}, ["id", "tenant", "workloads", "source", "state", "own limits"].map((n) => h("th", {}, n)))),
      h("tbody", {}, keyRows.length ? keyRows : h("tr", {}, h("td", {colspan: "6"}, "No keys."))));
    $("governance-note").textContent = doc.key_count > doc.keys.length ?
      "Showing " + doc.keys.length + " of " + doc.key_count + " keys." : "";
  }

  // -- loading ---------------------------------------------------------------------------------------------
  async function load() {
    const params = {window: $("window").value, groups: "8"};
    if ($("by").value) params.by = $("by").value;
    $("status").textContent = "Loading…";
    try {
      const [series, doc, gov] = await Promise.all([api("series", params), api("decision"), api("governance")]);
      showApp();
      lastSeries = series;
      tiles(series);
      drawAll(series);
      groupsTable(series);
      decision(doc);
      governance(gov);
      $("status").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
      document.body.dataset.loaded = "true";
    } catch (error) {
      if (error instanceof Unauthorized) { showLogin(error.message === "sign in" ? "" : error.message); return; }
      $("status").textContent = "Could not load: " + error.message;
    }
  }

  function start() {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("key").value);
      $("key").value = "";
      load();
    });
    $("logout").addEventListener("click", () => showLogin(""));
    $("refresh").addEventListener("click", load);
    for (const id of ["window", "by"]) $(id).addEventListener("change", load);
    $("pct").addEventListener("change", () => { if (lastSeries) drawAll(lastSeries); });
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => {
        for (const [id, chart] of Object.entries(charts)) chart.setSize({width: chartWidth($(id)), height: chartHeight()});
      }, 100);
    });
    if (sessionStorage.getItem(KEY)) load(); else showLogin("");
  }

  start();
})();
