#![no_main]
libfuzzer_sys::fuzz_target!(init: netshoot_fuzz::init("sources"), |data: &[u8]| {
    (netshoot_fuzz::target("sources").run)(data)
});
