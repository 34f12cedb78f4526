//! `policyc`, the policy compiler's command line: parses arguments and hands over to a verb.

mod cli;

// Loading allocates millions of small YAML nodes: mimalloc makes that about a third cheaper.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's `mi_option_set` (declared here: the `mimalloc` crate exposes it only with its
// `extended` feature). `mi_option_purge_delay` is 15 in the mimalloc 3 that
// libmimalloc-sys 0.1.49 builds (`mi_option_e` in its mimalloc.h).
#[allow(unsafe_code)]
mod mi {
    const PURGE_DELAY: std::ffi::c_int = 15;

    unsafe extern "C" {
        fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    }

    pub fn never_purge() {
        // SAFETY: sets one integer option; valid at any time, including after allocations.
        unsafe { mi_option_set(PURGE_DELAY, -1) }
    }
}

fn main() -> std::process::ExitCode {
    // A run is short: handing freed pages back to the OS only makes the kernel zero them
    // again on the next allocation (about a sixth of `policyc check`'s time on a large tree).
    mi::never_purge();
    cli::main()
}
