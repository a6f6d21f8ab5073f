// The specsteer page: chat (streamed, tokens marked), memory pane, egress pane. No build step.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { lastSeq: 0, user: null, persona: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function showError(message) {
  const box = $("alert");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $("alert").hidden = true;
  $("alert").textContent = "";
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `the request failed (${response.status})`);
  return data;
}

// Run an action; show its error without losing what the user typed.
async function attempt(action) {
  clearError();
  try {
    await action();
    return true;
  } catch (error) {
    showError(error.message);
    return false;
  }
}

// -- chat --------------------------------------------------------------------------------------

function lengthValue() {
  const raw = $("max-tokens").value.trim();
  return /^\d+$/.test(raw) ? Number(raw) : raw;
}

function addTurn(who, text) {
  const answer = el("p", { class: "answer", text });
  const turn = el("li", { class: `turn ${who}` }, el("span", { class: "who", text: who === "user" ? "You" : "Assistant" }), answer);
  $("conversation").append(turn);
  turn.scrollIntoView({ block: "end" });
  return { turn, answer };
}

function appendPieces(answer, pieces) {
  for (const piece of pieces) {
    const label = piece.kind === "rejected" ? "rejected draft: " : "";
    const span = el("span", { class: `tok ${piece.kind}`, "data-kind": piece.kind, text: piece.text });
    if (label) span.setAttribute("aria-label", label + piece.text);
    if (piece.kept) {
      span.dataset.kept = piece.kept;
      span.title = piece.kept === "lift" ? "kept on this device: the private context made it likely" : "kept on this device";
    }
    answer.append(span);
  }
  answer.dataset.chunks = String(Number(answer.dataset.chunks || 0) + 1);
}

async function readLines(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    let cut;
    while ((cut = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, cut).trim();
      buffer = buffer.slice(cut + 1);
      if (line) onEvent(JSON.parse(line));
    }
    if (done) return;
  }
}

function finishAnswer(turn, answer, event) {
  answer.setAttribute("aria-busy", "false");
  answer.dataset.done = "true";
  turn.append(chart(event.rounds, event.stats));
  if ((event.remembered || []).length) {
    turn.append(el("p", { class: "remembered", text: `Remembered as new memories: ${event.remembered.map((t) => JSON.stringify(t)).join(", ")}` }));
  }
  showKept(event);
}

