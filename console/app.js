// The Wisp console: a small single-page app over wispd's /v1 API. Pages are hash routes
// (#/, #/new, #/functions/{id}, ...) so that no path of the page can collide with an API route.
// Live updates come from GET /v1/events/ws; where that route is missing or the socket drops,
// the page polls every 2 s instead. Metrics, instances and log streaming degrade the same way:
// a route that is not there hides its panel or falls back to the plain /v1 API.

import { createEditor, languageOf } from "./editor.js";
import { barChart, latencyChart } from "./charts.js";

const POLL_MS = 2000;
const SLOW_REFRESH_MS = 10000;
const DEPLOY_POLL_MS = 700;
const METRICS_REFRESH_MS = 10000;
const IN_PROGRESS = new Set(["creating", "deploying", "pending", "updating"]);

const TEMPLATES = {
  javascript:
    'exports.handler = async (event, context) => {\n' +
    '  console.log("event", JSON.stringify(event));\n' +
    '  return { message: "Hello " + (event.name || "world") };\n' +
    '};\n',
  python:
    'def handler(event, context):\n' +
    '    print("event", event)\n' +
    '    return {"message": "Hello " + event.get("name", "world")}\n',
};

// ---- small DOM helpers -----------------------------------------------------------------

// h("a", {href: "#/"}, "text", child...): an element. Text is always text, never HTML.
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, String(v));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Replaces `container`'s children, keeping keyboard focus on the element with the same
// data-fk (a refresh must not throw the user's focus to the top of the page).
function replaceKeepingFocus(container, ...children) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.getAttribute("data-fk") : null;
  container.replaceChildren(...children);
  if (key) container.querySelector(`[data-fk="${CSS.escape(key)}"]`)?.focus();
}

function badge(kind, word) {
  return h("span", { class: `badge ${kind}-${word}`, "data-state": word }, word || "unknown");
}

function formatTime(iso) {
  if (!iso) return h("span", { class: "muted" }, "never");
  const date = new Date(iso);
  return h("time", { datetime: iso, title: date.toLocaleString() }, relative(date));
}

function relative(date) {
  const seconds = Math.round((Date.now() - date.getTime()) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return date.toLocaleString();
}

function pretty(value) {
  if (value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

function percent(rate) {
  if (rate === null || rate === undefined || Number.isNaN(rate)) return "–";
  return `${(rate * 100).toFixed(rate > 0 && rate < 0.01 ? 2 : 1)} %`;
}

let toastTimer = null;
function toast(message, isError = false) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.className = isError ? "toast error" : "toast";
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, isError ? 8000 : 4000);
}

// ---- the API ---------------------------------------------------------------------------

const KEY_NAME = "wisp.apiKey";
function apiKey() {
  return sessionStorage.getItem(KEY_NAME) || localStorage.getItem(KEY_NAME) || "";
}
function storeKey(secret, remember) {
  sessionStorage.removeItem(KEY_NAME);
  localStorage.removeItem(KEY_NAME);
  if (secret) (remember ? localStorage : sessionStorage).setItem(KEY_NAME, secret);
}

class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
  // The router's answer for a path it has no route for (a feature this wispd lacks), as
  // opposed to a route's own 404 (no such function).
  get noRoute() {
    return this.status === 404 && /no such endpoint/.test(this.message);
  }
}

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(method, path, body) {
  const headers = authHeaders();
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, `wispd did not answer (${e.message})`);
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (response.status === 401) {
    askForKey(apiKey() ? "That key was refused (revoked, or never issued). Enter another."
                       : "This wispd requires authentication. Enter an API key's secret.");
    throw new ApiError(401, data?.error || "authentication required", data);
  }
  if (!response.ok) {
    throw new ApiError(response.status, data?.error || text || response.statusText, data);
  }
  return { status: response.status, data, headers: response.headers };
}
const get = async (path) => (await api("GET", path)).data;

// ---- the key dialog --------------------------------------------------------------------

let keyDialogOpen = false;
function askForKey(reason) {
  const dialog = document.getElementById("key-dialog");
  if (reason) document.getElementById("key-reason").textContent = reason;
  if (keyDialogOpen) return;
  keyDialogOpen = true;
  document.getElementById("key-input").value = "";
  document.getElementById("key-remember").checked = !!localStorage.getItem(KEY_NAME);
  dialog.showModal();
  document.getElementById("key-input").focus();
}

function setUpKeyDialog() {
  const dialog = document.getElementById("key-dialog");
  dialog.addEventListener("close", () => { keyDialogOpen = false; });
  document.getElementById("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const secret = document.getElementById("key-input").value.trim();
    if (!secret) return;
    storeKey(secret, document.getElementById("key-remember").checked);
    dialog.close();
    live.restart();
    route();
  });
  document.getElementById("key-forget").addEventListener("click", () => {
    storeKey("");
    dialog.close();
    toast("Key forgotten");
    live.restart();
    route();
  });
  document.getElementById("key-cancel").addEventListener("click", () => dialog.close());
  document.getElementById("key-button").addEventListener("click", () =>
    askForKey("Enter an API key's secret. It is kept in this browser and sent as a bearer token."));
}

// ---- live updates: the events WebSocket, or polling --------------------------------------

const live = {
  socket: null,
  pollTimer: null,
  retryTimer: null,
  mode: "connecting",
  lastEvent: null,
  refreshTimer: null,

  start() {
    this.connect();
  },
  restart() {
    if (this.socket) {
      this.socket.onclose = null;
      this.socket.close();
      this.socket = null;
    }
    clearTimeout(this.retryTimer);
    this.connect();
  },
  connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const key = apiKey();
    // A browser's WebSocket cannot send an Authorization header: the key goes as the offered
    // subprotocol "wisp.bearer.<secret>" beside "wisp", which wispd picks (with or without
    // authentication), so it never appears in a URL.
    const url = `${scheme}${location.host}/v1/events/ws`;
    const protocols = key ? ["wisp", `wisp.bearer.${key}`] : ["wisp"];
    let opened = false;
    let socket;
    try {
      socket = new WebSocket(url, protocols);
    } catch {
      this.poll();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      opened = true;
      this.setMode("ws");
    };
    socket.onmessage = (e) => {
      let message;
      try { message = JSON.parse(e.data); } catch { return; }
      this.lastEvent = message;
      page?.onEvent?.(message);
      this.scheduleRefresh();
    };
    socket.onclose = () => {
      this.socket = null;
      this.poll();
      // A socket that worked is retried soon; a route that is not there, rarely.
      this.retryTimer = setTimeout(() => this.connect(), opened ? 2000 : 30000);
    };
  },
  poll() {
    this.setMode("poll");
  },
  setMode(mode) {
    this.mode = mode;
    const badgeEl = document.getElementById("live");
    badgeEl.className = `live ${mode}`;
    badgeEl.textContent = mode === "ws" ? "Live" : "Polling every 2 s";
    badgeEl.title = mode === "ws" ? "State changes arrive over /v1/events/ws"
                                  : "The events WebSocket is not available: polling the API";
    clearInterval(this.pollTimer);
    // Events carry state changes, not every call: with the socket open, what calls change
    // (history, last invoked, error rates) still refreshes, slowly.
    this.pollTimer = setInterval(() => {
      if (document.visibilityState === "visible") page?.refresh?.();
    }, mode === "poll" ? POLL_MS : SLOW_REFRESH_MS);
  },
  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => page?.refresh?.(), 150);
  },
};

