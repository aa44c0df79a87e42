// The Portcullis console: usage plans, API keys, usage per key per day and
// temporary extensions, over API Gateway's management API (the same one the
// AWS CLI calls), each call signed with SigV4 in this tab.
//
// Output is written with textContent and DOM nodes only, never innerHTML, so
// no name, description or error message from the API can become markup.

import { sign, signingKeyFor, amzDate, canonicalQuery } from "./sigv4.js";

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.getAttribute("content") ?? "";
const API_PATH = meta("portcullis-api-path").replace(/\/+$/, "");
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

// The signed-in identity, in this module's memory only: gone on reload,
// sign-out or when the tab closes. `signingKey` is a non-extractable
// CryptoKey for one UTC day; the secret access key itself is not kept.
let credentials = null;

// What the pages last read, for the selects and the export.
const state = { plans: [], planKeys: new Map(), keys: [], usage: null };

class ApiError extends Error {
  constructor(status, type, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.type = type || "";
  }
}

// ---- the management API -------------------------------------------------

function segment(value) {
  return encodeURIComponent(value);
}

async function api(method, path, { query = {}, body } = {}) {
  if (!credentials) throw new ApiError(0, "", "Not signed in.");
  const wirePath = API_PATH + path;
  const queryString = canonicalQuery(query);
  const text = body === undefined ? "" : JSON.stringify(body);
  const headers = await sign({
    method,
    host: location.host,
    path: wirePath,
    query: queryString,
    body: text,
    contentType: body === undefined ? null : "application/json",
    credentials,
    now: new Date(),
  });
  const response = await fetch(wirePath + (queryString ? "?" + queryString : ""), {
    method,
    headers,
    body: body === undefined ? undefined : text,
    credentials: "omit",
    cache: "no-store",
    redirect: "error",
    referrerPolicy: "no-referrer",
  });
  const answer = await response.text();
  let json = null;
  try {
    json = answer ? JSON.parse(answer) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const message = (json && (json.message || json.Message)) || answer || response.statusText;
    throw new ApiError(response.status, response.headers.get("x-amzn-errortype"), message);
  }
  return json;
}

// Every page of a list operation (`item` and `position`).
async function listAll(path, query = {}) {
  const items = [];
  let position;
  for (let page = 0; page < 100; page++) {
    const answer = await api("GET", path, { query: { ...query, limit: 500, position } });
    items.push(...((answer && answer.item) || []));
    position = answer && answer.position;
    if (!position) break;
  }
  return items;
}

// ---- small DOM helpers (text only) ---------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function say(message) {
  $("status").textContent = message;
  $("error").textContent = "";
}

function fail(error) {
  $("status").textContent = "";
  const type = error.type ? ` (${error.type})` : "";
  $("error").textContent = `${error.message}${type}`;
}

async function busy(form, work) {
  const buttons = form ? form.querySelectorAll("button") : [];
  buttons.forEach((b) => (b.disabled = true));
  try {
    await work();
  } catch (error) {
    fail(error);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

function numberOrNull(input) {
  const value = input.value.trim();
  return value === "" ? null : Number(value);
}

function fillSelect(select, options, keep = true) {
  const previous = select.value;
  const fixed = Array.from(select.querySelectorAll("option[data-fixed]"));
  select.replaceChildren(...fixed);
  for (const [value, label] of options) select.append(el("option", { value }, label));
  if (keep && Array.from(select.options).some((o) => o.value === previous)) select.value = previous;
}

const planLabel = (plan) => `${plan.name || plan.id} (${plan.id})`;
const keyLabel = (key) => `${key.name || key.id} (${key.id})`;

// ---- sign-in -------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await busy(form, async () => {
    const secret = $("secret-access-key");
    const region = $("region").value.trim();
    const date = amzDate(new Date()).date;
    credentials = {
      accessKeyId: $("access-key-id").value.trim(),
      sessionToken: $("session-token").value.trim() || null,
      region,
      service: "apigateway",
      date,
      signingKey: await signingKeyFor(secret.value, date, region, "apigateway"),
    };
    // The secret is not kept, not even in the form.
    secret.value = "";
    $("session-token").value = "";
    try {
      await api("GET", "/usageplans", { query: { limit: 1 } });
    } catch (error) {
      credentials = null;
      throw error;
    }
    $("who").textContent = `Signed in as ${credentials.accessKeyId}`;
    $("nav").hidden = false;
    say(`Signed in as ${credentials.accessKeyId}.`);
    if (!location.hash || location.hash === "#sign-in") location.hash = "#plans";
    else await show();
  });
}

