// crossattn page: translate, then draw the cross-attention as a heatmap and as
// highlighted words. No libraries; text from the model is only ever set with
// textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const RAMP = [[245, 247, 255], [199, 210, 254], [129, 140, 248], [79, 70, 229], [49, 46, 129]];
const MAX_CHARS = 1000;
const NAMES = { en: "English", fr: "French" };

const state = { data: null, unit: "words", layer: "avg", head: "avg", matrix: null, labels: null, hover: null,
  showLinks: true };

// -- colour and numbers ---------------------------------------------------------------
function shade(t) {  // t in [0, 1] -> rgb along RAMP
  const x = Math.max(0, Math.min(1, t)) * (RAMP.length - 1);
  const i = Math.min(Math.floor(x), RAMP.length - 2), f = x - i;
  const c = RAMP[i].map((v, k) => Math.round(v + f * (RAMP[i + 1][k] - v)));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

function mean(mats) {  // element-wise mean of equally shaped 2-D arrays
  return mats[0].map((row, i) => row.map((_, j) => mats.reduce((s, m) => s + m[i][j], 0) / mats.length));
}

function currentMatrix() {
  const d = state.data;
  const att = state.unit === "words" ? d.word_attention : d.attention;  // [layer][head][tgt][src]
  const layers = state.layer === "avg" ? att : [att[+state.layer]];
  const perLayer = layers.map((heads) => (state.head === "avg" ? mean(heads) : heads[+state.head]));
  return perLayer.length === 1 ? perLayer[0] : mean(perLayer);
}

function currentLabels() {
  const d = state.data;
  return state.unit === "words"
    ? { src: d.source_words, tgt: d.target_words }
    : { src: d.source_tokens, tgt: d.target_tokens };  // raw pieces: "▁" marks a word start
}

function currentLinks() {  // [[column, row], ...] of the word alignment in the current units
  const d = state.data;
  if (!d.links) return [];
  if (state.unit === "words") return d.links;
  const out = [];  // pieces: every piece of a source word with every piece of its target word
  d.links.forEach(([sw, tw]) => d.source_word_index.forEach((s, j) => {
    if (s === sw) d.target_word_index.forEach((t, i) => { if (t === tw) out.push([j, i]); });
  }));
  return out;
}

function linked(row, col) {
  return state.links.some(([c, r]) => r === row && c === col);
}

// -- the glossary ----------------------------------------------------------------------
// "term = translation" lines, or term TAB translation as in a --glossary file; blank lines and
// lines starting with "#" skipped. Sent as /api/translate's glossary object, and with a file
// as /translate_file's glossary field (that object as JSON, our extension of LibreTranslate's form).
function parseGlossary(text) {  // -> { entries: {term: translation} } or { error: "one line" }
  const entries = {};
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n].replace(/\r$/, "");
    if (!line.trim() || line.trim().startsWith("#")) continue;
    const fields = line.includes("\t") ? line.split("\t") : line.split("=");
    if (fields.length !== 2 || !fields[0].trim() || !fields[1].trim()) {
      const shown = line.trim().length > 40 ? `${line.trim().slice(0, 40)}…` : line.trim();
      return { error: `Glossary line ${n + 1}: “${shown}” is not “term = translation”` };
    }
    entries[fields[0].trim()] = fields[1].trim();
  }
  return { entries };
}

function readGlossary() {  // the entries (null when none), or undefined after showing a malformed line
  const parsed = parseGlossary($("glossary").value);
  $("glossary-error").hidden = !parsed.error;
  $("glossary-error").textContent = parsed.error || "";
  if (parsed.error) { $("glossary-box").open = true; return undefined; }
  return Object.keys(parsed.entries).length ? parsed.entries : null;
}

// -- translate ------------------------------------------------------------------------
// the API key a server started with --api-keys asks for (the row is shown then): sent with
// every request, /api/* as LibreTranslate's routes; a server without keys refuses any key
function apiKey() {
  const key = $("api-key").value.trim();
  return key && !$("key-row").hidden ? key : "";
}
const withKey = (request) => (apiKey() ? { ...request, api_key: apiKey() } : request);

