//! Fuzz target `request`: see `writesync_tests::fuzzing::fuzz_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    writesync_tests::fuzzing::fuzz_request(data);
});
