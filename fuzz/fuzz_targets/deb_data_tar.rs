#![no_main]
libfuzzer_sys::fuzz_target!(init: netshoot_fuzz::init("deb_data_tar"), |data: &[u8]| {
    (netshoot_fuzz::target("deb_data_tar").run)(data)
});