// ---- metrics (GET /v1/functions/{id}/metrics), read tolerantly ---------------------------

const metricsRoute = { available: undefined };  // undefined: not asked yet

function firstOf(object, names) {
  for (const n of names) if (object && object[n] !== undefined && object[n] !== null) return object[n];
  return undefined;
}

function msOf(object, base) {
  // Nested ({"duration_ms": {"p50": ...}}) or flat ({"p50_ms": ...}).
  for (const group of ["duration_ms", "duration"]) {
    const nested = object?.[group];
    if (nested && typeof nested === "object" && nested[base] != null) return Number(nested[base]);
  }
  const ms = firstOf(object, [`${base}_ms`, base, `duration_${base}_ms`, `duration_${base}`]);
  if (ms !== undefined) return Number(ms);
  const us = firstOf(object, [`${base}_us`, `${base}_micros`, `duration_${base}_us`]);
  return us !== undefined ? Number(us) / 1000 : null;
}

function timeOf(object) {
  const t = firstOf(object, ["start", "start_ms", "t", "ts", "time", "timestamp", "at", "from"]);
  if (typeof t === "number") return t < 1e12 ? t * 1000 : t;
  return t ? Date.parse(t) : NaN;
}

// Reduces the metrics answer to {totals: {calls, errors, errorRate, p50, p95, p99},
// series: [{t, calls, errors, p50, p99}]}.
export function normaliseMetrics(body) {
  const root = body?.item ?? body?.data ?? body ?? {};
  const totalsRaw = firstOf(root, ["totals", "total", "summary"]) ?? root;
  const count = (o) => Number(firstOf(o, ["invocations", "calls", "count", "requests", "total"]) ?? 0);
  // Failed calls: errors and timeouts (throttled calls never ran).
  const errs = (o) => {
    const e = firstOf(o, ["errors", "failed", "failures"]);
    if (typeof e === "number") return e;
    const counts = o?.outcomes ?? o;
    return Number(counts?.error ?? 0) + Number(counts?.timeout ?? 0);
  };
  const calls = count(totalsRaw);
  const errors = errs(totalsRaw);
  const rate = firstOf(totalsRaw, ["error_rate", "errorRate"]);
  const totals = {
    calls, errors,
    errorRate: rate !== undefined ? Number(rate) : (calls > 0 ? errors / calls : null),
    p50: msOf(totalsRaw, "p50"), p95: msOf(totalsRaw, "p95"), p99: msOf(totalsRaw, "p99"),
  };
  let raw = firstOf(root, ["series", "buckets", "points", "timeline", "history"]);
  if (!Array.isArray(raw)) raw = [];
  // An interval without calls has no duration (a 0 there would draw a false dip).
  const series = raw.map((p) => {
    const calls = count(p);
    return { t: timeOf(p), calls, errors: errs(p),
             p50: calls > 0 ? msOf(p, "p50") : null, p99: calls > 0 ? msOf(p, "p99") : null };
  }).filter((p) => !Number.isNaN(p.t)).sort((a, b) => a.t - b.t);
  return { totals, series };
}

// The metrics of a function, or null when this wispd has no metrics route.
async function functionMetrics(id, window) {
  if (metricsRoute.available === false) return null;
  const path = `/v1/functions/${encodeURIComponent(id)}/metrics`;
  try {
    let answer;
    try {
      answer = await get(`${path}?window=${encodeURIComponent(window)}`);
    } catch (e) {
      // A window this wispd does not know: its default window rather than no graphs.
      if (e.status !== 400) throw e;
      answer = await get(path);
    }
    metricsRoute.available = true;
    return normaliseMetrics(answer);
  } catch (e) {
    if (e.noRoute) {
      metricsRoute.available = false;
      return null;
    }
    throw e;
  }
}

// ---- routing ---------------------------------------------------------------------------

let page = null;
let routed = false;

function parseHash() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = hash.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent),
           query: new URLSearchParams(query) };
}

