#![no_main]
libfuzzer_sys::fuzz_target!(init: netshoot_fuzz::init("keyring"), |data: &[u8]| {
    (netshoot_fuzz::target("keyring").run)(data)
});
