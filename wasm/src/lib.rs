//! wasm-bindgen build of writesync (in progress).