async function route() {
  page?.dispose?.();
  page = null;
  const view = document.getElementById("view");
  const { parts, query } = parseHash();
  let nav = "functions";
  if (parts.length === 0 || (parts[0] === "functions" && parts.length === 1)) {
    page = listPage(view);
  } else if (parts[0] === "new") {
    page = formPage(view, null);
    nav = "new";
  } else if (parts[0] === "functions" && parts[2] === "edit") {
    page = formPage(view, parts[1]);
  } else if (parts[0] === "functions") {
    page = detailPage(view, parts[1], query);
  } else if (parts[0] === "invocations" && parts[1]) {
    page = invocationPage(view, parts[1]);
    nav = "invocations";
  } else if (parts[0] === "invocations") {
    page = asyncPage(view, query);
    nav = "invocations";
  } else if (parts[0] === "instances") {
    page = instancesPage(view);
    nav = "instances";
  } else if (parts[0] === "dead-letters") {
    page = deadLetterPage(view);
    nav = "dead-letters";
  } else {
    view.replaceChildren(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Functions")));
  }
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${page?.title || "Wisp"} · Wisp console`;
  // After a navigation, focus moves to the new content (as a page load would put a screen
  // reader there); the first load leaves it at the top, where Tab reaches the skip link.
  if (routed) view.focus({ preventScroll: true });
  routed = true;
  await page?.refresh?.();
}

// Wraps a page's refresh so that one runs at a time (a call during a run makes one more run
// after it, so nothing asked for is missed) and an error shows once, not every 2 s.
function guarded(refresh, errorBox) {
  let running = false;
  let again = false;
  let shownError = "";
  const run = async (...args) => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await refresh(...args);
      if (errorBox) { errorBox.hidden = true; shownError = ""; }
    } catch (e) {
      if (e.status === 401) return;
      if (errorBox) {
        errorBox.hidden = false;
        errorBox.textContent = e.message;
      } else if (e.message !== shownError) {
        toast(e.message, true);
      }
      shownError = e.message;
    } finally {
      running = false;
    }
    if (again) {
      again = false;
      await run(...args);
    }
  };
  return run;
}

// ---- the function list -----------------------------------------------------------------

function listPage(view) {
  const tbody = h("tbody");
  const errorBox = h("p", { class: "error-text", role: "alert", hidden: true });
  const summary = h("p", { class: "muted small", id: "list-summary" });
  const rateNote = h("span", { class: "hint" });
  view.replaceChildren(
    h("h1", {}, "Functions", h("a", { class: "button", href: "#/new" }, "New function")),
    errorBox,
    h("div", { class: "panel" },
      h("div", { class: "table-wrap" },
        h("table", { "aria-describedby": "list-summary" },
          h("thead", {}, h("tr", {},
            h("th", { scope: "col" }, "Name"),
            h("th", { scope: "col" }, "Runtime"),
            h("th", { scope: "col" }, "State"),
            h("th", { scope: "col", class: "hide-narrow" }, "Last invoked"),
            h("th", { scope: "col", class: "num" }, "Error rate ", rateNote),
            h("th", { scope: "col" }, h("span", { class: "hide-narrow" }, "Actions")))),
          tbody)),
      summary));

  let rates = new Map();
  let ratesAt = 0;
  async function loadRates(items) {
    // Once every 10 s at most: the list polls every 2 s without the events socket.
    if (Date.now() - ratesAt < METRICS_REFRESH_MS && rates.size > 0) return;
    ratesAt = Date.now();
    const next = new Map();
    if (metricsRoute.available !== false && items.length > 0) {
      const answers = await Promise.allSettled(items.map((f) => functionMetrics(f.id, "1h")));
      answers.forEach((a, i) => {
        if (a.status === "fulfilled" && a.value) next.set(items[i].id, a.value.totals.errorRate);
      });
      rateNote.textContent = "(last hour)";
    }
    if (metricsRoute.available === false) {
      // No metrics route: the error rate of the latest recorded calls.
      const recent = (await get("/v1/invocations?limit=500")).items || [];
      const byFunction = new Map();
      for (const r of recent) {
        if (!["success", "error", "timeout", "dead_letter"].includes(r.status)) continue;
        const c = byFunction.get(r.function_id) || { calls: 0, errors: 0 };
        c.calls += 1;
        if (r.status !== "success") c.errors += 1;
        byFunction.set(r.function_id, c);
      }
      for (const [id, c] of byFunction) next.set(id, c.errors / c.calls);
      rateNote.textContent = "(recent calls)";
    }
    rates = next;
  }

  const refresh = guarded(async () => {
    const { items = [], total = 0 } = await get("/v1/functions?limit=1000");
    try { await loadRates(items); } catch { /* the rates are a nicety; the list still shows */ }
    const rows = items.map((f) => h("tr", { "data-function": f.name, "data-id": f.id },
      h("th", { scope: "row" }, h("a", { href: `#/functions/${f.id}`, "data-fk": `open-${f.id}` }, f.name)),
      h("td", {}, f.runtime, f.runtime_version ? h("span", { class: "muted small hide-narrow" }, ` ${f.runtime_version}`) : null),
      h("td", {}, badge("state", f.state), f.error ? h("div", { class: "small error-text" }, f.error) : null),
      h("td", { class: "hide-narrow" }, formatTime(f.last_invoked_at)),
      h("td", { class: "num" }, percent(rates.get(f.id))),
      h("td", {}, h("div", { class: "row-actions" },
        h("a", { class: "button", href: `#/functions/${f.id}?invoke=1`, "data-fk": `invoke-${f.id}`,
                 "aria-label": `Invoke ${f.name}` }, "Invoke"),
        h("a", { class: "button ghost", href: `#/functions/${f.id}?logs=1`, "data-fk": `logs-${f.id}`,
                 "aria-label": `Logs of ${f.name}` }, "Logs")))));
    if (rows.length === 0) {
      rows.push(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No functions yet. ",
        h("a", { href: "#/new" }, "Create one"), ".")));
    }
    replaceKeepingFocus(tbody, ...rows);
    summary.textContent = `${total} function${total === 1 ? "" : "s"}; updated ${new Date().toLocaleTimeString()}`;
  }, errorBox);
  return { title: "Functions", refresh };
}

// ---- create and edit -------------------------------------------------------------------

function envRow(name = "", value = "", index) {
  const row = h("div", { class: "env-row" });
  const nameInput = h("input", { "aria-label": `Variable ${index + 1} name`, value: name, class: "env-name", placeholder: "NAME" });
  const valueInput = h("input", { "aria-label": `Variable ${index + 1} value`, value, class: "env-value", placeholder: "value" });
  row.append(nameInput, valueInput,
    h("button", { type: "button", class: "ghost", "aria-label": `Remove variable ${index + 1}`,
                  onclick: () => row.remove() }, "Remove"));
  return row;
}

function numberField(id, label, value, attrs, hint) {
  return h("div", { class: "field" },
    h("label", { for: id }, label, hint ? h("span", { class: "hint" }, ` ${hint}`) : null),
    h("input", { id, type: "number", value, required: true, ...attrs }));
}

// Deployment status: the states a deploy passes through, the current one highlighted.
function deploySteps(state) {
  const steps = ["creating", "deploying", state === "error" ? "error" : "ready"];
  const at = steps.indexOf(state);
  return h("ol", { class: "deploy-steps", "aria-label": "Deployment status" },
    steps.map((s, i) => h("li", {
      class: s === "error" ? "failed" : i < at || (s === "ready" && state === "ready") ? "done" : i === at ? "current" : "",
      "aria-current": i === at ? "step" : null,
    }, s)));
}

// Event JSON in; status, result, logs and duration out. Returns the panel's element.
function invokePanel(functionId, { idPrefix, initialEvent = '{\n  "name": "World"\n}', onDone } = {}) {
  const eventId = `${idPrefix}-event`;
  const eventBox = h("textarea", { id: eventId, rows: 6, spellcheck: "false" });
  eventBox.value = initialEvent;
  const asyncBox = h("input", { type: "checkbox", id: `${idPrefix}-async` });
  const out = h("div", { class: "invoke-output", "aria-live": "polite" });
  const button = h("button", { type: "submit", id: `${idPrefix}-button` }, "Invoke");
  const form = h("form", { class: "invoke-form" },
    h("div", { class: "field" }, h("label", { for: eventId }, "Event (JSON)"), eventBox),
    h("div", { class: "actions" }, button,
      h("label", { class: "inline" }, asyncBox, "Asynchronous (queued, retried)")),
    out);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    let event;
    try {
      event = eventBox.value.trim() ? JSON.parse(eventBox.value) : {};
    } catch (err) {
      out.replaceChildren(h("p", { class: "error-text", role: "alert" }, `The event is not JSON: ${err.message}`));
      eventBox.focus();
      return;
    }
    button.disabled = true;
    out.replaceChildren(h("p", { class: "muted" }, "Invoking…"));
    const started = performance.now();
    try {
      const body = asyncBox.checked ? { event, async: true } : { event };
      const { data } = await api("POST", `/v1/functions/${encodeURIComponent(functionId)}/invoke`, body);
      if (asyncBox.checked) {
        out.replaceChildren(h("p", {}, "Queued as ",
          h("a", { href: `#/invocations/${data.invocation_id}` }, data.invocation_id), "."));
      } else {
        out.replaceChildren(invokeResult(data, performance.now() - started));
      }
    } catch (err) {
      out.replaceChildren(h("p", { class: "error-text", role: "alert" }, `Invoke failed: ${err.message}`));
    } finally {
      button.disabled = false;
    }
    onDone?.();
  });
  return { element: form, focus: () => eventBox.focus() };
}

