// Entry point for Node.js (package.json "exports" condition "node"): the wasm module is read from
// the package with fs and instantiated synchronously on first use.
import { readFileSync } from "node:fs";
import { initSync } from "../pkg/writesync_wasm.js";
import { setInitializer } from "./engine.js";

setInitializer(() => {
  initSync({ module: readFileSync(new URL("../pkg/writesync_wasm_bg.wasm", import.meta.url)) });
});

export { createEngine, initWasm, MemoryHost, WritesyncError, compareUtf8, __trapForTests } from "./engine.js";