async function postChat(body) {
  const response = await fetch("/api/chat", {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new Error(data.error || `the request failed (${response.status})`);
  }
  return response;
}

async function readAnswer(response, turn, answer) {
  let failure = null;
  await readLines(response, (event) => {
    if (event.type === "tokens") appendPieces(answer, event.pieces);
    else if (event.type === "egress") addRecords(event.records);
    else if (event.type === "done") finishAnswer(turn, answer, event);
    else if (event.type === "error") failure = event.message;
  });
  if (failure) {
    answer.append(el("em", { text: " (no answer)" }));
    throw new Error(failure);
  }
}

// The message stays in its box until an answer has come back whole.
async function sendMessage(event) {
  event.preventDefault();
  const message = $("message").value;
  const body = { message, max_new_tokens: lengthValue(), method: $("method").value };
  $("send").disabled = true;
  const ok = await attempt(async () => {
    const response = await postChat(body);
    addTurn("user", message);
    const { turn, answer } = addTurn("assistant", "");
    answer.setAttribute("aria-busy", "true");
    await readAnswer(response, turn, answer);
  });
  if (ok) $("message").value = "";
  $("send").disabled = false;
  refreshEgress();
}

// -- the per-answer chart -----------------------------------------------------------------------

function chart(rounds, stats) {
  const width = 320, height = 70, gap = 2;
  const tall = Math.max(1, ...rounds.map((r) => r.drafted + (r.recovered ? 1 : 0)));
  const bar = Math.max(3, Math.min(24, (width - gap * rounds.length) / Math.max(1, rounds.length)));
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  const summary = chartSummary(stats);
  const title = document.createElementNS(svg.namespaceURI, "title");
  title.textContent = summary;
  svg.append(title);
  rounds.forEach((r, i) => drawRound(svg, r, i * (bar + gap), bar, height / tall, height));
  return el("figure", { class: "chart" }, svg, el("figcaption", { text: summary }));
}

function rect(svg, x, y, w, h, fill) {
  const node = document.createElementNS(svg.namespaceURI, "rect");
  for (const [k, v] of Object.entries({ x, y, width: w, height: Math.max(0, h), fill })) node.setAttribute(k, v);
  svg.append(node);
}

function drawRound(svg, round, x, w, unit, height) {
  if (round.local) { rect(svg, x, height - unit, w, unit, "#2b3ea8"); return; }
  rect(svg, x, height - round.drafted * unit, w, round.drafted * unit, "#9aa0a6");
  rect(svg, x, height - round.accepted * unit, w, round.accepted * unit, "#0a6b35");
  if (round.recovered) rect(svg, x, height - (round.accepted + 1) * unit, w, unit, "#8a4b00");
}

function chartSummary(stats) {
  const rate = Math.round(100 * stats.acceptance_rate);
  return `Acceptance ${rate}%: ${stats.accepted_tokens} of ${stats.drafted_tokens} drafted tokens accepted ` +
    `(green of grey; orange: recovered on the device); ${stats.rounds} rounds, ` +
    `${stats.cloud_calls} round trips, ${stats.bytes_sent} bytes sent, ${stats.new_tokens} tokens.`;
}

// -- memory pane ---------------------------------------------------------------------------------

function memoryItem(memory) {
  const text = el("span", { class: "mem-text", text: memory.text });
  const edit = el("button", { type: "button", class: "secondary", "aria-label": `Edit memory: ${memory.text}`, text: "Edit" });
  const remove = el("button", { type: "button", class: "secondary", "aria-label": `Delete memory: ${memory.text}`, text: "Delete" });
  const item = el("li", { "data-id": memory.id }, text, edit, remove);
  edit.addEventListener("click", () => startEdit(item, memory));
  remove.addEventListener("click", () => attempt(async () => {
    historyCleared(await api("DELETE", `/api/memories/${memory.id}`));
    await loadMemories();
  }));
  return item;
}

function startEdit(item, memory) {
  const input = el("input", { "aria-label": "Edit the memory's text", value: memory.text });
  const save = el("button", { type: "button", text: "Save" });
  const cancel = el("button", { type: "button", class: "secondary", text: "Cancel" });
  const commit = () => attempt(async () => {
    historyCleared(await api("PUT", `/api/memories/${memory.id}`, { text: input.value }));
    await loadMemories();
  });
  save.addEventListener("click", commit);
  cancel.addEventListener("click", () => loadMemories());
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") commit();
    if (e.key === "Escape") loadMemories();
  });
  item.replaceChildren(input, save, cancel);
  input.focus();
}

// The server forgot the chat so far (it could hold the changed memory's old text): so does the page.
function historyCleared(data) {
  if (!data.history_cleared || !$("conversation").children.length) return;
  $("conversation").replaceChildren(el("li", { class: "turn note", id: "history-note",
    text: "The chat so far was cleared: a memory it could quote was changed, so it is not sent again." }));
}

function showMemories(memories, what) {
  $("memories").replaceChildren(...memories.map(memoryItem));
  $("memory-count").textContent = `${memories.length} ${what} of ${state.user}`;
}

// The persona is read from the memories too, so it is shown again whenever they are.
async function loadMemories() {
  const data = await api("GET", "/api/memories");
  showMemories(data.memories, data.memories.length === 1 ? "memory" : "memories");
  await loadPersona();
}

async function addMemory(event) {
  event.preventDefault();
  const ok = await attempt(async () => {
    await api("POST", "/api/memories", { text: $("memory-text").value, reinstate: $("reinstate").checked });
    await loadMemories();
  });
  if (ok) $("memory-text").value = "";
}

