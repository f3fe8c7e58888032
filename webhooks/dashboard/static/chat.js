// "Try it": posts a message to the streaming chat API and renders the reply token by
// token as the server-sent events arrive.
(function () {
  const chat = document.getElementById("chat");
  const form = document.getElementById("chat-form");
  const input = document.getElementById("chat-text");
  const send = document.getElementById("chat-send");
  const state = document.getElementById("chat-state");
  const messages = document.getElementById("messages");
  const key = `wabot-chat-${chat.dataset.builder}`;
  // The conversation lives in the URL (the server renders its history on a reload) and
  // in localStorage (coming back to "Try it" continues it); `?new=1` starts another.
  const starting = new URLSearchParams(location.search).has("new");
  let conversationId = chat.dataset.conversation;
  if (!conversationId) {
    const stored = localStorage.getItem(key);
    if (stored && !starting) {
      location.replace(`?conversation=${encodeURIComponent(stored)}`);
      return;
    }
    // randomUUID exists only on HTTPS (and localhost) pages.
    const fresh = crypto.randomUUID
      ? crypto.randomUUID()
      : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
    conversationId = `web-${fresh}`;
    history.replaceState(null, "", `?conversation=${encodeURIComponent(conversationId)}`);
  }
  localStorage.setItem(key, conversationId);
  messages.lastElementChild?.scrollIntoView({ block: "end" });

  // Enter sends; Shift+Enter (or Enter while composing an accented letter) is a newline.
  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    if (!send.disabled) form.requestSubmit();
  });

  function bubble(role, text) {
    const entry = document.createElement("div");
    entry.className = `entry entry-${role}`;
    const body = document.createElement("div");
    body.className = `bubble ${role}`;
    body.textContent = text;
    entry.appendChild(body);
    messages.appendChild(entry);
    return body;
  }

  function chip(name, args) {
    const entry = document.createElement("div");
    entry.className = "entry entry-tool";
    const details = document.createElement("details");
    details.className = "chip";
    const summary = document.createElement("summary");
    summary.textContent = `⚙ ${name}`;
    const pre = document.createElement("pre");
    pre.textContent = args || "";
    details.append(summary, pre);
    entry.appendChild(details);
    messages.insertBefore(entry, messages.lastElementChild);
    return pre;
  }

  function* events(buffer) {
    let boundary;
    while ((boundary = buffer.text.indexOf("\n\n")) >= 0) {
      const block = buffer.text.slice(0, boundary);
      buffer.text = buffer.text.slice(boundary + 2);
      let kind = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      yield { kind, data: data ? JSON.parse(data) : {} };
    }
  }

  form.addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    const message = input.value.trim();
    if (!message) return;
    input.value = "";
    send.disabled = true;
    state.textContent = "…";
    bubble("user", message);
    const reply = bubble("assistant", "");
    reply.classList.add("streaming");
    const calls = {};
    try {
      const response = await fetch(`/api/chat/${chat.dataset.builder}`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": chat.dataset.csrf },
        body: JSON.stringify({ conversation_id: conversationId, message }),
      });
      if (!response.ok) {
        const problem = await response.json().catch(() => ({ error: response.statusText }));
        throw new Error(problem.error || response.statusText);
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      const buffer = { text: "" };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer.text += value;
        for (const event of events(buffer)) {
          if (event.kind === "delta") reply.textContent += event.data.text;
          else if (event.kind === "tool_call") calls[event.data.call_id] = chip(event.data.name, event.data.arguments);
          else if (event.kind === "tool_output" && calls[event.data.call_id]) calls[event.data.call_id].textContent += `\n→ ${event.data.output}`;
          else if (event.kind === "done") { reply.textContent = event.data.reply; state.textContent = ""; }
          else if (event.kind === "error") throw new Error(event.data.message);
        }
      }
    } catch (error) {
      state.textContent = `Error: ${error.message}`;
      reply.parentElement.remove();
    } finally {
      reply.classList.remove("streaming");
      send.disabled = false;
      input.focus();
    }
  });
})();
