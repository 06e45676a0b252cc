// The viewer's shell: loads the data embedded by `aioscope report` and files
// opened or dropped, keeps the model, and shows one view at a time. The view
// and its state live in the URL's fragment (#tasks?snap=2&q=lock) so a link
// to a problem can be shared and the browser's back button works.
"use strict";
(function (ns) {
  var dom = ns.dom, h = dom.h;
  var VIEWS = ["overview", "timeline", "tasks", "stalls", "events"];
  var sources = [];
  var app = {
    model: ns.model.build([]),
    go: go,
    href: href,
    tooltip: tooltip,
  };
  ns.app = app;

  function parseHash() {
    var raw = (location.hash || "").replace(/^#/, "");
    var q = raw.indexOf("?");
    var view = q < 0 ? raw : raw.slice(0, q);
    var params = {};
    if (q >= 0) {
      new URLSearchParams(raw.slice(q + 1)).forEach(function (v, k) { params[k] = v; });
    }
    if (VIEWS.indexOf(view) < 0) view = "overview";
    return { view: view, params: params };
  }

  function href(view, params) {
    var qs = params ? new URLSearchParams(params).toString() : "";
    return "#" + view + (qs ? "?" + qs : "");
  }

  function go(view, params, replace) {
    var target = href(view, params);
    if (location.hash === target) render();
    else if (replace) {
      history.replaceState(null, "", target);
      render();
    } else location.hash = target;
  }

  function renderTabs(current) {
    var m = app.model;
    var counts = {
      overview: null,
      timeline: null,
      tasks: m.snapshots.length ? m.snapshots.reduce(function (n, s) { return Math.max(n, s.tasks.length); }, 0) : null,
      stalls: m.stalls.length,
      events: m.bugs.length,
    };
    var nav = dom.clear(document.getElementById("tabs"));
    VIEWS.forEach(function (v) {
      var view = ns.views[v];
      nav.appendChild(h("a", { href: "#" + v, className: "tab" + (v === current ? " current" : ""), id: "tab-" + v },
        view.title, counts[v] ? h("span", { className: "count" }, String(counts[v])) : null));
    });
    document.getElementById("clear-button").hidden = !sources.length;
  }

  function render() {
    var state = parseHash();
    renderTabs(state.view);
    var container = dom.clear(document.getElementById("view"));
    container.className = "view-" + state.view;
    tooltip(null);
    if (!app.model.sources.length) {
      container.appendChild(emptyState());
      return;
    }
    try {
      ns.views[state.view].render(container, app.model, state.params, app);
    } catch (err) {
      container.appendChild(h("div", { className: "error" }, "This view failed: " + (err && err.message)));
      if (typeof console !== "undefined") console.error(err);
    }
  }

  function emptyState() {
    return h("div", { className: "empty" },
      h("h1", null, "aioscope viewer"),
      h("p", null, "Open a snapshot (aioscope dump --json PID > snap.json) or an event stream " +
        "(aioscope run --output events.jsonl -- python app.py), one file or many, from one process or many."),
      h("p", null, "Use \u201cOpen files\u2026\u201d above or drop the files on this page. Nothing leaves your browser."));
  }

  function rebuild() {
    var t0 = performance.now();
    app.model = ns.model.build(sources);
    app.buildMs = performance.now() - t0;
    render();
  }

  function addSources(list) {
    list.forEach(function (s) { sources.push(s); });
    rebuild();
  }

  function readFiles(files) {
    var pending = files.length, loaded = [];
    if (!pending) return;
    Array.prototype.forEach.call(files, function (file, i) {
      var reader = new FileReader();
      reader.onload = function () {
        loaded[i] = ns.load.parse(file.name, String(reader.result));
        if (--pending === 0) addSources([].concat.apply([], loaded));
      };
      reader.onerror = function () {
        loaded[i] = [{ name: file.name, kind: "error", errors: ["could not be read"] }];
        if (--pending === 0) addSources([].concat.apply([], loaded));
      };
      reader.readAsText(file);
    });
  }

  // One tooltip for the page; `content` is a node or null to hide.
  function tooltip(content, x, y) {
    var tip = document.getElementById("tooltip");
    if (!tip) return;
    if (!content) {
      tip.hidden = true;
      return;
    }
    dom.clear(tip).appendChild(content);
    tip.hidden = false;
    var w = tip.offsetWidth, hgt = tip.offsetHeight;
    var left = Math.min(x + 14, window.innerWidth - w - 8);
    var top = y + 14 + hgt > window.innerHeight ? Math.max(8, y - hgt - 8) : y + 14;
    tip.style.left = Math.max(8, left) + "px";
    tip.style.top = top + "px";
  }

  function setupInput() {
    var input = document.getElementById("file-input");
    input.addEventListener("change", function () {
      readFiles(input.files);
      input.value = "";
    });
    document.getElementById("clear-button").addEventListener("click", function () {
      sources = [];
      rebuild();
    });
    var overlay = document.getElementById("drop-overlay");
    var depth = 0;
    document.addEventListener("dragenter", function (e) {
      if (!e.dataTransfer || Array.prototype.indexOf.call(e.dataTransfer.types, "Files") < 0) return;
      depth++;
      overlay.hidden = false;
    });
    document.addEventListener("dragleave", function () {
      if (--depth <= 0) {
        depth = 0;
        overlay.hidden = true;
      }
    });
    document.addEventListener("dragover", function (e) { e.preventDefault(); });
    document.addEventListener("drop", function (e) {
      e.preventDefault();
      depth = 0;
      overlay.hidden = true;
      if (e.dataTransfer && e.dataTransfer.files) readFiles(e.dataTransfer.files);
    });
  }

  function embedded() {
    var el = document.getElementById("aioscope-data");
    if (!el) return [];
    try {
      return ns.load.fromReport(JSON.parse(el.textContent), "report");
    } catch (err) {
      return [{ name: "report", kind: "error", errors: ["the embedded data is unreadable: " + err.message] }];
    }
  }

  function start() {
    setupInput();
    window.addEventListener("hashchange", render);
    var t0 = performance.now();
    sources = embedded();
    app.parseMs = performance.now() - t0;
    rebuild();
    // For tests and the curious: when the first view was on screen.
    document.body.dataset.readyMs = String(Math.round(performance.now()));
    document.body.dataset.ready = "1";
  }

  start();
})((globalThis.aioscope = globalThis.aioscope || {}));
