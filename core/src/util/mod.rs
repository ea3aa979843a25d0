//! Small pure helpers: hashing and signatures, time formatting, retry schedules.
pub mod crypto;
pub mod schedule;
pub mod time;
