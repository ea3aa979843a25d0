// Entry point for Cloudflare Workers / workerd ("exports" condition "workerd", or the subpath
// "writesync-wasm/worker"): the .wasm file is imported as a compiled WebAssembly.Module (wrangler
// does this for `.wasm` imports by default; miniflare needs a CompiledWasm module rule).
import wasmModule from "../pkg/writesync_wasm_bg.wasm";
import { initSync } from "../pkg/writesync_wasm.js";
import { setInitializer } from "./engine.js";

setInitializer(() => {
  initSync({ module: wasmModule });
});

export { createEngine, initWasm, MemoryHost, WritesyncError, compareUtf8, __trapForTests } from "./engine.js";