function invokeResult(data, roundTripMs) {
  return h("div", { class: "invoke-result", "data-status": data.status },
    h("dl", { class: "facts" },
      h("dt", {}, "Status"), h("dd", {}, badge("status", data.status)),
      h("dt", {}, "Duration"), h("dd", { class: "duration" }, `${data.duration_ms} ms`,
        h("span", { class: "muted small" },
          ` (queue wait ${data.queue_wait_ms ?? 0} ms` +
          (data.init_duration_ms != null ? `, cold start ${data.init_duration_ms} ms` : "") +
          `, round trip ${Math.round(roundTripMs)} ms)`)),
      h("dt", {}, "Request id"), h("dd", { class: "mono small" }, data.request_id),
      data.memory_used_mb != null ? [h("dt", {}, "Memory used"), h("dd", {}, `${data.memory_used_mb} MiB`)] : null),
    h("h3", { class: "small" }, "Result"),
    h("pre", { class: "invoke-response" }, pretty(data.response)),
    h("h3", { class: "small" }, "Logs"),
    h("pre", { class: "invoke-logs" }, (data.logs || []).join("\n") || "(no output)"));
}

function formPage(view, id) {
  const editing = id !== null;
  const errorBox = h("p", { class: "error-text", role: "alert", hidden: true });
  const container = h("div");
  view.replaceChildren(
    h("h1", {}, editing ? "Edit function" : "New function"),
    errorBox, container);
  let disposed = false;
  let deployTimer = null;

  function build(f) {
    const runtime = f?.runtime || "node";
    const runtimes = ["node", "python"];
    if (!runtimes.includes(runtime)) runtimes.push(runtime);
    const runtimeSelect = h("select", { id: "fn-runtime" },
      runtimes.map((r) => h("option", { value: r, selected: r === runtime }, r === "node" ? "Node.js (node)" : r === "python" ? "Python (python)" : r)));
    const language = languageOf(runtime);
    const editor = createEditor({ id: "fn-code", value: f ? (f.code ?? "") : TEMPLATES[language], language });
    if (f && f.code === null) {
      editor.textarea.disabled = true;
      editor.setValue("// This function was deployed as a zip package: its code cannot be edited here.");
    }
    runtimeSelect.addEventListener("change", () => {
      const lang = languageOf(runtimeSelect.value);
      // A fresh function's template follows the runtime until the user has typed their own.
      if (!editing && Object.values(TEMPLATES).includes(editor.value)) editor.setValue(TEMPLATES[lang]);
      editor.setLanguage(lang);
    });
    const envList = h("div", { id: "fn-env" });
    Object.entries(f?.env || {}).forEach(([k, v], i) => envList.append(envRow(k, v, i)));
    const status = h("div", { class: "deploy-status", role: "status", "aria-live": "polite" });
    const submit = h("button", { type: "submit", id: "fn-submit" }, editing ? "Save and deploy" : "Create and deploy");
    const form = h("form", { class: "panel", novalidate: true },
      h("div", { class: "row" },
        h("div", { class: "field" }, h("label", { for: "fn-name" }, "Name"),
          h("input", { id: "fn-name", required: true, value: f?.name || "", readonly: editing,
                       autocomplete: "off", pattern: "[A-Za-z0-9_.-]+" })),
        h("div", { class: "field" }, h("label", { for: "fn-runtime" }, "Runtime"), runtimeSelect),
        h("div", { class: "field" }, h("label", { for: "fn-handler" }, "Handler",
            h("span", { class: "hint" }, " handler or file.function")),
          h("input", { id: "fn-handler", value: f?.handler || "handler", required: true })),
        numberField("fn-timeout", "Timeout", f?.timeout_seconds ?? 30, { min: 1, max: 900 }, "seconds")),
      h("div", { class: "row" },
        numberField("fn-memory", "Memory", f?.memory_mb ?? 256, { min: 128, max: 10240, step: 1 }, "MB"),
        numberField("fn-vcpu", "vCPU", f?.vcpu ?? 1, { min: 0.1, step: 0.1 })),
      h("div", { class: "field" }, h("label", { for: "fn-code" }, "Code"), editor.element),
      h("fieldset", { class: "field" }, h("legend", {}, "Environment variables"), envList,
        h("div", {}, h("button", { type: "button", class: "ghost", id: "fn-env-add",
          onclick: () => { const row = envRow("", "", envList.children.length); envList.append(row); row.querySelector("input").focus(); } },
          "Add variable"))),
      h("div", { class: "actions" }, submit,
        editing ? h("a", { class: "button ghost", href: `#/functions/${id}` }, "Cancel") : null),
      status);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const env = {};
      for (const row of envList.querySelectorAll(".env-row")) {
        const k = row.querySelector(".env-name").value.trim();
        if (k) env[k] = row.querySelector(".env-value").value;
      }
      const body = {
        runtime: runtimeSelect.value,
        handler: form.querySelector("#fn-handler").value.trim(),
        timeout_seconds: Number(form.querySelector("#fn-timeout").value),
        memory_mb: Number(form.querySelector("#fn-memory").value),
        vcpu: Number(form.querySelector("#fn-vcpu").value),
        env,
      };
      if (!editor.textarea.disabled) body.code = editor.value;
      if (!editing) body.name = form.querySelector("#fn-name").value.trim();
      if (!editing && !body.name) {
        errorBox.hidden = false;
        errorBox.textContent = "A function needs a name.";
        form.querySelector("#fn-name").focus();
        return;
      }
      submit.disabled = true;
      errorBox.hidden = true;
      status.replaceChildren(deploySteps("creating"));
      try {
        const answer = editing
          ? await api("PUT", `/v1/functions/${encodeURIComponent(id)}`, body)
          : await api("POST", "/v1/functions", body);
        const fid = editing ? id : answer.data.id;
        watchDeploy(fid, status);
      } catch (err) {
        status.replaceChildren();
        errorBox.hidden = false;
        errorBox.textContent = err.message;
        errorBox.focus?.();
      } finally {
        submit.disabled = false;
      }
    });
    container.replaceChildren(form);
    if (!editing) form.querySelector("#fn-name").focus();
  }

  // Follows the deploy until ready or error, then offers "Test Invoke".
  function watchDeploy(fid, status) {
    clearTimeout(deployTimer);
    let testPanel = null;
    const tick = async () => {
      if (disposed) return;
      let f;
      try {
        f = (await get(`/v1/functions/${encodeURIComponent(fid)}`)).item;
      } catch (err) {
        status.replaceChildren(h("p", { class: "error-text" }, err.message));
        return;
      }
      const parts = [deploySteps(f.state),
        h("p", { class: "small" }, "State: ", badge("state", f.state), ` version ${f.version}`,
          f.error ? h("span", { class: "error-text" }, ` — ${f.error}`) : null)];
      if (f.state === "ready") {
        if (!testPanel) testPanel = invokePanel(fid, { idPrefix: "deploy-test" });
        parts.push(h("section", { class: "panel", "aria-labelledby": "test-invoke-title" },
          h("h2", { id: "test-invoke-title" }, "Test Invoke"), testPanel.element,
          h("p", {}, h("a", { href: `#/functions/${fid}` }, "Open the function's page"))));
      }
      // Only the status line is redrawn while the test panel stays (it holds the user's event).
      if (!status.contains(testPanel?.element)) {
        status.replaceChildren(...parts);
        if (f.state === "ready") status.querySelector("#deploy-test-button")?.focus();
      } else {
        status.firstChild.replaceWith(parts[0]);
        status.children[1].replaceWith(parts[1]);
      }
      if (IN_PROGRESS.has(f.state)) deployTimer = setTimeout(tick, DEPLOY_POLL_MS);
    };
    tick();
  }

  const refresh = guarded(async () => {
    if (container.firstChild) return;  // built once; a refresh must not reset the user's edits
    build(editing ? (await get(`/v1/functions/${encodeURIComponent(id)}`)).item : null);
  }, errorBox);
  return {
    title: editing ? "Edit function" : "New function",
    refresh,
    dispose() { disposed = true; clearTimeout(deployTimer); },
  };
}

