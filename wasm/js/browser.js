// Entry point for browsers and other hosts with fetch (the default "exports" condition): the wasm
// module is fetched from next to this package (`new URL(..., import.meta.url)`) on first use.
// Hosts that cannot fetch it that way call `initWasm(moduleOrBytesOrUrl)` before createEngine.
import init from "../pkg/writesync_wasm.js";
import { setInitializer } from "./engine.js";

setInitializer(() => init());

export { IndexedDbHost } from "./idb.js";
export { createEngine, initWasm, MemoryHost, WritesyncError, compareUtf8, __trapForTests } from "./engine.js";
