//! Where revisions come from: a directory policyd follows (notify, debounced, with symbolic
//! links re-pointed as git-sync does it), or a Git repository it fetches itself. Each change
//! becomes a [`Revision`] sent to the agent.

use notify_debouncer_full::notify::event::ModifyKind;
use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult};
use std::collections::BTreeSet;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

/// What `policyd run` follows.
#[derive(Clone, Debug)]
pub enum Source {
    /// A directory (or a symbolic link to one, or a directory holding such links).
    Dir(PathBuf),
    /// A Git repository fetched every `interval`; the tree is `path` inside `reference`.
    Git {
        repo: String,
        reference: String,
        path: Option<PathBuf>,
        interval: Duration,
    },
}

impl Source {
    /// How status and logs name it.
    pub fn describe(&self) -> String {
        match self {
            Source::Dir(p) => p.display().to_string(),
            Source::Git {
                repo,
                reference,
                path,
                ..
            } => match path {
                Some(p) => format!("{repo} {reference}:{}", p.display()),
                None => format!("{repo} {reference}"),
            },
        }
    }
}

/// One revision of the tree, ready to be checked.
#[derive(Clone, Debug)]
pub struct Revision {
    /// The directory to read.
    pub tree: PathBuf,
    /// The commit it was checked out from, when known (with `+dirty` when the checkout has
    /// changes of its own).
    pub commit: Option<String>,
    /// When the change was first seen.
    pub seen: Instant,
}

/// Debounce window: writes closer together than this make one revision.
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// How often symbolic links are re-read, in case an event was missed.
const LINK_POLL: Duration = Duration::from_secs(2);

/// The commit a directory was checked out from, if it is inside a Git checkout.
pub fn commit_of(dir: &Path) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--verify", "--quiet", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if commit.is_empty() {
        return None;
    }
    let clean = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["diff", "--quiet", "HEAD", "--", "."])
        .status()
        .is_ok_and(|s| s.success());
    Some(if clean {
        commit
    } else {
        format!("{commit}+dirty")
    })
}

/// A hash of every file's path and contents below `dir` (links followed): two trees with the
/// same fingerprint are the same revision.
pub fn fingerprint(dir: &Path) -> u64 {
    let mut files: Vec<PathBuf> = Vec::new();
    collect_files(dir, &mut files, 0);
    files.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in &files {
        h.write(
            f.strip_prefix(dir)
                .unwrap_or(f)
                .as_os_str()
                .as_encoded_bytes(),
        );
        h.write_u8(0);
        match std::fs::read(f) {
            Ok(bytes) => h.write(&bytes),
            Err(_) => h.write_u8(1),
        }
    }
    h.finish()
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    // Deep enough for any real tree, and a guard against link cycles.
    if depth > 32 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => collect_files(&path, out, depth + 1),
            Ok(_) => out.push(path),
            Err(_) => {}
        }
    }
}

