//! `policyc`, the policy compiler's command line: parses arguments and hands over to a verb.

mod cli;

// Loading allocates millions of small YAML nodes: mimalloc makes that about a third cheaper.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
