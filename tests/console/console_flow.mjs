// Drives the web console in Debian's headless Chromium (puppeteer-core, no browser download)
// against a running wispd: key, list, create, Test Invoke, inline code edit, test invoke with
// result and logs, history, graphs (when the metrics API is there), a state change arriving
// live, async invocations and a dead letter's requeue, delete, and a phone-width layout.
// Saves a screenshot of each page into ARTIFACT_DIR.
//
// Environment: WISP_URL (http://127.0.0.1:PORT), WISP_KEY (a bearer secret when auth is on),
// ARTIFACT_DIR, CHROMIUM (default /usr/bin/chromium).
// Exit codes: 0 passed, 1 failed, 77 skipped (the reason on the last line, "SKIP: ...").

import fs from "node:fs";
import path from "node:path";

const SKIP = 77;
const base = process.env.WISP_URL;
const key = process.env.WISP_KEY || "";
const artifacts = process.env.ARTIFACT_DIR || "console-artifacts";
const chromium = process.env.CHROMIUM || "/usr/bin/chromium";
const notes = [];

function skip(reason) {
  console.log(`SKIP: ${reason}`);
  process.exit(SKIP);
}

let puppeteer;
try {
  puppeteer = (await import("puppeteer-core")).default;
} catch (e) {
  skip(`puppeteer-core is not installed (scripts/install-deps installs it): ${e.message}`);
}
if (!fs.existsSync(chromium)) skip(`no Chromium at ${chromium} (the Debian package chromium)`);
fs.mkdirSync(artifacts, { recursive: true });

// The API as the test's own client, for what a user would do from elsewhere.
async function api(method, urlPath, body) {
  const headers = { "Content-Type": "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  const r = await fetch(base + urlPath, { method, headers, body: body && JSON.stringify(body) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${urlPath}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

let browser;
try {
  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    // Chromium's sandbox refuses to run as root; this browser only visits the local test wispd.
    args: [...(process.getuid?.() === 0 ? ["--no-sandbox"] : []), "--disable-dev-shm-usage",
      "--disable-gpu", "--no-first-run", "--no-default-browser-check"],
    timeout: 60000,
  });
} catch (e) {
  skip(`Chromium could not start here: ${e.message.split("\n")[0]}`);
}

const page = await browser.newPage();
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(e.message));
page.on("dialog", (d) => d.accept());
page.setDefaultTimeout(20000);
await page.setViewport({ width: 1280, height: 800 });

