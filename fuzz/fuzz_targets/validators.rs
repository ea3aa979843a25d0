//! Fuzz target `validators`: see `writesync_tests::fuzzing::fuzz_validators`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    writesync_tests::fuzzing::fuzz_validators(data);
});
