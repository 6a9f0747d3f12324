#![no_main]
libfuzzer_sys::fuzz_target!(init: netshoot_fuzz::init("inrelease"), |data: &[u8]| {
    (netshoot_fuzz::target("inrelease").run)(data)
});
