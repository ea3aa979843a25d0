// Size of the shipped module, gzipped (level 9), against the target: at most 250 KB
// (250,000 bytes) gzipped. The build meets it (wasm/README.md "Size and speed"), and this script
// fails when it does not, so that the module cannot grow past it unnoticed.
// WRITESYNC_WASM_GZIP_CEILING sets another limit in bytes, for experiments.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const target = 250_000;
const ceiling = Number(process.env.WRITESYNC_WASM_GZIP_CEILING ?? target);
const bytes = readFileSync(new URL("../pkg/writesync_wasm_bg.wasm", import.meta.url));
const gz = gzipSync(bytes, { level: 9 }).length;
const kb = (n) => `${(n / 1000).toFixed(1)} KB`;
console.log(
  `wasm/pkg/writesync_wasm_bg.wasm: ${bytes.length} bytes raw (${kb(bytes.length)}), ` +
    `${gz} bytes gzipped (${kb(gz)}); target ${kb(target)} ` +
    (gz <= target ? `met (${target - gz} bytes to spare)` : `NOT met (over by ${gz - target} bytes)`) +
    (ceiling === target ? "" : `; limit set to ${kb(ceiling)}`),
);
if (gz > ceiling) {
  console.error(`over the limit by ${gz - ceiling} bytes`);
  process.exit(1);
}
