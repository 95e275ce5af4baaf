// waitpoint's pages work without this script; it adds copy buttons, "select every row", tag
// suggestions as one types, and live updates: open pages listen to /events and fetch
// themselves again when what they show changes, replacing the parts marked data-refresh.
(() => {
  "use strict";

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button || !navigator.clipboard) return;
    navigator.clipboard.writeText(button.dataset.copy).then(() => {
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = label; }, 1200);
    });
  });

  document.addEventListener("change", (event) => {
    if (!event.target.matches("[data-select-all]")) return;
    const form = event.target.closest("form");
    form.querySelectorAll('input[type="checkbox"][name="id"]').forEach((box) => { box.checked = event.target.checked; });
  });

  const tagInput = document.querySelector("[data-tag-input]");
  const suggestions = document.getElementById("tag-suggestions");
  if (tagInput && suggestions) {
    let asked = null;
    tagInput.addEventListener("input", () => {
      const parts = tagInput.value.split(",");
      const prefix = parts[parts.length - 1].trim();
      if (prefix === asked) return;
      asked = prefix;
      fetch("/tokens/tags?prefix=" + encodeURIComponent(prefix), { credentials: "same-origin" })
        .then((response) => (response.ok ? response.json() : []))
        .then((tags) => {
          if (asked !== prefix) return;
          const before = parts.slice(0, -1).map((t) => t.trim()).filter(Boolean);
          suggestions.replaceChildren(...tags.map((tag) => {
            const option = document.createElement("option");
            option.value = before.concat([tag]).join(",");
            return option;
          }));
        });
    });
  }

  const main = document.querySelector("main[data-live]");
  if (!main || !window.EventSource) return;
  const live = main.dataset.live;
  const wants = (kind, change) => {
    if (live === "overview") return true;
    if (live === "tokens") return kind === "token";
    if (live === "runs") return kind === "run";
    if (live.startsWith("token:")) return (kind === "token" && change.id === live.slice(6)) || kind === "run";
    if (live.startsWith("run:")) return kind === "run" && change.id === live.slice(4);
    return false;
  };

  let scheduled = null;
  let running = false;
  let again = false;
  const refresh = async () => {
    if (running) { again = true; return; }
    running = true;
    try {
      const response = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!response.ok || response.redirected) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      document.querySelectorAll("[data-refresh]").forEach((part) => {
        // Not `part.id`: on a form, that is the field named "id".
        const replacement = fresh.getElementById(part.getAttribute("id"));
        if (!replacement) return;
        if (part.dataset.refresh === "state" && part.dataset.state === replacement.dataset.state) return;
        const checked = new Set([...part.querySelectorAll('input[type="checkbox"]:checked')].map((box) => box.value));
        const typed = new Map([...part.querySelectorAll("textarea[name]")].map((area) => [area.name, area.value]));
        replacement.querySelectorAll('input[type="checkbox"]').forEach((box) => { box.checked = checked.has(box.value); });
        replacement.querySelectorAll("textarea[name]").forEach((area) => {
          if (typed.has(area.name)) area.value = typed.get(area.name);
        });
        part.replaceWith(document.adoptNode(replacement));
      });
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    } finally {
      running = false;
      if (again) { again = false; schedule(); }
    }
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = setTimeout(() => { scheduled = null; refresh(); }, 150);
  };

  const source = new EventSource("/events");
  const listen = (kind) => source.addEventListener(kind, (event) => {
    let change = {};
    try { change = JSON.parse(event.data); } catch (_) { return; }
    if (wants(kind, change)) schedule();
  });
  listen("token");
  listen("run");
  source.addEventListener("lagged", schedule);
  // What changed between the page's rendering and the stream's (re)connection was not heard:
  // fetch the page once more.
  source.addEventListener("open", () => {
    document.body.dataset.live = "connected";
    schedule();
  });
})();