async function translate() {
  const text = $("source").value.trim();
  if (!text) { $("source").focus(); return; }
  const glossary = readGlossary();
  if (glossary === undefined) return;  // nothing sent: the line is shown
  if (looksLikeHtml(text)) return translateHtml(text, glossary);
  if (glossary) return translateWithGlossary(text, glossary);
  const button = $("translate");
  button.disabled = true;
  button.textContent = "Translating…";
  $("error").hidden = true;
  $("translation").classList.add("busy");
  const started = performance.now();
  try {
    const [source, target] = $("direction").value.split("-");
    const post = (path, request) => fetch(path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request),
    });
    // the words' confidence comes from /api/translate, asked at the same time (the same translation)
    const [response, scored] = await Promise.all([post("/api/attention", withKey({ text, source, target })),
      post("/api/translate", withKey({ text, source, target, confidence: true })).catch(() => null)]);
    const body = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
    if (!response.ok) throw new Error(body.detail || body.error || `HTTP ${response.status}`);
    state.data = body;
    const confidence = scored && scored.ok ? (await scored.json().catch(() => ({}))).confidence : null;
    showTranslation(body.translation, confidence);
    $("translation").classList.remove("empty");
    $("timing").textContent = `${Math.round(performance.now() - started)} ms`;
    setupSelectors();
    $("links-toggle").hidden = !body.links;
    $("attention-card").hidden = false;
    render();
  } catch (err) {
    $("error").textContent = `Could not translate: ${err.message}`;
    $("error").hidden = false;
  } finally {
    button.disabled = false;
    button.textContent = "Translate";
    $("translation").classList.remove("busy");
  }
}

// Words the model gave a probability under this are underlined: about the least sure quarter of the words
// on the dev sets (whose quarter ended at 0.20-0.28), which were 2.4-3.3x as often absent from the reference
// as the surest quarter (bench/confidence.py, bench/README.md "Confidence").
const DOUBTFUL = 0.25;

function showTranslation(translation, confidence) {
  // each word a span: underlined when doubtful, its probability on hover; plain text when the
  // confidence is missing or is not for this very translation
  const out = $("translation");
  out.textContent = "";
  $("confidence").textContent = "";
  if (!confidence || confidence.words.map((w) => w.text).join(" ") !== translation) {
    out.textContent = translation;
    return;
  }
  confidence.words.forEach((w, i) => {
    if (i) out.append(" ");
    const span = document.createElement("span");
    span.className = w.probability < DOUBTFUL ? "tword doubtful" : "tword";
    span.textContent = w.text;
    span.title = `probability ${w.probability.toFixed(2)}`;
    out.append(span);
  });
  $("confidence").textContent = `confidence ${confidence.confidence.toFixed(2)}`;
  $("confidence").title = "the geometric mean of the model's probabilities of the pieces it wrote";
}

function setupSelectors() {
  const fill = (select, n, name, keep) => {
    select.replaceChildren(new Option("Average", "avg"));
    for (let i = 0; i < n; i++) select.add(new Option(`${name} ${i + 1}`, String(i)));
    select.value = keep < n || keep === "avg" ? keep : "avg";
  };
  fill($("layer"), state.data.layers, "Layer", state.layer);
  fill($("head"), state.data.heads, "Head", state.head);
  state.layer = $("layer").value;
  state.head = $("head").value;
}

// -- drawing --------------------------------------------------------------------------
function render(keepHover = false) {
  state.matrix = currentMatrix();
  state.labels = currentLabels();
  state.links = state.showLinks ? currentLinks() : [];
  state.width = $("attention-card").clientWidth;
  if (!keepHover) state.hover = null;
  renderChips();
  renderHeatmap();
  applyHover();
}

function chip(text, side, index) {
  const el = document.createElement("span");
  el.className = "word" + (text === "</s>" ? " eos" : "");
  el.textContent = text;
  el.tabIndex = 0;
  el.dataset.side = side;
  el.dataset.index = index;
  const enter = () => setHover({ side, index });
  el.addEventListener("mouseenter", enter);
  el.addEventListener("focus", enter);
  el.addEventListener("mouseleave", () => setHover(null));
  el.addEventListener("blur", () => setHover(null));
  return el;
}

function renderChips() {
  $("src-words").replaceChildren(...state.labels.src.map((w, j) => chip(w, "src", j)));
  $("tgt-words").replaceChildren(...state.labels.tgt.map((w, i) => chip(w, "tgt", i)));
}

function textWidth(text, font) {
  const ctx = (textWidth.canvas ||= document.createElement("canvas")).getContext("2d");
  ctx.font = font;
  return ctx.measureText(text).width;
}

function svgEl(name, attrs, parent) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

