//! `policyc`, the policy compiler's command line: parses arguments and hands over to a verb.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
