#![no_main]
libfuzzer_sys::fuzz_target!(init: netshoot_fuzz::init("spec"), |data: &[u8]| {
    (netshoot_fuzz::target("spec").run)(data)
});
