// pushsim live dashboard: polls the control API's aggregate routes and draws on canvases.
// No library, no build step, no network beyond the page's own server.
"use strict";

const HISTORY = 300;            // seconds of traffic kept for the rates plot
const STATS_EVERY_MS = 1000;    // /stats: the funnel (cheap: a few counters)
const SLOW_EVERY_MS = 5000;     // /stats/fleet and /metrics
const REPORT_EVERY_MS = 10000;  // /report: reads the journal, so less often
const COLORS = { accepted: "#1f6feb", delivered: "#1b7f3b", rejected: "#b3261e" };

const state = { history: [], last: null, stats: null };
window.pushsimDashboard = state;   // for tests and the curious: what the page last read

const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);
const fmt = (n) => (n === null || n === undefined) ? "–" : Number(n).toLocaleString("en-US");
const pct = (r) => (r === null || r === undefined) ? "–" : (100 * r).toFixed(1) + " %";

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function setStatus(ok, text) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.classList.toggle("down", !ok);
}

// the funnel --------------------------------------------------------------------------------------
function showStats(s) {
  const now = performance.now() / 1000;
  const totals = { accepted: s.accepted, delivered: s.delivered, dropped: sum(s.dropped),
                   pending: sum(s.pending), rejected: sum(s.rejected) };
  for (const [k, v] of Object.entries(totals)) {
    document.querySelector(`[data-stat="${k}"]`).textContent = fmt(v);
  }
  const prev = state.last;
  if (prev && totals.accepted >= prev.accepted) {    // a reset makes counts go down: start over
    const dt = Math.max(1e-3, now - prev.t);
    state.history.push({ t: now, accepted: (totals.accepted - prev.accepted) / dt,
                         delivered: (totals.delivered - prev.delivered) / dt,
                         rejected: (totals.rejected - prev.rejected) / dt });
    if (state.history.length > HISTORY) state.history.shift();
  } else if (prev) {
    state.history = [];
  }
  state.last = { t: now, ...totals };
  state.stats = s;
  drawRates();
  const rows = [["delivered", "delivered", s.delivered]];
  for (const [r, n] of Object.entries(s.dropped)) rows.push(["dropped: " + r, "dropped", n]);
  for (const [r, n] of Object.entries(s.pending)) rows.push(["pending: " + r, "pending", n]);
  bars("funnel", rows, s.accepted);
  bars("rejected", Object.entries(s.rejected).map(([r, n]) => [r, "", n]), sum(s.rejected));
}

function bars(id, rows, total) {
  const el = document.getElementById(id);
  el.replaceChildren(...rows.sort((a, b) => b[2] - a[2]).map(([label, kind, n]) => {
    const row = document.createElement("div");
    row.className = "row";
    const name = document.createElement("span");
    name.textContent = label;
    const bar = document.createElement("div");
    bar.className = "bar " + kind;
    bar.style.width = (total ? Math.max(0.5, 100 * n / total) : 0) + "%";
    const count = document.createElement("span");
    count.className = "n";
    count.textContent = fmt(n);
    row.append(name, bar, count);
    return row;
  }));
  if (!rows.length) el.textContent = "none yet";
}

// plots -------------------------------------------------------------------------------------------
function axes(ctx, w, h, ymax, pad) {
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = "#c8cdd2";
  ctx.beginPath();
  ctx.moveTo(pad, 4); ctx.lineTo(pad, h - pad); ctx.lineTo(w - 4, h - pad);
  ctx.stroke();
  ctx.fillStyle = "#5b6570";
  ctx.font = "11px system-ui";
  ctx.fillText(fmt(Math.round(ymax)), 2, 12);
  ctx.fillText("0", 2, h - pad);
}

function drawRates() {
  const c = document.getElementById("rates"), ctx = c.getContext("2d");
  const pts = state.history, pad = 40;
  const ymax = Math.max(1, ...pts.flatMap((p) => [p.accepted, p.delivered, p.rejected]));
  axes(ctx, c.width, c.height, ymax, pad);
  if (pts.length < 1) return;
  const x = (i) => pad + (c.width - pad - 8) * (pts.length === 1 ? 1 : i / (HISTORY - 1));
  const y = (v) => c.height - pad - (c.height - pad - 8) * v / ymax;
  for (const k of ["accepted", "delivered", "rejected"]) {
    ctx.strokeStyle = COLORS[k];
    ctx.lineWidth = 2;
    ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(x(i), y(p[k])) : ctx.moveTo(x(i), y(p[k]))));
    ctx.stroke();
  }
}

function drawBars(id, labels, values, color) {
  const c = document.getElementById(id), ctx = c.getContext("2d"), pad = 56;   // room for the slanted bucket labels
  const ymax = Math.max(1, ...values);
  axes(ctx, c.width, c.height, ymax, pad);
  const w = (c.width - pad - 8) / Math.max(1, values.length);
  values.forEach((v, i) => {
    const hgt = (c.height - pad - 8) * v / ymax;
    ctx.fillStyle = color;
    ctx.fillRect(pad + i * w + 2, c.height - pad - hgt, Math.max(1, w - 4), hgt);
    ctx.save();
    ctx.fillStyle = "#5b6570";
    ctx.translate(pad + i * w + w / 2, c.height - pad + 4);
    ctx.rotate(Math.PI / 4);
    ctx.fillText(labels[i], 0, 8);
    ctx.restore();
  });
}

