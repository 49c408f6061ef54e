// The appliance's web console: plain JavaScript, no framework, no build step, no other origin.
// Every figure on every page comes from the HTTP API, called with the user's key; the server
// checks each call's scope, and the page only hides what the key could not do anyway.
// Untrusted text (documents, metadata, ids, errors) is only ever set as textContent.
"use strict";

const KEY_STORAGE = "appliance.key";
const PAGES = ["search", "collections", "jobs", "status"];
const params = new URLSearchParams(window.location.search);
const POLL_MS = Math.max(250, Number(params.get("poll_ms")) || 2000);
const JOB_POLL_MS = Math.max(250, Math.min(POLL_MS, 1000));
const SERIES_POINTS = 90;

const state = {
  key: sessionStorage.getItem(KEY_STORAGE),
  scope: null,
  keysRequired: false,
  signedIn: false,
  page: null,
  collections: [],
  lastQuery: null,
  metricsPrev: null,
  latency: [], // {t, p50, p99, rate} per metrics poll, newest last
  jobTimer: null,
};

// ---------------------------------------------------------------------------------------------
// DOM helpers
function $(selector, root = document) {
  return root.querySelector(selector);
}

// el("td", {class: "x", dataset: {docId: "a"}}, "text", child) — strings become text nodes.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

function definitions(list, pairs) {
  list.replaceChildren();
  for (const [term, value] of pairs) list.append(el("dt", {}, term), el("dd", {}, value));
}

function formatBytes(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

function formatNumber(value, digits = 0) {
  return Number(value).toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso.endsWith("Z") || iso.includes("+") ? iso : `${iso}Z`);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleTimeString();
}

function banner(message) {
  const node = $("#banner");
  node.textContent = message || "";
  node.hidden = !message;
}

// ---------------------------------------------------------------------------------------------
// The API, always with the user's key
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(path, { method = "GET", body, key = state.key, text = false } = {}) {
  const headers = { Accept: text ? "text/plain" : "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
  if (text && response.ok) return response.text();
  const raw = await response.text();
  let parsed = null;
  try {
    parsed = raw ? JSON.parse(raw) : null;
  } catch (_) {
    parsed = { detail: raw };
  }
  if (!response.ok) {
    const error = new ApiError(response.status, parsed);
    if (response.status === 401 && key === state.key) signedOut(error.message);
    throw error;
  }
  return parsed;
}

const path = (...parts) => "/" + parts.map(encodeURIComponent).join("/");

// ---------------------------------------------------------------------------------------------
// Signing in: which key, which scope
const canWrite = () => !state.keysRequired || ["write", "admin"].includes(state.scope);
const isAdmin = () => !state.keysRequired || state.scope === "admin";

async function identify() {
  try {
    const who = await api("/auth/whoami");
    state.scope = who.scope;
    state.keysRequired = who.keys_required;
    state.signedIn = true;
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      banner(`The appliance did not answer: ${error.message}`);
    }
    return false;
  }
  applyScope();
  return true;
}

function applyScope() {
  const badge = $("#scope-badge");
  badge.textContent = state.keysRequired ? `${state.scope} key` : "open (no keys)";
  badge.dataset.scope = state.keysRequired ? state.scope : "open";
  $("#sign-out").hidden = !state.keysRequired;
  document.body.dataset.scope = badge.dataset.scope;
  for (const node of document.querySelectorAll(".admin-only")) node.hidden = !isAdmin();
  for (const node of document.querySelectorAll(".writer-only")) node.hidden = !canWrite();
}

function signedOut(message) {
  state.signedIn = false;
  state.scope = null;
  for (const page of document.querySelectorAll(".page")) page.hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message && state.key ? message : "";
  $("#scope-badge").textContent = "signed out";
  $("#scope-badge").dataset.scope = "none";
  $("#sign-out").hidden = true;
  $("#api-key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const key = $("#api-key").value.trim();
  $("#login-error").textContent = "";
  try {
    await api("/auth/whoami", { key });
  } catch (error) {
    $("#login-error").textContent =
      error.status === 401 ? "That key is unknown or revoked." : error.message;
    return;
  }
  state.key = key;
  sessionStorage.setItem(KEY_STORAGE, key);
  $("#api-key").value = "";
  $("#login").hidden = true;
  await identify();
  await showPage(currentPage());
}

function signOut() {
  state.key = null;
  sessionStorage.removeItem(KEY_STORAGE);
  state.collections = [];
  $("#results").replaceChildren();
  signedOut("");
}

// ---------------------------------------------------------------------------------------------
// Pages
function currentPage() {
  const name = window.location.hash.replace(/^#/, "");
  return PAGES.includes(name) ? name : "search";
}

async function showPage(name) {
  if (!state.signedIn) return;
  state.page = name;
  for (const page of PAGES) $(`#page-${page}`).hidden = page !== name;
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.page === name);
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    if (name === "search") await loadCollections();
    if (name === "collections") await renderCollections();
    if (name === "jobs") await renderJobs();
    if (name === "status") await renderStatus();
  } catch (error) {
    if (error.status !== 401) banner(error.message);
  }
}

