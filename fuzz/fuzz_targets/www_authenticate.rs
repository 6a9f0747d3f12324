#![no_main]
libfuzzer_sys::fuzz_target!(init: netshoot_fuzz::init("www_authenticate"), |data: &[u8]| {
    (netshoot_fuzz::target("www_authenticate").run)(data)
});