function renderHeatmap() {
  const svg = $("heatmap");
  const { src, tgt } = state.labels;
  const m = state.matrix;
  const font = "13px " + getComputedStyle(document.body).fontFamily;
  const avail = Math.max(320, $("attention-card").clientWidth - 60);
  const rowLabel = Math.min(180, Math.max(...tgt.map((t) => textWidth(t, font)))) + 14;
  const colLabel = Math.min(160, Math.max(...src.map((s) => textWidth(s, font)))) * 0.72 + 22;
  const cell = Math.max(16, Math.min(52, Math.floor((avail - rowLabel - colLabel * 0.7) / src.length)));
  const width = rowLabel + cell * src.length + colLabel * 0.7;
  const height = colLabel + cell * tgt.length + 4;
  const peak = Math.max(1e-9, ...m.flat());
  $("legend-max").textContent = peak.toFixed(2);
  svg.replaceChildren();
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const grid = svgEl("g", { transform: `translate(${rowLabel}, ${colLabel})` }, svg);

  m.forEach((row, i) => row.forEach((w, j) => {
    const rect = svgEl("rect", {
      class: "cell", x: j * cell, y: i * cell, width: cell, height: cell, fill: shade(w / peak),
      "data-row": i, "data-col": j,
    }, grid);
    rect.addEventListener("mouseenter", () => setHover({ side: "cell", row: i, col: j }));
    rect.addEventListener("mouseleave", () => setHover(null));
    if (cell >= 30 && w >= 0.1) {  // print the strong weights when there is room
      const t = svgEl("text", {
        class: "value", x: j * cell + cell / 2, y: i * cell + cell / 2 + 4, "text-anchor": "middle",
        fill: w / peak > 0.55 ? "#fff" : "#1f2937",
      }, grid);
      t.textContent = w.toFixed(2).replace(/^0/, "");
    }
  }));
  for (const [j, i] of state.links) {  // the word alignment, outlined over the weights
    svgEl("rect", { class: "link", x: j * cell + 2, y: i * cell + 2, width: cell - 4, height: cell - 4, rx: 3 }, grid);
  }
  tgt.forEach((word, i) => {
    const t = svgEl("text", {
      class: "label" + (word === "</s>" ? " eos" : ""), x: -8, y: i * cell + cell / 2 + 4.5,
      "text-anchor": "end", "data-side": "tgt", "data-index": i,
    }, grid);
    t.textContent = word;
    t.addEventListener("mouseenter", () => setHover({ side: "tgt", index: i }));
    t.addEventListener("mouseleave", () => setHover(null));
  });
  src.forEach((word, j) => {
    const x = j * cell + cell / 2, y = -8;
    const t = svgEl("text", {
      class: "label" + (word === "</s>" ? " eos" : ""), x, y, transform: `rotate(-40 ${x} ${y})`,
      "data-side": "src", "data-index": j,
    }, grid);
    t.textContent = word;
    t.addEventListener("mouseenter", () => setHover({ side: "src", index: j }));
    t.addEventListener("mouseleave", () => setHover(null));
  });
  state.grid = { grid, cell, rows: tgt.length, cols: src.length };
}

// -- hover: one word lights up the words on the other side, shaded by weight ------------
function setHover(h) {
  state.hover = h;
  applyHover();
}

function applyHover() {
  const h = state.hover, m = state.matrix;
  const words = document.querySelectorAll(".word");
  const labels = document.querySelectorAll("#heatmap .label");
  document.querySelectorAll("#heatmap .band").forEach((b) => b.remove());
  document.querySelectorAll("#heatmap .cell.hot").forEach((c) => c.classList.remove("hot"));
  $("cell-info").textContent = "";
  $("src-words").parentElement.parentElement.classList.toggle("hovering", !!h);

  // weights[side][index] in [0, 1], relative to the strongest link of the hovered word
  const weights = { src: null, tgt: null };
  let row = null, col = null;
  if (h && (h.side === "tgt" || h.side === "cell")) row = h.side === "tgt" ? h.index : h.row;
  if (h && (h.side === "src" || h.side === "cell")) col = h.side === "src" ? h.index : h.col;
  if (h && h.side === "tgt") {
    const r = m[row], top = Math.max(1e-9, ...r);
    weights.src = r.map((w) => w / top);
  } else if (h && h.side === "src") {
    const c = m.map((r) => r[col]), top = Math.max(1e-9, ...c);
    weights.tgt = c.map((w) => w / top);
  }
  for (const el of words) {
    const i = +el.dataset.index, side = el.dataset.side;
    const w = weights[side] ? weights[side][i] : 0;
    const active = (side === "tgt" && i === row) || (side === "src" && i === col);
    el.style.setProperty("--w", w.toFixed(3));
    el.classList.toggle("lit", w >= 0.15);
    el.classList.toggle("strong", w >= 0.55);
    el.classList.toggle("active", active);
  }
  for (const el of labels) {
    const i = +el.dataset.index, side = el.dataset.side;
    el.classList.toggle("on", (side === "tgt" && i === row) || (side === "src" && i === col));
  }
  const g = state.grid;
  if (!g || !h) return;
  if (row !== null) svgEl("rect", { class: "band", x: 0, y: row * g.cell, width: g.cols * g.cell, height: g.cell, rx: 2 }, g.grid);
  if (col !== null) svgEl("rect", { class: "band", x: col * g.cell, y: 0, width: g.cell, height: g.rows * g.cell, rx: 2 }, g.grid);
  if (row !== null && col !== null) {
    g.grid.querySelector(`.cell[data-row="${row}"][data-col="${col}"]`)?.classList.add("hot");
    $("cell-info").textContent =
      `“${state.labels.tgt[row]}” → “${state.labels.src[col]}”: ${m[row][col].toFixed(3)}` +
      (linked(row, col) ? " · aligned" : "");
  } else if (row !== null) {
    const best = m[row].indexOf(Math.max(...m[row]));
    $("cell-info").textContent = `“${state.labels.tgt[row]}” looks most at “${state.labels.src[best]}”`;
  }
}

