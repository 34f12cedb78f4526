//! The same-run floors (read every file, parse every file) and a timed child run with its peak RSS.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not well-formed YAML: {message}", path.display())]
    Yaml { path: PathBuf, message: String },
    #[error("cannot run `{}`: {source}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> MeasureError + '_ {
    move |source| MeasureError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Every `.yaml`, `.yml` and `.json` file below `root`, sorted, hidden entries skipped
/// (the walk `policyc` does, so both floors pay for it too).
pub fn tree_files(root: &Path) -> Result<Vec<PathBuf>, MeasureError> {
    let mut files = Vec::new();
    walk(root, &mut files)?;
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), MeasureError> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        children.push(entry.map_err(io_err(dir))?.path());
    }
    children.sort();
    for child in children {
        if child
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
        {
            continue;
        }
        let meta = std::fs::metadata(&child).map_err(io_err(&child))?;
        if meta.is_dir() {
            walk(&child, files)?;
        } else if matches!(
            child.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            files.push(child);
        }
    }
    Ok(())
}

/// Baseline A: walk the tree and read every file into memory. Returns the bytes read.
pub fn read_all(root: &Path) -> Result<u64, MeasureError> {
    let mut bytes = 0u64;
    for path in tree_files(root)? {
        let data = std::fs::read(&path).map_err(io_err(&path))?;
        bytes += std::hint::black_box(data).len() as u64;
    }
    Ok(bytes)
}

/// What baseline B saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseCount {
    pub bytes: u64,
    pub documents: u64,
    pub events: u64,
}

/// Counts the events of one text, failing on the first syntax error.
pub fn parse_text(text: &str) -> Result<ParseCount, String> {
    let mut count = ParseCount {
        bytes: text.len() as u64,
        ..Default::default()
    };
    let mut parser = saphyr_parser::Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let (event, _span) = next.map_err(|e| e.to_string())?;
        if matches!(event, saphyr_parser::Event::DocumentStart(_)) {
            count.documents += 1;
        }
        count.events += 1;
        drop(std::hint::black_box(event));
    }
    Ok(count)
}

/// Baseline B: walk, read, and pull every saphyr-parser event of every file (no tree is built).
pub fn parse_all(root: &Path) -> Result<ParseCount, MeasureError> {
    let mut total = ParseCount::default();
    for path in tree_files(root)? {
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        let c = parse_text(&text).map_err(|message| MeasureError::Yaml {
            path: path.clone(),
            message,
        })?;
        total.bytes += c.bytes;
        total.documents += c.documents;
        total.events += c.events;
    }
    Ok(total)
}

/// One finished child process: its wall time (spawn to reap), peak RSS and output.
#[derive(Debug)]
pub struct ChildRun {
    pub wall: Duration,
    pub max_rss_bytes: u64,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Waits for one child and takes its own resource usage (not that of every child so far).
#[allow(unsafe_code)] // libc's wait4 is the only way to get one child's rusage; see SAFETY notes
fn wait4(pid: libc::pid_t) -> std::io::Result<(libc::c_int, libc::rusage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is a plain C struct of integers, for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is a child this process spawned and has not reaped (std's `Child` is
        // never waited on); both pointers are valid, exclusive and live for the call.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((status, usage));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        // A read error only shortens the captured output; the exit status still tells.
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Runs `cmd` to completion, capturing stdout and stderr, timing it and reading its peak RSS.
pub fn run_child(cmd: &mut Command) -> Result<ChildRun, MeasureError> {
    use std::os::unix::process::ExitStatusExt;
    let program = PathBuf::from(cmd.get_program());
    let spawn_err = |source| MeasureError::Spawn {
        program: program.clone(),
        source,
    };
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let pid = child.id() as libc::pid_t;
    let waited = wait4(pid);
    let wall = start.elapsed();
    let (status, usage) = match waited {
        Ok(r) => r,
        Err(e) => {
            let _ = child.kill();
            return Err(spawn_err(e));
        }
    };
    let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(ChildRun {
        wall,
        // Linux reports ru_maxrss in KiB.
        max_rss_bytes: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
        status: ExitStatus::from_raw(status),
        stdout,
        stderr,
    })
}

/// The median of a non-empty sample (mean of the middle two for an even count); 0 when empty.
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn parse_text_counts_documents_and_rejects_bad_yaml() {
        let c = parse_text("a: 1\n---\nb: [1, 2]\n").expect("valid");
        assert_eq!(c.documents, 2);
        assert!(parse_text("a: [1, 2\n").is_err());
    }

    #[test]
    fn child_exit_code_and_output_are_captured() {
        let run = run_child(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]))
            .expect("sh runs");
        assert_eq!(run.status.code(), Some(3));
        assert_eq!(run.stdout, b"out\n");
        assert_eq!(run.stderr, b"err\n");
        assert!(run.max_rss_bytes > 0);
    }
}
