//! Runs the built `policyc` from the workspace root, so that reported paths are stable.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace root: fixture paths are given relative to it.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().unwrap_or(manifest);
    root.canonicalize().unwrap_or_else(|_| root.to_path_buf())
}

/// `path` relative to the workspace root, with forward slashes (as a user would type it).
pub fn relative(path: &Path) -> String {
    let root = workspace_root();
    let rel = path.strip_prefix(&root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// What one run printed, and how it exited.
#[derive(Debug)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

/// A `policyc` command run in the workspace root with `NO_COLOR=1`.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_policyc"));
    cmd.args(args)
        .current_dir(workspace_root())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

/// Runs `policyc` with `args` to completion.
pub fn policyc(args: &[&str]) -> Run {
    let output = command(args).output().unwrap_or_else(|e| {
        panic!("cannot run policyc: {e}");
    });
    Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        // A run killed by a signal has no code; -1 never matches an expected status.
        code: output.status.code().unwrap_or(-1),
    }
}

/// Parses JSON output, failing the test with the text when it is not JSON.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}
