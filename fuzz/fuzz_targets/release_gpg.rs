#![no_main]
libfuzzer_sys::fuzz_target!(init: netshoot_fuzz::init("release_gpg"), |data: &[u8]| {
    (netshoot_fuzz::target("release_gpg").run)(data)
});
