// Loads the viewer's pure modules (viewer/js/core) into node: they attach
// themselves to globalThis.aioscope, as in the browser.
"use strict";
const path = require("path");
const root = path.resolve(__dirname, "../../viewer/js/core");
for (const f of ["dom.js", "packed.js", "load.js", "model.js", "forest.js", "flame.js"]) require(path.join(root, f));
module.exports = globalThis.aioscope;