// -- HTML typed in the box, and files ----------------------------------------------------
// markup.looks_like_html's test: a tag, a closing tag, a comment or an entity
const HTML_MARK = /<(?:[a-zA-Z][\w-]*[\s/>]|\/[a-zA-Z]|!--)|&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);/;
const looksLikeHtml = (text) => HTML_MARK.test(text);

// A translation without the attention view: with a glossary (its terms are in this
// translation, not in the view's: /api/attention translates without one), or of HTML (sent
// as LibreTranslate's page sends it: tags kept and placed on the aligned words; the answer
// is shown as source code, never parsed into this page).
async function translateWithoutView(request, show) {
  const button = $("translate");
  button.disabled = true;
  $("error").hidden = true;
  $("attention-card").hidden = true;
  $("translation").classList.add("busy");
  const started = performance.now();
  try {
    const [source, target] = $("direction").value.split("-");
    const response = await fetch("/api/translate", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(withKey({ ...request, source, target })),
    });
    const body = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
    if (!response.ok) throw new Error(body.detail || body.error || `HTTP ${response.status}`);
    const what = show(body);
    $("translation").classList.remove("empty");
    $("timing").textContent = `${what} · ${Math.round(performance.now() - started)} ms`;
  } catch (err) {
    $("error").textContent = `Could not translate: ${err.message}`;
    $("error").hidden = false;
  } finally {
    button.disabled = false;
    $("translation").classList.remove("busy");
  }
}

const translateWithGlossary = (text, glossary) => translateWithoutView(
  { text, confidence: true, glossary }, (body) => {
    showTranslation(body.translation, body.confidence);
    const n = Object.keys(glossary).length;
    return `glossary of ${n} term${n === 1 ? "" : "s"}`;
  });

const translateHtml = (text, glossary) => translateWithoutView(
  { text, format: "html", ...(glossary ? { glossary } : {}) }, (body) => {
    $("translation").textContent = body.translation;
    $("confidence").textContent = "";
    return "HTML, markup kept";
  });

async function translateFile(file) {
  // LibreTranslate's file API: upload, then fetch the translation once (the server deletes it
  // as it hands it out) and offer it under the file's own name
  const status = $("file-status"), link = $("file-download");
  $("file-error").hidden = true;
  const glossary = readGlossary();
  if (glossary === undefined) {  // nothing sent: the glossary's line is shown, here too
    $("file-error").textContent = `Could not translate ${file.name}: ${$("glossary-error").textContent}`;
    $("file-error").hidden = false;
    return;
  }
  link.hidden = true;
  if (link.href) URL.revokeObjectURL(link.href);
  status.textContent = `Translating ${file.name}…`;
  $("drop").classList.add("busy");
  try {
    const [source, target] = $("direction").value.split("-");
    const form = new FormData();
    form.append("file", file);
    form.append("source", source);
    form.append("target", target);
    // LibreTranslate's key field, as its own page sends it (serve --api-keys / --require-api-key)
    if (apiKey()) form.append("api_key", apiKey());
    if (glossary) form.append("glossary", JSON.stringify(glossary));
    const response = await fetch("/translate_file", { method: "POST", body: form });
    const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!response.ok) throw new Error(body.error || body.detail || `HTTP ${response.status}`);
    const download = await fetch(body.translatedFileUrl);
    if (!download.ok) throw new Error(`download: HTTP ${download.status}`);
    link.href = URL.createObjectURL(await download.blob());
    link.download = file.name;
    link.textContent = `Download ${file.name}`;
    link.hidden = false;
    status.textContent = `${file.name}: translated (${NAMES[target] || target}).`;
  } catch (err) {
    status.textContent = "";
    $("file-error").textContent = `Could not translate ${file.name}: ${err.message}`;
    $("file-error").hidden = false;
  } finally {
    $("drop").classList.remove("busy");
  }
}

