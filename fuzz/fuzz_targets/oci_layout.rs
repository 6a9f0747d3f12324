#![no_main]
libfuzzer_sys::fuzz_target!(init: netshoot_fuzz::init("oci_layout"), |data: &[u8]| {
    (netshoot_fuzz::target("oci_layout").run)(data)
});
