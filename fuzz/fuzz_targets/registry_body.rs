#![no_main]
libfuzzer_sys::fuzz_target!(init: netshoot_fuzz::init("registry_body"), |data: &[u8]| {
    (netshoot_fuzz::target("registry_body").run)(data)
});