async function loadCollections() {
  const answer = await api("/collections");
  state.collections = answer.collections;
  for (const select of [$("#collection"), $("#upload-collection")]) {
    const chosen = select.value;
    select.replaceChildren(
      ...state.collections.map((c) => el("option", { value: c.name }, c.name)),
    );
    if (state.collections.some((c) => c.name === chosen)) select.value = chosen;
  }
  return state.collections;
}

// ---- search ----------------------------------------------------------------------------------
// Words too common to be worth marking (unless the query has nothing else).
const STOPWORDS = new Set(
  ("a an and are as at be but by for from has have how i in is it its of on or that the this " +
    "to was were what when where which who why will with").split(" "),
);

function queryTerms(query) {
  const words = (query.toLowerCase().match(/[\p{L}\p{N}]+/gu) || []).filter((w) => w.length > 1);
  const telling = words.filter((w) => !STOPWORDS.has(w));
  return [...new Set(telling.length ? telling : words)].sort((a, b) => b.length - a.length);
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// The text as nodes, each query term (at a word start) inside <mark>: no HTML is parsed.
function highlighted(text, terms) {
  const nodes = [];
  if (!terms.length) return [document.createTextNode(text)];
  const pattern = new RegExp(
    `(?<![\\p{L}\\p{N}])(?:${terms.map(escapeRegExp).join("|")})`,
    "giu",
  );
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > last) nodes.push(document.createTextNode(text.slice(last, match.index)));
    nodes.push(el("mark", {}, match[0]));
    last = match.index + match[0].length;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

// At most `room` characters of the passage, around its first matched term.
function excerpt(text, terms, room = 700) {
  if (text.length <= room) return text;
  const lower = text.toLowerCase();
  const first = Math.min(
    ...terms.map((t) => lower.indexOf(t)).filter((i) => i >= 0),
    text.length,
  );
  const start = first === text.length ? 0 : Math.max(0, first - Math.floor(room / 3));
  const end = Math.min(text.length, start + room);
  return `${start > 0 ? "…" : ""}${text.slice(start, end)}${end < text.length ? "…" : ""}`;
}

async function search(event) {
  event.preventDefault();
  const error = $("#search-error");
  error.textContent = "";
  const query = $("#query").value.trim();
  const collection = $("#collection").value;
  if (!query || !collection) {
    error.textContent = collection ? "Type a query." : "There is no collection to search.";
    return;
  }
  const body = { query, limit: Number($("#limit").value) || 10, timings: true };
  const mode = $("#mode").value;
  if (mode) body.mode = mode;
  const filterText = $("#filter").value.trim();
  if (filterText) {
    try {
      body.filter = JSON.parse(filterText);
    } catch (parseError) {
      error.textContent = `The filter is not valid JSON: ${parseError.message}`;
      return;
    }
    if (typeof body.filter !== "object" || body.filter === null || Array.isArray(body.filter)) {
      error.textContent = 'The filter must be a JSON object, e.g. {"kind": "bird"}.';
      return;
    }
  }
  $("#search-button").disabled = true;
  try {
    const answer = await api(`${path("collections", collection)}/search`, {
      method: "POST",
      body,
    });
    state.lastQuery = { collection, queryId: answer.query_id };
    renderResults(answer, queryTerms(query), collection);
  } catch (searchError) {
    if (searchError.status !== 401) error.textContent = searchError.message;
  } finally {
    $("#search-button").disabled = false;
  }
}

function renderResults(answer, terms, collection) {
  const summary = $("#search-summary");
  summary.hidden = false;
  summary.replaceChildren(
    el("strong", {}, `${answer.results.length} result${answer.results.length === 1 ? "" : "s"}`),
    ` in ${formatNumber(answer.took_ms, 1)} ms · mode ${answer.mode}`,
    answer.cached ? " · from the result cache" : "",
    answer.model_id ? ` · model ${answer.model_id}` : "",
  );
  summary.dataset.queryId = answer.query_id;
  renderTimings(answer.timings_ms || {});
  const list = $("#results");
  list.replaceChildren(
    ...answer.results.map((hit, rank) => resultItem(hit, rank, terms, collection, answer)),
  );
  if (!answer.results.length) list.append(el("li", { class: "empty" }, "No document matched."));
}

function renderTimings(timings) {
  const box = $("#timings");
  const stages = Object.entries(timings);
  box.hidden = !stages.length;
  if (!stages.length) return;
  const longest = Math.max(...stages.map(([, ms]) => ms), 0.001);
  const rows = stages.map(([stage, ms]) => {
    const bar = el("progress", { max: longest, value: ms });
    return el("tr", { dataset: { stage } }, el("th", {}, stage), el("td", {}, bar),
      el("td", { class: "num" }, `${formatNumber(ms, 2)} ms`));
  });
  box.replaceChildren(
    el("h3", {}, "Per-stage timings"),
    el("table", { class: "timing-table" }, el("tbody", {}, rows)),
  );
}

function resultItem(hit, rank, terms, collection, answer) {
  const passage = excerpt(hit.text, terms);
  const status = el("span", { class: "feedback-status", role: "status" });
  const grades = [
    [0, "Not relevant"],
    [1, "Related"],
    [2, "Relevant"],
    [3, "Perfect"],
  ];
  const buttons = grades.map(([grade, label]) =>
    el("button", {
      type: "button",
      class: "grade",
      dataset: { relevance: String(grade) },
      title: `relevance ${grade} of 3`,
      onclick: () => sendFeedback(collection, answer.query_id, hit.id, grade, status, buttons),
    }, label),
  );
  const meta = Object.entries(hit.metadata || {});
  return el(
    "li",
    { class: "result", dataset: { docId: hit.id } },
    el("div", { class: "result-head" },
      el("span", { class: "rank" }, `${rank + 1}`),
      el("span", { class: "doc-id" }, hit.id),
      el("span", { class: "score", title: "score" }, formatNumber(hit.score, 4)),
      hit.chunk
        ? el("span", { class: "chunk" },
          `chunk ${hit.chunk.index} · chars ${hit.chunk.start}–${hit.chunk.end}`)
        : null),
    el("p", { class: "passage" }, highlighted(passage, terms)),
    meta.length
      ? el("dl", { class: "metadata" },
        meta.map(([k, v]) => [
          el("dt", {}, k),
          el("dd", {}, typeof v === "string" ? v : JSON.stringify(v)),
        ]))
      : null,
    el("div", { class: "feedback" }, el("span", { class: "hint" }, "Was this useful?"),
      buttons, status),
  );
}

async function sendFeedback(collection, queryId, docId, relevance, status, buttons) {
  status.textContent = "sending…";
  try {
    await api(`${path("collections", collection)}/feedback`, {
      method: "POST",
      body: { query_id: queryId, doc_id: docId, relevance },
    });
  } catch (error) {
    status.textContent = error.message;
    status.dataset.state = "failed";
    return;
  }
  for (const button of buttons) {
    button.classList.toggle("chosen", Number(button.dataset.relevance) === relevance);
  }
  status.textContent = `recorded (${relevance}/3)`;
  status.dataset.state = "recorded";
}

// ---- collections -----------------------------------------------------------------------------
async function renderCollections() {
  const collections = await loadCollections();
  const versions = await Promise.all(
    collections.map((c) =>
      api(`${path("collections", c.name)}/versions`).then(
        (answer) => answer.versions,
        () => [],
      ),
    ),
  );
  const box = $("#collections");
  box.replaceChildren(...collections.map((c, i) => collectionCard(c, versions[i])));
  if (!collections.length) box.append(el("p", { class: "hint" }, "No collection yet."));
}

function collectionCard(info, versions) {
  const { backend, spec, ...options } = info.index;
  const optionText = Object.entries(options).map(([k, v]) => `${k}=${v}`).join(", ");
  const stats = el("dl", { class: "stats" });
  definitions(stats, [
    ["Documents", formatNumber(info.documents)],
    ["Vectors indexed", formatNumber(info.vectors_indexed)],
    ["Index", `${backend} · ${spec}${optionText ? ` · ${optionText}` : ""}`],
    ["Index memory", formatBytes(info.index_bytes)],
    ["Model", info.model_id],
    ["Generation", String(info.generation)],
  ]);
  const versionRows = versions.map((v) =>
    el("tr", { dataset: { model: v.model_id } },
      el("td", {}, v.model_id),
      el("td", {}, el("span", { class: `state state-${v.state}` }, v.active ? "active" : v.state)),
      el("td", { class: "num" }, `${formatNumber(v.documents_embedded)} / ${formatNumber(v.documents_total)}`),
      el("td", { class: "num" }, formatNumber(v.vectors)),
      el("td", {}, formatTime(v.activated_at || v.created_at) || "—")),
  );
  const card = el("article", { class: "card collection", dataset: { collection: info.name } },
    el("div", { class: "card-head" }, el("h2", {}, info.name), deleteControl(info.name)),
    el("div", { class: "body" },
      el("div", {}, el("h3", {}, "Index and documents"), stats),
      el("div", {},
        el("h3", {}, "Embedding versions"),
        el("table", { class: "versions" },
          el("thead", {}, el("tr", {}, ["Model", "State", "Embedded", "Vectors", "Since"].map(
            (h) => el("th", {}, h)))),
          el("tbody", {}, versionRows)))),
  );
  return card;
}

// Only admin keys get the control at all; the server refuses the call to any other key.
function deleteControl(name) {
  if (!isAdmin()) return null;
  const button = el("button", { type: "button", class: "danger delete-collection" }, "Delete");
  button.addEventListener("click", async () => {
    if (!button.dataset.armed) {
      button.dataset.armed = "1";
      button.textContent = `Delete ${name} and all its documents?`;
      return;
    }
    button.disabled = true;
    try {
      await api(path("collections", name), { method: "DELETE" });
      await renderCollections();
    } catch (error) {
      banner(error.message);
      button.disabled = false;
    }
  });
  return button;
}

async function createCollection(event) {
  event.preventDefault();
  const error = $("#create-error");
  error.textContent = "";
  const body = { name: $("#new-name").value.trim(), index: { backend: $("#new-backend").value } };
  const spec = $("#new-spec").value.trim();
  if (spec) body.index.spec = spec;
  try {
    await api("/collections", { method: "POST", body });
  } catch (createError) {
    error.textContent = createError.message;
    return;
  }
  $("#new-name").value = "";
  $("#new-spec").value = "";
  await renderCollections();
}

// ---- jobs ------------------------------------------------------------------------------------
async function renderJobs() {
  if (canWrite() && !$("#upload-collection").options.length) await loadCollections();
  const answer = await api("/jobs?limit=50");
  const body = $("#jobs tbody");
  body.replaceChildren(...answer.jobs.map(jobRow));
  $("#jobs-empty").hidden = answer.jobs.length > 0;
  const active = answer.jobs.some((job) => job.state === "queued" || job.state === "running");
  clearTimeout(state.jobTimer);
  if (state.page === "jobs") {
    state.jobTimer = setTimeout(() => {
      if (state.page === "jobs" && state.signedIn) renderJobs().catch(() => {});
    }, active ? JOB_POLL_MS : POLL_MS * 2);
  }
}

function jobRow(job) {
  const errors = job.errors.length
    ? el("details", {}, el("summary", {}, String(job.errors.length)),
      el("ul", {}, job.errors.map((e) => el("li", {}, `${e.id}: ${e.error}`))))
    : "0";
  return el("tr", { dataset: { jobId: job.id, state: job.state } },
    el("td", { class: "mono", title: job.id }, job.id.slice(0, 12)),
    el("td", {}, job.collection),
    el("td", {}, el("span", { class: `state state-${job.state}`, title: job.detail }, job.state)),
    el("td", {}, el("progress", { max: Math.max(job.total, 1), value: job.done }),
      el("span", { class: "num progress-text" }, ` ${job.done} / ${job.total}`)),
    el("td", { class: "num" }, String(job.embedded)),
    el("td", { class: "num" }, String(job.unchanged)),
    el("td", {}, errors),
    el("td", {}, formatTime(job.updated_at)),
  );
}

async function uploadDocuments(event) {
  event.preventDefault();
  const error = $("#upload-error");
  error.textContent = "";
  const documents = [];
  const lines = $("#upload-documents").value.split("\n");
  for (const [number, line] of lines.entries()) {
    if (!line.trim()) continue;
    try {
      documents.push(JSON.parse(line));
    } catch (parseError) {
      error.textContent = `line ${number + 1} is not valid JSON: ${parseError.message}`;
      return;
    }
  }
  if (!documents.length) {
    error.textContent = "Paste at least one document.";
    return;
  }
  const collection = $("#upload-collection").value;
  try {
    await api(`${path("collections", collection, "documents")}?async=true`, {
      method: "PUT",
      body: { documents },
    });
  } catch (uploadError) {
    error.textContent = uploadError.message;
    return;
  }
  $("#upload-documents").value = "";
  await renderJobs();
}

// ---- status ----------------------------------------------------------------------------------
// Prometheus text format: [{name, labels, value}] (comments and blank lines skipped).
function parseMetrics(text) {
  const samples = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const raw of text.split("\n")) {
    if (!raw || raw.startsWith("#")) continue;
    const match = raw.match(line);
    if (!match) continue;
    const labels = {};
    for (const [, name, value] of (match[2] || "").matchAll(label)) {
      labels[name] = value.replace(/\\"/g, '"').replace(/\\n/g, "\n").replace(/\\\\/g, "\\");
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

function total(samples, name, where = () => true) {
  return samples
    .filter((s) => s.name === name && where(s.labels))
    .reduce((sum, s) => sum + s.value, 0);
}

// Cumulative bucket counts of a histogram summed over its other labels: [[le, count]].
function buckets(samples, name) {
  const byBound = new Map();
  for (const s of samples) {
    if (s.name !== `${name}_bucket`) continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    byBound.set(le, (byBound.get(le) || 0) + s.value);
  }
  return [...byBound.entries()].sort((a, b) => a[0] - b[0]);
}

// Prometheus' histogram_quantile over the change between two scrapes.
function quantile(q, now, before) {
  const counts = now.map(([le, count], i) => [le, count - ((before && before[i] && before[i][1]) || 0)]);
  const observed = counts.length ? counts[counts.length - 1][1] : 0;
  if (observed <= 0) return null;
  const rank = q * observed;
  let lower = 0;
  let below = 0;
  for (const [le, count] of counts) {
    if (count >= rank) {
      if (le === Infinity) return lower;
      return lower + ((le - lower) * (rank - below)) / Math.max(count - below, 1e-12);
    }
    lower = le;
    below = count;
  }
  return lower;
}

async function pollMetrics() {
  if (!state.signedIn) return;
  let text;
  try {
    text = await api("/metrics", { text: true });
  } catch (_) {
    return;
  }
  const samples = parseMetrics(text);
  const now = Date.now();
  const latency = buckets(samples, "search_latency_seconds");
  const prev = state.metricsPrev;
  if (prev) {
    const elapsed = (now - prev.t) / 1000;
    const searches = total(samples, "search_requests_total") - prev.searches;
    state.latency.push({
      t: now,
      p50: quantile(0.5, latency, prev.latency),
      p99: quantile(0.99, latency, prev.latency),
      rate: searches / Math.max(elapsed, 1e-3),
    });
    if (state.latency.length > SERIES_POINTS) state.latency.shift();
  }
  state.metricsPrev = {
    t: now,
    latency,
    searches: total(samples, "search_requests_total"),
    samples,
  };
  if (state.page === "status") renderMetrics(samples);
}

function ratio(hits, misses) {
  const all = hits + misses;
  return all ? `${formatNumber((100 * hits) / all, 1)} % (${formatNumber(hits)} of ${formatNumber(all)})` : "no lookups yet";
}

function renderMetrics(samples) {
  const embeddingHits = total(samples, "embedding_cache_hits_total");
  const embeddingMisses = total(samples, "embedding_cache_misses_total");
  const resultHits = total(samples, "result_cache_hits_total");
  const resultMisses = total(samples, "result_cache_misses_total");
  definitions($("#cache-details"), [
    ["Result cache hit ratio", ratio(resultHits, resultMisses)],
    ["Query-embedding cache hit ratio", ratio(embeddingHits, embeddingMisses)],
  ]);
  const tokens = total(samples, "embedding_tokens_total");
  const seconds = total(samples, "embedding_compute_seconds_total");
  const costs = samples.filter((s) => s.name === "embedding_cost_equivalent_usd_total");
  definitions($("#embedding-details"), [
    ["Tokens embedded", formatNumber(tokens)],
    ["Compute", `${formatNumber(seconds, 2)} s` +
      (seconds > 0 ? ` (${formatNumber(tokens / seconds)} tokens/s)` : "")],
    ...costs.map((s) => [
      `At ${s.labels.reference} prices`,
      `$${formatNumber(s.value, 6)}`,
    ]),
    ["Searches answered", formatNumber(total(samples, "search_requests_total"))],
  ]);
  drawLatency();
}

function drawLatency() {
  const box = $("#latency-chart");
  const width = 720;
  const height = 220;
  const pad = { left: 56, right: 12, top: 12, bottom: 28 };
  const points = state.latency;
  const values = points.flatMap((p) => [p.p50, p.p99]).filter((v) => v !== null);
  const top = Math.max(values.length ? Math.max(...values) * 1.15 : 0.01, 0.001);
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": "search latency p50 and p99 over time",
    class: "latency",
  });
  const x = (i) => pad.left + ((width - pad.left - pad.right) * i) / Math.max(SERIES_POINTS - 1, 1);
  const y = (v) => height - pad.bottom - ((height - pad.top - pad.bottom) * v) / top;
  for (let tick = 0; tick <= 4; tick += 1) {
    const value = (top * tick) / 4;
    chart.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y(value), y2: y(value), class: "grid" }));
    const labelNode = svg("text", { x: pad.left - 6, y: y(value) + 4, class: "axis", "text-anchor": "end" });
    labelNode.textContent = `${formatNumber(value * 1000, value * 1000 < 10 ? 1 : 0)} ms`;
    chart.append(labelNode);
  }
  const caption = svg("text", { x: width - pad.right, y: height - 8, class: "axis", "text-anchor": "end" });
  caption.textContent = `last ${formatNumber((SERIES_POINTS * POLL_MS) / 60000, 1)} min, one point per ${POLL_MS / 1000} s`;
  chart.append(caption);
  const offset = SERIES_POINTS - points.length;
  for (const [series, cls] of [["p50", "p50"], ["p99", "p99"]]) {
    const coords = points
      .map((p, i) => (p[series] === null ? null : `${x(offset + i).toFixed(1)},${y(p[series]).toFixed(1)}`))
      .filter(Boolean);
    if (coords.length) {
      chart.append(svg("polyline", { points: coords.join(" "), class: `series ${cls}`, "data-series": series }));
      for (const c of coords) {
        const [cx, cy] = c.split(",");
        chart.append(svg("circle", { cx, cy, r: 2.5, class: `dot ${cls}` }));
      }
    }
  }
  const legend = el("div", { class: "legend" },
    el("span", { class: "key p50" }, "p50"), el("span", { class: "key p99" }, "p99"));
  box.replaceChildren(chart, legend);
  const last = [...points].reverse().find((p) => p.p50 !== null);
  $("#latency-now").textContent = last
    ? `Latest interval: p50 ${formatNumber(last.p50 * 1000, 2)} ms, p99 ${formatNumber(last.p99 * 1000, 2)} ms, ${formatNumber(last.rate, 2)} searches/s.`
    : "No search in the intervals shown yet.";
}

