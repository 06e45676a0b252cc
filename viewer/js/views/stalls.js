// Stalls: a flame graph of every stall's stack (Python, then the native frames
// the innermost Python frame called), weighted by how long the loop was
// blocked; clicking a frame zooms into it and narrows the table to the stalls
// under it. The table: when, how long, thread, task, the innermost frame of
// the program's own code; a row opens the stall's stacks.
"use strict";
(function (ns) {
  var dom = ns.dom, h = dom.h, M = ns.model, FL = ns.flame;
  var PAGE = 500;
  var ROW = 18;
  var MIN_PCT = 0.15; // frames narrower than this share of the graph are not drawn

  function render(container, m, params, app) {
    if (!m.stalls.length) {
      var active = m.processes.some(function (p) { return p.capabilities.stall_detection && p.capabilities.stall_detection.state === "active"; });
      var gap = m.processes.some(function (p) { return p.gaps.stall_detection; });
      container.appendChild(h("p", { className: "empty" }, m.processes.some(function (p) { return p.hellos.length; })
        ? (active && !gap ? "No stall: the event loop never ran one callback longer than the threshold."
          : active ? "No stall reported, but stall detection missed part of the run (see Overview)."
            : "No stall reported, but stall detection was not active (see Overview).")
        : "No event stream loaded: stalls are reported by `aioscope run` and `aioscope attach`."));
      return;
    }
    var byCount = params.weight === "count";
    var weight = byCount ? function () { return 1; } : function (s) { return s.duration || 0; };
    var multi = m.processes.filter(function (p) { return p.stalls.length; }).length > 1;
    var stalls = m.stalls;
    var root = multi ? buildByPid(m, weight) : FL.build(stalls, weight, "all stalls");
    var focus = (params.frame && FL.find(root, params.frame)) || root;
    var selected = params.stall !== undefined ? m.stalls[+params.stall] : null;

    var total = 0, longest = null;
    stalls.forEach(function (s) {
      total += s.duration || 0;
      if (!longest || (s.duration || 0) > (longest.duration || 0)) longest = s;
    });
    container.appendChild(h("p", { className: "summary" }, dom.plural(stalls.length, "stall") + " \u00b7 the loop blocked " + dom.fmtMs(total) + " in all \u00b7 longest " + dom.fmtMs(longest.duration)));

    var toolbar = h("div", { className: "toolbar" },
      h("span", null, "Flame graph weighted by "),
      h("a", { href: app.href("stalls", withParams(params, { weight: "duration" })), className: byCount ? "" : "current" }, "time blocked"),
      " \u00b7 ",
      h("a", { href: app.href("stalls", withParams(params, { weight: "count" })), className: byCount ? "current" : "" }, "number of stalls"),
      focus !== root ? [" \u00b7 ", h("a", { href: app.href("stalls", withParams(params, { frame: null })) }, "reset zoom")] : null);
    container.appendChild(toolbar);
    container.appendChild(flameGraph(root, focus, selected, params, app, byCount));

    var shown = focus === root ? stalls : focus.stalls.map(function (i) { return m.stalls[i]; });
    if (focus !== root) {
      container.appendChild(h("p", { className: "filter-note" }, "Showing the " + dom.plural(shown.length, "stall") + " under " + FL.frameLabel(focus.frame) + " ",
        h("a", { href: app.href("stalls", withParams(params, { frame: null })) }, "(show all)")));
    }
    container.appendChild(table(m, shown, params, app, selected));
    if (selected) {
      var row = document.getElementById("stall-" + selected.idx);
      if (row) row.scrollIntoView({ block: "center" });
    }
  }

  function withParams(params, changes) {
    var out = {};
    for (var k in params) out[k] = params[k];
    for (var c in changes) {
      if (changes[c] === null) delete out[c];
      else out[c] = changes[c];
    }
    return out;
  }

  function buildByPid(m, weight) {
    var root = FL.build([], weight, "all stalls");
    m.processes.forEach(function (p) {
      if (!p.stalls.length) return;
      var sub = FL.build(p.stalls, weight, "pid " + p.pid);
      (function rekey(n, prefix) {
        n.key = prefix + n.key;
        n.children.forEach(function (c) { rekey(c, prefix); });
      })(sub, "pid" + p.pid);
      root.children.push(sub);
      root.value += sub.value;
      root.count += sub.count;
      root.stalls = root.stalls.concat(sub.stalls);
    });
    root.children.sort(function (a, b) { return b.value - a.value; });
    return root;
  }

  function flameGraph(root, focus, selected, params, app, byCount) {
    var ancestors = [];
    (function findPath(n, trail) {
      if (n === focus) {
        ancestors = trail;
        return true;
      }
      for (var i = 0; i < n.children.length; i++) if (findPath(n.children[i], trail.concat([n]))) return true;
      return false;
    })(root, []);
    var selectedPath = selected ? new Set(pathKeys(root, selected.idx)) : null;
    var box = h("div", { className: "flame", id: "flame" });
    var rows = 0;
    function place(n, depth, left, width) {
      if (width < MIN_PCT) return;
      rows = Math.max(rows, depth + 1);
      var label = FL.frameLabel(n.frame);
      var cls = "frame" + (n.frame.native ? " native" : "") + (depth < ancestors.length ? " ancestor" : "") +
        (selectedPath && selectedPath.has(n.key) ? " on-path" : "") + (n === focus && focus !== root ? " focus" : "");
      var el = h("div", {
        className: cls,
        style: { left: left + "%", width: width + "%", top: depth * ROW + "px" },
        title: label + "\n" + (byCount ? n.count + " stalls" : dom.fmtMs(n.value) + " in " + dom.plural(n.count, "stall")) + (n.frame.file ? "\n" + n.frame.file : ""),
        dataset: { key: n.key },
        onclick: function () { app.go("stalls", withParams(params, { frame: n.key || null, stall: null })); },
      }, dom.printable(label, 300));
      box.appendChild(el);
      var x = left;
      n.children.forEach(function (c) {
        var w = (width * c.value) / (n.value || 1);
        place(c, depth + 1, x, w);
        x += w;
      });
    }
    ancestors.forEach(function (a, d) { place({ frame: a.frame, key: a.key, value: a.value, count: a.count, children: [] }, d, 0, 100); });
    place(focus, ancestors.length, 0, 100);
    box.style.height = rows * ROW + 2 + "px";
    return h("div", { className: "flame-wrap" }, box, h("div", { className: "legend small dim" },
      h("span", { className: "swatch py" }), " Python ", h("span", { className: "swatch native" }), " native (called by the innermost Python frame) \u00b7 click a frame to zoom and list its stalls"));
  }

  function pathKeys(root, idx) {
    var keys = [];
    var n = root;
    while (n) {
      keys.push(n.key);
      var next = null;
      for (var i = 0; i < n.children.length; i++) {
        if (n.children[i].stalls.indexOf(idx) >= 0) {
          next = n.children[i];
          break;
        }
      }
      n = next;
    }
    return keys;
  }

  function table(m, shown, params, app, selected) {
    var sort = params.sort === "duration" ? "duration" : "time";
    var rows = shown.slice();
    if (sort === "duration") rows.sort(function (a, b) { return (b.duration || 0) - (a.duration || 0); });
    var anyTest = rows.some(function (s) { return s.ev && s.ev.test; });
    var multi = m.processes.length > 1;
    var tbody = h("tbody");
    var t = h("table", { className: "grid stalls", id: "stall-table" },
      h("thead", null, h("tr", null,
        h("th", null, "#"),
        h("th", null, h("a", { href: app.href("stalls", withParams(params, { sort: "time" })) }, "when" + (sort === "time" ? " \u25be" : ""))),
        h("th", null, h("a", { href: app.href("stalls", withParams(params, { sort: "duration" })) }, "blocked" + (sort === "duration" ? " \u25be" : ""))),
        multi ? h("th", null, "pid") : null,
        h("th", null, "thread"),
        h("th", null, "task"),
        h("th", null, "innermost frame of the program"),
        anyTest ? h("th", null, "test") : null)),
      tbody);
    function show(from) {
      rows.slice(from, from + PAGE).forEach(function (s) {
        var tr = stallRow(m, s, multi, anyTest, s === selected);
        tbody.appendChild(tr);
        if (s === selected) tbody.appendChild(detailRow(s, multi, anyTest));
        tr.addEventListener("click", function () {
          var next = tr.nextSibling;
          if (next && next.classList && next.classList.contains("stall-detail")) {
            tbody.removeChild(next);
            tr.classList.remove("selected");
          } else {
            tr.classList.add("selected");
            tbody.insertBefore(detailRow(s, multi, anyTest), next);
          }
        });
      });
      if (rows.length > from + PAGE) {
        var more = h("tr", { className: "more" }, h("td", { colspan: 8 }, h("button", { type: "button", onclick: function () {
          tbody.removeChild(more);
          show(from + PAGE);
        } }, "show more (" + (rows.length - from - PAGE) + ")")));
        tbody.appendChild(more);
      }
    }
    show(0);
    return t;
  }

  // Null is "a plain callback" only when the task was read: a stall never
  // read, or whose task did not read (task_error), says it is not known.
  function noTask(e) {
    if (typeof e.task_error === "string") {
      return h("span", { className: "dim", title: dom.printable(e.task_error, 300) }, "(task unknown)");
    }
    return h("span", { className: "dim" }, e.captured === false ? "(not read)" : "(a callback, no task)");
  }

  function stallRow(m, s, multi, anyTest, isSelected) {
    var e = s.ev || {};
    var f = M.userFrame(e.stack);
    var p = s.process;
    var tname = M.threadName(p, s.threadKey);
    var task = e.task && typeof e.task === "object" ? e.task : null;
    return h("tr", { className: "stall-row" + (isSelected ? " selected" : ""), id: "stall-" + s.idx },
      h("td", { className: "num dim" }, String(e.stall_id !== undefined ? e.stall_id : s.end ? s.end.stall_id : "?")),
      h("td", { title: dom.fmtClock(s.start) }, m.t0 !== null && s.start !== null ? dom.fmtRel(s.start - m.t0) : "?"),
      h("td", { className: "num" + ((s.duration || 0) >= 1000 ? " bad" : "") }, (s.exact ? "" : "\u2265 ") + dom.fmtMs(s.duration)),
      multi ? h("td", null, String(s.pid)) : null,
      h("td", null, String(s.nativeId !== null ? s.nativeId : s.threadId), tname ? h("span", { className: "dim" }, " " + dom.printable(tname, 40)) : null),
      h("td", null, task ? dom.name(task.name, 60) : noTask(e)),
      h("td", null, f ? [h("span", { className: "fn" }, dom.printable(f.qualname || f["function"], 120)), " ",
        h("span", { className: "dim" }, dom.baseName(f.file) + ":" + (typeof f.line === "number" ? f.line : "?"))] : h("span", { className: "dim" }, e.captured === false ? "(ended before it could be read)" : "(no stack)")),
      anyTest ? h("td", { className: "small" }, e.test ? dom.printable(e.test, 200) : "") : null);
  }

  function detailRow(s, multi, anyTest) {
    var e = s.ev || {};
    var cols = 6 + (multi ? 1 : 0) + (anyTest ? 1 : 0);
    var parts = [];
    if (e.test) parts.push(h("div", null, h("span", { className: "k" }, "test "), e.test, e.test_phase ? " (" + e.test_phase + ")" : ""));
    parts.push(h("div", { className: "k" }, "Python stack, innermost first"));
    parts.push(frames(e.stack, e.omitted_frames));
    if (Array.isArray(e.native_stack) && e.native_stack.length) {
      parts.push(h("div", { className: "k" }, "Native stack, innermost first" + (typeof e.native_stopped_ms === "number" ? " (thread stopped " + dom.fmtMs(e.native_stopped_ms) + " to copy it)" : "")));
      var ol = h("ol", { className: "frames native" });
      e.native_stack.slice(0, 200).forEach(function (f) {
        ol.appendChild(h("li", null, h("span", { className: "fn" }, dom.printable(f && (f["function"] || f.address), 200)),
          " ", h("span", { className: "dim" }, dom.baseName(f && f.module) + (f && f.file ? " \u00b7 " + dom.printable(f.file, 200) + (typeof f.line === "number" ? ":" + f.line : "") : ""))));
      });
      parts.push(ol);
    } else if (e.native_error) {
      parts.push(h("div", { className: "dim" }, "native stack: " + e.native_error));
    }
    if (e.task && typeof e.task === "object" && Array.isArray(e.task.stack)) {
      parts.push(h("div", { className: "k" }, "Task '" + dom.printable(e.task.name, 100) + "' stack"));
      parts.push(frames(e.task.stack, e.task.omitted_frames));
    }
    if (!s.ev) parts.push(h("div", { className: "dim" }, "Only the stall's end was recorded (no stacks)."));
    return h("tr", { className: "stall-detail" }, h("td", { colspan: cols }, parts));
  }

  function frames(list, omitted) {
    var ol = h("ol", { className: "frames" });
    (Array.isArray(list) ? list : []).slice(0, 200).forEach(function (f) {
      ol.appendChild(h("li", null, h("span", { className: "fn" }, dom.printable(f && (f.qualname || f["function"]), 200)), " ",
        h("span", { className: "dim" }, dom.printable(f && f.file, 300) + ":" + (f && typeof f.line === "number" ? f.line : "?"))));
    });
    if (typeof omitted === "number" && omitted > 0) ol.appendChild(h("li", { className: "dim" }, omitted + " frames omitted"));
    if (!ol.firstChild) ol.appendChild(h("li", { className: "dim" }, "(none)"));
    return ol;
  }

  ns.views = ns.views || {};
  ns.views.stalls = { title: "Stalls", render: render, frames: frames };
})((globalThis.aioscope = globalThis.aioscope || {}));