function signOut() {
  credentials = null;
  state.plans = [];
  state.planKeys = new Map();
  state.keys = [];
  state.usage = null;
  $("nav").hidden = true;
  $("who").textContent = "";
  for (const table of ["plans-table", "keys-table", "usage-table"]) $(table).tBodies[0].replaceChildren();
  $("usage-result").hidden = true;
  hideNewKey();
  location.hash = "#sign-in";
  say("Signed out.");
}

// ---- pages ---------------------------------------------------------------

const PAGES = ["sign-in", "plans", "keys", "usage"];

async function show() {
  let page = location.hash.replace(/^#/, "") || "sign-in";
  if (!PAGES.includes(page)) page = "plans";
  if (!credentials) page = "sign-in";
  if (page !== "keys") hideNewKey();
  // Busy until the page's data is read (assistive technology and tests wait
  // for aria-busy to clear); set before the page shows.
  $(`page-${page}`).setAttribute("aria-busy", "true");
  for (const name of PAGES) $(`page-${name}`).hidden = name !== page;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === `#${page}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${$(`page-${page}`).querySelector("h2").textContent} · Portcullis console`;
  try {
    if (page === "plans") await loadPlans();
    if (page === "keys") await loadKeys();
    if (page === "usage") await loadUsagePage();
  } catch (error) {
    fail(error);
  } finally {
    $(`page-${page}`).removeAttribute("aria-busy");
  }
}

async function loadPlansAndKeys() {
  state.plans = await listAll("/usageplans");
  const planKeys = new Map();
  for (const plan of state.plans) {
    planKeys.set(plan.id, await listAll(`/usageplans/${segment(plan.id)}/keys`));
  }
  state.planKeys = planKeys;
}

function throttleText(throttle) {
  return throttle ? `${throttle.rateLimit} requests/s, burst ${throttle.burstLimit}` : "none";
}

function quotaText(quota) {
  return quota ? `${quota.limit} per ${String(quota.period).toLowerCase()}` : "none";
}

async function loadPlans() {
  await loadPlansAndKeys();
  const rows = state.plans.map((plan) => {
    const keys = state.planKeys.get(plan.id) || [];
    const stages = (plan.apiStages || []).map((s) => `${s.apiId}:${s.stage}`).join(", ") || "none";
    return el(
      "tr",
      { "data-plan-id": plan.id },
      el("th", { scope: "row" }, plan.name || ""),
      el("td", {}, el("code", {}, plan.id)),
      el("td", {}, throttleText(plan.throttle)),
      el("td", {}, quotaText(plan.quota)),
      el("td", {}, stages),
      el("td", {}, keys.length ? keys.map((k) => k.name || k.id).join(", ") : "none"),
    );
  });
  $("plans-table").tBodies[0].replaceChildren(...rows);
}

async function createPlan(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await busy(form, async () => {
    const body = { name: $("plan-name").value.trim() };
    const description = $("plan-description").value.trim();
    if (description) body.description = description;
    const rate = numberOrNull($("plan-rate"));
    const burst = numberOrNull($("plan-burst"));
    if (rate !== null || burst !== null) body.throttle = { rateLimit: rate ?? 0, burstLimit: burst ?? 0 };
    const quota = numberOrNull($("plan-quota"));
    if (quota !== null) body.quota = { limit: quota, period: $("plan-period").value };
    const stage = $("plan-stage").value.trim();
    if (stage) {
      const [apiId, stageName] = stage.split(":");
      body.apiStages = [{ apiId, stage: stageName || "" }];
    }
    const plan = await api("POST", "/usageplans", { body });
    form.reset();
    $("plan-stage").value = meta("portcullis-api-stage");
    say(`Created usage plan ${plan.name} (${plan.id}).`);
    await loadPlans();
  });
}

async function loadKeys() {
  const [keys] = await Promise.all([listAll("/apikeys"), loadPlansAndKeys()]);
  state.keys = keys;
  fillSelect(
    $("key-plan"),
    state.plans.map((p) => [p.id, planLabel(p)]),
  );
  const plansOf = (keyId) =>
    state.plans.filter((p) => (state.planKeys.get(p.id) || []).some((k) => k.id === keyId));
  const rows = keys.map((key) => {
    const plans = plansOf(key.id);
    const toggle = el(
      "button",
      { type: "button", "data-action": key.enabled ? "disable" : "enable", "aria-label": `${key.enabled ? "Disable" : "Enable"} ${key.name || key.id}` },
      key.enabled ? "Disable" : "Enable",
    );
    toggle.addEventListener("click", () => busy(null, () => setEnabled(key, !key.enabled)));
    const others = state.plans.filter((p) => !plans.includes(p));
    const actions = el("td", { class: "actions" }, toggle);
    if (others.length) {
      const selectId = `add-plan-${key.id}`;
      const select = el("select", { id: selectId, "data-role": "add-plan" });
      for (const plan of others) select.append(el("option", { value: plan.id }, planLabel(plan)));
      const add = el("button", { type: "button", "data-action": "add-to-plan" }, "Add to plan");
      add.addEventListener("click", () => busy(null, () => addToPlan(key, select.value)));
      actions.append(" ", el("label", { for: selectId, class: "visually-hidden" }, `Usage plan for ${key.name || key.id}`), select, " ", add);
    }
    return el(
      "tr",
      { "data-key-id": key.id, "data-enabled": String(key.enabled) },
      el("th", { scope: "row" }, key.name || ""),
      el("td", {}, el("code", {}, key.id)),
      el("td", { class: key.enabled ? "on" : "off" }, key.enabled ? "Enabled" : "Disabled"),
      el("td", {}, key.customerId || ""),
      el("td", {}, key.createdDate ? new Date(key.createdDate * 1000).toISOString().slice(0, 10) : ""),
      el("td", {}, plans.length ? plans.map((p) => p.name || p.id).join(", ") : "none"),
      actions,
    );
  });
  $("keys-table").tBodies[0].replaceChildren(...rows);
}

function hideNewKey() {
  $("new-key-value").value = "";
  $("new-key-name").textContent = "";
  $("new-key").hidden = true;
}

async function createKey(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await busy(form, async () => {
    const body = { name: $("key-name").value.trim(), enabled: $("key-enabled").checked };
    const description = $("key-description").value.trim();
    if (description) body.description = description;
    const customer = $("key-customer").value.trim();
    if (customer) body.customerId = customer;
    const planId = $("key-plan").value;
    const key = await api("POST", "/apikeys", { body });
    if (planId) {
      await api("POST", `/usageplans/${segment(planId)}/keys`, { body: { keyId: key.id, keyType: "API_KEY" } });
    }
    form.reset();
    $("new-key-name").textContent = key.name || key.id;
    $("new-key-value").value = key.value || "";
    $("new-key").hidden = false;
    say(`Created API key ${key.name || key.id} (${key.id})${planId ? ` in usage plan ${planId}` : ""}.`);
    await loadKeys();
    $("new-key-value").focus();
    $("new-key-value").select();
  });
}

async function setEnabled(key, enabled) {
  await api("PATCH", `/apikeys/${segment(key.id)}`, {
    body: { patchOperations: [{ op: "replace", path: "/enabled", value: String(enabled) }] },
  });
  say(`${enabled ? "Enabled" : "Disabled"} API key ${key.name || key.id}.`);
  await loadKeys();
}

async function addToPlan(key, planId) {
  await api("POST", `/usageplans/${segment(planId)}/keys`, { body: { keyId: key.id, keyType: "API_KEY" } });
  say(`Added API key ${key.name || key.id} to usage plan ${planId}.`);
  await loadKeys();
}

// ---- usage ---------------------------------------------------------------

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

async function loadUsagePage() {
  await loadPlansAndKeys();
  fillSelect(
    $("usage-plan"),
    state.plans.filter((p) => p.quota).map((p) => [p.id, planLabel(p)]),
  );
  fillUsageKeys();
  if (!$("usage-to").value) {
    const today = new Date();
    $("usage-to").value = isoDay(today);
    $("usage-from").value = isoDay(new Date(today.getTime() - 6 * 86400000));
  }
}

function fillUsageKeys() {
  const keys = state.planKeys.get($("usage-plan").value) || [];
  fillSelect(
    $("usage-key"),
    keys.map((k) => [k.id, keyLabel(k)]),
  );
}

function days(from, to) {
  const out = [];
  for (let t = Date.parse(from + "T00:00:00Z"); t <= Date.parse(to + "T00:00:00Z") && out.length < 400; t += 86400000) {
    out.push(isoDay(new Date(t)));
  }
  return out;
}

async function showUsage(event) {
  if (event) event.preventDefault();
  const form = $("usage-form");
  await busy(form, async () => {
    const planId = $("usage-plan").value;
    const keyId = $("usage-key").value;
    const from = $("usage-from").value;
    const to = $("usage-to").value;
    if (!planId || !keyId) throw new ApiError(0, "", "Choose a usage plan and an API key.");
    const answer = await api("GET", `/usageplans/${segment(planId)}/usage`, {
      query: { keyId, startDate: from, endDate: to },
    });
    const values = (answer && (answer.values || answer.items)) || {};
    const series = values[keyId] || [];
    const plan = state.plans.find((p) => p.id === planId);
    const rows = days(answer.startDate || from, answer.endDate || to).map((day, i) => ({
      day,
      used: series[i] ? series[i][0] : 0,
      remaining: series[i] ? series[i][1] : plan?.quota?.limit ?? 0,
    }));
    state.usage = { planId, keyId, startDate: answer.startDate || from, endDate: answer.endDate || to, quota: plan?.quota ?? null, answer, rows };
    renderUsage();
    say(`Usage of ${keyId} in ${planId}, ${state.usage.startDate} to ${state.usage.endDate}.`);
  });
}

function renderUsage() {
  const { rows, quota, keyId, planId } = state.usage;
  $("usage-result").hidden = false;
  $("usage-table-caption").textContent = `Requests per day for ${keyId} in ${planId}`;
  $("usage-table").tBodies[0].replaceChildren(
    ...rows.map((r) =>
      el("tr", { "data-day": r.day }, el("th", { scope: "row" }, r.day), el("td", { class: "used" }, r.used), el("td", { class: "remaining" }, r.remaining)),
    ),
  );
  $("usage-chart").replaceChildren(chart(rows, quota));
  const total = rows.reduce((sum, r) => sum + r.used, 0);
  $("usage-caption").textContent =
    `Used (dark) and remaining (light) requests per day; the line is the quota` +
    (quota ? ` of ${quota.limit} per ${String(quota.period).toLowerCase()}` : "") +
    `. ${total} used in the range.`;
}

// An inline SVG bar chart: per day, used stacked under remaining, and the
// quota as a dashed line.
function chart(rows, quota) {
  const width = 720;
  const height = 260;
  const left = 48;
  const bottom = 40;
  const top = 16;
  const right = 12;
  const limit = quota ? quota.limit : 0;
  const max = Math.max(1, limit, ...rows.map((r) => r.used + r.remaining));
  const plotHeight = height - top - bottom;
  const y = (value) => top + plotHeight - (value / max) * plotHeight;
  const step = (width - left - right) / Math.max(1, rows.length);
  const barWidth = Math.max(2, step * 0.7);
  const total = rows.reduce((sum, r) => sum + r.used, 0);
  const root = svg("svg", {
    id: "usage-svg",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `Chart of requests used and remaining per day, ${total} used in ${rows.length} days`,
    class: "chart",
  });
  root.append(svg("line", { x1: left, y1: y(0), x2: width - right, y2: y(0), class: "axis" }));
  for (const tick of [0, Math.round(max / 2), max]) {
    root.append(svg("text", { x: left - 6, y: y(tick) + 4, class: "tick", "text-anchor": "end" }, tick));
  }
  const labelEvery = Math.ceil(rows.length / 10);
  rows.forEach((r, i) => {
    const x = left + i * step + (step - barWidth) / 2;
    const group = svg("g", { class: "day", "data-day": r.day, "data-used": r.used, "data-remaining": r.remaining });
    group.append(svg("title", {}, `${r.day}: ${r.used} used, ${r.remaining} remaining`));
    group.append(svg("rect", { class: "used", x, width: barWidth, y: y(r.used), height: y(0) - y(r.used) }));
    group.append(
      svg("rect", { class: "remaining", x, width: barWidth, y: y(r.used + r.remaining), height: y(r.used) - y(r.used + r.remaining) }),
    );
    if (i % labelEvery === 0) {
      group.append(svg("text", { x: x + barWidth / 2, y: height - bottom + 16, class: "tick", "text-anchor": "middle" }, r.day.slice(5)));
    }
    root.append(group);
  });
  if (quota) {
    root.append(svg("line", { id: "quota-line", x1: left, x2: width - right, y1: y(limit), y2: y(limit), class: "quota", "data-quota": limit }));
    root.append(svg("text", { x: width - right, y: y(limit) - 4, class: "tick", "text-anchor": "end" }, `quota ${limit}`));
  }
  return root;
}

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = el("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function exportName(extension) {
  const u = state.usage;
  return `usage-${u.planId}-${u.keyId}-${u.startDate}-${u.endDate}.${extension}`.replace(/[^A-Za-z0-9._-]/g, "_");
}

// A CSV field: quoted when it holds a comma, quote or line break; a leading
// = + - @ is prefixed with ' so a spreadsheet never runs it as a formula.
function csvField(value) {
  let text = String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = "'" + text;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function exportCsv() {
  const u = state.usage;
  if (!u) return;
  const lines = [["usagePlanId", "keyId", "date", "used", "remaining"].join(",")];
  for (const r of u.rows) lines.push([u.planId, u.keyId, r.day, r.used, r.remaining].map(csvField).join(","));
  download(exportName("csv"), "text/csv", lines.join("\r\n") + "\r\n");
}

function exportJson() {
  const u = state.usage;
  if (!u) return;
  download(exportName("json"), "application/json", JSON.stringify(u.answer, null, 2) + "\n");
}

async function grantExtension(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await busy(form, async () => {
    const u = state.usage;
    if (!u) throw new ApiError(0, "", "Show a key's usage first.");
    const remaining = $("extension-remaining").value.trim();
    await api("PATCH", `/usageplans/${segment(u.planId)}/keys/${segment(u.keyId)}/usage`, {
      body: { patchOperations: [{ op: "replace", path: "/remaining", value: remaining }] },
    });
    form.reset();
    await showUsage();
    say(`Granted ${u.keyId} ${remaining} remaining requests in ${u.planId} until the quota period ends.`);
  });
}

// ---- wiring ----------------------------------------------------------------

function start() {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("plan-form").addEventListener("submit", createPlan);
  $("key-form").addEventListener("submit", createKey);
  $("usage-form").addEventListener("submit", showUsage);
  $("usage-plan").addEventListener("change", fillUsageKeys);
  $("extension-form").addEventListener("submit", grantExtension);
  $("export-csv").addEventListener("click", exportCsv);
  $("export-json").addEventListener("click", exportJson);
  $("new-key-done").addEventListener("click", hideNewKey);
  $("new-key-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("new-key-value").value);
      say("Copied the key's value.");
    } catch {
      $("new-key-value").select();
      say("Select the value and copy it (the clipboard is not available here).");
    }
  });
  window.addEventListener("hashchange", show);
  if (!window.isSecureContext || !window.crypto || !crypto.subtle) {
    // WebCrypto exists only in a secure context: signing is impossible here.
    $("sign-in").disabled = true;
    fail(new ApiError(0, "", "This page is not a secure context, so the browser offers no WebCrypto to sign with: open the console over HTTPS (or on localhost)."));
  }
  document.documentElement.dataset.ready = "true";
  show();
}

start();
