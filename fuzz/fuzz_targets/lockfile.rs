#![no_main]
libfuzzer_sys::fuzz_target!(init: netshoot_fuzz::init("lockfile"), |data: &[u8]| {
    (netshoot_fuzz::target("lockfile").run)(data)
});
