// Events: the silent asyncio bugs (never-awaited coroutines, swallowed
// cancellations, unretrieved exceptions, destroyed pending tasks), each with
// where it happened, its stacks or traceback and the pytest test it happened
// in; then the other messages (warnings, errors, dropped events, capability
// changes). Event types this viewer does not know are listed with their fields.
"use strict";
(function (ns) {
  var dom = ns.dom, h = dom.h, M = ns.model;
  var PAGE = 300;

  function frames(list, omitted) {
    return ns.views.stalls.frames(list, omitted);
  }

  function where(label, f) {
    if (!f || typeof f !== "object") return null;
    return h("div", { className: "where" }, h("span", { className: "k" }, label + " "), h("span", { className: "fn" }, dom.printable(f.qualname || f["function"], 200)),
      " ", h("span", { className: "dim" }, dom.printable(f.file, 300) + ":" + (typeof f.line === "number" ? f.line : "?")));
  }

  function taskText(t) {
    return t && typeof t === "object" ? "task '" + dom.printable(t.name, 120) + "'" + (t.id ? " " + t.id : "") : "no task";
  }

  function body(b) {
    var e = b.ev, parts = [];
    if (b.type === "unawaited_coroutine") {
      var c = e.coroutine || {};
      parts.push(h("div", { className: "what" }, "coroutine ", h("b", null, dom.printable(c.qualname, 200)), " was created and never awaited"));
      parts.push(where("defined at", e.defined_at));
      parts.push(where("created at", e.created_at) || (e.note ? h("div", { className: "dim" }, "created at: unknown (" + e.note + ")") : null));
      parts.push(where("dropped at", e.discarded_at));
      parts.push(h("div", null, h("span", { className: "k" }, "while running "), taskText(e.task)));
      if (Array.isArray(e.creating_stack) && e.creating_stack.length) parts.push(h("details", null, h("summary", null, "creating stack"), frames(e.creating_stack)));
      if (Array.isArray(e.discarding_stack) && e.discarding_stack.length) parts.push(h("details", null, h("summary", null, "stack where it was dropped"), frames(e.discarding_stack)));
    } else if (b.type === "cancellation_swallowed") {
      parts.push(h("div", { className: "what" }, taskText(e.task), " caught a CancelledError and did not re-raise it; it " + dom.printable(e.outcome || "?", 200)));
      parts.push(where("caught at", e.caught_at) || h("div", { className: "dim" }, "caught at: unknown (the program had its own trace function)"));
      if (e.cancel_message !== null && e.cancel_message !== undefined) parts.push(h("div", null, h("span", { className: "k" }, "cancel message "), String(e.cancel_message)));
      if (typeof e.cancel_requests === "number") parts.push(h("div", null, h("span", { className: "k" }, "cancel requests "), String(e.cancel_requests)));
      if (Array.isArray(e.task_stack) && e.task_stack.length) parts.push(h("details", { open: true }, h("summary", null, "where the task waits now"), frames(e.task_stack)));
    } else if (b.type === "task_exception_unretrieved") {
      var x = e.exception || {};
      parts.push(h("div", { className: "what" }, taskText(e.task), " raised ", h("b", null, dom.printable((x.module && x.module !== "builtins" ? x.module + "." : "") + (x.type || "?"), 200)),
        ": " + dom.printable(x.message, 1000), " \u2014 nobody retrieved it"));
      parts.push(h("div", { className: "k" }, "Traceback, innermost first"));
      parts.push(frames(x.traceback));
    } else if (b.type === "task_destroyed_pending") {
      parts.push(h("div", { className: "what" }, taskText(e.task), " was freed while still pending: it will never finish"));
      parts.push(Array.isArray(e.stack) && e.stack.length ? frames(e.stack) : h("div", { className: "dim" }, "its coroutine was already closed (no frames)"));
    } else {
      parts.push(h("pre", { className: "raw" }, dom.printable(JSON.stringify(e, null, 1), 4000)));
    }
    if (e.test) {
      parts.push(h("div", { className: "test" }, h("span", { className: "k" }, "pytest "), dom.printable(e.test, 400), e.test_phase ? " (" + e.test_phase + ")" : "",
        e.task_created_in_test ? h("span", { className: "dim" }, " \u00b7 task created in " + dom.printable(e.task_created_in_test, 400)) : null));
    } else if (e.task_created_in_test) {
      parts.push(h("div", { className: "test" }, h("span", { className: "k" }, "task created in test "), dom.printable(e.task_created_in_test, 400)));
    }
    return parts;
  }

  function card(m, b, selected) {
    var loc = M.bugLocation(b);
    return h("div", { className: "event bug-" + b.type + (selected ? " selected" : ""), id: "event-" + b.idx },
      h("div", { className: "event-head" },
        h("span", { className: "badge bad" }, M.BUG_LABELS[b.type] || b.type),
        " ", h("span", { className: "dim" }, (m.t0 !== null && b.ts !== null ? dom.fmtRel(b.ts - m.t0) : "?") + " \u00b7 pid " + b.pid),
        loc ? [" \u00b7 ", h("span", { className: "fn" }, dom.printable(loc.qualname || loc["function"], 120)), " ", h("span", { className: "dim" }, dom.baseName(loc.file) + ":" + (typeof loc.line === "number" ? loc.line : "?"))] : null),
      h("div", { className: "event-body" }, body(b)));
  }

  function render(container, m, params, app) {
    var counts = {};
    m.bugs.forEach(function (b) { counts[b.type] = (counts[b.type] || 0) + 1; });
    var type = params.type || "";
    var q = (params.q || "").toLowerCase();
    var chips = h("div", { className: "toolbar chips" },
      h("a", { href: app.href("events", q ? { q: q } : null), className: type ? "chip" : "chip current" }, "all " + m.bugs.length));
    Object.keys(counts).forEach(function (t) {
      chips.appendChild(h("a", { href: app.href("events", q ? { type: t, q: q } : { type: t }), className: "chip" + (type === t ? " current" : "") }, (M.BUG_LABELS[t] || t) + " " + counts[t]));
    });
    var search = h("input", { type: "search", id: "event-search", placeholder: "filter: task, function, file, test\u2026", value: params.q || "" });
    search.addEventListener("change", function () {
      app.go("events", type ? { type: type, q: search.value } : { q: search.value });
    });
    chips.appendChild(search);
    container.appendChild(chips);

    var list = m.bugs.filter(function (b) {
      if (type && b.type !== type) return false;
      if (q && JSON.stringify(b.ev).toLowerCase().indexOf(q) < 0) return false;
      return true;
    });
    var selected = params.event !== undefined ? m.bugs[+params.event] : null;
    var box = h("div", { className: "events", id: "event-list" });
    if (!m.bugs.length) {
      var checked = m.processes.filter(function (p) { return p.hellos.length; });
      box.appendChild(h("p", { className: "empty" }, checked.length
        ? "No silent asyncio bug reported. (Overview says which checks were active in each process.)"
        : "No event stream loaded: silent bugs are reported by `aioscope run` and `aioscope attach`."));
    }
    function show(from) {
      list.slice(from, from + PAGE).forEach(function (b) { box.appendChild(card(m, b, b === selected)); });
      if (list.length > from + PAGE) {
        var more = h("button", { type: "button", className: "more", onclick: function () {
          box.removeChild(more);
          show(from + PAGE);
        } }, "show more (" + (list.length - from - PAGE) + ")");
        box.appendChild(more);
      }
    }
    show(0);
    if (selected && list.indexOf(selected) >= PAGE) box.insertBefore(card(m, selected, true), box.firstChild);
    container.appendChild(box);

    if (m.messages.length) {
      var other = h("details", { className: "messages", id: "messages", open: !!params.other || !m.bugs.length },
        h("summary", null, "Other events (" + m.messages.length + ")"));
      var tb = h("tbody");
      m.messages.slice(0, 2000).forEach(function (x) {
        var e = x.ev;
        var text = e.message !== undefined ? e.message : x.type === "dropped" ? (e.count + " events dropped") :
          x.type === "capabilities" ? JSON.stringify(e.capabilities) : JSON.stringify(e);
        tb.appendChild(h("tr", { className: "msg-" + x.type },
          h("td", null, m.t0 !== null && x.ts !== null ? dom.fmtRel(x.ts - m.t0) : "?"),
          h("td", null, String(x.pid)), h("td", null, x.type), h("td", null, dom.printable(text, 1000))));
      });
      other.appendChild(h("table", { className: "grid" }, tb));
      if (m.messages.length > 2000) other.appendChild(h("p", { className: "dim" }, (m.messages.length - 2000) + " more not shown"));
      container.appendChild(other);
    }
    if (selected) {
      var el = document.getElementById("event-" + selected.idx);
      if (el) el.scrollIntoView({ block: "center" });
    }
  }

  ns.views = ns.views || {};
  ns.views.events = { title: "Events", render: render };
})((globalThis.aioscope = globalThis.aioscope || {}));