// The instances' table: the detail page's (one function) and the node's (every function).
function instanceTable(items, source, withFunction) {
  const columns = [["id", "Instance"], ...(withFunction ? [["function", "Function"]] : []),
    ["version", "Version"], ["state", "State"], ["started_at", "Started"],
    ["invocations", "Calls"], ["last_call_at", "Last call"], ["memory_mb", "Memory"], ["cpu", "CPU time"]];
  const cell = (i, key) => {
    switch (key) {
      case "id": return h("span", { class: "mono small", title: String(i.id) }, String(i.id).slice(0, 12));
      case "function":
        if (i.prewarmed || !i.function_id) return h("span", { class: "muted" }, "prewarmed");
        return h("a", { href: `#/functions/${i.function_id}` }, i.function_name || i.function_id);
      case "state": return h("span", { class: `badge instance-${i.state}` }, i.state);
      case "started_at": return formatTime(i.started_at);
      case "last_call_at": return i.last_call_at || i.last_invoked_at ? formatTime(i.last_call_at || i.last_invoked_at) : "–";
      case "invocations": return String(i.invocations ?? i.calls ?? i.calls_served ?? "–");
      case "memory_mb": {
        const used = i.memory_mb ?? i.memory_used_mb ?? (i.memory_bytes != null ? Math.round(i.memory_bytes / 1048576) : null);
        const peak = i.memory_peak_mb ?? i.peak_memory_mb ?? (i.memory_peak_bytes != null ? Math.round(i.memory_peak_bytes / 1048576) : null);
        return used == null ? "–" : `${used} MiB${peak != null ? ` (peak ${peak})` : ""}`;
      }
      case "cpu": {
        const ms = i.cpu_ms ?? i.cpu_time_ms ?? (i.cpu_seconds != null ? i.cpu_seconds * 1000 : null) ??
          (i.cpu_us != null ? i.cpu_us / 1000 : null);
        return ms == null ? "–" : `${Math.round(ms)} ms`;
      }
      default: return String(i[key] ?? "–");
    }
  };
  return h("div", { class: "table-wrap" }, h("table", { "data-source": source },
    h("thead", {}, h("tr", {}, columns.map(([, label]) => h("th", { scope: "col" }, label)))),
    h("tbody", {}, items.map((i) => h("tr", { "data-instance": i.id },
      columns.map(([key]) => h("td", {}, cell(i, key))))))));
}

function instancesPage(view) {
  const errorBox = h("p", { class: "error-text", role: "alert", hidden: true });
  const body = h("div", { class: "panel" });
  view.replaceChildren(h("h1", {}, "Instances"), errorBox, body);
  const refresh = guarded(async () => {
    let items;
    try {
      const answer = await get("/v1/instances");
      items = Array.isArray(answer) ? answer : answer.items || [];
    } catch (e) {
      if (!e.noRoute) throw e;
      // No node-wide route: the instances of each function's item.
      const { items: functions = [] } = await get("/v1/functions?limit=1000");
      items = functions.flatMap((f) => (f.instances || []).map((i) =>
        ({ ...i, function_id: f.id, function_name: f.name })));
    }
    replaceKeepingFocus(body, items.length ? instanceTable(items, "/v1/instances", true)
      : h("p", { class: "muted" }, "No instance is running."));
  }, errorBox);
  return { title: "Instances", refresh };
}

// ---- the function's page ---------------------------------------------------------------

