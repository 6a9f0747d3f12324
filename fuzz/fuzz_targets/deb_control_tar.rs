#![no_main]
libfuzzer_sys::fuzz_target!(init: netshoot_fuzz::init("deb_control_tar"), |data: &[u8]| {
    (netshoot_fuzz::target("deb_control_tar").run)(data)
});
