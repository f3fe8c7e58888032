// Keeps an open conversation current: polls for items after the newest shown and for
// the messages still waiting, and loads earlier pages on demand. All fetch
// server-rendered fragments.
(function () {
  const section = document.getElementById("conversation");
  const entries = document.getElementById("entries");
  if (!section || !entries) return;
  const base = `/sessions/${section.dataset.session}/entries`;

  function sequences() {
    const shown = entries.querySelectorAll("[data-sequence]");
    if (!shown.length) return { first: null, last: -1 };
    return {
      first: Number(shown[0].dataset.sequence),
      last: Number(shown[shown.length - 1].dataset.end),
    };
  }

  async function fragment(query) {
    const response = await fetch(`${base}?${query}`, { credentials: "same-origin" });
    if (!response.ok) return null;
    return { html: await response.text(), more: response.headers.get("X-More") === "1" };
  }

  // Messages not yet in the history: replaced whole, after the history caught up (a
  // message a turn just stored moves from here to the entries, never shown twice).
  const waiting = document.getElementById("waiting");
  const badge = document.getElementById("waiting-count");
  function arrival(entry) {
    const time = entry.querySelector("time");
    return time ? Date.parse(time.getAttribute("datetime")) : NaN;
  }

  // A waiting message goes before the first stored entry newer than it (a reply stored
  // while it arrived), so the page reads in arrival order; else it stays at the end.
  function placeWaiting() {
    const stored = Array.from(entries.querySelectorAll(":scope > .entry[data-sequence]"));
    for (const node of Array.from(waiting.querySelectorAll(":scope > .entry.waiting"))) {
      const arrived = arrival(node);
      const later = stored.find((entry) => arrival(entry) > arrived);
      if (later) later.before(node);
    }
  }

  async function refreshWaiting() {
    if (!waiting) return;
    const response = await fetch(`/sessions/${section.dataset.session}/waiting`, {
      credentials: "same-origin",
    });
    if (!response.ok) return;
    entries.querySelectorAll(":scope > .entry.waiting").forEach((node) => node.remove());
    waiting.innerHTML = await response.text();
    placeWaiting();
    const count = Number(response.headers.get("X-Waiting") || "0");
    if (badge) {
      badge.textContent = `${count} waiting`;
      badge.hidden = count === 0;
    }
  }

  async function poll() {
    try {
      const got = await fragment(`after=${sequences().last}`);
      if (got && got.html.trim()) entries.insertAdjacentHTML("beforeend", got.html);
      await refreshWaiting();
    } finally {
      setTimeout(poll, 2000);
    }
  }

  const earlier = document.getElementById("earlier");
  if (earlier) {
    earlier.addEventListener("click", async () => {
      const got = await fragment(`before=${sequences().first}`);
      if (!got) return;
      entries.insertAdjacentHTML("afterbegin", got.html);
      if (!got.more) earlier.remove();
    });
  }
  if (waiting) placeWaiting();
  setTimeout(poll, 2000);
})();
