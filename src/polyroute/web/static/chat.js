// The chatroom: one prompt to up to four models, replies streamed side by side from the public
// chat API (POST /api/v1/chat/completions) with a session-scoped key; conversations live in
// localStorage and can be exported and imported as JSON.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const CSRF = $("csrf-token").content;
  const STORE = "polyroute.conversations";
  const KEY_STORE = "polyroute.chatKey";
  const running = new Map(); // model id -> AbortController
  let conversations = load();
  let current = conversations[0] || null;

  function load() {
    try { const found = JSON.parse(localStorage.getItem(STORE) || "[]"); return Array.isArray(found) ? found : []; }
    catch (error) { return []; }
  }
  function save() { localStorage.setItem(STORE, JSON.stringify(conversations)); }
  function newId() { return `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`; }
  function modelName(id) {
    const option = document.querySelector(`#model-0 option[value="${CSS.escape(id)}"]`);
    return option ? option.textContent : id;
  }
  function selectedModels() {
    const ids = [...document.querySelectorAll(".model-pick")].map((s) => s.value).filter(Boolean);
    return [...new Set(ids)];
  }
  function status(text) { $("chat-status").textContent = text; }

  // One mint at a time: every column streams at once, and each mint revokes the previous key, so two
  // columns minting together left one of them with a revoked key ("Invalid API key"). A column that
  // got a 401 asks for a new key only if the stored one is still the key that failed.
  let minting = null;
  async function chatKey(renew, failed) {
    const key = sessionStorage.getItem(KEY_STORE);
    if (key && !(renew && key === failed)) return key;
    if (!minting) minting = mintChatKey().finally(() => { minting = null; });
    return minting;
  }
  async function mintChatKey() {
    const response = await fetch("/chat/key", { method: "POST", headers: { "X-CSRF-Token": CSRF }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`could not get a chat key (HTTP ${response.status})`);
    const key = (await response.json()).key;
    sessionStorage.setItem(KEY_STORE, key);
    return key;
  }

  function columnModels() {
    const last = current && current.turns[current.turns.length - 1];
    return last ? Object.keys(last.replies) : selectedModels();
  }

  function metaText(reply) {
    const parts = [];
    if (reply.tokens_out !== undefined) parts.push(`${reply.tokens_in} in · ${reply.tokens_out} out tokens`);
    if (reply.cost !== undefined) parts.push(`$${Number(reply.cost).toFixed(8).replace(/0+$/, "").replace(/\.$/, "")}`);
    if (reply.latency_ms !== undefined) parts.push(`latency ${reply.latency_ms} ms`);
    if (reply.ttft_ms !== undefined) parts.push(`TTFT ${reply.ttft_ms} ms`);
    parts.push(reply.status);
    return parts;
  }

  function drawReply(element, reply) {
    element.dataset.status = reply.status;
    const body = element.querySelector(".reply");
    body.innerHTML = PolyMarkdown.render(reply.text || "");
    if (reply.error) body.insertAdjacentHTML("beforeend", `<p class="error-text">${PolyMarkdown.escape(String(reply.error))}</p>`);
    const meta = element.querySelector(".meta");
    meta.replaceChildren(...metaText(reply).map((text) => Object.assign(document.createElement("span"), { textContent: text })));
  }

  function draw() {
    const columns = $("columns");
    columns.replaceChildren();
    if (!current) return;
    columnModels().forEach((model, index) => {
      const column = document.createElement("section");
      column.className = "column";
      column.dataset.model = model;
      column.setAttribute("aria-labelledby", `col-title-${index}`);
      column.innerHTML = `<header><h2 id="col-title-${index}"></h2><button type="button" class="secondary small stop">Stop<span class="visually-hidden"></span></button></header>`;
      column.querySelector("h2").textContent = modelName(model);
      column.querySelector(".stop .visually-hidden").textContent = ` ${modelName(model)}`;
      column.querySelector(".stop").addEventListener("click", () => running.get(model)?.abort());
      current.turns.forEach((turn, turnIndex) => {
        const reply = turn.replies[model];
        if (!reply) return;
        const element = document.createElement("article");
        element.className = "turn";
        element.id = `turn-${turnIndex}-${index}`;
        element.innerHTML = '<p class="you"></p><div class="reply"></div><p class="meta"></p>';
        element.querySelector(".you").textContent = turn.prompt;
        drawReply(element, reply);
        column.appendChild(element);
      });
      columns.appendChild(column);
    });
  }

  function refreshList() {
    const select = $("conversation");
    select.replaceChildren(...conversations.map((c) => new Option(c.title, c.id, false, current && c.id === current.id)));
  }

  function newConversation() {
    current = { id: newId(), title: "New conversation", created: new Date().toISOString(), system: $("system").value, turns: [] };
    conversations.unshift(current);
    save(); refreshList(); draw();
  }

  function messagesFor(model, turn) {
    const messages = [];
    const system = $("system").value.trim();
    if (system) messages.push({ role: "system", content: system });
    for (const earlier of current.turns) {
      if (earlier === turn) break;
      const reply = earlier.replies[model];
      if (!reply || !reply.text) continue;
      messages.push({ role: "user", content: earlier.prompt }, { role: "assistant", content: reply.text });
    }
    messages.push({ role: "user", content: turn.prompt });
    return messages;
  }

  async function post(model, turn, key, signal) {
    const body = {
      model, stream: true, messages: messagesFor(model, turn),
      temperature: Number($("temperature").value), max_tokens: Number($("max-tokens").value),
    };
    return fetch("/api/v1/chat/completions", {
      method: "POST", signal, credentials: "omit",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}`, "X-Title": "polyroute chatroom" },
      body: JSON.stringify(body),
    });
  }

  function handleEvent(event, reply, started, element) {
    for (const line of event.split("\n")) {
      if (!line.startsWith("data: ")) continue;
      const data = line.slice(6);
      if (data === "[DONE]") continue;
      const chunk = JSON.parse(data);
      reply.id = chunk.id;
      const text = chunk.choices && chunk.choices[0] && chunk.choices[0].delta && chunk.choices[0].delta.content;
      if (text) {
        if (reply.ttft_ms === undefined) reply.ttft_ms = Math.round(performance.now() - started);
        reply.text += text;
      }
      if (chunk.usage) {
        reply.tokens_in = chunk.usage.prompt_tokens; reply.tokens_out = chunk.usage.completion_tokens; reply.cost = chunk.usage.cost;
      }
      if (chunk.error) { reply.status = "error"; reply.error = chunk.error.message; }
    }
    drawReply(element, reply);
  }

  async function stream(model, turn, element) {
    const reply = turn.replies[model];
    const controller = new AbortController();
    running.set(model, controller);
    const started = performance.now();
    try {
      const key = await chatKey(false);
      let response = await post(model, turn, key, controller.signal);
      if (response.status === 401) response = await post(model, turn, await chatKey(true, key), controller.signal);
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        reply.status = "error";
        reply.error = (body.error && body.error.message) || `HTTP ${response.status}`;
        return;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          handleEvent(buffer.slice(0, end), reply, started, element);
          buffer = buffer.slice(end + 2);
        }
      }
      if (reply.status === "streaming") reply.status = "done";
    } catch (error) {
      reply.status = error.name === "AbortError" ? "stopped" : "error";
      if (reply.status === "error") reply.error = String(error.message || error);
    } finally {
      reply.latency_ms = Math.round(performance.now() - started);
      running.delete(model);
      drawReply(element, reply);
      save();
    }
  }

  async function send(event) {
    event.preventDefault();
    const models = selectedModels();
    const prompt = $("prompt").value.trim();
    if (!prompt) { status("Write a message first."); return; }
    if (!models.length) { status("Pick at least one model."); return; }
    if (running.size) { status("Wait for the replies, or stop them."); return; }
    if (!current) newConversation();
    const turn = { prompt, replies: {} };
    models.forEach((model) => { turn.replies[model] = { text: "", status: "streaming" }; });
    current.turns.push(turn);
    current.system = $("system").value;
    if (current.title === "New conversation") current.title = prompt.slice(0, 60);
    $("prompt").value = "";
    save(); refreshList(); draw();
    status(`Sending to ${models.length} model${models.length > 1 ? "s" : ""}…`);
    const turnIndex = current.turns.length - 1;
    await Promise.all(models.map((model, index) => stream(model, turn, $(`turn-${turnIndex}-${index}`))));
    status("Done.");
  }

  function exportConversation() {
    if (!current) { status("Nothing to export."); return; }
    const blob = new Blob([JSON.stringify(current, null, 2)], { type: "application/json" });
    const link = Object.assign(document.createElement("a"), { href: URL.createObjectURL(blob), download: `polyroute-${current.id}.json` });
    document.body.appendChild(link); link.click(); link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  async function importConversation(event) {
    const file = event.target.files[0];
    if (!file) return;
    try {
      const found = JSON.parse(await file.text());
      for (const conversation of Array.isArray(found) ? found : [found]) {
        if (!conversation || !Array.isArray(conversation.turns)) throw new Error("not a conversation");
        conversation.id = newId();
        conversation.title = String(conversation.title || "Imported conversation");
        conversations.unshift(conversation);
        current = conversation;
      }
      save(); refreshList(); draw(); status("Imported.");
    } catch (error) {
      status(`Could not import: ${error.message}`);
    }
    event.target.value = "";
  }

  $("chat-form").addEventListener("submit", send);
  $("stop-all").addEventListener("click", () => running.forEach((controller) => controller.abort()));
  $("new-conv").addEventListener("click", newConversation);
  $("export-conv").addEventListener("click", exportConversation);
  $("import-conv").addEventListener("change", importConversation);
  $("conversation").addEventListener("change", (event) => {
    current = conversations.find((c) => c.id === event.target.value) || current;
    if (current) $("system").value = current.system || "";
    draw();
  });
  if (current) $("system").value = current.system || "";
  refreshList(); draw();
})();
