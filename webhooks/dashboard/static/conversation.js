// Keeps an open conversation current: every 2 s one request (`/updates`, one database
// statement) brings the entries after the newest shown and the messages still waiting;
// earlier pages load on demand. Both come as server-rendered fragments.
(function () {
  const section = document.getElementById("conversation");
  const entries = document.getElementById("entries");
  if (!section || !entries) return;
  const base = `/sessions/${section.dataset.session}`;

  function sequences() {
    const shown = entries.querySelectorAll("[data-sequence]");
    if (!shown.length) return { first: null, last: -1 };
    return {
      first: Number(shown[0].dataset.sequence),
      last: Number(shown[shown.length - 1].dataset.end),
    };
  }

  // Messages not yet in the history: replaced whole on every update, read in the same
  // statement as the entries (a message a turn just stored is in one or the other, never
  // both or neither).
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

  function showWaiting(html, count) {
    if (!waiting) return;
    entries.querySelectorAll(":scope > .entry.waiting").forEach((node) => node.remove());
    waiting.innerHTML = html;
    placeWaiting();
    if (badge) {
      badge.textContent = `${count} waiting`;
      badge.hidden = count === 0;
    }
  }

  async function update() {
    let more = false;
    try {
      const response = await fetch(`${base}/updates?after=${sequences().last}`, {
        credentials: "same-origin",
      });
      if (!response.ok) return;
      const got = await response.json();
      if (got.entries.trim()) entries.insertAdjacentHTML("beforeend", got.entries);
      showWaiting(got.waiting, got.waiting_count);
      more = got.more;
    } finally {
      setTimeout(update, more ? 0 : 2000);
    }
  }

  const earlier = document.getElementById("earlier");
  if (earlier) {
    earlier.addEventListener("click", async () => {
      const response = await fetch(`${base}/entries?before=${sequences().first}`, {
        credentials: "same-origin",
      });
      if (!response.ok) return;
      entries.insertAdjacentHTML("afterbegin", await response.text());
      if (response.headers.get("X-More") !== "1") earlier.remove();
    });
  }
  if (waiting) placeWaiting();
  setTimeout(update, 2000);
})();
