//! Shared test support for writesync: vector files and their replay.