const KEY_STORE = "crossattn.apiKey";  // the key typed once is kept in this browser, as LibreTranslate's page does

async function setupFileControl() {
  const drop = $("drop"), input = $("file-input");
  input.addEventListener("change", () => { if (input.files[0]) translateFile(input.files[0]); input.value = ""; });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files[0]) translateFile(e.dataTransfer.files[0]);
  });
  const key = $("api-key");
  try { key.value = localStorage.getItem(KEY_STORE) || ""; } catch { /* storage refused: typed each time */ }
  key.addEventListener("change", () => {
    try { localStorage.setItem(KEY_STORE, key.value.trim()); } catch { /* kept for this page only */ }
  });
  try {  // which formats the server takes, and whether it asks for a key (LibreTranslate's settings)
    const settings = await (await fetch("/frontend/settings")).json();
    $("key-row").hidden = !(settings.apiKeys || settings.keyRequired);
    if (!settings.filesTranslation) { $("file-card").hidden = true; return; }
    input.accept = settings.supportedFilesFormat.join(",");
    $("file-formats").textContent = settings.supportedFilesFormat.join(" ");
  } catch { /* the control works without it */ }
}

// -- wiring ---------------------------------------------------------------------------
function updateCount() {
  const n = $("source").value.length;
  $("count").textContent = `${n} / ${MAX_CHARS}`;
  $("count").classList.toggle("over", n >= MAX_CHARS);
}

let health = null;

function showDirection() {
  const direction = $("direction").value;
  const [source, target] = direction.split("-");
  $("source-name").textContent = NAMES[source] || source;
  $("target-name").textContent = NAMES[target] || target;
  $("source-code").textContent = source.toUpperCase();
  $("target-code").textContent = target.toUpperCase();
  const m = health && health.models && health.models[direction];
  if (m) {
    const c = m.config;
    $("model-info").textContent =
      `${m.name} · ${(m.parameters / 1e6).toFixed(1)}M parameters · ` +
      `${c.encoder_layers}+${c.decoder_layers} layers × ${c.n_heads} heads · beam ${m.decoding.beam}`;
  }
}

async function showModel() {
  try {
    health = await (await fetch("/health")).json();
    const select = $("direction");
    select.replaceChildren(...health.directions.map((d) => {
      const [s, t] = d.split("-");
      return new Option(`${NAMES[s] || s} → ${NAMES[t] || t}`, d);
    }));
    showDirection();
  } catch { /* the page works without it */ }
}

document.addEventListener("DOMContentLoaded", () => {
  $("translate").addEventListener("click", translate);
  $("source").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); translate(); }
  });
  $("source").addEventListener("input", updateCount);
  for (const b of document.querySelectorAll(".example")) {
    b.addEventListener("click", () => { $("source").value = b.textContent; updateCount(); translate(); });
  }
  for (const b of document.querySelectorAll(".seg button")) {
    b.addEventListener("click", () => {
      state.unit = b.dataset.unit;
      document.querySelectorAll(".seg button").forEach((x) => x.classList.toggle("on", x === b));
      if (state.data) render();
    });
  }
  // same words, other weights: whatever is hovered stays hovered
  $("layer").addEventListener("change", (e) => { state.layer = e.target.value; render(true); });
  $("head").addEventListener("change", (e) => { state.head = e.target.value; render(true); });
  $("show-links").addEventListener("change", (e) => { state.showLinks = e.target.checked; render(true); });
  window.addEventListener("resize", () => {  // only a new width changes the layout
    if (state.data && $("attention-card").clientWidth !== state.width) render(true);
  });
  $("direction").addEventListener("change", () => {
    showDirection();
    $("attention-card").hidden = true;
    $("translation").textContent = "The translation appears here.";
    $("translation").classList.add("empty");
    $("confidence").textContent = "";
  });
  showModel();
  setupFileControl();
  updateCount();
});
