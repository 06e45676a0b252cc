// Overview: the worst problems first (each a link to where it is shown), then
// every process (interpreter, how long it was observed, counts, exit), what
// could not be checked, and the files read.
"use strict";
(function (ns) {
  var dom = ns.dom, h = dom.h, M = ns.model;

  function problems(m, app) {
    var out = [];
    m.findings.forEach(function (f) {
      var fd = f.finding;
      out.push({
        severity: f.deadlock ? 0 : 3,
        cls: f.deadlock ? "bad" : "warn",
        label: (f.deadlock ? "Deadlock" : "Finding") + " \u00b7 " + (fd.kind || "?"),
        text: fd.message || "",
        where: "pid " + f.snap.pid + " \u00b7 snapshot at " + dom.fmtClock(f.snap.ts),
        href: app.href("tasks", { snap: f.snap.idx, finding: f.index }),
      });
    });
    m.processes.forEach(function (p) {
      Object.keys(p.capabilities).forEach(function (name) {
        var c = p.capabilities[name];
        if (c.state === "active") {
          var gap = p.gaps[name];
          if (gap) {
            out.push({
              severity: 1,
              cls: "warn",
              label: "Not checked for part of the run \u00b7 " + M.capabilityLabel(name),
              text: (gap.message || "the check missed part of the run") + " \u2014 nothing reported then does not mean nothing happened",
              where: "pid " + p.pid,
              href: app.href("events", { other: 1 }),
            });
          }
          return;
        }
        out.push({
          severity: 1,
          cls: "warn",
          label: "Not checked \u00b7 " + M.capabilityLabel(name),
          text: (c.state === "pending" ? "still pending at the end" : "not active") + (c.reason ? ": " + c.reason : "") +
            " \u2014 nothing reported does not mean nothing happened",
          where: "pid " + p.pid,
          href: app.href("overview", { pid: p.pid }),
        });
      });
      if (p.dropped) {
        out.push({ severity: 1, cls: "warn", label: "Events dropped", text: p.dropped + " events were dropped by the agent (aioscope was not reading fast enough)", where: "pid " + p.pid, href: app.href("events", { other: 1 }) });
      }
      if (p.exit && p.exit.timed_out) {
        out.push({ severity: 0, cls: "bad", label: "Timed out", text: "the program ran past --timeout and was dumped and stopped", where: "pid " + p.pid, href: app.href("timeline") });
      }
    });
    var longest = m.stalls.slice().sort(function (a, b) { return (b.duration || 0) - (a.duration || 0); });
    longest.slice(0, 5).forEach(function (s) {
      var f = M.userFrame(M.stallStack(s));
      out.push({
        severity: 2,
        cls: "bad",
        label: "Stall \u00b7 " + (s.exact ? "" : "\u2265 ") + dom.fmtMs(s.duration),
        text: "event loop blocked" + (f ? " in " + dom.frameText(f) : "") + (s.ev && s.ev.task && s.ev.task.name ? " \u00b7 task '" + s.ev.task.name + "'" : ""),
        where: "pid " + s.pid + " \u00b7 " + dom.fmtClock(s.start),
        href: app.href("stalls", { stall: s.idx }),
      });
    });
    if (m.stalls.length > 5) {
      out.push({ severity: 2, cls: "bad", label: "Stalls", text: (m.stalls.length - 5) + " more stalls", where: "", href: app.href("stalls") });
    }
    M.BUG_TYPES.forEach(function (type) {
      var list = m.bugs.filter(function (b) { return b.type === type; });
      if (!list.length) return;
      out.push({
        severity: 2,
        cls: "bad",
        label: M.BUG_LABELS[type] + " \u00b7 " + list.length,
        text: bugSummary(list[0]),
        where: "first in pid " + list[0].pid + " \u00b7 " + dom.fmtClock(list[0].ts),
        href: app.href("events", { type: type }),
      });
    });
    m.bugs.forEach(function (b) {
      if (!M.BUG_LABELS[b.type]) out.push({ severity: 3, cls: "warn", label: b.type, text: "", where: "pid " + b.pid, href: app.href("events", { event: b.idx }) });
    });
    var warnings = m.messages.filter(function (x) { return x.type === "warning" || x.type === "error"; });
    if (warnings.length) {
      out.push({ severity: 4, cls: "warn", label: "Warnings \u00b7 " + warnings.length, text: warnings[0].ev.message || "", where: "", href: app.href("events", { other: 1 }) });
    }
    m.snapshots.forEach(function (s) {
      if (s.warnings.length) out.push({ severity: 4, cls: "warn", label: "Snapshot incomplete", text: String(s.warnings[0]), where: "pid " + s.pid + " \u00b7 " + dom.fmtClock(s.ts), href: app.href("tasks", { snap: s.idx }) });
    });
    out.sort(function (a, b) { return a.severity - b.severity; });
    return out;
  }

  function bugSummary(b) {
    var e = b.ev;
    var task = e.task && typeof e.task === "object" && e.task.name ? "task '" + e.task.name + "'" : "";
    var loc = M.bugLocation(b);
    if (b.type === "unawaited_coroutine") {
      return "coroutine '" + ((e.coroutine && e.coroutine.qualname) || "?") + "'" + (loc ? " at " + dom.frameText(loc) : "");
    }
    if (b.type === "task_exception_unretrieved" && e.exception) {
      return task + ": " + (e.exception.type || "?") + ": " + (e.exception.message || "");
    }
    return task + (loc ? " at " + dom.frameText(loc) : "");
  }

  function processRow(p, m) {
    var py = p.python || {};
    var lastSnap = p.snapshots[p.snapshots.length - 1];
    var exit = p.exit;
    var exitText = exit ? (exit.description || (exit.status !== null && exit.status !== undefined ? "status " + exit.status : "ended")) : "";
    return h("tr", { id: "process-" + p.pid },
      h("td", null, String(p.pid)),
      h("td", null, py.version ? "CPython " + py.version : "?", py.executable ? h("div", { className: "dim small" }, dom.printable(py.executable, 120)) : null),
      h("td", null, p.mode ? (p.mode === "run" ? "run (agent from start)" : "attach") : p.snapshots.length ? "dump" : "?"),
      h("td", null, p.first !== null ? dom.fmtClock(p.first) : "?", h("div", { className: "dim small" }, p.last !== null && p.first !== null ? dom.fmtMs((p.last - p.first) * 1000) + " observed" : "")),
      h("td", { className: "num" }, String(p.snapshots.length), lastSnap ? h("div", { className: "dim small" }, lastSnap.tasks.length + " tasks in the last") : null),
      h("td", { className: "num" }, String(p.stalls.length)),
      h("td", { className: "num" }, String(p.bugs.length)),
      h("td", { className: "num" }, String(m.findings.filter(function (f) { return f.snap.pid === p.pid; }).length)),
      h("td", null, exitText));
  }

  function capabilities(p) {
    var names = Object.keys(p.capabilities);
    if (!names.length) return null;
    return h("div", { className: "caps" }, "pid " + p.pid + ": ",
      names.map(function (n) {
        var c = p.capabilities[n];
        return h("span", { className: "cap cap-" + (c.state === "active" ? "active" : "inactive"), title: c.reason || c.state }, M.capabilityLabel(n) + " " + c.state);
      }));
  }

  function render(container, m, params, app) {
    var list = problems(m, app);
    var procs = m.processes.filter(function (p) { return p.pid !== "?" || p.snapshots.length || p.stalls.length; });
    var span = m.t0 !== null && m.t1 !== null ? dom.fmtMs((m.t1 - m.t0) * 1000) : "?";
    container.appendChild(h("section", null,
      h("h2", null, "Overview"),
      h("p", { className: "summary" },
        dom.plural(procs.length, "process", "processes") + " \u00b7 " + dom.plural(m.snapshots.length, "snapshot") + " \u00b7 " +
        dom.plural(m.stalls.length, "stall") + " \u00b7 " + dom.plural(m.findings.length, "finding") + " \u00b7 " +
        dom.plural(m.bugs.length, "silent-bug event") + " \u00b7 " + span + (m.t0 !== null ? " from " + dom.fmtClock(m.t0) : ""))));

    var probs = h("section", { id: "problems" }, h("h3", null, list.length ? "Problems, worst first" : "No problems found"));
    if (!list.length) probs.appendChild(h("p", { className: "dim" }, "No deadlock, stall or silent asyncio bug in what was loaded (see what was checked below)."));
    var ul = h("ul", { className: "problems" });
    list.slice(0, 200).forEach(function (x) {
      ul.appendChild(h("li", { className: "problem " + x.cls },
        h("a", { href: x.href }, h("span", { className: "label" }, x.label)),
        " ", h("span", { className: "text" }, dom.printable(x.text, 400)),
        x.where ? h("span", { className: "dim where" }, " \u00b7 " + x.where) : null));
    });
    if (list.length > 200) ul.appendChild(h("li", { className: "dim" }, (list.length - 200) + " more"));
    probs.appendChild(ul);
    container.appendChild(probs);

    var table = h("table", { className: "grid", id: "processes" },
      h("thead", null, h("tr", null, ["pid", "interpreter", "how", "observed", "snapshots", "stalls", "bug events", "findings", "exit"].map(function (c) { return h("th", null, c); }))),
      h("tbody", null, procs.map(function (p) { return processRow(p, m); })));
    container.appendChild(h("section", null, h("h3", null, "Processes"), table));

    var caps = procs.map(capabilities).filter(Boolean);
    container.appendChild(h("section", null, h("h3", null, "What was checked"),
      caps.length ? caps : h("p", { className: "dim" }, "No agent reported capabilities (a snapshot from `dump` shows tasks and findings only; stalls and silent bugs need `run` or `attach`).")));

    container.appendChild(h("section", { id: "sources" }, h("h3", null, "Files"),
      h("ul", null, m.sources.map(function (s) {
        var what = s.kind === "snapshot" ? "snapshot" : s.kind === "events" ? s.count + " events" : "unreadable";
        return h("li", { className: s.errors.length ? "warn" : "" }, h("span", { className: "name" }, dom.printable(s.name, 200)), " \u00b7 " + what,
          s.skipped ? " \u00b7 " + s.skipped + " lines skipped" : "",
          s.errors.length ? h("div", { className: "small" }, s.errors.join("; ")) : null);
      }))));
    if (params.pid) {
      var row = document.getElementById("process-" + params.pid);
      if (row) row.classList.add("selected");
    }
  }

  ns.views = ns.views || {};
  ns.views.overview = { title: "Overview", render: render, problems: problems };
})((globalThis.aioscope = globalThis.aioscope || {}));
