//! Structure-aware: fuzz bytes spliced into a valid Kubernetes or Cilium object at a
//! fuzz-chosen offset (see `policy_lang_fuzz::splice` for the input layout), so the fuzzer
//! spends its time on near-valid objects rather than on YAML syntax errors.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    policy_lang_fuzz::check_text(policy_lang_fuzz::splice(data));
});
