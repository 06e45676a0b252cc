// Stall stacks merged into one flame graph. A stall's path runs from the
// outermost Python frame to the innermost, then on into the native frames
// that innermost Python frame called (the native stack's frames above the
// interpreter's eval loop: `time_sleep`, `clock_nanosleep`...). The same
// paths feed the folded and speedscope exports (cli/report/stall_stacks.cpp
// follows these rules).
"use strict";
(function (ns) {
  function arr(v) {
    return Array.isArray(v) ? v : [];
  }

  // The interpreter's eval loop: the native frames below it are Python's own
  // and are already shown as Python frames.
  var EVAL = /^_?PyEval_EvalFrame|^_PyEval_Vector$|^PyEval_EvalCode/;
  // Calling conventions between the eval loop and a C function: noise.
  var GLUE = /^_?PyObject_(Vectorcall|Call)|^_PyFunction_Vectorcall|^cfunction_(vectorcall|call)|^method_vectorcall|^_PyCFunction|^PyCFunction_Call|^vectorcall_/;

  function pyFrame(f) {
    var name = (f && (f.qualname || f["function"])) || "?";
    return { name: String(name), file: f && typeof f.file === "string" ? f.file : null, line: f && typeof f.line === "number" ? f.line : null, native: false };
  }

  function nativeFrame(f) {
    var mod = f && typeof f.module === "string" ? f.module : null;
    var name = f && f["function"] ? String(f["function"]) : (f && f.address ? String(f.address) : "?");
    return { name: name, file: mod, line: null, native: true };
  }

  // Root first. `stall` is a model stall (model.js) or a raw stall event.
  function stallPath(stall) {
    var e = stall && stall.ev !== undefined ? stall.ev : stall;
    if (!e) return [{ name: "(no stack: only the stall's end was recorded)", file: null, line: null, native: false }];
    var py = arr(e.stack);
    var path = [];
    for (var i = py.length - 1; i >= 0; i--) path.push(pyFrame(py[i]));
    var nat = arr(e.native_stack);
    var called = [];
    for (var j = 0; j < nat.length; j++) {
      var f = nat[j];
      var fn = f && typeof f["function"] === "string" ? f["function"] : "";
      if (EVAL.test(fn)) break;
      if (!GLUE.test(fn)) called.push(nativeFrame(f));
    }
    // Without an eval loop (an unwind cut short, a thread outside Python)
    // the innermost frames are still what the thread was doing: keep them.
    for (var k = called.length - 1; k >= 0; k--) path.push(called[k]);
    if (!path.length) path.push({ name: e.captured === false ? "(ended before its stack could be read)" : "(no stack)", file: null, line: null, native: false });
    return path;
  }

  function frameLabel(f) {
    if (f.native) return f.name + (f.file ? " (" + ns.dom.baseName(f.file) + ")" : "");
    return f.name + (f.file ? " (" + ns.dom.baseName(f.file) + (f.line !== null ? ":" + f.line : "") + ")" : "");
  }

  // Keys travel in the page's URL (#stalls?frame=...): printable ASCII only.
  function frameKey(f) {
    return (f.native ? "N" : "P") + encodeURIComponent(f.name) + "|" + encodeURIComponent(f.file || "") + "|" + (f.line === null ? "" : f.line);
  }

  // Tree: {name, frame, key, value, count, stalls: [stall idx], children: []}
  // children sorted by value, largest first. weight(stall) -> number.
  function build(stalls, weight, rootName) {
    var root = { frame: { name: rootName || "all stalls", file: null, line: null, native: false }, key: "", value: 0, count: 0, stalls: [], children: [], byKey: new Map() };
    stalls.forEach(function (s) {
      var w = weight(s);
      if (!(w > 0)) return;
      var node = root;
      node.value += w;
      node.count++;
      node.stalls.push(s.idx);
      var path = stallPath(s);
      for (var i = 0; i < path.length; i++) {
        var k = frameKey(path[i]);
        var child = node.byKey.get(k);
        if (!child) {
          child = { frame: path[i], key: node.key + "/" + k, value: 0, count: 0, stalls: [], children: [], byKey: new Map() };
          node.byKey.set(k, child);
          node.children.push(child);
        }
        child.value += w;
        child.count++;
        child.stalls.push(s.idx);
        node = child;
      }
    });
    (function sort(n) {
      n.children.sort(function (a, b) { return b.value - a.value; });
      n.children.forEach(sort);
    })(root);
    return root;
  }

  function find(root, key) {
    if (!key) return root;
    var stack = [root];
    while (stack.length) {
      var n = stack.pop();
      if (n.key === key) return n;
      if (key.indexOf(n.key) === 0) for (var i = 0; i < n.children.length; i++) stack.push(n.children[i]);
    }
    return null;
  }

  ns.flame = { stallPath: stallPath, build: build, find: find, frameLabel: frameLabel };
})((globalThis.aioscope = globalThis.aioscope || {}));
