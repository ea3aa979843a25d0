// The package's Workers entry point. In a project of your own this file is one line:
//   export * from "writesync-wasm/worker";
// Here the example imports it from the package's source tree, so that it runs under miniflare
// without a bundler (miniflare resolves relative imports only).
export * from "../../../js/worker.js";
