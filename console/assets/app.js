// dagflow console: enhancements only. Every page works without this file;
// it adds live updates of an open run, selecting a step from the graph or
// the timeline, a tooltip on the timeline's bars, and a confirmation
// before cancelling a run.
"use strict";

(function () {
  const run = document.getElementById("run");

  // Selecting a step: highlight its node and timeline row, open its details.
  function select(index, scroll) {
    document.querySelectorAll(".node.selected, .g-row.selected").forEach((el) => el.classList.remove("selected"));
    const node = document.getElementById("node-" + index);
    if (node) node.classList.add("selected");
    document.querySelectorAll('.g-row[data-index="' + index + '"]').forEach((el) => el.classList.add("selected"));
    const details = document.getElementById("step-" + index);
    if (!details) return;
    details.open = true;
    details.classList.remove("flash");
    void details.offsetWidth;
    details.classList.add("flash");
    if (scroll) details.scrollIntoView({ behavior: "smooth", block: "start" });
    history.replaceState(null, "", "#step-" + index);
  }

  document.addEventListener("click", (ev) => {
    const link = ev.target.closest('a[href^="#step-"]');
    if (!link) return;
    ev.preventDefault();
    select(link.getAttribute("href").slice("#step-".length), true);
  });

  // Cancelling a run asks first.
  document.addEventListener("submit", (ev) => {
    const button = ev.target.querySelector("button.danger");
    if (button && !window.confirm(button.textContent.trim() + "?")) ev.preventDefault();
  });

  // A tooltip for the timeline's bars, from their <title>.
  const tip = document.createElement("div");
  tip.className = "tip";
  tip.hidden = true;
  document.body.appendChild(tip);
  function prepareBars(root) {
    root.querySelectorAll("rect.bar > title").forEach((t) => {
      t.parentNode.dataset.tip = t.textContent;
      t.remove();
    });
  }
  document.addEventListener("mouseover", (ev) => {
    const bar = ev.target.closest && ev.target.closest("rect.bar");
    if (!bar || !bar.dataset.tip) return;
    tip.textContent = bar.dataset.tip;
    tip.hidden = false;
  });
  document.addEventListener("mousemove", (ev) => {
    if (tip.hidden) return;
    tip.style.left = Math.min(ev.clientX + 12, window.innerWidth - tip.offsetWidth - 8) + "px";
    tip.style.top = ev.clientY + 16 + "px";
  });
  document.addEventListener("mouseout", (ev) => {
    if (ev.target.closest && ev.target.closest("rect.bar")) tip.hidden = true;
  });
  prepareBars(document);

  const m = /^#step-(\d+)$/.exec(location.hash);
  if (m) select(m[1], false);

  if (!run || !run.dataset.live) return;

  // Live updates: the server sends an event when the run changes; the page
  // recolours the graph at once, then fetches itself and swaps in the parts
  // that changed, keeping what the reader opened.
  const liveDot = document.querySelector(".live-dot");
  if (liveDot) liveDot.hidden = false;

  function recolour(status) {
    status.steps.forEach((s, i) => {
      const node = document.getElementById("node-" + i);
      if (!node || node.dataset.state === s.state) return;
      node.classList.remove("state-" + node.dataset.state);
      node.classList.add("state-" + s.state);
      node.dataset.state = s.state;
    });
  }

  let fetching = false;
  let again = false;
  async function refresh() {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    try {
      const res = await fetch(location.pathname + location.search, { headers: { Accept: "text/html" }, cache: "no-store" });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const open = {};
      document.querySelectorAll("details[id]").forEach((d) => (open[d.id] = d.open));
      const selected = document.querySelector(".node.selected");
      doc.querySelectorAll("[data-swap]").forEach((fresh) => {
        const old = document.getElementById(fresh.id);
        if (old) old.replaceWith(document.adoptNode(fresh));
      });
      document.querySelectorAll("details[id]").forEach((d) => {
        if (d.id in open) d.open = open[d.id];
      });
      if (selected) {
        const node = document.getElementById(selected.id);
        if (node) node.classList.add("selected");
        document.querySelectorAll('.g-row[data-index="' + selected.dataset.index + '"]').forEach((el) => el.classList.add("selected"));
      }
      prepareBars(document);
      const liveNow = document.querySelector(".live-dot");
      if (liveNow) liveNow.hidden = !source;
    } catch (e) {
      // The next event tries again.
    } finally {
      fetching = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  // The first event may already differ from the page as rendered: each
  // one, the first too, brings the page up to date.
  let source = new EventSource(run.dataset.live);
  source.addEventListener("status", (ev) => {
    recolour(JSON.parse(ev.data));
    refresh();
  });
  source.addEventListener("end", () => {
    source.close();
    source = null;
    run.dataset.live = "";
    refresh();
  });
})();
