#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| peercall_fuzzing::channel(data));
