#![no_main]
libfuzzer_sys::fuzz_target!(init: netshoot_fuzz::init("sources_list"), |data: &[u8]| {
    (netshoot_fuzz::target("sources_list").run)(data)
});
