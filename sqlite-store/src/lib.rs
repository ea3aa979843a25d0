//! SQLite store for writesync (in progress).
