#![no_main]
libfuzzer_sys::fuzz_target!(init: netshoot_fuzz::init("deb"), |data: &[u8]| {
    (netshoot_fuzz::target("deb").run)(data)
});