async function searchMemories(event) {
  event.preventDefault();
  await attempt(async () => {
    const q = $("search-q").value;
    if (!q.trim()) throw new Error("search: it is empty; write what to look for");
    const data = await api("GET", `/api/memories/search?q=${encodeURIComponent(q)}`);
    showMemories(data.hits, data.hits.length === 1 ? "match" : "matches");
  });
}

async function forgetUser(event) {
  event.preventDefault();
  const ok = await attempt(async () => {
    await api("POST", "/api/forget", { user: $("forget-user").value });
    await loadMemories();
  });
  if (ok) {
    $("forget-user").value = "";
    $("forget").open = false;
    $("conversation").replaceChildren();
  }
}

// -- persona (in the memory pane) -----------------------------------------------------------------

function sourceText(item) {
  if (!item || !item.source) return "";
  return item.source === "inferred" ? "inferred from your memories" : "set by you";
}

function personItem(person) {
  const relation = el("input", { "aria-label": `Relation of ${person.name}`, value: person.relation, class: "relation" });
  const name = el("input", { "aria-label": `Name of your ${person.relation}`, value: person.name, class: "name" });
  const remove = el("button", { type: "button", class: "secondary", "aria-label": `Remove ${person.name}`, text: "Remove" });
  const item = el("li", { "data-name": person.name, "data-source": person.source || "set" },
    relation, name, el("span", { class: "source", text: sourceText(person) }), remove);
  remove.addEventListener("click", () => { item.dataset.removed = "true"; item.hidden = true; });
  return item;
}

function showPersona(view) {
  state.persona = view;
  $("persona-name").value = view.name ? view.name.value : "";
  $("persona-name-source").textContent = sourceText(view.name);
  $("persona-sign-off").value = view.sign_off ? view.sign_off.value : "";
  $("persona-sign-off-source").textContent = sourceText(view.sign_off);
  $("people").replaceChildren(...view.people.map(personItem));
}

async function loadPersona() {
  showPersona(await api("GET", "/api/persona"));
}

// What the user sets: values they set before or changed now; inferred values they left alone
// stay inferred, and inferred people they removed are hidden.
function personaBody() {
  const view = state.persona;
  const field = (id, item) => {
    const value = $(id).value.trim();
    const inferred = item && item.source === "inferred";
    return inferred && value === item.value ? "" : value;
  };
  const body = { name: field("persona-name", view.name), sign_off: field("persona-sign-off", view.sign_off), people: [], hidden: [...view.hidden] };
  for (const item of $("people").children) {
    const original = view.people.find((p) => p.name === item.dataset.name);
    const person = { relation: item.querySelector(".relation").value.trim(), name: item.querySelector(".name").value.trim() };
    const inferred = original && original.source === "inferred";
    if (item.dataset.removed === "true") {
      if (inferred) body.hidden.push(original.name);
    } else if (!inferred || person.name !== original.name || person.relation !== original.relation) {
      body.people.push(person);
      if (inferred && person.name !== original.name) body.hidden.push(original.name);
    }
  }
  return body;
}

async function savePersona(event) {
  event.preventDefault();
  await attempt(async () => showPersona(await api("PUT", "/api/persona", personaBody())));
}

function addPerson() {
  const relation = $("new-relation").value.trim(), name = $("new-person").value.trim();
  if (!relation || !name) { showError("person: write both the relation and the name"); return; }
  clearError();
  $("people").append(personItem({ name, relation, source: "set" }));
  $("new-relation").value = ""; $("new-person").value = "";
}

// -- egress pane ---------------------------------------------------------------------------------

