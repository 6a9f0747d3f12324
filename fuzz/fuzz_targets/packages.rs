#![no_main]
libfuzzer_sys::fuzz_target!(init: netshoot_fuzz::init("packages"), |data: &[u8]| {
    (netshoot_fuzz::target("packages").run)(data)
});