function detailPage(view, id, query) {
  const enc = encodeURIComponent(id);
  const errorBox = h("p", { class: "error-text", role: "alert", hidden: true });
  const heading = h("h1", {}, "Function");
  const facts = h("dl", { class: "facts", id: "facts" });
  // After a test call the history and times show it at once, events socket or not.
  const test = invokePanel(id, { idPrefix: "test", onDone: () => refresh() });
  const codeStatus = h("p", { class: "small", role: "status", "aria-live": "polite" });
  const codeRuntime = h("span", { class: "muted small" });
  const instancesBody = h("div", { id: "instances" });
  const historyBody = h("tbody");
  const chartsBox = h("div", { id: "charts" });
  const windowSelect = h("select", { id: "metrics-window" },
    ["15m", "1h", "6h", "24h"].map((w) => h("option", { value: w, selected: w === "1h" }, w)));
  const logStream = h("pre", { id: "log-stream", "aria-live": "off", hidden: true });
  const followButton = h("button", { type: "button", class: "ghost", id: "follow-logs", "aria-pressed": "false" }, "Follow logs");
  let editor = null;
  let fn = null;
  let disposed = false;
  let deployTimer = null;
  let metricsAt = 0;
  const openRecords = new Set();

  const codeSave = h("button", { type: "button", id: "code-save" }, "Save code");
  const codePanel = h("section", { class: "panel", "aria-labelledby": "code-title" },
    h("h2", { id: "code-title" }, "Code ", codeRuntime),
    h("label", { for: "detail-code", class: "hint" }, "Edit the code and save: wispd deploys it as a new version."),
    h("div", { id: "code-editor" }),
    h("div", { class: "actions" }, codeSave), codeStatus);

  view.replaceChildren(
    heading, errorBox,
    h("div", { class: "grid2" },
      h("section", { class: "panel", "aria-labelledby": "facts-title" },
        h("h2", { id: "facts-title" }, "Configuration"), facts),
      h("section", { class: "panel", id: "test-panel", "aria-labelledby": "test-title" },
        h("h2", { id: "test-title" }, "Test invoke"), test.element)),
    h("section", { class: "panel", id: "metrics-panel", "aria-labelledby": "metrics-title" },
      h("h2", { id: "metrics-title" }, "Calls, errors and duration"),
      h("div", { class: "actions" }, h("label", { for: "metrics-window" }, "Window"), windowSelect),
      chartsBox),
    h("section", { class: "panel", "aria-labelledby": "instances-title" },
      h("h2", { id: "instances-title" }, "Instances"), instancesBody),
    h("section", { class: "panel", id: "history-panel", "aria-labelledby": "history-title" },
      h("h2", { id: "history-title" }, "Invocation history"),
      h("div", { class: "actions" }, followButton,
        h("a", { href: `#/invocations?function_id=${enc}` }, "Async invocations of this function")),
      logStream,
      h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "When"), h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col", class: "num" }, "Duration"),
          h("th", { scope: "col", class: "num hide-narrow" }, "Version"),
          h("th", { scope: "col" }, "Details"))),
        historyBody))),
    codePanel);

  windowSelect.addEventListener("change", () => { metricsAt = 0; refreshMetrics(); });

  codeSave.addEventListener("click", async () => {
    codeSave.disabled = true;
    codeStatus.textContent = "Deploying…";
    try {
      const { data } = await api("PUT", `/v1/functions/${enc}`, { code: editor.value });
      codeStatus.replaceChildren("Saved: version ", String(data.item.version), " ", badge("state", data.item.state),
        data.item.error ? h("span", { class: "error-text" }, ` ${data.item.error}`) : "");
      await refresh();
    } catch (e) {
      codeStatus.replaceChildren(h("span", { class: "error-text" }, e.message));
    } finally {
      codeSave.disabled = false;
    }
  });

  // Following logs: Server-Sent Events from ?follow=true, read with fetch (an EventSource
  // cannot send the Authorization header); without that route, the newest records every 2 s.
  let follow = null;
  followButton.addEventListener("click", () => (follow ? stopFollow() : startFollow()));
  function appendLog(text) {
    logStream.textContent += text + "\n";
    const lines = logStream.textContent.split("\n");
    if (lines.length > 500) logStream.textContent = lines.slice(-500).join("\n");
    logStream.scrollTop = logStream.scrollHeight;
  }
  function logText(record) {
    if (typeof record === "string") return record;
    const head = [record.invoked_at || record.time || record.timestamp || "", record.request_id || "",
      record.status || ""].filter(Boolean).join(" ");
    const lines = Array.isArray(record.logs) ? record.logs
      : [record.line ?? record.message ?? record.log ?? JSON.stringify(record)];
    return (head ? head + "\n" : "") + lines.map((l) => "  " + l).join("\n");
  }
  async function startFollow() {
    const controller = new AbortController();
    follow = { controller, timer: null };
    followButton.textContent = "Stop following";
    followButton.setAttribute("aria-pressed", "true");
    logStream.hidden = false;
    logStream.textContent = "";
    try {
      const response = await fetch(`/v1/functions/${enc}/logs?follow=true`, {
        headers: { ...authHeaders(), Accept: "text/event-stream" }, signal: controller.signal });
      if (response.ok && (response.headers.get("content-type") || "").includes("text/event-stream")) {
        logStream.dataset.mode = "sse";
        appendLog("— following (Server-Sent Events) —");
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
            const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:"))
              .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
            if (!data) continue;
            let record = data;
            try { record = JSON.parse(data); } catch { /* plain text line */ }
            appendLog(logText(record));
          }
        }
        if (follow?.controller === controller) stopFollow();
        return;
      }
      response.body?.cancel();
    } catch (e) {
      if (e.name === "AbortError") return;
    }
    if (follow?.controller !== controller) return;
    // No streaming route: poll the newest records and print those not seen yet.
    logStream.dataset.mode = "poll";
    const seen = new Set();
    let first = true;
    const pollLogs = async () => {
      try {
        const { items = [] } = await get(`/v1/functions/${enc}/logs?limit=50`);
        for (const r of items.reverse()) {
          if (seen.has(r.id)) continue;
          seen.add(r.id);
          if (!first) appendLog(logText(r));
        }
        first = false;
      } catch { /* shown by the page's own refresh */ }
    };
    await pollLogs();
    if (follow?.controller !== controller) return;
    // Said once the calls before it are known, so that every call after it is printed.
    appendLog("— following (polling every 2 s: this wispd has no log stream) —");
    follow.timer = setInterval(pollLogs, POLL_MS);
  }
  function stopFollow() {
    if (!follow) return;
    follow.controller.abort();
    clearInterval(follow.timer);
    follow = null;
    followButton.textContent = "Follow logs";
    followButton.setAttribute("aria-pressed", "false");
  }

  function renderFacts(f) {
    const rows = [
      ["Id", h("span", { class: "mono small" }, f.id)],
      ["State", [badge("state", f.state), f.error ? h("div", { class: "small error-text" }, f.error) : null]],
      ["Runtime", `${f.runtime}${f.runtime_version ? " " + f.runtime_version : ""}`],
      ["Handler", h("code", {}, f.handler)],
      ["Version", `${f.version}${f.version_label ? ` (${f.version_label})` : ""}`],
      ["Memory", `${f.memory_mb} MB`], ["vCPU", String(f.vcpu)], ["Timeout", `${f.timeout_seconds} s`],
      ["Environment", Object.keys(f.env || {}).length ? h("code", {}, Object.keys(f.env).join(", ")) : h("span", { class: "muted" }, "none")],
      ["Created", formatTime(f.created_at)], ["Updated", formatTime(f.updated_at)],
      ["Last invoked", formatTime(f.last_invoked_at)],
      ["Code", h("span", { class: "small mono" }, `${f.code_size ?? "?"} bytes, sha256 ${f.code_sha256 ?? "?"}`)],
    ];
    facts.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-fact": k.toLowerCase().replace(/ /g, "-") }, v)]));
    const state = badge("state", f.state);
    state.id = "function-state";
    replaceKeepingFocus(heading, f.name, state,
      h("a", { class: "button ghost", href: `#/functions/${enc}/edit`, "data-fk": "edit" }, "Edit settings"),
      h("button", { type: "button", class: "danger", id: "delete-function", "data-fk": "delete",
                    onclick: () => remove(f) }, "Delete"));
  }

  async function remove(f) {
    if (!confirm(`Delete ${f.name}? Its instances stop and its code is removed.`)) return;
    try {
      await api("DELETE", `/v1/functions/${enc}`);
      toast(`Deleted ${f.name}`);
      location.hash = "#/";
    } catch (e) {
      toast(e.message, true);
    }
  }

  async function refreshInstances(f) {
    let items = null;
    let source = "/v1/functions/{id}/instances";
    try {
      const answer = await get(`/v1/functions/${enc}/instances`);
      items = Array.isArray(answer) ? answer : answer.items || answer.instances || [];
    } catch (e) {
      if (!e.noRoute) throw e;
      items = f.instances || [];
      source = "the function's item";
    }
    if (items.length === 0) {
      instancesBody.replaceChildren(h("p", { class: "muted" }, "No instance is running: the next call starts one."));
      return;
    }
    replaceKeepingFocus(instancesBody, instanceTable(items, source, false));
  }

  async function refreshHistory() {
    const { items = [] } = await get(`/v1/functions/${enc}/logs?limit=20`);
    const rows = items.map((r) => {
      const details = h("details", { "data-record": r.id, open: openRecords.has(r.id) },
        h("summary", { "data-fk": `record-${r.id}` }, "Logs and payloads"),
        h("dl", { class: "facts small" },
          h("dt", {}, "Request id"), h("dd", { class: "mono" }, r.request_id),
          h("dt", {}, "Queue wait"), h("dd", {}, `${r.queue_wait_ms} ms`),
          r.init_duration_ms != null ? [h("dt", {}, "Cold start"), h("dd", {}, `${r.init_duration_ms} ms`)] : null,
          r.memory_used_mb != null ? [h("dt", {}, "Memory"), h("dd", {}, `${r.memory_used_mb} MiB`)] : null),
        h("h3", { class: "small" }, "Event"), h("pre", {}, r.event_truncated ? `${r.event_preview}… (cut, ${r.event_size} bytes)` : pretty(r.event)),
        h("h3", { class: "small" }, "Response"), h("pre", {}, r.response_truncated ? `${r.response_preview}… (cut)` : pretty(r.response)),
        h("h3", { class: "small" }, "Logs"), h("pre", { class: "record-logs" }, (r.logs || []).join("\n") || "(no output)"));
      details.addEventListener("toggle", () => (details.open ? openRecords.add(r.id) : openRecords.delete(r.id)));
      return h("tr", { "data-request": r.request_id },
        h("td", {}, formatTime(r.invoked_at)), h("td", {}, badge("status", r.status)),
        h("td", { class: "num" }, `${r.duration_ms} ms`), h("td", { class: "num hide-narrow" }, String(r.version)),
        h("td", {}, details));
    });
    if (rows.length === 0) rows.push(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No calls yet.")));
    replaceKeepingFocus(historyBody, ...rows);
  }

  async function refreshMetrics() {
    if (Date.now() - metricsAt < METRICS_REFRESH_MS) return;
    metricsAt = Date.now();
    const metrics = await functionMetrics(id, windowSelect.value);
    const panel = document.getElementById("metrics-panel");
    if (!metrics) {
      panel.dataset.metrics = "absent";
      chartsBox.replaceChildren(h("p", { class: "muted" },
        "This wispd has no metrics API (GET /v1/functions/{id}/metrics): graphs are hidden."));
      windowSelect.disabled = true;
      return;
    }
    panel.dataset.metrics = "present";
    const t = metrics.totals;
    const summary = h("p", { class: "small", id: "metrics-totals" },
      `${t.calls} calls, ${t.errors} errors (${percent(t.errorRate)}); p50 ${t.p50 ?? "–"} ms, ` +
      `p95 ${t.p95 ?? "–"} ms, p99 ${t.p99 ?? "–"} ms`);
    if (metrics.series.length === 0) {
      chartsBox.replaceChildren(summary, h("p", { class: "muted" }, "No time series in this window yet."));
      return;
    }
    chartsBox.replaceChildren(summary, h("div", { class: "charts" },
      h("figure", { class: "chart" }, h("h3", {}, "Calls and errors"), barChart(metrics.series, "Calls and errors"),
        h("div", { class: "legend" }, h("span", {}, h("span", { class: "k calls" }), "calls"), h("span", {}, h("span", { class: "k errors" }), "errors"))),
      h("figure", { class: "chart" }, h("h3", {}, "Duration p50 / p99"), latencyChart(metrics.series, "Duration p50 and p99"),
        h("div", { class: "legend" }, h("span", {}, h("span", { class: "k p50" }), "p50"), h("span", {}, h("span", { class: "k p99" }), "p99")))));
  }

  let first = true;
  const refresh = guarded(async () => {
    const f = (await get(`/v1/functions/${enc}`)).item;
    if (disposed) return;
    fn = f;
    renderFacts(f);
    if (!editor) {
      editor = createEditor({ id: "detail-code", value: f.code ?? "", language: languageOf(f.runtime) });
      if (f.code === null) {
        editor.textarea.disabled = true;
        codeSave.disabled = true;
        editor.setValue("// Deployed as a zip package: the code cannot be edited here.");
      }
      document.getElementById("code-editor").replaceChildren(editor.element);
    }
    codeRuntime.textContent = `(${languageOf(f.runtime) === "python" ? "Python" : "JavaScript"}, version ${f.version})`;
    document.title = `${f.name} · Wisp console`;
    await Promise.all([refreshInstances(f), refreshHistory(), refreshMetrics().catch(() => {})]);
    if (first) {
      first = false;
      if (query.get("invoke")) {
        document.getElementById("test-panel").scrollIntoView();
        test.focus();
      } else if (query.get("logs")) {
        document.getElementById("history-panel").scrollIntoView();
        startFollow();
        followButton.focus();
      }
    }
    // While a deploy is under way the state refreshes on its own, events socket or not.
    clearTimeout(deployTimer);
    if (IN_PROGRESS.has(f.state)) deployTimer = setTimeout(() => refresh(), DEPLOY_POLL_MS);
  }, errorBox);

  return {
    title: "Function",
    refresh,
    dispose() { disposed = true; stopFollow(); clearTimeout(deployTimer); },
  };
}