function recordItem(record) {
  const detectors = Object.entries(record.detectors || {}).map(([k, v]) => `${k}=${v}`).join(", ") || "none";
  const placeholders = record.placeholders.length ? record.placeholders.join(", ") : "none";
  return el("li", { "data-seq": String(record.seq) },
    el("p", { class: "meta", text: `#${record.seq} ${record.time} · ${record.payload_type} → ${record.destination} · ${record.size} bytes · sha256 ${String(record.sha256).slice(0, 16)}…` }),
    el("p", { class: "meta", text: `fields: ${record.fields.join(", ") || "-"}` }),
    el("p", { class: "meta", text: `placeholders: ${placeholders}; detectors fired: ${detectors}` }),
    el("pre", { class: "payload", tabindex: "0", "aria-label": `payload ${record.seq}, as sent`, text: record.payload ?? "(payload not stored)" }));
}

function addRecords(records) {
  for (const record of records) {
    if (record.seq <= state.lastSeq) continue;
    $("sent").prepend(recordItem(record));
    state.lastSeq = record.seq;
  }
}

// The server sends the oldest records after `after` a page at a time; `more` says others remain.
async function refreshEgress() {
  let data;
  for (;;) {
    const after = state.lastSeq;
    data = await api("GET", `/api/egress?after=${after}`).catch(() => null);
    if (!data) return;
    addRecords(data.records);
    if (!data.more || state.lastSeq <= after) break;
  }
  const v = data.verification;
  const status = $("audit-status");
  status.replaceChildren("Audit log: ", v ? el("span", { class: v.ok ? "ok" : "bad", text: v.summary }) : "none");
  status.dataset.ok = v ? String(v.ok) : "";
}

function showKept(event) {
  const kept = event.kept, p = event.privacy || {};
  const to = (kept.recipients || []).map((r) => `${r.name} (${r.relation})`).join(", ");
  const who = kept.writer ? `Written as ${kept.writer}${to ? ` to ${to}` : ""}. ` : "";
  const list = el("ul", { class: "kept-list", "aria-label": "Memories used as private context" },
    ...kept.memories.map((m) => el("li", { text: m })));
  $("kept").replaceChildren(
    el("p", { text: `${who}${kept.memories.length} ${kept.memories.length === 1 ? "memory" : "memories"} (${kept.characters} characters of private context) steered the answer; never sent.` }),
    list,
    el("p", { text: `Spans kept on the device: ${p.spans_kept_local ?? 0}; replaced by placeholders: ${p.spans_pseudonymized ?? 0}; payloads refused by the guard: ${p.payloads_refused ?? 0}.` }),
    el("p", { id: "lift-kept", text: `Tokens kept on the device for their context lift: ${p.tokens_kept_for_lift ?? 0}${(kept.lift || []).length ? ` (${kept.lift.map((t) => JSON.stringify(t.trim())).join(", ")})` : ""}; context lift that left: ${(p.context_lift_sent ?? 0).toFixed(1)} nats, at most ${(p.max_context_lift_sent ?? 0).toFixed(1)} for one token.` }));
}

// -- tabs ----------------------------------------------------------------------------------------

function selectTab(tab) {
  for (const other of document.querySelectorAll("[role=tab]")) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  tab.focus();
  if (tab.id === "tab-egress") refreshEgress();
}

function tabKeys(event) {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  const i = tabs.indexOf(event.target);
  const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[event.key];
  if (next === undefined) return;
  event.preventDefault();
  selectTab(tabs[(next + tabs.length) % tabs.length]);
}

// -- start ---------------------------------------------------------------------------------------

async function start() {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", tabKeys);
  }
  $("chat-form").addEventListener("submit", sendMessage);
  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("chat-form").requestSubmit(); }
  });
  $("memory-form").addEventListener("submit", addMemory);
  $("search-form").addEventListener("submit", searchMemories);
  $("show-all").addEventListener("click", () => attempt(loadMemories));
  $("forget-form").addEventListener("submit", forgetUser);
  $("persona-form").addEventListener("submit", savePersona);
  $("add-person").addEventListener("click", addPerson);
  await attempt(async () => {
    const info = await api("GET", "/api/info");
    state.user = info.user;
    $("info").textContent = `${info.models}; memories of ${info.user}; drafts travel as ${info.wire} to ${info.cloud}.`;
    await loadMemories();
  });
  await refreshEgress();
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);
