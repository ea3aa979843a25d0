//! Fuzz target `engine`: see `writesync_tests::fuzzing::fuzz_engine`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    writesync_tests::fuzzing::fuzz_engine(data);
});
