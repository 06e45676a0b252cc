// Turns the text of a file into sources: a snapshot (`aioscope dump --json`,
// schema aioscope/snapshot/1), an event stream (`run`/`attach` JSON Lines,
// aioscope/event/1), or the data embedded in a report (aioscope/report/1,
// possibly packed). A source is
//   {name, kind: "snapshot", doc} or {name, kind: "events", events, skipped},
// each with `errors` (what could not be read, one sentence each).
"use strict";
(function (ns) {
  var SNAPSHOT = "aioscope/snapshot/1";
  var EVENT = "aioscope/event/1";
  var REPORT = "aioscope/report/1";
  var MAX_ERRORS = 5;

  function isObject(v) {
    return !!v && typeof v === "object" && !Array.isArray(v);
  }

  // The sources inside a report's data (already unpacked or not).
  function fromReport(data, name) {
    if (ns.packed && ns.packed.isPacked(data)) data = ns.packed.unpack(data);
    if (!isObject(data) || data.format !== REPORT || !Array.isArray(data.sources)) {
      return [errorSource(name, "not aioscope report data")];
    }
    var out = [];
    data.sources.forEach(function (s, i) {
      if (!isObject(s)) return;
      var sname = typeof s.name === "string" ? s.name : name + "#" + i;
      if (s.kind === "snapshot" && isObject(s.doc)) out.push(snapshotSource(sname, s.doc));
      else if (s.kind === "events" && Array.isArray(s.events)) {
        var src = eventsFromArray(sname, s.events);
        src.skipped += typeof s.skipped === "number" ? s.skipped : 0;
        if (Array.isArray(s.errors)) src.errors = src.errors.concat(s.errors.filter(function (e) { return typeof e === "string"; }));
        out.push(src);
      }
    });
    return out;
  }

  function errorSource(name, message) {
    return { name: name, kind: "error", errors: [message] };
  }

  function snapshotSource(name, doc) {
    var errors = [];
    if (!Array.isArray(doc.threads)) errors.push("the snapshot has no threads array");
    if (!Array.isArray(doc.tasks)) errors.push("the snapshot has no tasks array (written by an older aioscope?)");
    return { name: name, kind: "snapshot", doc: doc, errors: errors };
  }

  function eventsFromArray(name, list) {
    var events = [], skipped = 0, errors = [];
    for (var i = 0; i < list.length; i++) {
      var e = list[i];
      if (isObject(e) && e.schema === EVENT && typeof e.type === "string") events.push(e);
      else {
        skipped++;
        if (errors.length < MAX_ERRORS) errors.push("event " + (i + 1) + " is not an aioscope event");
      }
    }
    return { name: name, kind: "events", events: events, skipped: skipped, errors: errors };
  }

  // A report's HTML dropped on the viewer: its embedded data.
  // Written with \x3c: this file is itself inlined into a script element.
  var DATA_START = /\x3cscript type="application\/json" id="aioscope-data">/;
  var DATA_END = "\x3c/script>";

  function parse(name, text) {
    if (typeof text !== "string") return [errorSource(name, "not text")];
    var start = text.search(DATA_START);
    if (start >= 0 && /^\s*</.test(text)) {
      var from = text.indexOf(">", start) + 1;
      var to = text.indexOf(DATA_END, from);
      if (to < 0) return [errorSource(name, "the report's data is cut off")];
      try {
        return fromReport(JSON.parse(text.slice(from, to)), name);
      } catch (err) {
        return [errorSource(name, "the report's data is unreadable: " + err.message)];
      }
    }
    var trimmed = text.replace(/^\s+/, "");
    if (trimmed.charAt(0) !== "{" && trimmed.charAt(0) !== "[") {
      return [errorSource(name, "not JSON: expected an aioscope snapshot or event stream")];
    }
    var doc;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      doc = undefined; // JSON Lines: several documents
    }
    if (doc !== undefined) {
      if (ns.packed && ns.packed.isPacked(doc)) return fromReport(doc, name);
      if (isObject(doc) && doc.format === REPORT) return fromReport(doc, name);
      if (isObject(doc) && doc.schema === SNAPSHOT) return [snapshotSource(name, doc)];
      if (isObject(doc) && doc.schema === EVENT) return [eventsFromArray(name, [doc])];
      if (Array.isArray(doc)) return [eventsFromArray(name, doc)];
      var schema = isObject(doc) && typeof doc.schema === "string" ? " (schema " + ns.dom.printable(doc.schema, 60) + ")" : "";
      return [errorSource(name, "not an aioscope snapshot or event stream" + schema)];
    }
    return [parseLines(name, text)];
  }

  function parseLines(name, text) {
    var events = [], skipped = 0, errors = [];
    var lines = text.split("\n");
    var last = lines.length - 1;
    while (last >= 0 && !lines[last].trim()) last--;
    for (var i = 0; i <= last; i++) {
      var line = lines[i];
      if (!line.trim()) continue;
      var e;
      try {
        e = JSON.parse(line);
      } catch (err) {
        skipped++;
        if (errors.length < MAX_ERRORS) {
          errors.push(i === last ? "the last line is cut off (the stream was interrupted)" : "line " + (i + 1) + " is not JSON");
        }
        continue;
      }
      if (isObject(e) && e.schema === EVENT && typeof e.type === "string") events.push(e);
      else {
        skipped++;
        if (errors.length < MAX_ERRORS) errors.push("line " + (i + 1) + " is not an aioscope event");
      }
    }
    if (!events.length && !errors.length) errors.push("no events");
    return { name: name, kind: "events", events: events, skipped: skipped, errors: errors };
  }

  ns.load = { parse: parse, fromReport: fromReport, SNAPSHOT: SNAPSHOT, EVENT: EVENT, REPORT: REPORT };
})((globalThis.aioscope = globalThis.aioscope || {}));