let shot = 0;
async function screenshot(name) {
  shot += 1;
  const file = path.join(artifacts, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot ${file}`);
}

function step(text) {
  console.log(`step: ${text}`);
}

// A row of a list the page re-renders (an event or the periodic refresh may replace it between
// finding and clicking it): click the current one, trying again if it was replaced meanwhile.
async function clickInList(selector) {
  for (let attempt = 1; ; attempt++) {
    await page.waitForSelector(selector, { timeout: 30000 });
    try {
      await page.click(selector);
      return;
    } catch (error) {
      if (attempt >= 5) throw error;
    }
  }
}

async function textOf(selector) {
  return page.$eval(selector, (e) => e.textContent);
}

async function setValue(selector, value) {
  await page.$eval(selector, (e, v) => {
    e.value = v;
    e.dispatchEvent(new Event("input", { bubbles: true }));
  }, value);
}

const suffix = Date.now().toString(36);
const name = `console-fn-${suffix}`;
let failed = false;
try {
  step("open the console");
  await page.goto(`${base}/`, { waitUntil: "domcontentloaded" });
  if (key) {
    step("auth is on: the key dialog asks once");
    await page.waitForSelector("#key-dialog[open]");
    await screenshot("key-dialog");
    await page.type("#key-input", key);
    await page.click("#key-save");
  } else {
    step("auth is off: no key is asked for");
    await page.waitForSelector("#list-summary:not(:empty)");
    if (await page.$("#key-dialog[open]")) throw new Error("the key dialog opened with auth off");
  }
  await page.waitForFunction(() => document.querySelector("#view h1")?.textContent.startsWith("Functions"));
  await page.waitForSelector("#list-summary:not(:empty)");
  await screenshot("function-list");

  step("keyboard: the first Tab reaches the skip link (the key is kept: no dialog again)");
  await page.reload({ waitUntil: "domcontentloaded" });
  await page.waitForSelector("#list-summary:not(:empty)");
  if (await page.$("#key-dialog[open]")) throw new Error("the key was asked for again");
  await page.keyboard.press("Tab");
  const firstFocus = await page.evaluate(() => document.activeElement?.className);
  if (firstFocus !== "skip") throw new Error(`first Tab focused "${firstFocus}", not the skip link`);

  step("create a function");
  await page.click('a[data-nav="new"]');
  await page.waitForSelector("#fn-name");
  const unlabelled = await page.$$eval("#view input, #view select, #view textarea", (els) =>
    els.filter((e) => !e.labels?.length && !e.getAttribute("aria-label")).map((e) => e.id || e.outerHTML));
  if (unlabelled.length) throw new Error(`form controls without a label: ${unlabelled.join(", ")}`);
  await page.type("#fn-name", name);
  await page.$eval("#fn-memory", (e) => { e.value = "192"; });
  await page.click("#fn-env-add");
  await page.type("#fn-env .env-name", "GREETING");
  await page.type("#fn-env .env-value", "Hello");
  const highlighted = await page.$$eval(".editor pre .tok-kw", (els) => els.length);
  if (highlighted === 0) throw new Error("the code editor shows no highlighted keyword");
  await screenshot("create-form");
  await page.click("#fn-submit");

  step("live deployment status, then Test Invoke right after deploy");
  await page.waitForSelector("#deploy-test-button");
  await page.click("#deploy-test-button");
  await page.waitForSelector(".deploy-status .invoke-result");
  const firstAnswer = await textOf(".deploy-status .invoke-response");
  if (!firstAnswer.includes("Hello World")) throw new Error(`Test Invoke answered ${firstAnswer}`);
  await screenshot("deployed-and-test-invoked");

  step("the function's page");
  const fid = (await api("GET", "/v1/functions?limit=1000")).items.find((f) => f.name === name).id;
  await page.click(".deploy-status a[href^='#/functions/']");
  await page.waitForSelector('#function-state[data-state="ready"]');
  await page.waitForSelector("#detail-code");
  const facts = await textOf("#facts");
  for (const word of ["192 MB", "GREETING", "Created", "Last invoked"]) {
    if (!facts.includes(word)) throw new Error(`the configuration lacks "${word}": ${facts}`);
  }

  step("edit its code inline");
  await page.click("#detail-code");
  await page.keyboard.down("Control");
  await page.keyboard.press("KeyA");
  await page.keyboard.up("Control");
  await page.keyboard.press("Backspace");
  await page.keyboard.type(
    "exports.handler = async (event) => {\n" +
    "console.log(\"edited-log-line \" + process.env.GREETING);\n" +
    "return { edited: true, name: event.name };\n};\n");
  step("the editor indents, and Escape then Tab leaves it");
  const typed = await page.$eval("#detail-code", (e) => e.value);
  if (!typed.includes("{\n  console.log")) throw new Error(`no auto-indent after "{": ${typed}`);
  await page.keyboard.press("Escape");
  await page.keyboard.press("Tab");
  const afterEditor = await page.evaluate(() => document.activeElement?.id);
  if (afterEditor !== "code-save") throw new Error(`Tab after Escape went to "${afterEditor}"`);
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelector("#code-title")?.textContent.includes("version 2"));
  await page.waitForSelector('#function-state[data-state="ready"]');

  step("test-invoke it: result, logs and duration");
  await setValue("#test-event", '{"name": "Console"}');
  await page.click("#test-button");
  await page.waitForSelector("#test-panel .invoke-result");
  const response = await textOf("#test-panel .invoke-response");
  const logs = await textOf("#test-panel .invoke-logs");
  const duration = await textOf("#test-panel .duration");
  if (!response.includes('"edited": true') || !response.includes("Console")) {
    throw new Error(`the edited code did not answer: ${response}`);
  }
  if (!logs.includes("edited-log-line Hello")) throw new Error(`logs: ${logs}`);
  if (!/\d+ ms/.test(duration)) throw new Error(`duration: ${duration}`);

  step("the call is in the invocation history, with its logs");
  await page.waitForFunction(() =>
    [...document.querySelectorAll("#history-panel .record-logs")].some((e) => e.textContent.includes("edited-log-line")),
    { polling: 500 });
  await screenshot("function-detail");

  step("follow logs: a new call's log line arrives");
  await page.click("#follow-logs");
  await page.waitForFunction(() => document.querySelector("#log-stream")?.textContent.includes("following"));
  await setValue("#test-event", '{"name": "Followed"}');
  await page.click("#test-button");
  await page.waitForFunction(() => /edited-log-line/.test(document.querySelector("#log-stream")?.textContent),
    { polling: 500 });
  notes.push(`follow logs: ${await page.$eval("#log-stream", (e) => e.dataset.mode)}`);
  await page.click("#follow-logs");

  step("the node's instances include the function's");
  await page.click('a[data-nav="instances"]');
  await page.waitForSelector(`#view tr[data-instance] a[href="#/functions/${fid}"]`);
  await screenshot("instances");
  await page.goBack();
  await page.waitForSelector('#function-state[data-state="ready"]');

  step("graphs");
  const metricsState = await page.$eval("#metrics-panel", (e) => e.dataset.metrics || "");
  if (metricsState === "absent") {
    notes.push("graphs: skipped, this wispd has no GET /v1/functions/{id}/metrics");
    console.log("step skipped: graphs (this wispd has no metrics API)");
  } else {
    // The graphs refresh at most every 10 s; changing the window refreshes them now.
    await page.waitForFunction(() => {
      if (document.querySelector('#charts svg[data-chart="calls"] rect.bar-calls')) return true;
      const select = document.querySelector("#metrics-window");
      select.value = select.value === "1h" ? "15m" : "1h";
      select.dispatchEvent(new Event("change"));
      return false;
    }, { polling: 2000, timeout: 30000 });
    // p50 as a line, or as a dot where a single interval had calls.
    await page.waitForSelector('#charts svg[data-chart="latency"] .line-p50');
    await screenshot("graphs");
  }

  step("a state change arrives live on the list");
  await page.click('a[data-nav="functions"]');
  await page.waitForSelector(`tr[data-function="${name}"]`);
  await page.evaluate(() => { window.__notReloaded = true; });
  const liveName = `console-live-${suffix}`;
  const liveFn = await api("POST", "/v1/functions", { name: liveName, runtime: "python", handler: "handler",
    code: "def handler(event, context):\n    return {'ok': True}\n" });
  await page.waitForSelector(`tr[data-function="${liveName}"] [data-state="ready"]`, { timeout: 30000 });
  const brokenName = `console-broken-${suffix}`;
  const broken = await api("POST", "/v1/functions", { name: brokenName, runtime: "python",
    handler: "handler", code: "def handler(:\n" });
  await page.waitForSelector(`tr[data-function="${brokenName}"] [data-state="error"]`, { timeout: 30000 });
  if (!(await page.evaluate(() => window.__notReloaded))) throw new Error("the page reloaded");
  // The states are colour-coded: ready green, error red.
  const colours = await page.evaluate((ok, bad) => [ok, bad].map((n) => getComputedStyle(
    document.querySelector(`tr[data-function="${n}"] [data-state]`)).color), liveName, brokenName);
  if (colours[0] !== "rgb(26, 127, 55)" || colours[1] !== "rgb(180, 35, 24)") {
    throw new Error(`state colours ${colours.join(", ")}: not green and red`);
  }
  const mode = await textOf("#live");
  notes.push(`live updates: ${mode}`);
  await screenshot("function-list-live");

  step("async invocations and a dead letter's requeue");
  const failing = await api("POST", "/v1/functions", { name: `console-fail-${suffix}`, runtime: "node",
    handler: "handler", max_retries: 0, retry_delay_seconds: 0,
    code: "exports.handler = async () => { throw new Error('always fails'); };" });
  const queued = await api("POST", `/v1/functions/${failing.id}/invoke`, { event: { n: 1 }, async: true });
  await page.click('a[data-nav="dead-letters"]');
  const row = `tr[data-invocation="${queued.invocation_id}"]`;
  await page.waitForSelector(`${row} button`, { timeout: 30000 });
  await screenshot("dead-letters");
  await clickInList(`${row} button`);
  await page.waitForFunction(() => document.querySelector("#toast")?.textContent.startsWith("Requeued"));
  await page.click('a[data-nav="invocations"]');
  await page.waitForSelector(row);
  await screenshot("async-invocations");
  await clickInList(`${row} a`);
  await page.waitForFunction(() => document.querySelector("#view")?.textContent.includes("always fails"));
  await screenshot("invocation");

  step("phone width");
  await page.setViewport({ width: 390, height: 844 });
  await page.click('a[data-nav="functions"]');
  await page.waitForSelector(`tr[data-function="${name}"]`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 1) throw new Error(`the list is ${overflow}px wider than a phone's screen`);
  await screenshot("function-list-phone");
  await page.goto(`${base}/#/functions/${fid}`);
  await page.waitForSelector('#function-state[data-state="ready"]');
  await screenshot("function-detail-phone");
  await page.setViewport({ width: 1280, height: 800 });

  step("delete it");
  await page.click("#delete-function");
  await page.waitForFunction(() => document.querySelector("#view h1")?.textContent.startsWith("Functions"));
  await page.waitForFunction((n) => !document.querySelector(`tr[data-function="${n}"]`), {}, name);
  const left = (await api("GET", "/v1/functions?limit=1000")).items.map((f) => f.name);
  if (left.includes(name)) throw new Error("the function is still listed by the API");
  await screenshot("after-delete");
  await api("DELETE", `/v1/functions/${liveFn.id}`);
  await api("DELETE", `/v1/functions/${broken.id}`);
  await api("DELETE", `/v1/functions/${failing.id}`);

  if (pageErrors.length) throw new Error(`the page threw: ${pageErrors.join("; ")}`);
} catch (e) {
  failed = true;
  console.log(`FAILED: ${e.stack || e.message}`);
  try { await screenshot("failure"); } catch { /* the browser may be gone */ }
} finally {
  await browser.close();
}
for (const n of notes) console.log(`note: ${n}`);
process.exit(failed ? 1 : 0);
