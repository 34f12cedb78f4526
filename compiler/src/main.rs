//! `policyc`, the policy compiler's command line: parses arguments and hands over to a verb.

mod cli;

// Loading allocates millions of small YAML nodes: mimalloc makes that about a third cheaper.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How the process asks the OS for memory (see `main`).
#[allow(unsafe_code)]
mod memory {
    use std::ffi::{c_int, c_long};

    // `mi_option_purge_delay` in the mimalloc 3 that libmimalloc-sys 0.1.49 builds
    // (`mi_option_e` in its mimalloc.h); the `mimalloc` crate only exposes `mi_option_set`
    // with its `extended` feature.
    const MI_OPTION_PURGE_DELAY: c_int = 15;

    unsafe extern "C" {
        fn mi_option_set(option: c_int, value: c_long);
    }

    pub fn never_purge() {
        // SAFETY: sets one integer option; valid at any time, including after allocations.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
    }

    pub fn no_huge_pages() {
        // SAFETY: sets a flag of this process; the result is ignored (an old kernel keeps THP).
        let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

fn main() -> std::process::ExitCode {
    // A run is short: pages handed back to the OS would only be zeroed again on reuse.
    memory::never_purge();
    // Huge pages made the kernel zero 2 MiB per first touch of a sparse heap (+15% RSS, 3x sys).
    memory::no_huge_pages();
    cli::main()
}
