// The sandbox chat: messages rendered as Telegram shows them, from text + entities, built as DOM nodes.
// Message text comes from agents: it only ever becomes text nodes and attribute values checked here, never markup.
(function () {
  "use strict";

  const root = document.getElementById("sandbox");
  const chat = document.getElementById("chat");
  const connection = document.getElementById("connection");
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  const bubbles = new Map(); // message_id -> element
  const pressed = new Map(); // callback query id -> button text (to show Telegram's answer as a toast)
  let version = 0;
  let replyTo = null;

  // --- entities -> DOM -------------------------------------------------------------------------------------
  const SAFE_LINK = /^(https?:|tg:|mailto:)/i;
  const BLOCK = { bold: "strong", italic: "em", underline: "u", strikethrough: "s", code: "code", pre: "pre",
                  blockquote: "blockquote", expandable_blockquote: "blockquote" };

  function element(entity) {
    if (entity.type === "text_link" || entity.type === "url" || entity.type === "email") {
      const a = document.createElement("a");
      let href = entity.href;
      if (entity.type === "url" && !/^[a-z][a-z0-9+.-]*:/i.test(href)) href = "http://" + href;
      if (entity.type === "email") href = "mailto:" + href;
      if (SAFE_LINK.test(href)) {
        a.href = href;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
      }
      return a;
    }
    const tag = BLOCK[entity.type];
    const el = document.createElement(tag || "span");
    if (!tag) el.className = entity.type;
    if (entity.type === "spoiler") el.addEventListener("click", function () { el.classList.add("shown"); });
    if (entity.type === "pre" && entity.language) el.dataset.language = entity.language;
    return el;
  }

  // Telegram's offsets count UTF-16 code units, as JavaScript strings do. Entities nest; one that crosses its
  // parent's end is cut there and continues after it.
  function build(parent, text, start, end, entities) {
    let pos = start;
    let pending = entities.slice();
    let afterBlock = false;
    function plain(to) {
      // A block (quote, pre) ends its line already: the line break after it would show as an empty line.
      let chunk = text.slice(pos, to);
      if (afterBlock && chunk.charAt(0) === "\n") chunk = chunk.slice(1);
      if (chunk) parent.appendChild(document.createTextNode(chunk));
      afterBlock = false;
    }
    while (pending.length) {
      const entity = pending.shift();
      const from = Math.max(entity.offset, pos), to = Math.min(entity.offset + entity.length, end);
      if (to <= from) continue;
      if (from > pos) plain(from);
      const inner = [], rest = [];
      pending.forEach(function (other) { (other.offset < to ? inner : rest).push(other); });
      const el = element(entity);
      build(el, text, from, to, inner);
      parent.appendChild(el);
      afterBlock = el.tagName === "BLOCKQUOTE" || el.tagName === "PRE";
      pos = to;
      inner.forEach(function (other) {
        const otherEnd = other.offset + other.length;
        if (otherEnd > to) rest.push(Object.assign({}, other, { offset: to, length: otherEnd - to }));
      });
      pending = rest.sort(order);
    }
    if (pos < end) plain(end);
  }

  function order(a, b) { return a.offset - b.offset || b.length - a.length; }

  function renderText(text, entities) {
    const fragment = document.createDocumentFragment();
    const prepared = (entities || []).map(function (e) {
      return Object.assign({ href: e.url || text.slice(e.offset, e.offset + e.length) }, e);
    }).sort(order);
    build(fragment, text, 0, text.length, prepared);
    return fragment;
  }

  // --- messages --------------------------------------------------------------------------------------------
  function bubble(record) {
    const m = record.message;
    const el = document.createElement("div");
    el.className = "msg" + (record.outgoing ? " bot" : " me") + (record.deleted ? " deleted" : "");
    el.dataset.messageId = String(m.message_id);
    if (m.reply_to_message) {
      const quote = document.createElement("div");
      quote.className = "quote";
      quote.textContent = (m.reply_to_message.text || m.reply_to_message.caption || "").slice(0, 120);
      el.appendChild(quote);
    }
    const body = document.createElement("div");
    body.className = "text";
    if (record.deleted) body.textContent = "message deleted";
    else if (m.text != null) body.appendChild(renderText(m.text, m.entities));
    else if (m.caption != null) body.appendChild(renderText(m.caption, m.caption_entities));
    else body.textContent = m.document ? "📎 " + (m.document.file_name || "document") : m.photo ? "🖼 photo" : "";
    el.appendChild(body);
    const rows = !record.deleted && m.reply_markup && m.reply_markup.inline_keyboard;
    if (rows && rows.length) el.appendChild(keyboard(m.message_id, rows));
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = (m.edit_date ? "edited " : "") + new Date((m.edit_date || m.date) * 1000).toLocaleTimeString();
    if (record.outgoing && !record.deleted) {
      const reply = document.createElement("button");
      reply.type = "button";
      reply.textContent = "reply";
      reply.addEventListener("click", function () { setReplyTo(m); });
      meta.appendChild(reply);
    }
    el.appendChild(meta);
    return el;
  }

  function keyboard(messageId, rows) {
    const box = document.createElement("div");
    box.className = "keyboard";
    rows.forEach(function (buttons) {
      const row = document.createElement("div");
      row.className = "row";
      buttons.forEach(function (b) {
        if (b.callback_data != null) {
          const button = document.createElement("button");
          button.type = "button";
          button.textContent = b.text;
          button.dataset.callback = b.callback_data;
          button.addEventListener("click", function () { press(messageId, b.callback_data, button); });
          row.appendChild(button);
        } else if (b.url && SAFE_LINK.test(b.url)) {
          const a = document.createElement("a");
          a.textContent = b.text + " ↗";
          a.href = b.url;
          a.target = "_blank";
          a.rel = "noopener noreferrer";
          row.appendChild(a);
        }
      });
      box.appendChild(row);
    });
    return box;
  }

  function show(records) {
    records.forEach(function (record) {
      const id = record.message.message_id;
      const fresh = bubble(record);
      const old = bubbles.get(id);
      if (old) chat.replaceChild(fresh, old);
      else chat.appendChild(fresh);
      bubbles.set(id, fresh);
      if (!old) fresh.scrollIntoView({ block: "nearest" });
    });
    document.getElementById("chat-empty").hidden = bubbles.size > 0;
  }

  // --- talking to the view ---------------------------------------------------------------------------------
  async function post(url, payload) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(payload),
    });
    const body = await response.json().catch(function () { return {}; });
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  async function press(messageId, data, button) {
    button.disabled = true;
    try {
      const result = await post(root.dataset.press, { message_id: messageId, data: data });
      pressed.set(result.query_id, button.textContent);
    } catch (error) {
      toast(String(error.message));
      button.disabled = false;
    }
  }

  function setReplyTo(message) {
    replyTo = message.message_id;
    const box = document.getElementById("reply-to");
    box.firstElementChild.textContent = "Replying to: " + (message.text || "").slice(0, 80);
    box.hidden = false;
  }

  document.getElementById("reply-cancel").addEventListener("click", function () {
    replyTo = null;
    document.getElementById("reply-to").hidden = true;
  });

  document.getElementById("say").addEventListener("submit", async function (event) {
    event.preventDefault();
    const input = event.target.elements.text;
    const text = input.value.trim();
    if (!text) return;
    try {
      await post(root.dataset.say, { text: text, reply_to: replyTo });
      input.value = "";
      replyTo = null;
      document.getElementById("reply-to").hidden = true;
      poll();
    } catch (error) {
      toast(String(error.message));
    }
  });

  let toastTimer = null;
  function toast(text) {
    const box = document.getElementById("toast");
    box.textContent = text;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { box.hidden = true; }, 4000);
  }

  let polling = false;
  async function poll() {
    if (polling) return;
    polling = true;
    try {
      const response = await fetch(root.dataset.messages + "?since=" + version, { credentials: "same-origin" });
      if (!response.ok) throw new Error(response.status === 403 ? "logged out: reload to log in" : response.statusText);
      const body = await response.json();
      show(body.messages);
      version = body.version;
      body.answers.forEach(function (answer) {
        if (pressed.has(answer.callback_query_id)) {
          pressed.delete(answer.callback_query_id);
          if (answer.text) toast(answer.text);
        }
      });
      connection.textContent = "live";
      connection.className = "badge live";
      root.dataset.connection = "live";
    } catch (error) {
      connection.textContent = String(error.message || "offline");
      connection.className = "badge down";
    } finally {
      polling = false;
    }
  }

  poll();
  setInterval(poll, 1000);
})();