// /metrics: the delivery-delay histogram and responses by status ----------------------------------
function parseProm(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/);
    if (!m) continue;
    const labels = {};
    for (const [, k, v] of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function histogram(samples, name) {
  const cumulative = new Map();            // le → count, summed over services
  for (const s of samples) {
    if (s.name === name) cumulative.set(s.labels.le, (cumulative.get(s.labels.le) || 0) + s.value);
  }
  const bounds = [...cumulative.keys()].sort((a, b) => Number(a) - Number(b));   // "+Inf" sorts last
  const counts = bounds.map((b, i) => cumulative.get(b) - (i ? cumulative.get(bounds[i - 1]) : 0));
  return [bounds.map((b) => (b === "+Inf" ? "more" : "≤" + b + "s")), counts];
}

function showMetrics(text) {
  const samples = parseProm(text);
  drawBars("delay", ...histogram(samples, "pushsim_delivery_delay_seconds_bucket"), COLORS.delivered);
  drawBars("latency", ...histogram(samples, "pushsim_response_latency_seconds_bucket"), COLORS.accepted);
  const statuses = samples.filter((s) => s.name === "pushsim_requests_total");
  drawBars("statuses", statuses.map((s) => s.labels.service + " " + s.labels.status),
           statuses.map((s) => s.value), COLORS.accepted);
}

// /stats/fleet: the primer's metrics and per-platform device counters ------------------------------
function kv(id, pairs) {
  const el = document.getElementById(id);
  el.replaceChildren(...pairs.flatMap(([k, v]) => {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k;
    dd.textContent = v;
    return [dt, dd];
  }));
}

function showFleet(f) {
  const bg = f.background || {}, fr = f.freshness || {};
  kv("primer", [
    ["receipt rate", pct(f.receipt_rate)],
    ["background success", pct(bg.success_rate)],
    ["freshness at open", pct(fr.fresh_rate)],
    ["landing readiness", pct(fr.opens ? fr.ready / fr.opens : null)],
    ["background tasks running", fmt(bg.running)],
    ["app opens", fmt(fr.opens)],
  ]);
  const pairs = [["installs tracked", fmt(f.active_installs)]];
  for (const platform of ["ios", "android"]) {
    for (const [k, v] of Object.entries(f[platform] || {})) pairs.push([platform + ": " + k.replaceAll("_", " "), fmt(v)]);
  }
  kv("fleet", pairs);
  state.fleet = f;
  if (f.states) showStates(f.states);
}

// What the installs are doing now (device_sim.census): a share of each platform's installs per state;
// an install counts in several states (online and dozing, say), so the bars do not add up to 100 %.
const STATE_KIND = { online: "delivered", offline: "dropped", force_quit: "dropped", throttled: "pending",
                     dozing: "pending", deferred_by_doze: "pending", stored_for_offline: "pending" };
function showStates(st) {
  for (const platform of ["ios", "android"]) {
    const counts = st[platform] || {};
    const rows = Object.entries(counts).filter(([k, n]) => k !== "installs" && n > 0)
      .map(([k, n]) => [k.replaceAll("_", " "), STATE_KIND[k] || "", n]);
    bars("states-" + platform, rows, counts.installs || 0);
  }
  const ios = (st.ios || {}).installs;
  const budget = ios ? " · iOS background budget left: " + (st.ios_budget_tokens / ios).toFixed(2) + " wakes per install" : "";
  document.getElementById("states-note").textContent = (st.exact
    ? "every install counted" : "estimated from " + fmt(st.sampled) + " of " + fmt(st.installs) + " installs") + budget;
}

// /report: conformance findings ---------------------------------------------------------------------
function showReport(r) {
  const body = document.querySelector("#findings tbody");
  const rows = (r.findings || []).map((f) => {
    const tr = document.createElement("tr");
    for (const [text, cls] of [[f.severity, "sev-" + f.severity], [f.rule || f.id || "", ""],
                               [f.message || f.title || f.summary || "", ""]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    return tr;
  });
  if (!rows.length) {
    const tr = document.createElement("tr"), td = document.createElement("td");
    td.colSpan = 3;
    td.textContent = "no findings";
    tr.append(td);
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

// the loops -----------------------------------------------------------------------------------------
function every(ms, fn) {
  let busy = false;       // never more than one request of a kind in flight
  const tick = async () => {
    if (busy || document.hidden) return;
    busy = true;
    try { await fn(); } catch (e) { setStatus(false, "server not answering: " + e.message); } finally { busy = false; }
  };
  tick();
  setInterval(tick, ms);
}

// The funnel: the server pushes one aggregate event a second (/events?summary=1); EventSource
// reconnects by itself after a drop. While it is down, /stats is polled instead.
let streaming = false;
function follow() {
  const es = new EventSource("/events?summary=1");
  es.addEventListener("stats", (ev) => { streaming = true; setStatus(true, "live"); showStats(JSON.parse(ev.data)); });
  es.onerror = () => { streaming = false; setStatus(false, "reconnecting…"); };
}
follow();
every(STATS_EVERY_MS, async () => {
  if (streaming) return;
  showStats(await getJSON("/stats"));
  setStatus(true, "live (polling)");
});
every(SLOW_EVERY_MS, async () => showFleet(await getJSON("/stats/fleet")));
every(SLOW_EVERY_MS, async () => {
  const r = await fetch("/metrics", { cache: "no-store" });
  showMetrics(await r.text());
});
every(REPORT_EVERY_MS, async () => showReport(await getJSON("/report")));