async function renderStatus() {
  const stateNode = $("#ready-state");
  let ready;
  try {
    const response = await fetch("/ready", { cache: "no-store", credentials: "omit" });
    ready = await response.json();
  } catch (error) {
    ready = { status: "unreachable", detail: error.message };
  }
  stateNode.textContent = ready.status;
  stateNode.dataset.state = ready.status;
  definitions($("#ready-details"), [
    ["Model", ready.model || "—"],
    ["Collections", String(ready.collections ?? "—")],
    ...(ready.detail ? [["Detail", ready.detail]] : []),
    ...(ready.starting ? [["Starting", ready.starting]] : []),
  ]);
  if (state.metricsPrev) renderMetrics(state.metricsPrev.samples);
  else drawLatency();
}

// ---------------------------------------------------------------------------------------------
async function start() {
  $("#login-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", signOut);
  $("#search-form").addEventListener("submit", search);
  $("#create-collection").addEventListener("submit", createCollection);
  $("#upload-form").addEventListener("submit", uploadDocuments);
  window.addEventListener("hashchange", () => showPage(currentPage()));
  if (await identify()) await showPage(currentPage());
  else if (!state.signedIn && $("#login").hidden) signedOut("");
  setInterval(async () => {
    await pollMetrics();
    if (state.page === "status" && state.signedIn) {
      renderStatus().catch(() => {});
    }
  }, POLL_MS);
  pollMetrics();
  document.body.dataset.ready = "true";
}

start();
