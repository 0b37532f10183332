/* Atlas Stream dashboard: a small single-page app over the JSON endpoints (vanilla JS, offline). */
"use strict";
(() => {
  const OUTCOMES = ["gold", "silver", "bronze", "rejected", "dlq"];
  const EVENT_TYPES = ["schema.registered", "schema.refused", "schema.drift", "schema.config", "file.ingested",
    "poller.error", "sink.commit"];
  const params = new URLSearchParams(location.search);
  const EVERY = Math.max(1, Math.min(300, Number(params.get("refresh")) || 5));
  const main = document.getElementById("main");
  const state = { events: { type: "", source: "", limit: 50, offset: 0 }, schema: { subject: "", from: "", to: "" },
    monitoring: { subject: "", minutes: 60 } };
  document.getElementById("every").textContent = String(EVERY);

  /* ---- helpers: elements are built with textContent only (data comes from topics) ---- */
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  const fmt = n => (n === null || n === undefined) ? "–" : Number(n).toLocaleString("en-US");
  const pct = (n, total) => total ? (100 * n / total).toFixed(1) + "%" : "0.0%";
  const when = iso => iso ? new Date(iso).toLocaleString() : "never";
  async function getJSON(url) {
    const r = await fetch(url, { cache: "no-store" });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || body.message || `HTTP ${r.status}`);
    return body;
  }
  function card(label, value, testid) {
    return h("div", { class: "card" }, h("div", { class: "label" }, label),
      h("div", { class: "value", "data-testid": testid }, value));
  }
  function table(headers, rows, attrs) {
    return h("div", { class: "scroll" }, h("table", attrs || {},
      h("thead", {}, h("tr", {}, headers.map(x => h("th", { class: /^(Total|Rows|Lag|Count|Gold|Silver|Bronze|Rejected|DLQ|Records|Share|Versions)/.test(x) ? "num" : null }, x)))),
      h("tbody", {}, rows)));
  }
  function legend(tiers) {
    return h("div", { class: "legend" }, tiers.map(t => h("span", {}, h("i", { class: `t-${t}` }), t)));
  }
  function tierBar(tiers, total) {
    return h("div", { class: "bar", role: "img", "aria-label": "tier distribution" },
      OUTCOMES.filter(t => tiers[t]).map(t => h("span", { class: `t-${t}`, style: `width:${100 * tiers[t] / total}%`,
        title: `${t}: ${tiers[t]}` })));
  }
  function setHealth(meta) {
    const el = document.getElementById("health");
    if (!meta) { el.className = "badge bad"; el.textContent = "unreachable"; return; }
    const ok = meta.complete;
    el.className = "badge " + (ok ? "ok" : "warn");
    el.textContent = ok ? `healthy · ${meta.workers.length} worker(s)` :
      `partial · missing partitions ${meta.missing_partitions.join(", ") || "none"}` +
      (meta.recovering.length ? " · recovering" : "");
  }
  function lastMinuteRate(windows) {
    // The newest complete minute (the current one is still filling).
    return windows.length > 1 ? windows[windows.length - 2].total : (windows[0] || { total: 0 }).total;
  }

  /* ---- pages: mount() builds the frame once, update() refreshes the data ---- */
  const pages = {};

  pages.home = {
    mount() { main.replaceChildren(h("div", { id: "home" }, h("p", { class: "muted" }, "loading…"))); },
    async update() {
      const s = await getJSON("/stats/?minutes=15");
      setHealth(s);
      const t = s.totals, total = t.total;
      const rows = s.datasets.map(d => h("tr", { "data-subject": d.subject },
        h("td", {}, d.subject),
        h("td", { class: "num", "data-field": "total" }, fmt(d.total)),
        OUTCOMES.map(x => h("td", { class: "num", "data-field": x }, fmt(d.tiers[x]))),
        h("td", { class: "hide-narrow" }, when(d.last_seen))));
      document.getElementById("home").replaceChildren(
        h("h2", {}, "Health and throughput"),
        h("div", { class: "cards" },
          card("Status", s.complete ? "healthy" : "partial", "status"),
          card("Workers", String(s.workers.length), "workers"),
          card("Records (all time)", fmt(total), "total"),
          card("Last full minute", fmt(lastMinuteRate(t.minutes)) + " /min", "rate"),
          card("Gold share", pct(t.tiers.gold, total), "gold-share")),
        h("div", { class: "panel" }, h("h2", {}, "Tier distribution"), tierBar(t.tiers, total || 1),
          legend(OUTCOMES),
          table(["Tier", "Records", "Share"], OUTCOMES.map(x => h("tr", { "data-tier": x }, h("td", {}, x),
            h("td", { class: "num", "data-testid": `tier-${x}` }, fmt(t.tiers[x])),
            h("td", { class: "num" }, pct(t.tiers[x], total)))))),
        h("div", { class: "panel" }, h("h2", {}, "Datasets"),
          table(["Dataset", "Total", "Gold", "Silver", "Bronze", "Rejected", "DLQ", "Last record"], rows,
            { "data-testid": "datasets" })));
    },
  };

  pages.monitoring = {
    mount() {
      const m = state.monitoring;
      main.replaceChildren(h("div", { class: "row" },
        h("label", {}, "Dataset", h("select", { id: "mon-subject", onchange: e => { m.subject = e.target.value; refresh(); } },
          h("option", { value: "" }, "all datasets"))),
        h("label", {}, "Window", h("select", { id: "mon-minutes", onchange: e => { m.minutes = +e.target.value; refresh(); } },
          [15, 30, 60, 120].map(n => h("option", { value: n, selected: n === m.minutes }, `${n} minutes`))))),
        h("div", { id: "monitoring" }, h("p", { class: "muted" }, "loading…")));
    },
    async update() {
      const m = state.monitoring;
      const s = await getJSON(`/stats/?minutes=${m.minutes}`);
      setHealth(s);
      const select = document.getElementById("mon-subject");
      if (select.options.length !== s.datasets.length + 1) {
        select.replaceChildren(h("option", { value: "" }, "all datasets"),
          s.datasets.map(d => h("option", { value: d.subject, selected: d.subject === m.subject }, d.subject)));
      }
      const chosen = m.subject ? s.datasets.find(d => d.subject === m.subject) : null;
      const windows = chosen ? chosen.minutes : s.totals.minutes;
      const failures = {};
      for (const d of (chosen ? [chosen] : s.datasets)) for (const [k, n] of Object.entries(d.failures)) failures[k] = (failures[k] || 0) + n;
      document.getElementById("monitoring").replaceChildren(
        h("div", { class: "grid2" },
          h("div", { class: "panel" }, h("h2", {}, "Throughput (records per minute)"), legend(OUTCOMES),
            Charts.stacked(windows, OUTCOMES, { percent: false })),
          h("div", { class: "panel" }, h("h2", {}, "Tier shares over time"), legend(OUTCOMES),
            Charts.stacked(windows, OUTCOMES, { percent: true }))),
        h("div", { class: "panel" }, h("h2", {}, "Failures per check"),
          Object.keys(failures).length ? table(["Check", "Count"], Object.entries(failures).sort((a, b) => b[1] - a[1])
            .map(([k, n]) => h("tr", { "data-check": k }, h("td", {}, k), h("td", { class: "num" }, fmt(n)))),
            { "data-testid": "failures" }) : h("p", { class: "muted" }, "no failed checks")));
    },
  };

  pages.sources = {
    mount() { main.replaceChildren(h("div", { id: "sources" }, h("p", { class: "muted" }, "loading…"))); },
    async update() {
      const s = await getJSON("/sources/");
      setHealth(s);
      const cls = st => st === "running" || st === "idle" ? "ok" : st === "stopped" ? "" : "bad";
      document.getElementById("sources").replaceChildren(h("h2", {}, `Data sources (${s.sources.length})`),
        s.sources.length ? h("div", { class: "panel" }, table(["Source", "Kind", "State", "Last poll", "Rows", "Lag", "Last error"],
          s.sources.map(x => h("tr", { "data-source": x.source }, h("td", {}, x.source), h("td", {}, x.kind || "–"),
            h("td", {}, h("span", { class: `badge ${cls(x.state)}` }, x.state)), h("td", {}, when(x.last_poll)),
            h("td", { class: "num", "data-field": "rows" }, fmt(x.rows)), h("td", { class: "num" }, fmt(x.lag)),
            h("td", {}, x.last_error ? h("code", {}, x.last_error) : "–"))), { "data-testid": "sources" }))
          : h("p", { class: "muted" }, "No source has reported yet (gateway and pollers report every 10 s)."));
    },
  };

  pages.schemas = {
    mount() { main.replaceChildren(h("div", { id: "schemas" }, h("p", { class: "muted" }, "loading…"))); },
    async update() {
      const st = state.schema;
      const [reg, stats] = await Promise.all([getJSON("/schemas/"), getJSON("/stats/?minutes=1")]);
      setHealth(stats);
      const subjects = reg.subjects;
      if (!st.subject && subjects.length) st.subject = subjects[0].subject;
      const current = subjects.find(x => x.subject === st.subject);
      const drift = (stats.datasets.find(d => d.subject === st.subject) || { drift: {} }).drift;
      const list = table(["Subject", "Compatibility", "Versions"], subjects.map(x => h("tr", { "data-subject": x.subject },
        h("td", {}, h("a", { href: "#/schemas", onclick: e => { e.preventDefault(); st.subject = x.subject; st.from = st.to = ""; refresh(); } }, x.subject)),
        h("td", {}, x.compatibility), h("td", { class: "num", "data-field": "versions" }, x.versions.length))),
        { "data-testid": "subjects" });
      const parts = [h("div", { class: "panel" }, h("h2", {}, `Subjects (${subjects.length})`), list)];
      if (current) {
        const versions = current.versions;
        const to = st.to || String(versions[versions.length - 1]);
        const from = st.from || String(Math.max(1, Number(to) - 1));
        const enc = encodeURIComponent(current.subject);
        const [ver, diff] = await Promise.all([getJSON(`/schemas/subjects/${enc}/versions/${to}/features`),
          getJSON(`/schemas/subjects/${enc}/diff?from=${from}&to=${to}`)]);
        const pick = (id, value, key) => h("select", { id, onchange: e => { st[key] = e.target.value; refresh(); } },
          versions.map(v => h("option", { value: v, selected: String(v) === value }, `version ${v}`)));
        const fields = ver.features;
        parts.push(h("div", { class: "panel" }, h("h2", {}, `${current.subject}: version ${ver.version}`),
          h("p", { class: "muted" }, `mode ${current.compatibility} · registered ${when(ver.registered_at)} · schema id ${ver.id} · fingerprint ${ver.fingerprint.slice(0, 12)}…`),
          table(["Field", "Type", "Required", "Constraints"], fields.map(f => h("tr", {}, h("td", {}, f.name), h("td", {}, f.dtype),
            h("td", {}, f.required ? "yes" : "no"),
            h("td", {}, h("code", {}, Object.entries(f).filter(([k]) => !["name", "dtype", "required"].includes(k))
              .map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" "))))), { "data-testid": "fields" })),
          h("div", { class: "panel" }, h("h2", {}, "Diff between versions"),
            h("div", { class: "row" }, h("label", {}, "From", pick("diff-from", from, "from")), h("label", {}, "To", pick("diff-to", to, "to"))),
            diff.changes.length ? table(["Field", "Change", "Before", "After"], diff.changes.map(c => h("tr", { class: c.change },
              h("td", {}, c.field), h("td", {}, c.change + (c.attribute ? ` (${c.attribute})` : "")),
              h("td", {}, h("code", {}, c.old === undefined ? "" : JSON.stringify(c.old))),
              h("td", {}, h("code", {}, c.new === undefined ? "" : JSON.stringify(c.new))))), { "data-testid": "diff" })
              : h("p", { class: "muted", "data-testid": "diff" }, from === to ? "Same version." : "No differences.")),
          h("div", { class: "panel" }, h("h2", {}, "Drift: fields outside the schema"),
            Object.keys(drift).length ? table(["Field", "Records"], Object.entries(drift).map(([k, n]) =>
              h("tr", { "data-drift": k }, h("td", {}, k), h("td", { class: "num" }, fmt(n)))), { "data-testid": "drift" })
              : h("p", { class: "muted", "data-testid": "drift" }, "No drift seen.")));
      }
      document.getElementById("schemas").replaceChildren(...parts);
    },
  };

  pages.events = {
    mount() {
      const ev = state.events;
      const go = () => { ev.offset = 0; refresh(); };
      main.replaceChildren(h("div", { class: "row" },
        h("label", {}, "Type", h("select", { id: "ev-type", onchange: e => { ev.type = e.target.value; go(); } },
          h("option", { value: "" }, "all types"), EVENT_TYPES.map(t => h("option", { value: t, selected: t === ev.type }, t)))),
        h("label", {}, "Source", h("input", { id: "ev-source", value: ev.source, placeholder: "e.g. group.dataset", maxlength: 200,
          onchange: e => { ev.source = e.target.value.trim(); go(); } })),
        h("label", {}, "Per page", h("select", { id: "ev-limit", onchange: e => { ev.limit = +e.target.value; go(); } },
          [20, 50, 100, 200].map(n => h("option", { value: n, selected: n === ev.limit }, n))))),
        h("div", { id: "events" }, h("p", { class: "muted" }, "loading…")));
    },
    async update() {
      const ev = state.events;
      const q = new URLSearchParams({ limit: ev.limit, offset: ev.offset });
      if (ev.type) q.set("type", ev.type);
      if (ev.source) q.set("source", ev.source);
      const s = await getJSON(`/events/?${q}`);
      setHealth(s);
      const details = e => Object.entries(e).filter(([k]) => !["type", "source", "time", "partition", "offset"].includes(k))
        .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join("\n");
      const last = Math.min(s.total, ev.offset + s.events.length);
      document.getElementById("events").replaceChildren(
        h("div", { class: "row" },
          h("button", { id: "ev-prev", disabled: ev.offset === 0, onclick: () => { ev.offset = Math.max(0, ev.offset - ev.limit); refresh(); } }, "‹ newer"),
          h("span", { "data-testid": "events-range" }, s.total ? `${ev.offset + 1}–${last} of ` : "0 of ",
            h("span", { "data-testid": "events-total" }, String(s.total))),
          h("button", { id: "ev-next", disabled: last >= s.total, onclick: () => { ev.offset += ev.limit; refresh(); } }, "older ›")),
        h("div", { class: "panel" }, table(["Time", "Type", "Source", "Details"], s.events.map(e => h("tr", { "data-type": e.type },
          h("td", {}, when(e.time)), h("td", {}, e.type), h("td", {}, e.source || "–"), h("td", {}, h("pre", {}, details(e))))),
          { "data-testid": "events" })));
    },
  };

  /* ---- routing and refresh ---- */
  let current = null, timer = null, busy = false, again = false;
  function route() {
    const name = (location.hash.replace(/^#\/?/, "") || "home").split("?")[0];
    current = pages[name] ? name : "home";
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === current);
    pages[current].mount();
    refresh();
  }
  async function refresh() {
    if (busy) { again = true; return; }  // a newer request (page or filter change) runs right after
    busy = true;
    again = false;
    clearTimeout(timer);
    const page = current;
    try {
      await pages[page].update();
      document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
      if (page === current) document.body.dataset.loaded = page;
    } catch (err) {
      setHealth(null);
      document.getElementById("updated").textContent = `update failed: ${err.message}`;
    } finally {
      busy = false;
      timer = setTimeout(refresh, again ? 0 : EVERY * 1000);
    }
  }
  window.addEventListener("hashchange", route);
  route();
})();
