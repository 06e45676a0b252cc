// Tasks: the awaited-by forest of one snapshot. Nodes expand lazily (a
// snapshot may hold 100,000 tasks), identical siblings are folded with a
// count, a search keeps the matching tasks and those above them, and the
// snapshot's findings are listed first, their tasks highlighted and the
// cycle drawn.
"use strict";
(function (ns) {
  var dom = ns.dom, h = dom.h, F = ns.forest;
  var PAGE = 200; // children shown per level before "show more"
  var AUTO_EXPAND = 400; // a filtered tree is expanded when it is this small

  function defaultSnapshot(m) {
    for (var i = m.snapshots.length - 1; i >= 0; i--) {
      if (m.snapshots[i].findings.length) return m.snapshots[i];
    }
    return m.snapshots[m.snapshots.length - 1];
  }

  function snapLabel(s) {
    return "pid " + s.pid + " \u00b7 " + dom.fmtClock(s.ts) + " \u00b7 " + s.tasks.length + " tasks" +
      (s.findings.length ? " \u00b7 " + dom.plural(s.findings.length, "finding") : "") +
      (s.reason && s.reason !== "dump" ? " \u00b7 " + s.reason : "") + (s.fromDump ? " \u00b7 dump" : "");
  }

  function frameList(frames, omitted) {
    var ol = h("ol", { className: "frames" });
    (Array.isArray(frames) ? frames : []).slice(0, 200).forEach(function (f) {
      ol.appendChild(h("li", null, h("span", { className: "fn" }, dom.printable(f && (f.qualname || f["function"]), 200)),
        " ", h("span", { className: "loc dim" }, dom.printable(f && f.file, 300) + ":" + (f && typeof f.line === "number" ? f.line : "?"))));
    });
    if (Array.isArray(frames) && frames.length > 200) ol.appendChild(h("li", { className: "dim" }, (frames.length - 200) + " more frames"));
    if (typeof omitted === "number" && omitted > 0) ol.appendChild(h("li", { className: "dim" }, omitted + " frames omitted"));
    return ol;
  }

  function details(ix, t) {
    var a = t.awaiting && typeof t.awaiting === "object" ? t.awaiting : null;
    var rows = [];
    rows.push(h("div", null, h("span", { className: "k" }, "id "), t.id, " \u00b7 ", h("span", { className: "k" }, "state "), String(t.state),
      t.cancel_requests ? " \u00b7 cancel requests " + t.cancel_requests : "",
      t.cancel_pending ? " \u00b7 cancel() pending" : "", t.handling_cancel ? " \u00b7 handling CancelledError" : ""));
    if (a) {
      rows.push(h("div", null, h("span", { className: "k" }, "awaiting "), a.kind + " " + (a.type || "") + " " + (a.address || ""),
        a.object ? " \u00b7 " + (a.object_type || "object") + " " + a.object : "",
        typeof a.external_refs === "number" ? " \u00b7 " + a.external_refs + " outside references" : ""));
    }
    var by = Array.isArray(t.awaited_by) ? t.awaited_by : [];
    if (by.length) {
      rows.push(h("div", null, h("span", { className: "k" }, "awaited by "), by.slice(0, 20).map(function (id, i) {
        var x = ix.byId.get(id);
        return [i ? ", " : "", x ? "'" + dom.printable(x.name, 80) + "'" : String(id)];
      }), by.length > 20 ? " \u2026" : ""));
    }
    if (Array.isArray(t.holds) && t.holds.length) rows.push(h("div", { className: "warn" }, h("span", { className: "k" }, "holds "), t.holds.join(", ")));
    if (t.error) rows.push(h("div", { className: "warn" }, "stack incomplete: " + t.error));
    rows.push(frameList(t.stack, t.omitted_frames));
    return h("div", { className: "details" }, rows);
  }

  function render(container, m, params, app) {
    if (!m.snapshots.length) {
      container.appendChild(h("p", { className: "empty" }, "No snapshot loaded. `aioscope dump --json PID` writes one; `run`/`attach --snapshot-every 5s` stream them."));
      return;
    }
    var snap = m.snapshots[+params.snap] || defaultSnapshot(m);
    var ix = F.index(snap);
    var query = params.q || "";

    var select = h("select", { id: "snapshot-select", onchange: function () { app.go("tasks", { snap: select.value }); } });
    m.snapshots.forEach(function (s) {
      select.appendChild(h("option", { value: s.idx, selected: s === snap }, snapLabel(s)));
    });
    var search = h("input", { type: "search", id: "task-search", placeholder: "filter: name, file, function, state:pending, kind:lock\u2026", value: query });
    var timer = null;
    search.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        app.go("tasks", { snap: snap.idx, q: search.value }, true);
        var again = document.getElementById("task-search");
        if (again) {
          again.focus();
          again.setSelectionRange(again.value.length, again.value.length);
        }
      }, 250);
    });
    container.appendChild(h("div", { className: "toolbar" }, h("label", null, "Snapshot ", select), search));

    if (snap.warnings.length) {
      container.appendChild(h("div", { className: "warn small" }, "Incomplete read: " + snap.warnings.slice(0, 5).join("; ")));
    }
    if (snap.findings.length) container.appendChild(findingsPanel(ix, snap, params));

    var filt = F.filter(ix, query);
    var info = h("p", { className: "summary", id: "task-count" },
      filt ? filt.matched + " of " + dom.plural(ix.tasks.length, "task") + " match" : dom.plural(ix.tasks.length, "task") + " in " + dom.plural(F.loops(ix).length, "event loop"));
    container.appendChild(info);

    var tree = h("div", { className: "forest", id: "forest" });
    var expandAll = filt && filt.keep.size <= AUTO_EXPAND;
    F.loops(ix).forEach(function (l) {
      var names = [];
      var tname = null;
      snap.threads.forEach(function (th) { if (th && th.thread_id === l.threadId && th.name) tname = th.name; });
      var roots = l.roots.concat(l.cycleRoots);
      var visible = filt ? roots.filter(function (t) { return filt.keep.has(t.id); }) : roots;
      if (filt && !visible.length) return;
      var kind = l.tasks[0] && l.tasks[0].runtime === "trio" ? "trio.run " : "Event loop ";
      names.push(h("h4", { className: "loop" }, kind + l.loop + " \u00b7 " +
        (l.threadId === null ? "no running loop" : "thread " + l.threadId + (tname ? " \u201c" + dom.printable(tname, 80) + "\u201d" : "")) +
        " \u00b7 " + dom.plural(l.tasks.length, "task")));
      tree.appendChild(h("div", { className: "loop-block" }, names,
        level(ix, l.roots, filt, [], expandAll, 0),
        l.cycleRoots.length ? h("div", { className: "cycle-note bad" }, "Awaiting each other, no root:") : null,
        l.cycleRoots.length ? level(ix, l.cycleRoots, filt, [], true, 0) : null));
    });
    container.appendChild(tree);
    if (snap.threads.length) container.appendChild(threadsPanel(snap, params));
    if (params.task) {
      var el = document.querySelector('[data-task="' + CSS.escape(params.task) + '"]');
      if (el) {
        el.classList.add("selected");
        el.scrollIntoView({ block: "center" });
      }
    }
  }

  // One level of the tree: groups of siblings, paged.
  function level(ix, tasks, filt, path, expand, depth) {
    var ul = h("ul", { className: "tree" });
    var groups = F.group(ix, tasks, filt ? filt.keep : null);
    function show(from) {
      groups.slice(from, from + PAGE).forEach(function (g) { ul.appendChild(node(ix, g, filt, path, expand, depth)); });
      if (groups.length > from + PAGE) {
        var more = h("li", { className: "more" }, h("button", { type: "button", onclick: function () {
          ul.removeChild(more);
          show(from + PAGE);
        } }, "show " + Math.min(PAGE, groups.length - from - PAGE) + " more of " + (groups.length - from - PAGE)));
        ul.appendChild(more);
      }
    }
    show(0);
    return ul;
  }

  function node(ix, g, filt, path, expand, depth) {
    var t = g.task;
    var kids = F.childrenOf(ix, t);
    var visibleKids = filt ? kids.filter(function (k) { return filt.keep.has(k.id); }) : kids;
    var cycle = path.indexOf(t.id) >= 0;
    var flagged = ix.flagged.has(t.id);
    var li = h("li", { className: "task" + (flagged ? " flagged" : "") + (cycle ? " cycle" : ""), dataset: { task: t.id } });
    var open = !cycle && visibleKids.length > 0 && (expand || depth < 1 || flaggedBelow(ix, t, path));
    var toggle = h("span", { className: "toggle" + (visibleKids.length && !cycle ? "" : " leaf") }, visibleKids.length && !cycle ? (open ? "\u25be" : "\u25b8") : "\u2022");
    var head = h("div", { className: "head" }, toggle,
      g.count > 1 ? h("span", { className: "fold", title: g.count + " tasks in the same state, waiting at the same place" }, "\u00d7" + g.count) : null,
      dom.name(t.name, 120, "task-name"),
      " ", h("span", { className: "state state-" + String(t.state) }, String(t.state)),
      " ", h("span", { className: "wait" }, F.waitText(ix, t)),
      flagged ? h("span", { className: "badge bad" }, "finding") : null,
      cycle ? h("span", { className: "badge bad" }, "cycle: awaits a task above") : null,
      g.count > 1 ? h("span", { className: "dim small" }, " and " + (g.count - 1) + " like it") : null,
      " ", h("span", { className: "dim small id" }, t.id));
    li.appendChild(head);
    var body = null, detailEl = null;
    function setOpen(v) {
      open = v;
      toggle.textContent = open ? "\u25be" : "\u25b8";
      if (open && !body) {
        body = level(ix, visibleKids, filt, path.concat([t.id]), expand, depth + 1);
        li.appendChild(body);
      } else if (body) body.hidden = !open;
    }
    if (open) setOpen(true);
    toggle.addEventListener("click", function () { if (visibleKids.length && !cycle) setOpen(!open); });
    head.querySelector(".task-name").addEventListener("click", function () {
      if (detailEl) {
        detailEl.hidden = !detailEl.hidden;
        return;
      }
      detailEl = details(ix, t);
      if (g.count > 1) {
        detailEl.appendChild(h("div", { className: "dim small" }, "Folded: " + g.members.slice(0, 50).map(function (x) { return dom.printable(x.name, 60); }).join(", ") + (g.count > 50 ? " \u2026" : "")));
      }
      li.insertBefore(detailEl, body);
    });
    if (flagged && depth < 3) {
      detailEl = details(ix, t);
      li.insertBefore(detailEl, body);
    }
    return li;
  }

  // The snapshot's threads and their stacks (a deadlock between threads, or
  // a loop thread blocked in C, shows here rather than in the tasks).
  function threadsPanel(snap, params) {
    var box = h("details", { className: "threads", id: "threads", open: !snap.tasks.length || !!params.threads },
      h("summary", null, "Threads (" + snap.threads.length + ") and their stacks"));
    snap.threads.forEach(function (t) {
      if (!t || typeof t !== "object") return;
      box.appendChild(h("div", { className: "thread" },
        h("div", { className: "head" }, h("b", null, "Thread " + t.thread_id), t.native_id !== null && t.native_id !== undefined ? " (native " + t.native_id + ")" : "",
          t.name ? [" \u201c", dom.name(t.name, 80), "\u201d"] : null, t.holds_gil ? h("span", { className: "badge warn" }, "holds the GIL") : null,
          t.error ? h("span", { className: "warn small" }, " incomplete: " + t.error) : null),
        threadFacts(snap, t),
        frameList(t.frames, t.omitted_frames),
        t.truncated ? h("div", { className: "dim small" }, "deeper than aioscope reads") : null));
    });
    return box;
  }

  // What a thread is blocked in, who holds it, what it holds, the executor
  // work it runs (a thread's side of the sync/async boundary, as `dump`'s
  // text says it).
  function threadFacts(snap, t) {
    var names = new Map();
    snap.threads.forEach(function (x) { if (x && typeof x === "object") names.set(x.thread_id, x.name); });
    var tasks = new Map();
    snap.tasks.forEach(function (x) { if (x && typeof x === "object") tasks.set(x.id, x.name); });
    function thread(id) {
      var n = names.get(id);
      return "thread " + String(id) + (n ? " \u201c" + dom.printable(n, 80) + "\u201d" : "");
    }
    function task(id) {
      return tasks.has(id) ? "task \u2018" + dom.printable(tasks.get(id), 80) + "\u2019" : String(id);
    }
    var rows = [];
    var w = t.waiting && typeof t.waiting === "object" ? t.waiting : null;
    if (w) {
      var text = "waits on " + dom.printable(w.object_type || w.kind, 80) + (w.object ? " " + dom.printable(w.object, 40) : "") +
        " [" + dom.printable(w.kind, 40) + "]";
      if (w.owner !== null && w.owner !== undefined) text += ", held by " + thread(w.owner);
      else if (w.kind === "lock" || w.kind === "rlock") text += " (holder unknown)";
      if (w.thread !== null && w.thread !== undefined) text += ": " + thread(w.thread);
      if (w.task) text += ", for " + task(w.task) + (w.queued ? " (not started: queued on its loop)" : "");
      if (Array.isArray(w.futures) && w.futures.length) text += " (" + w.futures.length + " futures)";
      rows.push(h("div", { className: "warn small thread-wait" }, text));
    }
    if (Array.isArray(t.holds) && t.holds.length) {
      rows.push(h("div", { className: "small thread-holds" }, "holds " + t.holds.map(function (x) { return dom.printable(x, 40); }).join(", ")));
    }
    var k = t.worker && typeof t.worker === "object" ? t.worker : null;
    if (k) {
      var by = Array.isArray(k.awaited_by) ? k.awaited_by : [];
      rows.push(h("div", { className: "small thread-worker" }, "worker of executor " + dom.printable(k.executor || "?", 40) +
        (k.work_item ? ", runs work item " + dom.printable(k.work_item, 40) : ", idle") +
        (by.length ? ", awaited by " + by.map(task).join(", ") : "")));
    }
    return rows.length ? h("div", { className: "thread-facts" }, rows) : null;
  }

  function flaggedBelow(ix, t, path) {
    if (!ix.flagged.size) return false;
    var seen = new Set(path), stack = F.childrenOf(ix, t).slice(), n = 0;
    while (stack.length && n++ < 5000) {
      var x = stack.pop();
      if (seen.has(x.id)) continue;
      seen.add(x.id);
      if (ix.flagged.has(x.id)) return true;
      F.childrenOf(ix, x).forEach(function (c) { stack.push(c); });
    }
    return false;
  }

  function findingsPanel(ix, snap, params) {
    var panel = h("section", { className: "findings", id: "findings" });
    snap.findings.forEach(function (f, i) {
      if (!f || typeof f !== "object") return;
      var deadlock = !!ns.model.DEADLOCK_KINDS[f.kind];
      var tasks = Array.isArray(f.tasks) ? f.tasks : [];
      var objects = Array.isArray(f.objects) ? f.objects : [];
      var box = h("div", { className: "finding " + (deadlock ? "bad" : "warn") + (String(i) === params.finding ? " selected" : ""), id: "finding-" + i },
        h("div", { className: "finding-head" }, h("span", { className: "badge " + (deadlock ? "bad" : "warn") }, deadlock ? "DEADLOCK" : "WARNING"), " ", h("b", null, String(f.kind))),
        h("p", { className: "finding-message" }, dom.printable(f.message, 2000)),
        h("div", { className: "finding-tasks" }, "Tasks: ", tasks.map(function (id, k) {
          var t = ix.byId.get(id);
          return [k ? ", " : "", h("a", { href: "#", className: "task-link", onclick: function (ev) {
            ev.preventDefault();
            var el = document.querySelector('[data-task="' + CSS.escape(id) + '"]');
            if (el) {
              document.querySelectorAll(".task.selected").forEach(function (x) { x.classList.remove("selected"); });
              el.classList.add("selected");
              el.scrollIntoView({ block: "center" });
            }
          } }, t ? dom.printable(t.name, 100) : id)];
        })),
        tasks.length ? cycleDiagram(ix, f, tasks, objects) : null);
      panel.appendChild(box);
    });
    return panel;
  }

  // The wait-for cycle as a ring: each task waits for the next (through the
  // lock or object between them, when the finding names one).
  function cycleDiagram(ix, f, tasks, objects) {
    var n = Math.min(tasks.length, 12);
    var cyclic = f.kind === "await-cycle" || f.kind === "lock-deadlock";
    var W = 560, H = n === 1 ? 150 : Math.max(170, 110 + n * 22), cx = W / 2, cy = H / 2;
    var r = n === 1 ? 0 : Math.min(cx - 110, cy - 30);
    var s = dom.svg("svg", { className: "cycle", viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img" });
    s.appendChild(dom.svg("defs", null, dom.svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      dom.svg("path", { d: "M0,0 L10,5 L0,10 z", className: "arrowhead" }))));
    var pts = [];
    for (var i = 0; i < n; i++) {
      var a = -Math.PI / 2 + (2 * Math.PI * i) / n;
      pts.push({ x: cx + r * Math.cos(a), y: cy + r * Math.sin(a) });
    }
    function label(id) {
      var t = ix.byId.get(id);
      return t ? t.name : id;
    }
    if (n === 1) {
      var p = pts[0];
      s.appendChild(dom.svg("path", { d: "M" + (p.x + 60) + "," + (p.y - 8) + " C" + (p.x + 150) + "," + (p.y - 70) + " " + (p.x - 150) + "," + (p.y - 70) + " " + (p.x - 60) + "," + (p.y - 8), className: "edge", "marker-end": "url(#arrow)" }));
      if (objects[0]) s.appendChild(dom.svg("text", { x: p.x, y: p.y - 52, className: "edge-label", "text-anchor": "middle", text: "waits for " + objects[0] + ", which it holds" }));
    } else {
      for (var j = 0; j < n; j++) {
        if (!cyclic && j === n - 1) break;
        var from = pts[j], to = pts[(j + 1) % n];
        var dx = to.x - from.x, dy = to.y - from.y, len = Math.sqrt(dx * dx + dy * dy) || 1;
        // Bowed to the left of its direction: two tasks waiting on each
        // other get two separate arcs.
        var nx = dy / len, ny = -dx / len, bow = n === 2 ? 45 : 18;
        var sx = from.x + (dx / len) * 22 + nx * 10, sy = from.y + (dy / len) * 16 + ny * 10;
        var ex = to.x - (dx / len) * 22 + nx * 10, ey = to.y - (dy / len) * 16 + ny * 10;
        var qx = (sx + ex) / 2 + nx * bow, qy = (sy + ey) / 2 + ny * bow;
        s.appendChild(dom.svg("path", { d: "M" + sx + "," + sy + " Q" + qx + "," + qy + " " + ex + "," + ey, className: "edge", "marker-end": "url(#arrow)" }));
        var obj = f.kind === "lock-deadlock" ? lockBetween(ix, tasks[j], tasks[(j + 1) % n]) : null;
        if (obj) s.appendChild(dom.svg("text", { x: (sx + ex) / 2 + nx * (bow * 0.55 + 8), y: (sy + ey) / 2 + ny * (bow * 0.55 + 8) + 4, className: "edge-label", "text-anchor": nx > 0.3 ? "start" : nx < -0.3 ? "end" : "middle", text: "waits for " + obj }));
      }
    }
    pts.forEach(function (pt, k) {
      var g = dom.svg("g", { className: "cycle-node" });
      g.appendChild(dom.svg("rect", { x: pt.x - 60, y: pt.y - 14, width: 120, height: 28, rx: 6 }));
      g.appendChild(dom.svg("text", { x: pt.x, y: pt.y + 5, "text-anchor": "middle", text: dom.printable(label(tasks[k]), 18) }));
      g.appendChild(dom.svg("title", { text: label(tasks[k]) }));
      s.appendChild(g);
    });
    return h("div", { className: "cycle-wrap" }, s, tasks.length > n ? h("div", { className: "dim small" }, (tasks.length - n) + " more tasks in the cycle") : null);
  }

  // The lock `a` waits for that `b` holds (a lock-deadlock edge).
  function lockBetween(ix, a, b) {
    var ta = ix.byId.get(a), tb = ix.byId.get(b);
    if (!ta || !tb || !ta.awaiting) return null;
    var want = ta.awaiting.object;
    return Array.isArray(tb.holds) && tb.holds.indexOf(want) >= 0 ? (ta.awaiting.object_type || "lock") + " " + want : null;
  }

  ns.views = ns.views || {};
  ns.views.tasks = { title: "Tasks", render: render };
})((globalThis.aioscope = globalThis.aioscope || {}));