// ---- async invocations and dead letters ------------------------------------------------

async function functionNames() {
  const { items = [] } = await get("/v1/functions?limit=1000");
  return new Map(items.map((f) => [f.id, f.name]));
}

function invocationRows(items, names, { requeue }) {
  return items.map((r) => h("tr", { "data-invocation": r.id },
    h("td", {}, h("a", { href: `#/invocations/${r.id}`, class: "mono small", "data-fk": `inv-${r.id}` }, r.id.slice(0, 13) + "…")),
    h("td", {}, names.get(r.function_id) ? h("a", { href: `#/functions/${r.function_id}` }, names.get(r.function_id)) : h("span", { class: "mono small" }, r.function_id)),
    h("td", {}, badge("status", r.status)),
    h("td", { class: "num" }, String(r.attempts ?? 1)),
    h("td", { class: "hide-narrow" }, formatTime(r.created_at || r.invoked_at)),
    h("td", { class: "small" }, r.dead_letter_reason || r.error || (r.next_attempt_at ? ["next attempt ", formatTime(r.next_attempt_at)] : "")),
    requeue ? h("td", {}, h("button", { type: "button", "data-fk": `requeue-${r.id}`,
      "aria-label": `Requeue ${r.id}`, onclick: () => requeue(r) }, "Requeue")) : null));
}

