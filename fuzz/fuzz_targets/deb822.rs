#![no_main]
libfuzzer_sys::fuzz_target!(init: netshoot_fuzz::init("deb822"), |data: &[u8]| {
    (netshoot_fuzz::target("deb822").run)(data)
});
