//! Command-line interface of `policyc`: flags, verbs, output plumbing and exit codes.
//!
//! Each verb lives in its own file and returns an [`ExitCode`]; this module owns what is shared:
//! the exit-code contract, colour choice and writing to stdout and stderr.

mod check;
mod compile;
mod diff;
mod inspect;
mod layout;
mod matrix;
mod paint;
mod report;
mod trace;
mod tree;

use clap::{Parser, Subcommand, ValueEnum};
use std::ffi::OsStr;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

/// Exit status when there is nothing to report (warnings allowed).
pub const EXIT_OK: u8 = 0;
/// Exit status when the answer is no: failing findings.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for usage errors (clap uses it too) and I/O errors.
pub const EXIT_ERROR: u8 = 2;

const ABOUT: &str = "Checks and compiles Kubernetes and Cilium network policies kept in Git";

const AFTER_HELP: &str = "\
Results go to stdout, logs and diagnostics to stderr. Each verb documents its examples in
`policyc VERB --help`.

Exit status: 0 when the answer is yes (nothing fails, the flow is allowed, no difference), 1
when it is no (failing findings, a denied flow, differences), 2 for usage errors, paths that
cannot be read and trees with errors where a compiled tree is needed.";

#[derive(Debug, Parser)]
#[command(name = "policyc", version, about = ABOUT, after_help = AFTER_HELP)]
#[command(propagate_version = true, disable_help_subcommand = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    /// When to colour human output.
    ///
    /// `auto` colours only when stdout is a terminal and the environment variable `NO_COLOR` is
    /// unset or empty; `always` and `never` override both.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto, global = true)]
    color: ColorChoice,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Loads and validates policy trees and reports every finding.
    Check(check::CheckArgs),
    /// Compiles a policy tree into the bundle that the datapath enforces.
    Compile(compile::CompileArgs),
    /// Lists a compiled bundle like a dump of the datapath's maps.
    Inspect(inspect::InspectArgs),
    /// Explains the verdict on one flow, rule by rule and entry by entry.
    Trace(trace::TraceArgs),
    /// Prints which workloads may reach which, on each port.
    Matrix(matrix::MatrixArgs),
    /// Lists the flows gained and lost between two policy trees (or two Git revisions).
    Diff(diff::DiffArgs),
}

/// The `--color` setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty.
    #[default]
    Auto,
    /// Always colour, even into a pipe or with `NO_COLOR` set.
    Always,
    /// Never colour.
    Never,
}

impl ColorChoice {
    /// Whether to colour, given whether stdout is a terminal and the value of `NO_COLOR`.
    pub fn resolve(self, stdout_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stdout_is_terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }

    /// [`ColorChoice::resolve`] for this process.
    pub fn for_stdout(self) -> bool {
        let no_color = std::env::var_os("NO_COLOR");
        self.resolve(io::stdout().is_terminal(), no_color.as_deref())
    }
}

/// Parses the command line and runs the verb; clap exits 2 itself on usage errors.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Check(args) => check::run(&args, cli.color),
        Command::Compile(args) => compile::run(&args, cli.color),
        Command::Inspect(args) => inspect::run(&args),
        Command::Trace(args) => trace::run(&args, cli.color),
        Command::Matrix(args) => matrix::run(&args, cli.color),
        Command::Diff(args) => diff::run(&args, cli.color),
    };
    ExitCode::from(code)
}

/// Writes a verb's results to stdout and turns the outcome into an exit status.
///
/// `verdict` is the status the results call for. A reader that goes away (broken pipe, as with
/// `policyc check | head`) is not an error: the verdict stands and nothing is printed about it.
/// Any other write error is an I/O error (exit 2).
pub fn emit(verdict: u8, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> u8 {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = write(&mut out).and_then(|()| out.flush());
    match result {
        Ok(()) => verdict,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => verdict,
        Err(e) => {
            log(format_args!("error: cannot write results: {e}"));
            EXIT_ERROR
        }
    }
}

/// Writes one line to stderr; a closed stderr is ignored (there is nowhere left to say so).
pub fn log(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "policyc: {line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn colour_follows_terminal_and_no_color() {
        let empty = OsStr::new("");
        let set = OsStr::new("1");
        assert!(ColorChoice::Auto.resolve(true, None));
        assert!(ColorChoice::Auto.resolve(true, Some(empty)));
        assert!(!ColorChoice::Auto.resolve(true, Some(set)));
        assert!(!ColorChoice::Auto.resolve(false, None));
        assert!(ColorChoice::Always.resolve(false, Some(set)));
        assert!(!ColorChoice::Never.resolve(true, None));
    }
}
