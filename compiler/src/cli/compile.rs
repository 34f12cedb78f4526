//! `policyc compile`: compiles a policy tree into the bundle that `policyd` loads.

use super::tree::{self, plural};
use super::{log, ColorChoice, EXIT_ERROR, EXIT_OK};
use clap::Args;
use compiler::bundle::Bundle;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const AFTER_HELP: &str = "\
The bundle is written to FILE (`-o -` writes it to stdout); a one-line summary goes to stderr.
The same tree always gives the same bytes: identities, entries and tables are sorted, and the
bundle holds no clock, host name or absolute path that was not given on the command line.
FILE is replaced whole (written beside it, then renamed), so a reader never sees half a bundle;
a device or FIFO (`/dev/null`) is written in place.

Examples:
  policyc compile examples/online-shop -o shop.bundle
  policyc compile deploy/policies deploy/workloads -o - | sha256sum

Exit status:
  0  the bundle was written
  2  usage error, a path that cannot be read, a tree with errors (its findings are printed on
     stderr, as `policyc check` prints them), or FILE cannot be written";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct CompileArgs {
    /// Files and directories of the tree (walked as `policyc check` walks them).
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,

    /// Where to write the bundle; `-` for stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// Runs `policyc compile` and returns the exit status.
pub fn run(args: &CompileArgs, color: ColorChoice) -> u8 {
    let t = compiler::timing::Phase::start();
    let loaded = match tree::load(&args.paths, color, None) {
        Ok(l) => l,
        Err(code) => return code,
    };
    t.lap("check + compile");
    let bundle = &loaded.compiled.bundle;
    let written = if args.output == Path::new("-") {
        write_stdout(bundle)
    } else {
        write_file(&args.output, bundle)
    };
    t.lap("write");
    if let Err(e) = written {
        log(format_args!(
            "error: cannot write `{}`: {e}",
            args.output.display()
        ));
        return EXIT_ERROR;
    }
    let target = if args.output == Path::new("-") {
        "stdout".to_owned()
    } else {
        format!("`{}`", args.output.display())
    };
    let warnings = loaded.checked.warnings();
    let note = if warnings > 0 {
        format!(
            " ({} in the tree: `policyc check` lists them)",
            plural(warnings, "warning", "warnings")
        )
    } else {
        String::new()
    };
    log(format_args!("{} to {target}{note}", summary(bundle)));
    std::mem::forget(loaded);
    EXIT_OK
}

/// `compiled 3 endpoints, 14 identities, 20 entries, 4 ipcache entries`
pub fn summary(bundle: &Bundle) -> String {
    format!(
        "compiled {}, {}, {}, {}",
        plural(bundle.endpoints.len(), "endpoint", "endpoints"),
        plural(bundle.identities.len(), "identity", "identities"),
        plural(bundle.entry_count(), "entry", "entries"),
        plural(bundle.ipcache.len(), "ipcache entry", "ipcache entries"),
    )
}

/// Room for serde_json's many small writes: one system call per MB.
const WRITE_BUFFER: usize = 1 << 20;

fn write_stdout(bundle: &Bundle) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(WRITE_BUFFER, io::stdout().lock());
    match bundle.write_to(&mut out).and_then(|()| out.flush()) {
        // A reader that went away (`| head -c 10`) does not make the compile fail.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Writes beside the target, then renames over it. A target that exists and is not a regular
/// file (`/dev/null`, a FIFO) is written in place: renaming over it would replace the device.
fn write_file(path: &Path, bundle: &Bundle) -> io::Result<()> {
    let stream = |file: std::fs::File| {
        let mut out = io::BufWriter::with_capacity(WRITE_BUFFER, file);
        bundle.write_to(&mut out)?;
        out.flush()
    };
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return stream(std::fs::OpenOptions::new().write(true).open(path)?);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = std::fs::File::create(&tmp)
        .and_then(stream)
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
