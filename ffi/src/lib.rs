//! C ABI for writesync (in progress).
