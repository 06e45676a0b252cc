// The awaited-by forest of one snapshot, as `aioscope dump` prints it: per
// event loop, the tasks nothing awaits are roots and a task's children are the
// tasks it awaits (those whose `awaited_by` names it). Tasks reachable only
// through a cycle get a root of their own, marked. Siblings that would render
// identically (same state, wait, stack, no children, not in a finding) fold
// into one node with a count. Filtering keeps the matching tasks and the
// tasks above them.
"use strict";
(function (ns) {
  function arr(v) {
    return Array.isArray(v) ? v : [];
  }

  function index(snap) {
    var tasks = snap.tasks.filter(function (t) { return t && typeof t === "object" && typeof t.id === "string"; });
    var byId = new Map();
    tasks.forEach(function (t) { if (!byId.has(t.id)) byId.set(t.id, t); });
    var children = new Map();
    var holders = new Map();
    tasks.forEach(function (t) {
      arr(t.awaited_by).forEach(function (w) {
        if (!byId.has(w) || w === t.id) return;
        var list = children.get(w);
        if (!list) children.set(w, (list = []));
        if (list.indexOf(t) < 0) list.push(t);
      });
      arr(t.holds).forEach(function (lock) {
        var list = holders.get(lock);
        if (!list) holders.set(lock, (list = []));
        list.push(t);
      });
    });
    var flagged = new Set();
    snap.findings.forEach(function (f) {
      if (f && typeof f === "object") arr(f.tasks).forEach(function (id) { flagged.add(id); });
    });
    return { tasks: tasks, byId: byId, children: children, holders: holders, flagged: flagged, sigs: new Map() };
  }

  function childrenOf(ix, t) {
    return ix.children.get(t.id) || [];
  }

  function isAwaited(ix, t) {
    return arr(t.awaited_by).some(function (w) { return w !== t.id && ix.byId.has(w); });
  }

  // Per event loop: {loop, threadId, tasks, roots, cycleRoots}.
  function loops(ix) {
    var order = [], byLoop = new Map();
    ix.tasks.forEach(function (t) {
      var key = typeof t.loop === "string" ? t.loop : "(no loop)";
      var l = byLoop.get(key);
      if (!l) {
        l = { loop: key, threadId: t.thread_id === undefined ? null : t.thread_id, tasks: [], roots: [], cycleRoots: [] };
        byLoop.set(key, l);
        order.push(l);
      }
      l.tasks.push(t);
    });
    order.forEach(function (l) {
      var reached = new Set();
      function reach(t) {
        var stack = [t];
        while (stack.length) {
          var x = stack.pop();
          if (reached.has(x.id)) continue;
          reached.add(x.id);
          var ch = childrenOf(ix, x);
          for (var i = 0; i < ch.length; i++) stack.push(ch[i]);
        }
      }
      l.tasks.forEach(function (t) {
        if (!isAwaited(ix, t)) {
          l.roots.push(t);
          reach(t);
        }
      });
      l.tasks.forEach(function (t) {
        if (!reached.has(t.id)) {
          l.cycleRoots.push(t);
          reach(t);
        }
      });
    });
    return order;
  }

  function frameKey(f) {
    if (!f || typeof f !== "object") return "?";
    return (f.qualname || f["function"]) + "\u0000" + f.file + "\u0000" + f.line;
  }

  function signature(ix, t) {
    var s = ix.sigs.get(t);
    if (s === undefined) {
      var a = t.awaiting && typeof t.awaiting === "object" ? t.awaiting.kind : "";
      s = t.state + "\u0001" + a + "\u0001" + arr(t.stack).map(frameKey).join("\u0001");
      ix.sigs.set(t, s);
    }
    return s;
  }

  function foldable(ix, t) {
    return !ix.flagged.has(t.id) && childrenOf(ix, t).length === 0 && arr(t.holds).length === 0 && !t.error;
  }

  // [{task, count, members}], in first-appearance order; `keep` (a Set of ids
  // or null) restricts the level to filtered tasks.
  function group(ix, level, keep) {
    var groups = [], bySig = new Map();
    for (var i = 0; i < level.length; i++) {
      var t = level[i];
      if (keep && !keep.has(t.id)) continue;
      if (foldable(ix, t)) {
        var sig = signature(ix, t);
        var g = bySig.get(sig);
        if (g) {
          g.count++;
          g.members.push(t);
          continue;
        }
        g = { task: t, count: 1, members: [t] };
        bySig.set(sig, g);
        groups.push(g);
      } else {
        groups.push({ task: t, count: 1, members: [t] });
      }
    }
    return groups;
  }

  // What a task waits on, in words (as the text renderer says it).
  function waitText(ix, t) {
    if (t.state === "running") return "running (it has the event loop)";
    var a = t.awaiting;
    if (!a || typeof a !== "object") return t.state === "pending" ? "ready to run" : String(t.state || "");
    var k = a.kind;
    var label = function (id) {
      var x = ix.byId.get(id);
      return x ? "'" + x.name + "'" : String(id);
    };
    if (k === "task") return "awaits task " + label(a.task || a.address);
    if (k === "gather") return "awaits gather of " + arr(a.children).length;
    if (k === "taskgroup") return "awaits TaskGroup of " + arr(a.children).length + " tasks";
    if (k === "sleep") return "sleeping";
    if (k === "nursery") return "awaits nursery of " + arr(a.children).length + " tasks";
    if ((k === "wait-readable" || k === "wait-writable") && typeof a.fd === "number") {
      return "waits until fd " + a.fd + (k === "wait-readable" ? " is readable" : " is writable");
    }
    if (k === "to-thread") return "waits for its worker thread";
    var text = "waits on " + (a.object ? (a.object_type || k) + " " + a.object : k + " " + (a.address || ""));
    if (k === "lock" || k === "semaphore") {
      var hs = ix.holders.get(a.object) || [];
      // trio records a Lock's owner, and no holder for other primitives.
      if (!hs.length) text += t.runtime === "trio" ? "" : " (holder unknown)";
      else text += " held by " + hs.map(function (x) { return "'" + x.name + "'"; }).join(", ");
    } else if (k && k !== "future" && String(a.object_type || "").toLowerCase() !== k) {
      text += " [" + k + "]";
    }
    if (a.external_refs === 0) text += " (nothing else refers to it)";
    return text;
  }

  // Query: words, all of which must match; "state:", "name:", "file:",
  // "func:", "kind:" restrict a word to one field. Case-insensitive.
  function parseQuery(q) {
    var words = String(q || "").toLowerCase().split(/\s+/).filter(Boolean);
    return words.map(function (w) {
      var m = /^(state|name|file|func|kind|id):(.*)$/.exec(w);
      return m ? { field: m[1], text: m[2] } : { field: null, text: w };
    });
  }

  function fields(t) {
    var stack = arr(t.stack);
    var files = [], funcs = [];
    for (var i = 0; i < stack.length; i++) {
      var f = stack[i];
      if (!f || typeof f !== "object") continue;
      files.push(String(f.file || "") + ":" + f.line);
      funcs.push(String(f.qualname || f["function"] || ""));
    }
    return {
      name: String(t.name || "").toLowerCase(),
      state: String(t.state || "").toLowerCase(),
      file: files.join("\n").toLowerCase(),
      func: funcs.join("\n").toLowerCase(),
      kind: t.awaiting && typeof t.awaiting === "object" ? String(t.awaiting.kind || "").toLowerCase() : "",
      id: String(t.id).toLowerCase(),
    };
  }

  function matches(ix, t, query) {
    if (!ix.fields) ix.fields = new Map();
    var f = ix.fields.get(t);
    if (!f) ix.fields.set(t, (f = fields(t)));
    for (var i = 0; i < query.length; i++) {
      var w = query[i];
      if (w.field) {
        if (f[w.field].indexOf(w.text) < 0) return false;
      } else if (f.name.indexOf(w.text) < 0 && f.file.indexOf(w.text) < 0 && f.func.indexOf(w.text) < 0 &&
                 f.state.indexOf(w.text) < 0 && f.kind.indexOf(w.text) < 0 && f.id.indexOf(w.text) < 0) {
        return false;
      }
    }
    return true;
  }

  // {matched: count, keep: Set of ids (matches and everything above them)}.
  function filter(ix, q) {
    var query = parseQuery(q);
    if (!query.length) return null;
    var keep = new Set(), matched = 0, stack = [];
    ix.tasks.forEach(function (t) {
      if (matches(ix, t, query)) {
        matched++;
        stack.push(t);
      }
    });
    while (stack.length) {
      var t = stack.pop();
      if (keep.has(t.id)) continue;
      keep.add(t.id);
      arr(t.awaited_by).forEach(function (w) {
        var p = ix.byId.get(w);
        if (p && !keep.has(w)) stack.push(p);
      });
    }
    return { matched: matched, keep: keep, query: query };
  }

  ns.forest = {
    index: index,
    loops: loops,
    childrenOf: childrenOf,
    group: group,
    signature: signature,
    waitText: waitText,
    filter: filter,
    matches: function (ix, t, q) { return matches(ix, t, parseQuery(q)); },
  };
})((globalThis.aioscope = globalThis.aioscope || {}));