/// The canonical targets of `dir` and of every symbolic link below it: what a re-pointed link
/// changes.
fn link_targets(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    if let Ok(c) = std::fs::canonicalize(dir) {
        out.insert(c);
    }
    let mut stack = vec![(dir.to_owned(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        if depth > 8 {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_symlink() {
                if let Ok(c) = std::fs::canonicalize(&p) {
                    if c.is_dir() {
                        out.insert(c);
                    }
                }
            } else if ft.is_dir() && !e.file_name().to_string_lossy().starts_with('.') {
                stack.push((p, depth + 1));
            }
        }
    }
    out
}

/// Follows a directory: sends a [`Revision`] at start and after every debounced change.
/// Returns when the receiver is gone.
pub fn follow_dir(dir: PathBuf, tx: Sender<Revision>) {
    let (events_tx, events_rx) = std::sync::mpsc::channel::<DebounceEventResult>();
    let mut debouncer = match new_debouncer(DEBOUNCE, None, events_tx) {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "policyd: cannot watch {}: {e}; polling instead",
                dir.display()
            );
            return poll_dir(dir, tx);
        }
    };
    // The parent sees the source itself re-pointed (git-sync's `--link`).
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = debouncer.watch(parent, RecursiveMode::NonRecursive);
    }
    let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
    rearm(&dir, &mut debouncer, &mut watched);
    let send = |tx: &Sender<Revision>| {
        let tree = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
        tx.send(Revision {
            commit: commit_of(&tree),
            tree: dir.clone(),
            seen: Instant::now(),
        })
        .is_ok()
    };
    if !send(&tx) {
        return;
    }
    loop {
        match events_rx.recv_timeout(LINK_POLL) {
            Ok(Ok(events)) => {
                // In the parent, only the source itself matters (its link re-pointed); below
                // the watched targets, everything but Git's own files.
                let relevant = events.iter().any(|e| {
                    // Reading the tree (ours included) is no change.
                    let writes = !matches!(
                        e.kind,
                        EventKind::Access(_)
                            | EventKind::Other
                            | EventKind::Modify(ModifyKind::Metadata(_))
                    );
                    writes
                        && e.paths.iter().any(|p| {
                            let below = watched.iter().any(|w| p.starts_with(w));
                            let git = p
                                .components()
                                .any(|c| c.as_os_str().to_string_lossy().starts_with(".git"));
                            (p == &dir || below) && !git
                        })
                });
                rearm(&dir, &mut debouncer, &mut watched);
                if relevant && !send(&tx) {
                    return;
                }
            }
            Ok(Err(errors)) => {
                for e in errors {
                    eprintln!("policyd: watching {}: {e}", dir.display());
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // A missed event: a link re-pointed without notice.
                if rearm(&dir, &mut debouncer, &mut watched) && !send(&tx) {
                    return;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

type Watching = notify_debouncer_full::Debouncer<
    notify_debouncer_full::notify::RecommendedWatcher,
    notify_debouncer_full::RecommendedCache,
>;

/// Watches what `dir` and its links point at now, and no longer what they pointed at before.
/// Returns whether that changed.
fn rearm(dir: &Path, debouncer: &mut Watching, watched: &mut BTreeSet<PathBuf>) -> bool {
    let targets = link_targets(dir);
    for gone in watched.difference(&targets) {
        let _ = debouncer.unwatch(gone);
    }
    for new in targets.difference(watched) {
        if let Err(e) = debouncer.watch(new, RecursiveMode::Recursive) {
            eprintln!("policyd: cannot watch {}: {e}", new.display());
        }
    }
    let changed = targets != *watched;
    *watched = targets;
    changed
}

/// Without inotify: compares fingerprints every two seconds.
fn poll_dir(dir: PathBuf, tx: Sender<Revision>) {
    let mut last = None;
    loop {
        let f = fingerprint(&dir);
        if last != Some(f) {
            last = Some(f);
            let tree = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
            let rev = Revision {
                commit: commit_of(&tree),
                tree: dir.clone(),
                seen: Instant::now(),
            };
            if tx.send(rev).is_err() {
                return;
            }
        }
        std::thread::sleep(LINK_POLL);
    }
}

/// Follows a Git branch: fetches into a bare repository under `work`, and checks each new
/// commit out into `work/checkouts/<commit>` (removing the older ones but the last two).
/// `stop` ends it.
pub fn follow_git(
    repo: String,
    reference: String,
    path: Option<PathBuf>,
    interval: Duration,
    work: PathBuf,
    tx: Sender<Revision>,
    stop: Receiver<()>,
) {
    let bare = work.join("repo.git");
    let checkouts = work.join("checkouts");
    let mut last: Option<String> = None;
    let mut kept: Vec<PathBuf> = Vec::new();
    loop {
        let seen = Instant::now();
        match fetch(&repo, &reference, &bare) {
            Ok(commit) if last.as_deref() != Some(commit.as_str()) => {
                let dir = checkouts.join(&commit);
                match checkout(&bare, &commit, &dir) {
                    Ok(()) => {
                        last = Some(commit.clone());
                        let tree = match &path {
                            Some(p) => dir.join(p),
                            None => dir.clone(),
                        };
                        let rev = Revision {
                            tree,
                            commit: Some(commit),
                            seen,
                        };
                        if tx.send(rev).is_err() {
                            return;
                        }
                        kept.push(dir);
                        while kept.len() > 2 {
                            let old = kept.remove(0);
                            let _ = std::fs::remove_dir_all(old);
                        }
                    }
                    Err(e) => eprintln!("policyd: cannot check out {commit}: {e}"),
                }
            }
            Ok(_) => {}
            Err(e) => eprintln!("policyd: cannot fetch {repo} {reference}: {e}"),
        }
        match stop.recv_timeout(interval) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

fn git(args: &[&std::ffi::OsStr]) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Fetches `reference` into the bare repository (created on first use); returns its commit.
fn fetch(repo: &str, reference: &str, bare: &Path) -> Result<String, String> {
    if !bare.join("HEAD").exists() {
        std::fs::create_dir_all(bare).map_err(|e| e.to_string())?;
        git(&[
            "init".as_ref(),
            "--bare".as_ref(),
            "--quiet".as_ref(),
            bare.as_os_str(),
        ])?;
    }
    git(&[
        "-C".as_ref(),
        bare.as_os_str(),
        "fetch".as_ref(),
        "--quiet".as_ref(),
        "--depth=1".as_ref(),
        repo.as_ref(),
        reference.as_ref(),
    ])?;
    git(&[
        "-C".as_ref(),
        bare.as_os_str(),
        "rev-parse".as_ref(),
        "FETCH_HEAD".as_ref(),
    ])
}

/// Writes the tree of `commit` into `dir` (a fresh directory).
fn checkout(bare: &Path, commit: &str, dir: &Path) -> Result<(), String> {
    if dir.exists() {
        return Ok(());
    }
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    git(&[
        "--git-dir".as_ref(),
        bare.as_os_str(),
        "--work-tree".as_ref(),
        tmp.as_os_str(),
        "checkout".as_ref(),
        "--quiet".as_ref(),
        "--force".as_ref(),
        commit.as_ref(),
        "--".as_ref(),
        ".".as_ref(),
    ])?;
    std::fs::rename(&tmp, dir).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_change_with_contents_and_not_with_time() {
        let dir = std::env::temp_dir().join(format!("plc-fp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).expect("dir");
        std::fs::write(dir.join("a.yaml"), "a: 1\n").expect("write");
        std::fs::write(dir.join("sub/b.yaml"), "b: 1\n").expect("write");
        let first = fingerprint(&dir);
        std::fs::write(dir.join("a.yaml"), "a: 1\n").expect("rewrite");
        assert_eq!(fingerprint(&dir), first);
        std::fs::write(dir.join("sub/b.yaml"), "b: 2\n").expect("change");
        assert_ne!(fingerprint(&dir), first);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
