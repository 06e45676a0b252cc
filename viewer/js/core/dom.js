// DOM helpers and text formatting. Every string shown comes from a target
// process or a file someone sent: it is hostile. It only ever reaches the page
// as a text node (textContent) or a capped attribute value, never as markup,
// and control/bidi characters are shown as escapes so a name cannot hide or
// reorder what is around it.
"use strict";
(function (ns) {
  // C0/C1 controls, zero-width and bidi-control characters, line/paragraph separators.
  var INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

  function escapeInvisible(c) {
    var code = c.charCodeAt(0);
    if (code < 0x100) return "\\x" + (code < 16 ? "0" : "") + code.toString(16);
    return "\\u" + ("000" + code.toString(16)).slice(-4);
  }

  // A string as it can be shown: invisible characters escaped, at most `max`
  // characters (then an ellipsis). Non-strings are converted; null shows "".
  function printable(s, max) {
    if (s === null || s === undefined) return "";
    s = typeof s === "string" ? s : String(s);
    max = max || 500;
    var cut = s.length > max;
    if (cut) s = s.slice(0, max);
    s = s.replace(INVISIBLE, escapeInvisible);
    return cut ? s + "\u2026" : s;
  }

  // h("div", {className: "x", title: "...", onclick: fn}, child, "text", [more])
  // Strings become text nodes (printable, capped); arrays are flattened;
  // null/undefined/false children are skipped.
  function h(tag, props) {
    var el = document.createElement(tag);
    if (props) setProps(el, props);
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }

  var SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    var el = document.createElementNS(SVG_NS, tag);
    if (attrs) {
      for (var k in attrs) {
        if (k === "text") el.textContent = printable(attrs[k], 200);
        else if (k === "className") el.setAttribute("class", attrs[k]);
        else if (typeof attrs[k] === "function") el.addEventListener(k.slice(2), attrs[k]);
        else el.setAttribute(k, String(attrs[k]));
      }
    }
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }

  function setProps(el, props) {
    for (var k in props) {
      var v = props[k];
      if (v === undefined || v === null || v === false) continue;
      if (k === "className") el.className = v;
      else if (k === "title") el.title = printable(v, 2000);
      else if (k === "href") {
        // Only links inside the viewer: never a URL made from data.
        el.setAttribute("href", String(v).charAt(0) === "#" ? v : "#");
      } else if (k === "dataset") {
        for (var d in v) el.dataset[d] = String(v[d]);
      } else if (k === "style") {
        for (var s in v) el.style[s] = v[s];
      } else if (k.slice(0, 2) === "on" && typeof v === "function") {
        el.addEventListener(k.slice(2), v);
      } else if (k === "value") {
        el.value = String(v);
      } else if (k === "checked" || k === "disabled" || k === "selected" || k === "open") {
        el[k] = !!v;
      } else {
        el.setAttribute(k, String(v));
      }
    }
  }

  function append(el, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) {
      for (var i = 0; i < child.length; i++) append(el, child[i]);
    } else if (typeof child === "object" && child.nodeType) {
      el.appendChild(child);
    } else {
      el.appendChild(document.createTextNode(printable(child, 2000)));
    }
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  // A name (task, thread, function): capped for display, the full (escaped,
  // still capped) value in the tooltip.
  function name(s, max, cls) {
    var shown = printable(s, max || 120);
    return h("span", { className: cls || "name", title: shown.length < (s || "").length ? s : null }, shown);
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return "?";
    if (ms >= 10000) return (ms / 1000).toFixed(1) + " s";
    if (ms >= 1000) return (ms / 1000).toFixed(2) + " s";
    if (ms >= 10) return Math.round(ms) + " ms";
    return ms.toFixed(1) + " ms";
  }

  function fmtRel(seconds) {
    if (!isFinite(seconds)) return "?";
    var sign = seconds < 0 ? "-" : "+";
    var s = Math.abs(seconds);
    if (s >= 3600) return sign + Math.floor(s / 3600) + "h" + ("0" + Math.floor((s % 3600) / 60)).slice(-2) + "m";
    if (s >= 60) return sign + Math.floor(s / 60) + "m" + ("0" + Math.floor(s % 60)).slice(-2) + "s";
    return sign + s.toFixed(s >= 10 ? 1 : 2) + " s";
  }

  // Wall-clock time of a Unix timestamp, UTC (reports are shared across time zones).
  function fmtClock(ts) {
    if (!isFinite(ts)) return "?";
    var d = new Date(ts * 1000);
    if (isNaN(d.getTime())) return "?";
    return d.toISOString().replace("T", " ").replace("Z", " UTC");
  }

  function plural(n, one, many) {
    return n + " " + (n === 1 ? one : many || one + "s");
  }

  // "qualname (file:line)" for a Frame object (docs/json-schema.md).
  function frameText(f) {
    if (!f || typeof f !== "object") return "?";
    var line = typeof f.line === "number" ? f.line : "?";
    return (f.qualname || f["function"] || "?") + " (" + (f.file || "?") + ":" + line + ")";
  }

  function baseName(path) {
    if (typeof path !== "string") return "";
    var i = path.lastIndexOf("/");
    return i < 0 ? path : path.slice(i + 1);
  }

  ns.dom = {
    printable: printable,
    h: h,
    svg: svg,
    clear: clear,
    name: name,
    fmtMs: fmtMs,
    fmtRel: fmtRel,
    fmtClock: fmtClock,
    plural: plural,
    frameText: frameText,
    baseName: baseName,
  };
})((globalThis.aioscope = globalThis.aioscope || {}));
