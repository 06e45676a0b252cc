// The model every view reads: sources (load.js) merged into processes,
// snapshots, stalls (a `stall` paired with its `stall_end`), silent-bug events
// and other messages, on one time axis. Input objects are never modified (a
// packed report shares subtrees between them).
"use strict";
(function (ns) {
  var BUG_TYPES = ["unawaited_coroutine", "cancellation_swallowed", "task_exception_unretrieved", "task_destroyed_pending"];
  var BUG_LABELS = {
    unawaited_coroutine: "Coroutine never awaited",
    cancellation_swallowed: "Cancellation swallowed",
    task_exception_unretrieved: "Task exception never retrieved",
    task_destroyed_pending: "Pending task destroyed",
  };
  var DEADLOCK_KINDS = { "await-cycle": true, "lock-deadlock": true, "orphaned-wait": true, "abandoned-lock": true };
  var CAPABILITY_LABELS = {
    stall_detection: "stall detection",
    unawaited_coroutine: "never-awaited coroutines",
    cancellation_swallowed: "swallowed cancellations",
    task_exception_unretrieved: "unretrieved task exceptions",
    task_destroyed_pending: "destroyed pending tasks",
    snapshots: "snapshots",
  };

  function num(v) {
    return typeof v === "number" && isFinite(v) ? v : null;
  }
  function isObject(v) {
    return !!v && typeof v === "object" && !Array.isArray(v);
  }
  function arr(v) {
    return Array.isArray(v) ? v : [];
  }
  function str(v) {
    return typeof v === "string" ? v : null;
  }

  function isBugType(type) {
    return BUG_TYPES.indexOf(type) >= 0;
  }

  function newProcess(pid) {
    return {
      pid: pid,
      python: null,
      hellos: [],
      mode: null,
      agentVersion: null,
      options: null,
      capabilities: {}, // name -> {state, reason, ts}
      gaps: {}, // name -> the first warning that the check, active, missed part of the run
      exit: null,
      first: null,
      last: null,
      threadNames: {}, // native_id or thread_id -> name (from snapshots)
      snapshots: [],
      stalls: [],
      bugs: [],
      messages: [],
      dropped: 0,
      sources: [],
    };
  }

  function build(sources) {
    var m = {
      sources: [],
      processes: [],
      byPid: {},
      snapshots: [],
      stalls: [],
      bugs: [],
      messages: [],
      findings: [],
      t0: null,
      t1: null,
      errors: [],
    };
    var stallByKey = {};

    function proc(pid, sourceName) {
      var key = String(pid);
      var p = m.byPid[key];
      if (!p) {
        p = m.byPid[key] = newProcess(pid);
        m.processes.push(p);
      }
      if (sourceName && p.sources.indexOf(sourceName) < 0) p.sources.push(sourceName);
      return p;
    }
    function seen(p, t) {
      if (t === null) return;
      if (p.first === null || t < p.first) p.first = t;
      if (p.last === null || t > p.last) p.last = t;
    }
    function addSnapshot(p, ts, doc, src, reason, fromDump) {
      var snap = {
        idx: m.snapshots.length,
        pid: p.pid,
        ts: ts,
        source: src,
        reason: reason,
        fromDump: fromDump,
        doc: doc,
        threads: arr(doc.threads),
        tasks: arr(doc.tasks),
        findings: arr(doc.findings),
        warnings: arr(doc.warnings),
      };
      m.snapshots.push(snap);
      p.snapshots.push(snap);
      snap.threads.forEach(function (t) {
        if (!isObject(t) || typeof t.name !== "string") return;
        if (num(t.native_id) !== null) p.threadNames["n" + t.native_id] = t.name;
        if (num(t.thread_id) !== null) p.threadNames["t" + t.thread_id] = t.name;
      });
      snap.findings.forEach(function (f, i) {
        if (!isObject(f)) return;
        m.findings.push({ snap: snap, index: i, finding: f, deadlock: !!DEADLOCK_KINDS[f.kind] });
      });
      seen(p, ts);
    }

    sources.forEach(function (src) {
      m.sources.push({ name: src.name, kind: src.kind, errors: src.errors || [], count: 0, skipped: src.skipped || 0 });
      var entry = m.sources[m.sources.length - 1];
      if (src.kind === "snapshot") {
        var doc = src.doc;
        var pid = num(doc.pid);
        var p = proc(pid === null ? "?" : pid, src.name);
        if (isObject(doc.python)) p.python = doc.python;
        addSnapshot(p, num(doc.captured_at), doc, src.name, "dump", true);
        entry.count = 1;
        return;
      }
      if (src.kind !== "events") return;
      entry.count = src.events.length;
      src.events.forEach(function (e) {
        var pid = num(e.pid);
        var p = proc(pid === null ? "?" : pid, src.name);
        var ts = num(e.ts);
        seen(p, ts);
        var type = e.type;
        if (type === "connect") return;
        if (type === "hello") {
          p.hellos.push(e);
          if (isObject(e.python)) p.python = e.python;
          p.mode = str(e.mode) || p.mode;
          p.agentVersion = str(e.agent_version) || p.agentVersion;
          if (isObject(e.options)) p.options = e.options;
          if (isObject(e.capabilities)) setCapabilities(p, e.capabilities, ts);
          else if (typeof e.stall_detection === "string" && !p.capabilities.stall_detection) {
            var active = e.stall_detection === "active";
            p.capabilities.stall_detection = { state: active ? "active" : "pending", reason: active ? null : e.stall_detection, ts: ts };
          }
        } else if (type === "capabilities") {
          if (isObject(e.capabilities)) setCapabilities(p, e.capabilities, ts);
          p.messages.push(message(e, ts));
        } else if (type === "snapshot") {
          addSnapshot(p, ts, e, src.name, str(e.reason), false);
        } else if (type === "stall" || type === "stall_end") {
          var key = p.pid + ":" + e.stall_id + ":" + (e.native_id || e.thread_id);
          var s = stallByKey[key];
          if (!s || (type === "stall" && s.ev)) {
            s = stallByKey[key] = newStall(p, e);
            m.stalls.push(s);
            p.stalls.push(s);
          }
          if (type === "stall") s.ev = e;
          else s.end = e;
          updateStall(s);
          seen(p, s.start);
          if (s.start !== null && s.duration !== null) seen(p, s.start + s.duration / 1000);
        } else if (isBugType(type)) {
          var b = { idx: m.bugs.length, pid: p.pid, ts: ts, type: type, ev: e };
          m.bugs.push(b);
          p.bugs.push(b);
        } else if (type === "exit") {
          p.exit = e;
        } else if (type === "dropped") {
          p.dropped += num(e.count) || 0;
          p.messages.push(message(e, ts));
        } else {
          if (type === "warning" && typeof e.capability_gap === "string" && !p.gaps[e.capability_gap]) {
            p.gaps[e.capability_gap] = { message: str(e.message), ts: ts };
          }
          p.messages.push(message(e, ts));
        }
      });
    });

    m.stalls.sort(function (a, b) { return (a.start || 0) - (b.start || 0); });
    m.stalls.forEach(function (s, i) { s.idx = i; });
    m.processes.forEach(function (p) {
      p.stalls.sort(function (a, b) { return (a.start || 0) - (b.start || 0); });
      p.messages.forEach(function (msg) { m.messages.push(msg); });
      if (p.first !== null && (m.t0 === null || p.first < m.t0)) m.t0 = p.first;
      if (p.last !== null && (m.t1 === null || p.last > m.t1)) m.t1 = p.last;
    });
    m.messages.sort(function (a, b) { return (a.ts || 0) - (b.ts || 0); });
    m.messages.forEach(function (msg, i) { msg.idx = i; });
    m.processes.sort(function (a, b) { return (a.first || 0) - (b.first || 0); });
    return m;
  }

  function message(e, ts) {
    return { pid: e.pid, ts: ts, type: e.type, ev: e };
  }

  function setCapabilities(p, caps, ts) {
    for (var name in caps) {
      var c = caps[name];
      if (!isObject(c)) continue;
      p.capabilities[name] = { state: str(c.state) || "?", reason: str(c.reason), ts: ts };
    }
  }

  function newStall(p, e) {
    return {
      idx: -1,
      pid: p.pid,
      process: p,
      id: e.stall_id,
      ev: null,
      end: null,
      start: null,
      duration: null,
      exact: false,
      threadKey: null,
      threshold: p.options ? num(p.options.stall_threshold_ms) : null,
    };
  }

  function updateStall(s) {
    var e = s.ev || {}, end = s.end || {};
    s.start = num(e.started_at) !== null ? e.started_at : num(end.started_at);
    if (end && num(end.duration_ms) !== null) {
      s.duration = end.duration_ms;
      s.exact = true;
    } else {
      s.duration = num(e.elapsed_ms);
      s.exact = false;
    }
    var nid = num(e.native_id) !== null ? e.native_id : num(end.native_id);
    var tid = num(e.thread_id) !== null ? e.thread_id : num(end.thread_id);
    s.nativeId = nid;
    s.threadId = tid;
    s.threadKey = nid !== null ? "n" + nid : "t" + tid;
  }

  function threadName(p, key) {
    return p && p.threadNames[key] ? p.threadNames[key] : null;
  }

  // The innermost frame of a stack that is the program's own code rather than
  // the standard library's (asyncio, threading...): where to look first.
  var STDLIB = /\/lib\/python3\.\d+t?\/(?!site-packages\/|dist-packages\/)|^<frozen /;
  function userFrame(stack) {
    stack = arr(stack);
    for (var i = 0; i < stack.length; i++) {
      var f = stack[i];
      if (isObject(f) && typeof f.file === "string" && !STDLIB.test(f.file)) return f;
    }
    return isObject(stack[0]) ? stack[0] : null;
  }

  function stallStack(s) {
    return s.ev ? arr(s.ev.stack) : [];
  }

  // The task a bug event is about and where it happened (for lists).
  function bugLocation(b) {
    var e = b.ev;
    switch (b.type) {
      case "unawaited_coroutine":
        return e.discarded_at || e.created_at || e.defined_at || null;
      case "cancellation_swallowed":
        return e.caught_at || null;
      case "task_exception_unretrieved":
        return isObject(e.exception) ? userFrame(e.exception.traceback) : null;
      case "task_destroyed_pending":
        return userFrame(e.stack);
      default:
        return null;
    }
  }

  function capabilityLabel(name) {
    return CAPABILITY_LABELS[name] || name;
  }

  ns.model = {
    build: build,
    BUG_TYPES: BUG_TYPES,
    BUG_LABELS: BUG_LABELS,
    DEADLOCK_KINDS: DEADLOCK_KINDS,
    isBugType: isBugType,
    threadName: threadName,
    userFrame: userFrame,
    stallStack: stallStack,
    bugLocation: bugLocation,
    capabilityLabel: capabilityLabel,
  };
})((globalThis.aioscope = globalThis.aioscope || {}));
