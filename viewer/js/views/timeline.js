// Timeline: per process, one lane per event-loop thread with its stalls as
// bars (width: when and how long; height: how long, against the dashed
// threshold line), one lane of markers for the silent-bug events and other
// messages, and one of ticks for snapshots (red when they found a deadlock).
// Wheel or the buttons zoom, dragging pans; hovering a stall shows its
// stacks, clicking opens it in Stalls, Events or Tasks.
"use strict";
(function (ns) {
  var dom = ns.dom, h = dom.h, M = ns.model;
  var GUTTER = 190, LANE = 44, SMALL_LANE = 22, AXIS = 24;

  function lanesOf(m) {
    var lanes = [];
    m.processes.forEach(function (p) {
      var threads = {}, order = [];
      p.stalls.forEach(function (s) {
        if (!threads[s.threadKey]) {
          threads[s.threadKey] = [];
          order.push(s.threadKey);
        }
        threads[s.threadKey].push(s);
      });
      var markers = p.bugs.map(function (b) { return { ts: b.ts, bug: b }; })
        .concat(p.messages.filter(function (x) { return x.type !== "info"; }).map(function (x) { return { ts: x.ts, msg: x }; }))
        .filter(function (x) { return x.ts !== null; })
        .sort(function (a, b) { return a.ts - b.ts; });
      if (!order.length && !markers.length && !p.snapshots.length) return;
      lanes.push({ kind: "process", p: p, height: SMALL_LANE });
      order.forEach(function (key) {
        var name = M.threadName(p, key);
        var maxDur = 0;
        threads[key].forEach(function (s) { maxDur = Math.max(maxDur, s.duration || 0); });
        lanes.push({ kind: "stalls", p: p, key: key, name: name, stalls: threads[key], maxDur: maxDur, height: LANE });
      });
      if (!order.length && p.hellos.length) lanes.push({ kind: "nostalls", p: p, height: SMALL_LANE });
      if (markers.length) lanes.push({ kind: "markers", p: p, markers: markers, height: SMALL_LANE });
      if (p.snapshots.length) lanes.push({ kind: "snapshots", p: p, snaps: p.snapshots.filter(function (s) { return s.ts !== null; }), height: SMALL_LANE });
    });
    return lanes;
  }

  function threadLabel(key) {
    return (key.charAt(0) === "n" ? "thread " : "thread id ") + key.slice(1);
  }

  function render(container, m, params, app) {
    if (m.t0 === null) {
      container.appendChild(h("p", { className: "empty" }, "Nothing with a time was loaded."));
      return;
    }
    var lanes = lanesOf(m);
    var span = Math.max(m.t1 - m.t0, 0.001);
    var full = [m.t0 - span * 0.02, m.t1 + span * 0.02];
    var view = full.slice();
    var wrap = h("div", { className: "timeline", id: "timeline" });
    var toolbar = h("div", { className: "toolbar" },
      h("button", { type: "button", onclick: function () { zoom(0.5, 0.5); } }, "zoom in"),
      h("button", { type: "button", onclick: function () { zoom(2, 0.5); } }, "zoom out"),
      h("button", { type: "button", onclick: function () { view = full.slice(); draw(); } }, "fit"),
      h("span", { className: "dim small" }, " wheel: zoom \u00b7 drag: pan \u00b7 hover a stall for its stacks"),
      h("span", { className: "legend small" }, h("span", { className: "swatch stall" }), " stall ", h("span", { className: "swatch bug" }), " silent bug ",
        h("span", { className: "swatch msg" }), " warning/other ", h("span", { className: "swatch snap" }), " snapshot ", h("span", { className: "swatch snap-bad" }), " snapshot with a deadlock"));
    container.appendChild(toolbar);
    container.appendChild(wrap);
    var width = Math.max(600, (wrap.clientWidth || 1100) - 2);
    var height = AXIS + lanes.reduce(function (n, l) { return n + l.height; }, 0) + 4;
    var svgEl = dom.svg("svg", { width: width, height: height, className: "timeline-svg" });
    wrap.appendChild(svgEl);
    var plotW = width - GUTTER - 10;

    function x(t) {
      return GUTTER + ((t - view[0]) / (view[1] - view[0])) * plotW;
    }
    function zoom(factor, at) {
      var w = view[1] - view[0], c = view[0] + w * at;
      var nw = Math.max(w * factor, 0.0005);
      nw = Math.min(nw, (full[1] - full[0]) * 4);
      view = [c - nw * at, c - nw * at + nw];
      draw();
    }

    function draw() {
      dom.clear(svgEl);
      var y = AXIS;
      axis(svgEl, view, x, plotW, height, m.t0);
      lanes.forEach(function (l, li) {
        var g = dom.svg("g", { className: "lane lane-" + l.kind, transform: "translate(0," + y + ")" });
        g.appendChild(dom.svg("rect", { x: 0, y: 0, width: width, height: l.height, className: li % 2 ? "lane-bg odd" : "lane-bg" }));
        var label = l.kind === "process" ? "pid " + l.p.pid + (l.p.python && l.p.python.version ? " \u00b7 CPython " + l.p.python.version : "")
          : l.kind === "stalls" ? threadLabel(l.key) + (l.name ? " " + dom.printable(l.name, 20) : "")
          : l.kind === "markers" ? "events" : l.kind === "snapshots" ? "snapshots" : "no stalls";
        g.appendChild(dom.svg("text", { x: l.kind === "process" ? 6 : 16, y: l.kind === "stalls" ? 26 : 15, className: "lane-label" + (l.kind === "process" ? " process" : ""), text: label }));
        if (l.kind === "stalls") drawStalls(g, l);
        else if (l.kind === "markers") drawMarkers(g, l);
        else if (l.kind === "snapshots") drawSnaps(g, l);
        else if (l.kind === "process") drawSpan(g, l);
        svgEl.appendChild(g);
        y += l.height;
      });
    }

    function drawSpan(g, l) {
      if (l.p.first === null) return;
      var a = Math.max(GUTTER, x(l.p.first)), b = Math.min(width - 10, x(l.p.last));
      if (b > a) g.appendChild(dom.svg("line", { x1: a, x2: b, y1: 11, y2: 11, className: "life" }));
    }

    function drawStalls(g, l) {
      var thr = l.p.options && typeof l.p.options.stall_threshold_ms === "number" ? l.p.options.stall_threshold_ms : null;
      var max = Math.max(l.maxDur, thr || 0, 1);
      var usable = LANE - 8;
      if (thr) {
        var ty = LANE - 4 - (usable * thr) / max;
        g.appendChild(dom.svg("line", { x1: GUTTER, x2: width - 10, y1: ty, y2: ty, className: "threshold" }));
        g.appendChild(dom.svg("text", { x: 16, y: LANE - 5, className: "threshold-label", text: "- - threshold " + dom.fmtMs(thr) }));
      }
      // Stalls closer than a pixel merge (the longest is drawn): an hour of
      // stalls stays a few thousand elements.
      var lastPx = -1, lastRect = null, lastDur = 0;
      l.stalls.forEach(function (s) {
        if (s.start === null) return;
        var end = s.start + (s.duration || 0) / 1000;
        if (end < view[0] || s.start > view[1]) return;
        var x0 = x(s.start), x1 = x(end);
        var px = Math.floor(x0);
        var hgt = Math.max(3, (usable * (s.duration || 0)) / max);
        if (px === lastPx && lastRect && x1 - x0 < 1) {
          if ((s.duration || 0) > lastDur) {
            lastRect.setAttribute("height", hgt);
            lastRect.setAttribute("y", LANE - 4 - hgt);
            lastDur = s.duration || 0;
            lastRect.dataset.stall = s.idx;
          }
          return;
        }
        var rect = dom.svg("rect", {
          x: Math.max(GUTTER, x0), y: LANE - 4 - hgt, width: Math.max(1.5, Math.min(x1, width - 10) - Math.max(GUTTER, x0)), height: hgt,
          className: "stall-bar" + (s.exact ? "" : " open"),
        });
        rect.dataset.stall = s.idx;
        g.appendChild(rect);
        lastPx = px;
        lastRect = rect;
        lastDur = s.duration || 0;
      });
    }

    function drawMarkers(g, l) {
      var lastPx = -10;
      l.markers.forEach(function (mk) {
        if (mk.ts < view[0] || mk.ts > view[1]) return;
        var px = x(mk.ts);
        if (px - lastPx < 2) return;
        lastPx = px;
        var cls = mk.bug ? "marker bug" : "marker msg msg-" + mk.msg.type;
        var d = "M" + px + ",4 L" + (px + 5) + ",11 L" + px + ",18 L" + (px - 5) + ",11 z";
        var el = dom.svg("path", { d: d, className: cls });
        if (mk.bug) el.dataset.bug = mk.bug.idx;
        else el.dataset.msg = mk.msg.idx;
        g.appendChild(el);
      });
    }

    function drawSnaps(g, l) {
      var lastPx = -10;
      l.snaps.forEach(function (s) {
        if (s.ts < view[0] || s.ts > view[1]) return;
        var px = x(s.ts);
        var bad = s.findings.some(function (f) { return f && M.DEADLOCK_KINDS[f.kind]; });
        if (px - lastPx < 2 && !bad) return;
        lastPx = px;
        var el = dom.svg("rect", { x: px - 1.5, y: 3, width: 3, height: 16, className: "snap-tick" + (bad ? " bad" : "") });
        el.dataset.snap = s.idx;
        g.appendChild(el);
      });
    }

    // Interaction: wheel zoom around the pointer, drag to pan, hover, click.
    var drag = null;
    svgEl.addEventListener("wheel", function (ev) {
      var r = svgEl.getBoundingClientRect();
      var at = Math.min(1, Math.max(0, (ev.clientX - r.left - GUTTER) / plotW));
      ev.preventDefault();
      zoom(ev.deltaY > 0 ? 1.25 : 0.8, at);
    }, { passive: false });
    svgEl.addEventListener("pointerdown", function (ev) {
      drag = { x: ev.clientX, view: view.slice(), moved: false };
    });
    svgEl.addEventListener("pointerup", function () {
      // The click that ends a drag comes after this: let it see the drag.
      setTimeout(function () { drag = null; }, 0);
    });
    svgEl.addEventListener("pointermove", function (ev) {
      if (drag && ev.buttons) {
        var dx = ev.clientX - drag.x;
        if (Math.abs(dx) > 2) drag.moved = true;
        var dt = (-dx / plotW) * (drag.view[1] - drag.view[0]);
        view = [drag.view[0] + dt, drag.view[1] + dt];
        draw();
        return;
      }
      hover(ev);
    });
    svgEl.addEventListener("pointerleave", function () { app.tooltip(null); });
    svgEl.addEventListener("click", function (ev) {
      if (drag && drag.moved) return;
      var d = ev.target.dataset || {};
      if (d.stall !== undefined) app.go("stalls", { stall: d.stall });
      else if (d.bug !== undefined) app.go("events", { event: d.bug });
      else if (d.msg !== undefined) app.go("events", { other: 1 });
      else if (d.snap !== undefined) app.go("tasks", { snap: d.snap });
    });

    function hover(ev) {
      var d = ev.target.dataset || {};
      var content = null;
      if (d.stall !== undefined) content = stallTip(m, m.stalls[+d.stall]);
      else if (d.bug !== undefined) content = bugTip(m.bugs[+d.bug]);
      else if (d.msg !== undefined) {
        var x0 = m.messages[+d.msg];
        content = x0 ? h("div", null, h("b", null, x0.type), " ", dom.printable(x0.ev.message || (x0.type === "dropped" ? x0.ev.count + " events dropped" : ""), 400)) : null;
      } else if (d.snap !== undefined) {
        var s = m.snapshots[+d.snap];
        content = s ? h("div", null, h("b", null, "snapshot"), " " + dom.fmtClock(s.ts) + " \u00b7 " + s.tasks.length + " tasks" +
          (s.findings.length ? " \u00b7 " + dom.plural(s.findings.length, "finding") : "") + (s.reason && s.reason !== "dump" ? " \u00b7 " + s.reason : "")) : null;
      }
      app.tooltip(content, ev.clientX, ev.clientY);
    }

    draw();
    if (params.stall !== undefined && m.stalls[+params.stall]) {
      var s0 = m.stalls[+params.stall];
      var w = Math.max((s0.duration || 100) / 1000 * 20, 0.5);
      view = [s0.start - w / 2, s0.start + w / 2];
      draw();
    }
  }

  function axis(svgEl, view, x, plotW, height, t0) {
    var span = view[1] - view[0];
    var steps = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
    var step = steps[steps.length - 1];
    for (var i = 0; i < steps.length; i++) {
      if (span / steps[i] <= plotW / 90) {
        step = steps[i];
        break;
      }
    }
    var g = dom.svg("g", { className: "axis" });
    var first = Math.ceil((view[0] - t0) / step) * step;
    for (var t = first; t0 + t <= view[1]; t += step) {
      var px = x(t0 + t);
      g.appendChild(dom.svg("line", { x1: px, x2: px, y1: AXIS - 6, y2: height, className: "grid-line" }));
      g.appendChild(dom.svg("text", { x: px, y: AXIS - 9, "text-anchor": "middle", className: "tick", text: dom.fmtRel(Math.round(t / step) * step) }));
    }
    svgEl.appendChild(g);
  }

  function stallTip(m, s) {
    if (!s) return null;
    var e = s.ev || {};
    var lines = [h("div", null, h("b", null, "stall " + (s.exact ? "" : "\u2265 ") + dom.fmtMs(s.duration)), " \u00b7 pid " + s.pid + " \u00b7 " + dom.fmtClock(s.start))];
    if (e.task && e.task.name) lines.push(h("div", null, "task '" + dom.printable(e.task.name, 80) + "'"));
    var py = Array.isArray(e.stack) ? e.stack : [];
    py.slice(0, 10).forEach(function (f) { lines.push(h("div", { className: "tip-frame" }, dom.printable(dom.frameText(f), 160))); });
    if (py.length > 10) lines.push(h("div", { className: "dim" }, (py.length - 10) + " more frames"));
    var nat = Array.isArray(e.native_stack) ? e.native_stack : [];
    if (nat.length) {
      lines.push(h("div", { className: "dim" }, "native:"));
      nat.slice(0, 6).forEach(function (f) { lines.push(h("div", { className: "tip-frame native" }, dom.printable((f && (f["function"] || f.address)) + " (" + dom.baseName(f && f.module) + ")", 160))); });
    }
    if (!s.ev) lines.push(h("div", { className: "dim" }, "only its end was recorded"));
    return h("div", null, lines);
  }

  function bugTip(b) {
    if (!b) return null;
    var loc = M.bugLocation(b);
    var e = b.ev;
    return h("div", null, h("b", null, M.BUG_LABELS[b.type] || b.type), e.task && e.task.name ? " \u00b7 task '" + dom.printable(e.task.name, 80) + "'" : "",
      loc ? h("div", { className: "tip-frame" }, dom.printable(dom.frameText(loc), 200)) : null,
      e.test ? h("div", { className: "dim" }, "test " + dom.printable(e.test, 200)) : null);
  }

  ns.views = ns.views || {};
  ns.views.timeline = { title: "Timeline", render: render, lanesOf: lanesOf };
})((globalThis.aioscope = globalThis.aioscope || {}));
