#![no_main]
libfuzzer_sys::fuzz_target!(init: netshoot_fuzz::init("release"), |data: &[u8]| {
    (netshoot_fuzz::target("release").run)(data)
});
