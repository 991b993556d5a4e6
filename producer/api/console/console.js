// threadcast console: plain JavaScript, no build step, nothing loaded from elsewhere.
// Every piece of data comes from the HTTP API under /v1 with the key typed once and kept in
// this tab's sessionStorage (never in a URL, never in localStorage): what a key may do here
// is exactly what it may do in the API. Pages are hash routes (#/broadcasts/ID), and live
// pages poll every second (docs/CONSOLE.md says why polling, not server-sent events).
"use strict";

(function () {
  const KEY = "threadcast.key";
  const POLL_MS = 1000;
  const STATES = ["scheduled", "queued", "sending", "retrying", "sent", "failed", "unknown",
    "waiting_auth", "cancelled"];
  const WAITING = ["scheduled", "queued", "sending", "retrying", "waiting_auth"];
  const RETRYABLE = ["failed", "unknown", "cancelled", "waiting_auth"];
  const main = document.getElementById("main");
  const live = document.getElementById("live");
  let timer = null;
  let generation = 0; // bumped on every route change: late answers of an old page are dropped

  // --- small helpers -----------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else if (name === "text") el.textContent = value;
      else el.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function when(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().replace(".000Z", "Z").replace("T", " ");
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "unknown";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
    return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, "0")}h`;
  }

  function waitingOf(counts) {
    return WAITING.reduce((n, s) => n + (counts[s] || 0), 0);
  }

  function enc(text) { return encodeURIComponent(text); }

  function table(caption, heads, rows, attrs) {
    return h("table", attrs || {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col", class: /^(Sent|Failed|Unknown|Waiting|Total|Count|Cancelled|#|HTTP|Deliveries|Targets)$/.test(t) ? "num" : null }, t)))),
      h("tbody", {}, rows));
  }

  function message(text, kind) {
    return h("div", { class: `message ${kind || ""}`, role: kind === "info" || kind === "ok" ? "status" : "alert" }, text);
  }

  function announce(text) {
    if (live.textContent !== text) live.textContent = text;
  }

  // --- the API -----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, text) { super(text); this.status = status; }
  }

  function currentKey() { return sessionStorage.getItem(KEY); }

  async function call(method, path, body, raw) {
    const key = currentKey();
    if (!key) { showLogin(); throw new ApiError(401, "no key"); }
    const init = { method, headers: { Authorization: `Bearer ${key}` }, cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let answer;
    try {
      answer = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, `the threadcast API did not answer (${err.message}); is threadcast api still running?`);
    }
    if (answer.status === 401) {
      sessionStorage.removeItem(KEY);
      showLogin("That key is not valid: the API refused it (401). It has been forgotten; type a valid key.");
      throw new ApiError(401, "that key is not valid");
    }
    if (raw && answer.ok) return answer;
    let data = null;
    try { data = await answer.json(); } catch (_err) { data = null; }
    if (!answer.ok) {
      const text = data && data.error && data.error.message ? data.error.message : `the API answered ${answer.status}`;
      throw new ApiError(answer.status, text);
    }
    return data;
  }

  const get = (path) => call("GET", path);
  const post = (path, body) => call("POST", path, body);

  function failure(err, doing) {
    if (err.status === 401) return null; // the sign-in form says it
    if (err.status === 403) return message(`This key may not ${doing}. ${err.message}`);
    return message(err.message);
  }

  // --- confirmations -----------------------------------------------------------------------

  function confirmDialog(title, text, yes, no) {
    const dialog = document.getElementById("confirm");
    document.getElementById("confirm-title").textContent = title;
    document.getElementById("confirm-text").textContent = text;
    const yesButton = document.getElementById("confirm-yes");
    const noButton = document.getElementById("confirm-no");
    yesButton.textContent = yes || "";
    yesButton.hidden = !yes;
    noButton.textContent = no;
    const before = document.activeElement;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => {
        if (before && before.isConnected) before.focus();
        resolve(dialog.returnValue === "yes");
      }, { once: true });
      dialog.returnValue = "";
      dialog.showModal(); // Escape closes it (returnValue stays "": no)
      noButton.focus(); // the safe answer first
    });
  }

  // --- sign-in -----------------------------------------------------------------------------

  function showLogin(problem) {
    stopPolling();
    generation += 1;
    document.getElementById("nav").hidden = true;
    document.getElementById("forget").hidden = true;
    const input = h("input", { id: "key", name: "key", type: "password", autocomplete: "off", required: true, "aria-describedby": "key-help" });
    const form = h("form", { class: "login", onsubmit: async (event) => {
      event.preventDefault();
      const typed = input.value.trim();
      if (!typed) return;
      sessionStorage.setItem(KEY, typed);
      input.value = "";
      try {
        await get("/v1/broadcasts?limit=1");
      } catch (err) {
        if (err.status !== 401) { sessionStorage.removeItem(KEY); showLogin(err.message); }
        return;
      }
      if (!location.hash || location.hash === "#/" || location.hash === "#/login") location.hash = "#/broadcasts";
      else route();
    } },
    h("h1", {}, "Sign in with an API key"),
    problem ? message(problem) : null,
    h("p", { class: "help", id: "key-help" },
      "Type a key from THREADCAST_API_KEYS. It is kept in this browser tab only (sessionStorage) until the tab closes or you choose “Forget the key”, and it is sent only to this server, in the Authorization header. What the key may do in the API is what it may do here."),
    h("div", { class: "field" }, h("label", { for: "key" }, "API key"), input),
    h("p", {}, h("button", { type: "submit", class: "primary" }, "Use this key")));
    main.replaceChildren(form);
    document.title = "Sign in · threadcast console";
    input.focus();
  }

  document.getElementById("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    showLogin("The key was forgotten. Type a key to go on.");
  });

  // --- routing and polling -----------------------------------------------------------------

  function stopPolling() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  }

  function poll(refresh, mine) {
    const step = async () => {
      if (mine !== generation) return;
      try { await refresh(); } catch (_err) { /* the page shows its own errors */ }
      if (mine === generation) timer = setTimeout(step, POLL_MS);
    };
    timer = setTimeout(step, POLL_MS);
  }

  function page(title, ...children) {
    document.title = `${title} · threadcast console`;
    main.replaceChildren(h("h1", {}, title), ...children);
  }

  function markNav(name) {
    for (const a of document.querySelectorAll("#nav a[data-page]")) {
      if (a.dataset.page === name) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
  }

  function parse() {
    const hash = location.hash.replace(/^#\/?/, "");
    const [path, query] = hash.split("?");
    const parts = path.split("/").filter((p) => p !== "").map((p) => {
      try { return decodeURIComponent(p); } catch (_err) { return p; }
    });
    return { parts, query: new URLSearchParams(query || "") };
  }

  function route() {
    stopPolling();
    generation += 1;
    const mine = generation;
    if (!currentKey()) { showLogin(); return; }
    document.getElementById("nav").hidden = false;
    document.getElementById("forget").hidden = false;
    const { parts, query } = parse();
    const [first] = parts;
    markNav(first || "broadcasts");
    if (!first) { location.replace("#/broadcasts"); return; }
    let shown;
    if (first === "broadcasts" && parts.length === 1) shown = broadcastsPage(query, mine);
    else if (first === "broadcasts" && parts.length === 2) shown = broadcastPage(parts[1], mine);
    else if (first === "broadcasts" && parts.length === 4 && parts[2] === "deliveries") shown = attemptsPage(parts[1], parts[3], mine);
    else if (first === "schedules" && parts.length === 1) shown = schedulesPage(mine);
    else if (first === "tenants" && parts.length === 1) shown = tenantsPage(mine);
    else if (first === "health" && parts.length === 1) shown = healthPage(mine);
    else if (first === "webhooks" && parts.length === 1) shown = webhooksPage(mine);
    else {
      page("No such page", message(`The console has no page “#/${parts.join("/")}”.`),
        h("p", {}, h("a", { href: "#/broadcasts" }, "Go to the broadcasts")));
      return;
    }
    Promise.resolve(shown).catch((err) => {
      if (mine !== generation) return;
      const said = failure(err, "see this page");
      if (said) main.append(said);
    });
  }

  window.addEventListener("hashchange", () => { route(); main.focus(); });

  // Re-render a section only when its data changed; keep the keyboard focus where it was.
  function refreshSection(holder, data, render) {
    const text = JSON.stringify(data);
    if (holder.dataset.shown === text) return;
    holder.dataset.shown = text;
    const focused = holder.contains(document.activeElement) ? document.activeElement.dataset.key : null;
    holder.replaceChildren(...[render(data)].flat());
    if (focused) {
      const again = holder.querySelector(`[data-key="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  // --- broadcasts --------------------------------------------------------------------------

  async function broadcastsPage(query, mine) {
    const id = query.get("id") || "";
    const source = query.get("source") || "";
    const state = query.get("state") || "";
    const idInput = h("input", { id: "q-id", name: "id", value: id, autocomplete: "off", spellcheck: "false" });
    const sourceInput = h("input", { id: "q-source", name: "source", value: source, autocomplete: "off", spellcheck: "false" });
    const stateSelect = h("select", { id: "q-state", name: "state" },
      h("option", { value: "" }, "any state"),
      STATES.map((s) => h("option", { value: s, selected: s === state }, s)));
    const form = h("form", { class: "search", role: "search", "aria-label": "Find broadcasts", onsubmit: (event) => {
      event.preventDefault();
      const q = new URLSearchParams();
      if (idInput.value.trim()) q.set("id", idInput.value.trim());
      if (sourceInput.value.trim()) q.set("source", sourceInput.value.trim());
      if (stateSelect.value) q.set("state", stateSelect.value);
      const text = q.toString();
      location.hash = text ? `#/broadcasts?${text}` : "#/broadcasts";
    } },
    h("div", {}, h("label", { for: "q-id" }, "Broadcast id"), idInput),
    h("div", {}, h("label", { for: "q-source" }, "Source (API key name)"), sourceInput),
    h("div", {}, h("label", { for: "q-state" }, "Having deliveries in state"), stateSelect),
    h("button", { type: "submit", class: "primary" }, "Search"),
    h("button", { type: "button", onclick: () => { location.hash = "#/broadcasts"; } }, "Clear"));
    const notice = h("div", {});
    const holder = h("div", {});
    const more = h("p", {});
    page("Broadcasts", form,
      h("p", { class: "help" }, "Newest first, refreshed every second. Waiting counts deliveries not yet at an end (scheduled, queued, sending, retrying, waiting for a sign-in); the time left is estimated from the configured rate limits and what waits."),
      notice, holder, more);
    let after = null;
    const estimates = {};

    async function load() {
      let rows;
      let nextAfter = null;
      if (id) {
        try {
          rows = [await get(`/v1/broadcasts/${enc(id)}`)];
        } catch (err) {
          if (mine !== generation) return;
          if (err.status === 401) return;
          notice.replaceChildren(message(err.message));
          holder.replaceChildren();
          return;
        }
      } else {
        const q = new URLSearchParams({ limit: "20" });
        if (source) q.set("source", source);
        if (state) q.set("state", state);
        if (after) q.set("after", after);
        const found = await get(`/v1/broadcasts?${q}`);
        rows = found.broadcasts;
        nextAfter = found.next_after;
      }
      await Promise.all(rows.filter((b) => !b.done).map(async (b) => {
        try {
          const p = await get(`/v1/broadcasts/${enc(b.broadcast_id)}/progress`);
          estimates[b.broadcast_id] = p.estimate.seconds_left;
        } catch (_err) { estimates[b.broadcast_id] = null; }
      }));
      if (mine !== generation) return;
      notice.replaceChildren();
      refreshSection(holder, { rows, estimates: rows.map((b) => estimates[b.broadcast_id]) }, () => renderList(rows, estimates));
      more.replaceChildren(nextAfter ? h("button", { type: "button", onclick: () => { after = nextAfter; load(); } }, "Older broadcasts") : "");
    }

    try {
      await load();
    } catch (err) {
      const said = failure(err, "list broadcasts");
      if (said) notice.replaceChildren(said);
    }
    poll(load, mine);
  }

  function renderList(rows, estimates) {
    if (!rows.length) return h("p", {}, "No broadcast matches. A broadcast sent with this key (or, with an operator key, by anyone) shows here.");
    return table("Broadcasts, newest first",
      ["Broadcast", "Source", "Created", "Progress", "Sent", "Failed", "Unknown", "Waiting", "Time left"],
      rows.map((b) => h("tr", {},
        h("th", { scope: "row" }, h("a", { href: `#/broadcasts/${enc(b.broadcast_id)}`, "data-key": `open-${b.broadcast_id}` }, b.broadcast_id)),
        h("td", {}, b.source),
        h("td", {}, when(b.created_at)),
        h("td", {}, h("progress", { max: String(Math.max(b.total, 1)), value: String(b.settled), "aria-label": `${b.broadcast_id}: ${b.settled} of ${b.total} settled` }),
          ` ${b.settled} of ${b.total}`, b.done ? " · done" : ""),
        h("td", { class: "num" }, b.counts.sent),
        h("td", { class: "num" }, b.counts.failed),
        h("td", { class: "num" }, b.counts.unknown),
        h("td", { class: "num" }, waitingOf(b.counts)),
        h("td", {}, b.done ? "done" : duration(estimates[b.broadcast_id])))),
      { id: "broadcasts" });
  }

  async function broadcastPage(id, mine) {
    const facts = h("div", {});
    const progressHolder = h("section", { "aria-labelledby": "h-progress" });
    const actions = h("section", { "aria-labelledby": "h-actions" });
    const feedback = h("div", {});
    const tenantsHolder = h("div", {});
    const errorsHolder = h("div", {});
    const deliveriesHolder = h("div", {});
    page(`Broadcast ${id}`, h("p", {}, h("a", { href: "#/broadcasts" }, "← All broadcasts")), facts,
      h("h2", { id: "h-progress" }, "Progress"), progressHolder,
      h("h2", { id: "h-actions" }, "Retry, cancel, export"), feedback, actions,
      h("h2", { id: "h-tenants" }, "Per tenant"), tenantsHolder,
      h("h2", { id: "h-errors" }, "Failures by Graph error code"), errorsHolder,
      h("h2", { id: "h-deliveries" }, "Deliveries"), deliveriesHolder);
    const base = `/v1/broadcasts/${enc(id)}`;
    let report;
    try {
      report = await get(base);
    } catch (err) {
      if (mine !== generation || err.status === 401) return;
      page(`Broadcast ${id}`, message(err.message), h("p", {}, h("a", { href: "#/broadcasts" }, "← All broadcasts")));
      return;
    }
    let breakdown = { per_tenant: [], errors: [] };
    let lastAnnounced = "";

    function renderFacts(r) {
      return h("dl", { class: "facts" },
        h("dt", {}, "Source"), h("dd", {}, r.source),
        h("dt", {}, "Created"), h("dd", {}, when(r.created_at)),
        h("dt", {}, "Send time"), h("dd", {}, r.send_at ? when(r.send_at) : "at once"),
        h("dt", {}, "Message"), h("dd", {}, `${r.content_type}; ${r.message.summary}`),
        h("dt", {}, "Graph endpoint"), h("dd", {}, r.endpoint.summary),
        r.changes.length ? [h("dt", {}, "Edits and recall"), h("dd", {}, r.changes.map((c) => c.summary).join("; "))] : null);
    }

    function renderProgress(r, p) {
      const est = p ? p.estimate : null;
      const left = r.done ? "done: nothing is moving any more" : (est && est.seconds_left !== null ? `about ${duration(est.seconds_left)} left (${est.summary})` : `time left unknown${est ? ` (${est.summary})` : ""}`);
      const waits = p && p.waits ? p.waits : (r.counts.waiting_auth ? `${r.counts.waiting_auth} waiting for a sign-in` : "");
      return [
        h("p", {}, h("progress", { class: "big", max: String(Math.max(r.total, 1)), value: String(r.settled), "aria-label": "settled deliveries" })),
        h("p", { id: "progress-text" }, `${r.settled} of ${r.total} deliveries settled; ${left}.`),
        h("ul", { class: "counts", "aria-label": "Deliveries per state" },
          STATES.map((s) => h("li", { class: `state-${s}` }, h("strong", { id: `count-${s}` }, r.counts[s]), s.replace("_", " ")))),
        h("p", { id: "waits" }, waits ? `What waits and why: ${waits}.` : "Nothing waits for a quota, a retry time or a sign-in."),
      ];
    }

    function renderActions() {
      const boxes = RETRYABLE.map((s) => h("label", {}, h("input", { type: "checkbox", name: "retry-state", value: s, checked: s === "failed" || s === "unknown" }), ` ${s.replace("_", " ")}`));
      const codes = [...new Set(breakdown.errors.map((g) => g.error_code).filter((c) => c !== "-"))];
      const codeSelect = h("select", { id: "retry-code" }, h("option", { value: "" }, "any error code"), codes.map((c) => h("option", { value: c }, c)));
      const tenantSelect = h("select", { id: "retry-tenant" }, h("option", { value: "" }, "every tenant"), breakdown.per_tenant.map((t) => h("option", { value: t.tenant }, t.tenant)));
      const retryForm = h("form", { class: "row", onsubmit: (event) => {
        event.preventDefault();
        const states = [...retryForm.querySelectorAll("input[name=retry-state]:checked")].map((i) => i.value);
        retry({ states, error_code: codeSelect.value || null, tenant: tenantSelect.value || null });
      } },
      h("fieldset", {}, h("legend", {}, "Retry deliveries in"), boxes),
      h("div", { class: "field" }, h("label", { for: "retry-code" }, "Error code"), codeSelect),
      h("div", { class: "field" }, h("label", { for: "retry-tenant" }, "Tenant"), tenantSelect),
      h("button", { type: "submit", class: "primary" }, "Retry…"));
      return [
        retryForm,
        h("div", { class: "actions" },
          h("button", { type: "button", class: "danger", onclick: cancel }, "Cancel the broadcast…"),
          h("button", { type: "button", onclick: () => download("csv") }, "Download CSV export"),
          h("button", { type: "button", onclick: () => download("jsonl") }, "Download JSONL export")),
      ];
    }

    async function retry(wanted) {
      feedback.replaceChildren();
      let found;
      try {
        found = await post(`${base}/retry/preview`, wanted);
      } catch (err) {
        const said = failure(err, "retry this broadcast");
        if (said) feedback.replaceChildren(said);
        return;
      }
      const which = [found.states.join(", "), wanted.error_code ? `error code ${wanted.error_code}` : null, wanted.tenant ? `tenant ${wanted.tenant}` : null].filter(Boolean).join("; ");
      if (found.count === 0) {
        await confirmDialog("Nothing to retry", `No delivery of broadcast ${id} matches (${which}): nothing would be re-queued.`, null, "Close");
        return;
      }
      const n = found.count === 1 ? "1 delivery" : `${found.count} deliveries`;
      const yes = await confirmDialog(`Retry ${n}?`, `This re-queues ${n} of broadcast ${id} (${which}) with a fresh retry budget; they will be posted again.`, `Retry ${n}`, "Do not retry");
      if (!yes) return;
      try {
        const done = await post(`${base}/retry`, wanted);
        feedback.replaceChildren(message(`Re-queued ${done.requeued} deliveries.`, "ok"));
      } catch (err) {
        const said = failure(err, "retry this broadcast");
        if (said) feedback.replaceChildren(said);
      }
      refresh();
    }

    async function cancel() {
      feedback.replaceChildren();
      let found;
      try {
        found = await post(`${base}/cancel/preview`);
      } catch (err) {
        const said = failure(err, "cancel this broadcast");
        if (said) feedback.replaceChildren(said);
        return;
      }
      if (found.count === 0) {
        await confirmDialog("Nothing to cancel", `Every delivery of broadcast ${id} is sent or at an end already: nothing would be cancelled.`, null, "Close");
        return;
      }
      const n = found.count === 1 ? "1 delivery" : `${found.count} deliveries`;
      const yes = await confirmDialog(`Cancel ${n}?`, `This cancels ${n} of broadcast ${id} not yet sent (${found.states.join(", ")}). Posts already in flight finish. A retry of the cancelled deliveries can send them later.`, `Cancel ${n}`, "Keep them");
      if (!yes) return;
      try {
        const done = await post(`${base}/cancel`);
        feedback.replaceChildren(message(`Cancelled ${done.cancelled} deliveries.`, "ok"));
      } catch (err) {
        const said = failure(err, "cancel this broadcast");
        if (said) feedback.replaceChildren(said);
      }
      refresh();
    }

    async function download(format) {
      feedback.replaceChildren(message(`Preparing the ${format.toUpperCase()} export…`, "info"));
      try {
        const answer = await call("GET", `${base}/export?format=${format}`, undefined, true);
        const blob = await answer.blob();
        const url = URL.createObjectURL(blob);
        const link = h("a", { href: url, download: `${id}.${format}`, hidden: true });
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
        feedback.replaceChildren(message(`The ${format.toUpperCase()} export (${blob.size} bytes) was downloaded as ${id}.${format}.`, "ok"));
      } catch (err) {
        const said = failure(err, "export this broadcast");
        feedback.replaceChildren(said || "");
      }
    }

    function renderTenants(b) {
      if (!b.per_tenant.length) return h("p", {}, "No deliveries.");
      return table("Deliveries per tenant and state", ["Tenant", "Total", "Sent", "Failed", "Unknown", "Waiting", "Cancelled"],
        b.per_tenant.map((t) => h("tr", {},
          h("th", { scope: "row", class: "mono" }, t.tenant),
          h("td", { class: "num" }, t.total), h("td", { class: "num" }, t.counts.sent),
          h("td", { class: "num" }, t.counts.failed), h("td", { class: "num" }, t.counts.unknown),
          h("td", { class: "num" }, waitingOf(t.counts)), h("td", { class: "num" }, t.counts.cancelled))),
        { id: "tenants" });
    }

    function renderErrors(b) {
      if (!b.errors.length) return h("p", {}, "No failed or unknown deliveries.");
      return table("Failed and unknown deliveries by the error code of their last attempt, largest group first; examples link to their attempt log",
        ["State", "Error code", "Count", "Examples (delivery, HTTP status, message, request id)", "Action"],
        b.errors.map((g) => h("tr", {},
          h("td", { class: `state-${g.state}` }, g.state),
          h("th", { scope: "row", class: "mono" }, g.error_code),
          h("td", { class: "num" }, g.count),
          h("td", { class: "wrap" }, h("ul", {}, g.examples.map((e) => h("li", {},
            h("a", { href: `#/broadcasts/${enc(id)}/deliveries/${enc(e.delivery_id)}`, "data-key": `log-${e.delivery_id}` }, `attempt log of ${e.delivery_id}`),
            ` — ${e.http_status ?? "no status"}: ${e.error_message || "no message"}; request id `, h("span", { class: "mono" }, e.request_id || "none"))))),
          h("td", {}, h("button", { type: "button", "data-key": `retry-${g.state}-${g.error_code}`, onclick: () => retry({ states: [g.state], error_code: g.error_code === "-" ? null : g.error_code, tenant: null }) }, `Retry these ${g.count}…`)))),
        { id: "errors" });
    }

    const deliveryState = h("select", { id: "d-state" }, h("option", { value: "" }, "every state"), STATES.map((s) => h("option", { value: s }, s)));
    const deliveryRows = h("div", {});
    let deliveriesAfter = null;
    async function loadDeliveries(reset) {
      if (reset) deliveriesAfter = null;
      const q = new URLSearchParams({ limit: "20" });
      if (deliveryState.value) q.set("state", deliveryState.value);
      if (deliveriesAfter !== null) q.set("after", String(deliveriesAfter));
      try {
        const found = await get(`${base}/deliveries?${q}`);
        if (mine !== generation) return;
        const rows = found.deliveries.map((d) => h("tr", {},
          h("th", { scope: "row", class: "mono" }, h("a", { href: `#/broadcasts/${enc(id)}/deliveries/${enc(d.id)}` }, d.id)),
          h("td", { class: "mono" }, d.tenant), h("td", { class: "mono wrap" }, d.channel),
          h("td", { class: `state-${d.state}` }, d.state), h("td", { class: "num" }, d.attempts),
          h("td", {}, d.last_error_code || "–")));
        const more = found.next_after !== null
          ? h("button", { type: "button", onclick: () => { deliveriesAfter = found.next_after; loadDeliveries(false); } }, "Next 20 deliveries")
          : null;
        deliveryRows.replaceChildren(rows.length
          ? table("Deliveries in order (20 a page); open one for its attempt log", ["Delivery", "Tenant", "Channel", "State", "Attempts", "Last error code"], rows)
          : h("p", {}, "No delivery in that state."), more || "");
      } catch (err) {
        const said = failure(err, "list deliveries");
        if (said) deliveryRows.replaceChildren(said);
      }
    }
    deliveriesHolder.replaceChildren(
      h("div", { class: "row" }, h("div", { class: "field" }, h("label", { for: "d-state" }, "Show deliveries in"), deliveryState),
        h("button", { type: "button", onclick: () => loadDeliveries(true) }, "Show")),
      deliveryRows);

    async function refresh() {
      const [r, b, p] = await Promise.all([get(base), get(`${base}/breakdown`), get(`${base}/progress`).catch(() => null)]);
      if (mine !== generation) return;
      report = r;
      breakdown = b;
      refreshSection(facts, r.changes.length + r.source + (r.send_at || ""), () => renderFacts(r));
      refreshSection(progressHolder, [r.counts, r.done, p && p.estimate.summary, p && p.waits], () => renderProgress(r, p));
      refreshSection(actions, [b.errors.map((g) => g.error_code), b.per_tenant.map((t) => t.tenant)], renderActions);
      refreshSection(tenantsHolder, b.per_tenant, () => renderTenants(b));
      refreshSection(errorsHolder, b.errors, () => renderErrors(b));
      const said = `${id}: ${r.settled} of ${r.total} settled${r.done ? ", done" : ""}; ${r.counts.failed} failed`;
      // Announced on a change of tens of percent, and when done: not every second.
      const step = `${r.done}-${Math.floor((10 * r.settled) / Math.max(r.total, 1))}-${r.counts.failed}`;
      if (step !== lastAnnounced) { lastAnnounced = step; announce(said); }
    }

    await refresh();
    loadDeliveries(true);
    poll(refresh, mine);
  }

  async function attemptsPage(id, deliveryId, mine) {
    const back = h("p", {}, h("a", { href: `#/broadcasts/${enc(id)}` }, `← Broadcast ${id}`));
    let log;
    try {
      log = await get(`/v1/broadcasts/${enc(id)}/deliveries/${enc(deliveryId)}/attempts`);
    } catch (err) {
      if (mine !== generation || err.status === 401) return;
      page("Attempt log", message(err.message), back);
      return;
    }
    if (mine !== generation) return;
    page(`Attempt log of delivery ${deliveryId}`, back,
      h("dl", { class: "facts" },
        h("dt", {}, "Broadcast"), h("dd", {}, log.broadcast_id),
        h("dt", {}, "State"), h("dd", { class: `state-${log.state}` }, log.state),
        h("dt", {}, "Tenant"), h("dd", { class: "mono" }, log.tenant),
        h("dt", {}, "Team (group)"), h("dd", { class: "mono" }, log.group),
        h("dt", {}, "Channel"), h("dd", { class: "mono" }, log.channel),
        h("dt", {}, "Last error"), h("dd", {}, log.last_error_code ? `${log.last_error_code}: ${log.last_error_message || ""}` : "none"),
        h("dt", {}, "Last request id"), h("dd", { class: "mono" }, log.last_request_id || "none"),
        h("dt", {}, "Message id"), h("dd", { class: "mono" }, log.message_id || "none (not sent)"),
        h("dt", {}, "Sent at"), h("dd", {}, when(log.sent_at))),
      log.attempts.length
        ? table("Every attempt, oldest first", ["#", "Started", "Finished", "Outcome", "HTTP", "Error code", "Error message", "Request id", "Client request id", "Latency", "Endpoint", "Worker"],
          log.attempts.map((a) => h("tr", {},
            h("th", { scope: "row", class: "num" }, a.number), h("td", {}, when(a.started_at)), h("td", {}, when(a.finished_at)),
            h("td", { class: `state-${a.outcome}` }, a.outcome || "in flight"), h("td", { class: "num" }, a.http_status ?? "–"),
            h("td", { class: "mono" }, a.error_code || "–"), h("td", { class: "wrap" }, a.error_message || "–"),
            h("td", { class: "mono" }, a.request_id || "–"), h("td", { class: "mono" }, a.client_request_id || "–"),
            h("td", { class: "num" }, a.latency_ms === null ? "–" : `${Math.round(a.latency_ms)} ms`),
            h("td", {}, a.endpoint || "–"), h("td", { class: "mono" }, a.worker || "–"))),
          { id: "attempts" })
        : h("p", {}, "No attempt was made yet."));
  }

  // --- schedules, tenants, health, webhooks ------------------------------------------------

  async function schedulesPage(mine) {
    const feedback = h("div", {});
    const holder = h("div", {});
    page("Schedules", h("p", { class: "help" }, "Recurring announcements (threadcast schedule add) with their next occurrences. A key sees the schedules recorded with its name as the source; an operator key sees every one. Pausing stops every occurrence until it is resumed; skipping drops one occurrence."), feedback, holder);

    async function act(what, path, body, done) {
      try {
        await post(path, body);
        feedback.replaceChildren(message(done, "ok"));
      } catch (err) {
        const said = failure(err, what);
        if (said) feedback.replaceChildren(said);
      }
      await load();
    }

    async function load() {
      const found = await get("/v1/schedules");
      if (mine !== generation) return;
      refreshSection(holder, found, () => found.schedules.length
        ? table("Schedules", ["Schedule", "State", "When", "Targets", "Source", "Next occurrences", "Latest occurrences", "Action"],
          found.schedules.map((s) => h("tr", {},
            h("th", { scope: "row", class: "mono" }, s.id),
            h("td", {}, s.state),
            h("td", {}, h("code", {}, s.cron), ` in ${s.timezone}`),
            h("td", { class: "num" }, s.targets),
            h("td", {}, s.source),
            h("td", {}, s.next.length ? h("ul", {}, s.next.map((u) => h("li", {}, `${when(u.at)} (${u.local.slice(0, 16).replace("T", " ")} local)`,
              u.skipped ? " · skipped" : [" ", h("button", { type: "button", "data-key": `skip-${s.id}-${u.at}`, onclick: async () => {
                if (await confirmDialog("Skip this occurrence?", `Schedule ${s.id} will not send its announcement at ${when(u.at)}; the occurrences after it are not affected.`, "Skip it", "Keep it")) {
                  act("skip occurrences", `/v1/schedules/${enc(s.id)}/skip`, { at: u.at }, `Skipped ${s.id} at ${when(u.at)}.`);
                }
              } }, "Skip…")]))) : (s.state === "paused" ? "none while paused" : "none")),
            h("td", {}, s.occurrences.length ? h("ul", {}, s.occurrences.map((o) => h("li", {}, `${when(o.at)} ${o.state}`,
              o.broadcast_id ? [" ", h("a", { href: `#/broadcasts/${enc(o.broadcast_id)}` }, o.broadcast_id)] : ""))) : "none yet"),
            h("td", {}, s.state === "active"
              ? h("button", { type: "button", "data-key": `pause-${s.id}`, onclick: () => act("pause schedules", `/v1/schedules/${enc(s.id)}/pause`, undefined, `Paused ${s.id}.`) }, "Pause")
              : h("button", { type: "button", "data-key": `resume-${s.id}`, onclick: () => act("resume schedules", `/v1/schedules/${enc(s.id)}/resume`, undefined, `Resumed ${s.id}; occurrences that fell due while paused are not sent.`) }, "Resume")))),
          { id: "schedules" })
        : h("p", {}, "No schedules this key may see."));
    }
    await load();
  }

  async function tenantsPage(mine) {
    let found;
    try {
      found = await get("/v1/tenants");
    } catch (err) {
      if (mine !== generation || err.status === 401) return;
      page("Tenants", failure(err, "read the tenants' sign-ins"));
      return;
    }
    if (mine !== generation) return;
    page("Tenants",
      h("p", { class: "help" }, `Every tenant that signed in (threadcast login --tenant), as threadcast accounts lists them. ${found.endpoint}.`),
      found.tenants.length
        ? table("Signed-in tenants", ["Tenant", "Signed in as", "Sign-in state", "Access token expires", "Scopes", "Waiting"],
          found.tenants.map((t) => h("tr", {},
            h("th", { scope: "row", class: "mono" }, t.tenant),
            h("td", {}, t.user || "unknown"),
            h("td", { class: t.state === "ok" ? "status-ok" : "status-fail" }, t.state, t.reason ? h("div", { class: "muted" }, t.reason) : ""),
            h("td", {}, when(t.access_token_expires)),
            h("td", {}, t.scopes.join(" ") || "none"),
            h("td", { class: "num" }, t.waiting))),
          { id: "tenant-list" })
        : h("p", {}, "No tenant has signed in: run threadcast login --tenant TENANT_ID."));
  }

  async function healthPage(mine) {
    page("Health", h("p", { class: "help" }, "The checks threadcast doctor runs, from this API process: settings, Redis, the ledger, the token cache key, each tenant's sign-in, Graph and the identity platform, the dispatcher and the scheduler. It takes a few seconds."), h("p", { role: "status" }, "Checking…"));
    let found;
    try {
      found = await get("/v1/health");
    } catch (err) {
      if (mine !== generation || err.status === 401) return;
      page("Health", failure(err, "read the deployment's health"));
      return;
    }
    if (mine !== generation) return;
    const verdict = found.ok ? "Ready: no check failed." : "Fix the failed checks before sending.";
    page("Health",
      message(`${verdict} ${found.counts.fail} failed, ${found.counts.warn} warnings, ${found.counts.ok} ok.`, found.ok ? "ok" : ""),
      table("What threadcast doctor checks", ["Result", "Check", "Detail", "What to do"],
        found.checks.map((c) => h("tr", {},
          h("td", { class: `status-${c.status}` }, c.status === "fail" ? "FAIL" : c.status),
          h("th", { scope: "row" }, c.name),
          h("td", { class: "wrap" }, c.detail),
          h("td", { class: "wrap" }, c.fix || "–"))),
        { id: "checks" }),
      h("p", {}, h("button", { type: "button", onclick: () => healthPage(generation) }, "Check again")));
  }

  async function webhooksPage(mine) {
    const feedback = h("div", {});
    const holder = h("div", {});
    page("Webhooks", h("p", { class: "help" }, "The endpoints threadcast posts its events to (THREADCAST_WEBHOOKS), and the latest events with what became of each. An endpoint paused after repeated failures keeps its events and sends them once resumed."), feedback, holder);

    async function load() {
      let found;
      let events;
      try {
        [found, events] = await Promise.all([get("/v1/webhooks"), get("/v1/webhooks/events?limit=20")]);
      } catch (err) {
        if (mine !== generation || err.status === 401) return;
        if (err.status === 404) feedback.replaceChildren(message("This threadcast serves no webhooks (no /v1/webhooks route).", "info"));
        else { const said = failure(err, "read the webhooks"); if (said) feedback.replaceChildren(said); }
        return;
      }
      if (mine !== generation) return;
      const resume = (w) => h("button", { type: "button", "data-key": `resume-${w.name}`, onclick: async () => {
        try {
          const done = await post(`/v1/webhooks/${enc(w.name)}/resume`);
          feedback.replaceChildren(message(`Resumed webhook ${done.name}; ${done.pending} events wait to be sent.`, "ok"));
        } catch (err) {
          const said = failure(err, "resume webhooks");
          if (said) feedback.replaceChildren(said);
        }
        load();
      } }, `Resume ${w.name}`);
      holder.replaceChildren(
        h("h2", {}, "Endpoints"),
        found.endpoints.length
          ? table("Webhook endpoints", ["Endpoint", "URL", "Events", "State", "Pending", "Delivered", "Failed", "Last attempt", "Action"],
            found.endpoints.map((w) => h("tr", {},
              h("th", { scope: "row" }, w.name),
              h("td", { class: "mono wrap" }, w.url || "not configured"),
              h("td", {}, w.events.join(", ") || "all"),
              h("td", { class: w.state === "active" ? "status-ok" : "status-fail" }, w.state,
                w.pause_reason ? h("div", { class: "muted" }, w.pause_reason) : "",
                w.consecutive_failures ? h("div", { class: "muted" }, `${w.consecutive_failures} failures in a row`) : ""),
              h("td", { class: "num" }, w.pending), h("td", { class: "num" }, w.delivered), h("td", { class: "num" }, w.failed),
              h("td", {}, w.last_attempt_at ? `${when(w.last_attempt_at)} · ${w.last_status ?? "no answer"}${w.last_error ? ` · ${w.last_error}` : ""}` : "none yet"),
              h("td", {}, w.state === "paused" ? resume(w) : "–"))),
            { id: "webhooks" })
          : h("p", {}, "No webhook endpoint is configured (THREADCAST_WEBHOOKS)."),
        h("h2", {}, "Latest events"),
        events.events.length
          ? table("The latest events, newest first", ["Event", "Type", "Subject", "Created", "Deliveries"],
            events.events.map((e) => h("tr", {},
              h("th", { scope: "row", class: "mono" }, e.id),
              h("td", {}, e.type), h("td", { class: "mono wrap" }, e.subject), h("td", {}, when(e.created_at)),
              h("td", {}, h("ul", {}, e.deliveries.map((d) => h("li", {}, `${d.endpoint}: ${d.state} after ${d.attempts} attempts${d.last_error ? ` (${d.last_error})` : ""}`)))))),
            { id: "events" })
          : h("p", {}, "No event yet."));
    }
    await load();
  }

  route();
})();
