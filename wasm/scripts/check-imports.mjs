// The core is sans-I/O: its wasm32 build must import nothing from `env` (no clock, no randomness,
// no libc shims). Checks the module as rustc linked it and the one the package ships.
import { readFileSync } from "node:fs";

const files = ["../pkg/writesync_wasm_raw.wasm", "../pkg/writesync_wasm_bg.wasm"];
let failed = false;
for (const f of files) {
  const url = new URL(f, import.meta.url);
  const imports = WebAssembly.Module.imports(new WebAssembly.Module(readFileSync(url)));
  const modules = [...new Set(imports.map((i) => i.module))];
  const env = imports.filter((i) => i.module === "env");
  console.log(`${f.replace("../", "wasm/")}: ${imports.length} imports from ${modules.join(", ") || "nothing"}`);
  if (env.length) {
    failed = true;
    console.error(`  imports from env: ${env.map((i) => i.name).join(", ")}`);
  }
}
if (failed) process.exit(1);
console.log("no imports from env");
