// Decoder of "aioscope/packed/1", the compact JSON an `aioscope report` embeds
// (cli/report/packed.cpp writes it). A snapshot of 100,000 tasks repeats the
// same stacks, files and key names 100,000 times; the packed form stores each
// repeated subtree once and each object's keys once per key set:
//   {"packed": "aioscope/packed/1", "shapes": [[key, ...], ...],
//    "table": [enc, ...], "root": enc}
//   enc: null, true, false, a number or a string stands for itself;
//        [0, enc...]        an array;
//        [1, k]             table[k] (entries refer only to earlier entries);
//        [2 + s, enc...]    an object with the keys shapes[s], in order.
// Decoded values may share subtrees: consumers treat them as read-only.
"use strict";
(function (ns) {
  var FORMAT = "aioscope/packed/1";

  function isPacked(doc) {
    return !!doc && typeof doc === "object" && doc.packed === FORMAT;
  }

  function unpack(doc) {
    if (!isPacked(doc)) throw new Error("not " + FORMAT);
    var shapes = doc.shapes, table = doc.table;
    if (!Array.isArray(shapes) || !Array.isArray(table)) throw new Error(FORMAT + ": no shapes or table");
    var values = new Array(table.length);
    var ready = 0;

    function dec(v, depth) {
      if (v === null || typeof v !== "object") return v;
      if (depth > 10000) throw new Error(FORMAT + ": nested too deeply");
      if (!Array.isArray(v) || v.length === 0 || typeof v[0] !== "number") throw new Error(FORMAT + ": bad value");
      var tag = v[0], i, out;
      if (tag === 0) {
        out = new Array(v.length - 1);
        for (i = 1; i < v.length; i++) out[i - 1] = dec(v[i], depth + 1);
        return out;
      }
      if (tag === 1) {
        var k = v[1];
        if (typeof k !== "number" || k < 0 || k >= ready) throw new Error(FORMAT + ": bad reference " + k);
        return values[k];
      }
      var keys = shapes[tag - 2];
      if (!Array.isArray(keys) || keys.length !== v.length - 1) throw new Error(FORMAT + ": bad shape " + (tag - 2));
      out = {};
      for (i = 0; i < keys.length; i++) {
        var key = String(keys[i]);
        var val = dec(v[i + 1], depth + 1);
        // JSON.parse makes "__proto__" an own property; so must we.
        if (key === "__proto__") Object.defineProperty(out, key, { value: val, enumerable: true, writable: true, configurable: true });
        else out[key] = val;
      }
      return out;
    }

    for (var k = 0; k < table.length; k++) {
      values[k] = dec(table[k], 0);
      ready = k + 1;
    }
    return dec(doc.root, 0);
  }

  ns.packed = { FORMAT: FORMAT, isPacked: isPacked, unpack: unpack };
})((globalThis.aioscope = globalThis.aioscope || {}));