function invocationTable(tbody, withRequeue) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Invocation"), h("th", { scope: "col" }, "Function"),
      h("th", { scope: "col" }, "Status"), h("th", { scope: "col", class: "num" }, "Attempts"),
      h("th", { scope: "col", class: "hide-narrow" }, "Queued"), h("th", { scope: "col" }, "Error"),
      withRequeue ? h("th", { scope: "col" }, "Action") : null)),
    tbody));
}

async function requeueInvocation(r, after) {
  try {
    await api("POST", `/v1/dead-letters/${encodeURIComponent(r.id)}/requeue`);
    toast(`Requeued ${r.id}`);
    await after();
  } catch (e) {
    toast(e.message, true);
  }
}

function asyncPage(view, query) {
  const errorBox = h("p", { class: "error-text", role: "alert", hidden: true });
  const tbody = h("tbody");
  const statusSelect = h("select", { id: "async-status" },
    ["", "queued", "running", "success", "dead_letter"].map((s) =>
      h("option", { value: s, selected: s === (query.get("status") || "") }, s || "any")));
  const functionId = query.get("function_id") || "";
  view.replaceChildren(h("h1", {}, "Async invocations"), errorBox,
    h("div", { class: "panel" },
      h("div", { class: "actions" }, h("label", { for: "async-status" }, "Status"), statusSelect,
        functionId ? h("span", { class: "small" }, "Function ", h("code", {}, functionId), " ", h("a", { href: "#/invocations" }, "(all)")) : null),
      invocationTable(tbody, true)));
  const refresh = guarded(async () => {
    const params = new URLSearchParams({ type: "async", limit: "100" });
    if (statusSelect.value) params.set("status", statusSelect.value);
    if (functionId) params.set("function_id", functionId);
    const [{ items = [] }, names] = await Promise.all([get(`/v1/invocations?${params}`), functionNames()]);
    const rows = invocationRows(items, names, {
      requeue: (r) => requeueInvocation(r, refresh) });
    // Requeue applies to dead letters only: others keep an empty cell.
    rows.forEach((row, i) => { if (items[i].status !== "dead_letter") row.lastChild.replaceChildren(); });
    if (rows.length === 0) rows.push(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No async invocations.")));
    replaceKeepingFocus(tbody, ...rows);
  }, errorBox);
  statusSelect.addEventListener("change", refresh);
  return { title: "Async invocations", refresh };
}

function deadLetterPage(view) {
  const errorBox = h("p", { class: "error-text", role: "alert", hidden: true });
  const tbody = h("tbody");
  view.replaceChildren(h("h1", {}, "Dead letters"), errorBox,
    h("p", { class: "muted" }, "Async invocations that failed every attempt or waited past their maximum age. Requeue runs one again under the same id."),
    h("div", { class: "panel" }, invocationTable(tbody, true)));
  const refresh = guarded(async () => {
    const [{ items = [] }, names] = await Promise.all([get("/v1/dead-letters?limit=100"), functionNames()]);
    const rows = invocationRows(items, names, { requeue: (r) => requeueInvocation(r, refresh) });
    if (rows.length === 0) rows.push(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No dead letters.")));
    replaceKeepingFocus(tbody, ...rows);
  }, errorBox);
  return { title: "Dead letters", refresh };
}

function invocationPage(view, id) {
  const errorBox = h("p", { class: "error-text", role: "alert", hidden: true });
  const body = h("div");
  view.replaceChildren(h("h1", {}, "Invocation"), errorBox, body);
  const refresh = guarded(async () => {
    const r = (await get(`/v1/invocations/${encodeURIComponent(id)}`)).item;
    const history = (r.history || []).map((a) => h("li", {}, `attempt ${a.attempt}: `, badge("status", a.status),
      " ", formatTime(a.started_at), a.error ? h("span", { class: "error-text" }, ` ${a.error}`) : null));
    body.replaceChildren(h("div", { class: "panel" },
      h("dl", { class: "facts" },
        h("dt", {}, "Id"), h("dd", { class: "mono small" }, r.id),
        h("dt", {}, "Function"), h("dd", {}, h("a", { href: `#/functions/${r.function_id}` }, r.function_id)),
        h("dt", {}, "Type"), h("dd", {}, r.type),
        h("dt", {}, "Status"), h("dd", {}, badge("status", r.status)),
        h("dt", {}, "Attempts"), h("dd", {}, String(r.attempts ?? 1)),
        h("dt", {}, "Duration"), h("dd", {}, `${r.duration_ms ?? "–"} ms`),
        h("dt", {}, "Queued"), h("dd", {}, formatTime(r.created_at || r.invoked_at)),
        r.error ? [h("dt", {}, "Error"), h("dd", { class: "error-text" }, r.error)] : null,
        r.dead_letter_reason ? [h("dt", {}, "Dead letter"), h("dd", {}, r.dead_letter_reason)] : null),
      r.status === "dead_letter" ? h("div", { class: "actions" }, h("button", { type: "button",
        onclick: () => requeueInvocation(r, refresh) }, "Requeue")) : null,
      history.length ? [h("h2", {}, "Attempts"), h("ol", {}, history)] : null,
      h("h2", {}, "Event"), h("pre", {}, pretty(r.event)),
      h("h2", {}, "Response"), h("pre", {}, pretty(r.response)),
      h("h2", {}, "Logs"), h("pre", {}, (r.logs || []).join("\n") || "(no output)")));
  }, errorBox);
  return { title: "Invocation", refresh };
}

// ---- start -----------------------------------------------------------------------------

setUpKeyDialog();
window.addEventListener("hashchange", route);
live.start();
route();
