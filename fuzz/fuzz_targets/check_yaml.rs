//! Any bytes, read as (lossy UTF-8) text of one file: never panics, every span is valid.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    policy_lang_fuzz::check_text(String::from_utf8_lossy(data).into_owned());
});
