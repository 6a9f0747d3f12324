#![no_main]
libfuzzer_sys::fuzz_target!(init: netshoot_fuzz::init("version_relation"), |data: &[u8]| {
    (netshoot_fuzz::target("version_relation").run)(data)
});
