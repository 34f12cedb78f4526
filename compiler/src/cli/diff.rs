//! `policyc diff`: the flows gained and lost between two policy trees (two directories, or two
//! revisions of a Git repository), with the rules responsible for each change.

use super::tree::{self, origin_of, plural, rebase, rule_name, Loaded};
use super::{emit, log, ColorChoice, EXIT_ERROR, EXIT_FAILED, EXIT_OK};
use clap::{Args, ValueEnum};
use compiler::flow::{Flow, Peer, Verdict};
use compiler::ir::Origin;
use compiler::lookup::Evaluator;
use compiler::matrix::{declared_ports, PortProto};
use compiler::reference::{self, Explanation, Reason, RuleRef, SideResult};
use serde::Serialize;
use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const AFTER_HELP: &str = "\
Every ordered pair of distinct workloads present in both trees is judged on every port, in
BASE and in HEAD, as the datapath would judge a new connection (L7 rules do not enter). A
flow allowed in HEAD but not in BASE is gained, the reverse is lost. For each, the rules
responsible: for a gained flow, the HEAD rules that allow it (or the BASE deny rules that no
longer match); for a lost flow, the HEAD deny rules, or the default deny that now applies and
the BASE allow rules that no longer match. Workloads only in HEAD or only in BASE are listed as
added or removed, their flows are not compared.

Ports: --ports, or else every container port that workloads of either tree declare.
File names in the output are relative to BASE and HEAD (with --git, to the repository root),
so that a rule reads the same on both sides.

With --git, BASE and HEAD are revisions of REPO (anything `git rev-parse` reads: a branch, a
tag, a commit). Each is extracted with `git archive REV [SUBDIR] | tar -x` into a temporary
directory, which is removed afterwards; --path limits the tree to SUBDIR of the repository.

Examples:
  policyc diff old/policies new/policies
  policyc diff --git . origin/main HEAD --path deploy/policies --format markdown
  policyc diff --git . main HEAD --ports 80/TCP,443/TCP --format json

Exit status:
  0  no difference
  1  flows were gained or lost, or workloads added or removed
  2  usage error, a tree with errors (its findings are printed on stderr), a revision that
     cannot be extracted, or an internal error (the two evaluators disagree)";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct DiffArgs {
    /// The tree before: a directory, or with --git a revision.
    #[arg(value_name = "BASE")]
    pub base: String,

    /// The tree after: a directory, or with --git a revision.
    #[arg(value_name = "HEAD")]
    pub head: String,

    /// Read BASE and HEAD as revisions of the Git repository at REPO.
    #[arg(long, value_name = "REPO")]
    pub git: Option<PathBuf>,

    /// With --git: the tree is this directory of the repository.
    #[arg(long, value_name = "SUBDIR", requires = "git")]
    pub path: Option<PathBuf>,

    /// Ports to judge, comma-separated (`80/TCP,53/UDP`; the protocol defaults to TCP).
    #[arg(long, value_name = "PORT/PROTO,...", value_delimiter = ',', value_parser = parse_port)]
    pub ports: Option<Vec<PortProto>>,

    /// Output format.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Human)]
    pub format: Format,
}

/// The `--format` setting of `diff`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A summary line, then the workloads added and removed and each flow gained or lost with
    /// its causes.
    #[default]
    Human,
    /// One JSON object: `base`, `head`, `ports`, `summary`, `workloads` (`added`, `removed`),
    /// `gained` and `lost` (each flow: `from`, `to`, `port`, `causes`).
    Json,
    /// A pull-request comment: a summary line and a table of gained and lost flows whose
    /// rules read `file:line`.
    Markdown,
}

fn parse_port(s: &str) -> Result<PortProto, String> {
    s.parse()
}

/// Runs `policyc diff` and returns the exit status.
pub fn run(args: &DiffArgs, color: ColorChoice) -> u8 {
    match run_inner(args, color) {
        Ok(code) | Err(code) => code,
    }
}

fn run_inner(args: &DiffArgs, color: ColorChoice) -> Result<u8, u8> {
    // Holds the extracted revisions until the end (removed on drop).
    let mut _temps: Vec<TempDir> = Vec::new();
    let (base_side, head_side) = match &args.git {
        None => (
            TreeSide::directory(&args.base),
            TreeSide::directory(&args.head),
        ),
        Some(repo) => {
            let mut extract = |rev: &str, tag: &str| -> Result<TreeSide, u8> {
                let dir = TempDir::new(tag).map_err(|e| {
                    log(format_args!(
                        "error: cannot create a temporary directory: {e}"
                    ));
                    EXIT_ERROR
                })?;
                materialise(repo, rev, args.path.as_deref(), &dir.0).map_err(|e| {
                    log(format_args!("error: {e}"));
                    EXIT_ERROR
                })?;
                let root = dir.0.clone();
                _temps.push(dir);
                Ok(TreeSide {
                    label: rev.to_owned(),
                    load: match &args.path {
                        Some(sub) => root.join(sub),
                        None => root.clone(),
                    },
                    root,
                })
            };
            (extract(&args.base, "base")?, extract(&args.head, "head")?)
        }
    };
    let base = tree::load(std::slice::from_ref(&base_side.load), color, Some("base"))?;
    let head = tree::load(std::slice::from_ref(&head_side.load), color, Some("head"))?;
    let diff = compare(&base, &head, &base_side, &head_side, args.ports.as_deref())?;
    let verdict = if diff.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILED
    };
    let status = emit(verdict, |out| match args.format {
        Format::Human => write_human(out, &diff),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &diff.json())?;
            writeln!(out)
        }
        Format::Markdown => write_markdown(out, &diff),
    });
    std::mem::forget(base);
    std::mem::forget(head);
    Ok(status)
}

/// One of the two trees: how it is named, where it is loaded from, and the directory file
/// names are shown relative to.
struct TreeSide {
    label: String,
    load: PathBuf,
    root: PathBuf,
}

impl TreeSide {
    fn directory(path: &str) -> TreeSide {
        let load = PathBuf::from(path);
        // A single file is shown by its name.
        let root = if load.is_file() {
            load.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            load.clone()
        };
        TreeSide {
            label: path.to_owned(),
            load,
            root,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Git
// ------------------------------------------------------------------------------------------------

/// A directory under the system's temporary directory, removed with everything in it on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> io::Result<TempDir> {
        let base = std::env::temp_dir();
        let pid = std::process::id();
        let mut last = None;
        for n in 0..1000 {
            let path = base.join(format!("policyc-diff-{pid}-{tag}-{n}"));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir(path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free name")))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Extracts revision `rev` of `repo` (only `subdir` when given) into `dest`.
fn materialise(repo: &Path, rev: &str, subdir: Option<&Path>, dest: &Path) -> Result<(), String> {
    // git would read `-...` as an option.
    if rev.starts_with('-') {
        return Err(format!("`{rev}` is not a revision"));
    }
    let verify = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("{rev}^{{commit}}"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !verify.status.success() {
        return Err(format!(
            "`{rev}` is not a revision of the Git repository `{}`",
            repo.display()
        ));
    }
    let mut git = Command::new("git");
    git.arg("-C")
        .arg(repo)
        .args(["archive", "--format=tar", rev]);
    if let Some(sub) = subdir {
        git.arg(sub);
    }
    let mut child = git
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let archive = child
        .stdout
        .take()
        .ok_or_else(|| "cannot read the output of git archive".to_owned())?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(dest)
        .stdin(Stdio::from(archive))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    let git = child
        .wait_with_output()
        .map_err(|e| format!("git archive failed: {e}"))?;
    if !git.status.success() {
        return Err(format!(
            "git archive {rev} failed: {}",
            String::from_utf8_lossy(&git.stderr).trim()
        ));
    }
    if !tar.status.success() {
        return Err(format!(
            "tar could not extract {rev}: {}",
            String::from_utf8_lossy(&tar.stderr).trim()
        ));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Comparing
// ------------------------------------------------------------------------------------------------

/// Which tree a cause was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tree {
    Base,
    Head,
}

impl Tree {
    fn as_str(self) -> &'static str {
        match self {
            Tree::Base => "base",
            Tree::Head => "head",
        }
    }
}

/// Why a side changed its verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    /// A HEAD rule allows the flow.
    Allow,
    /// A HEAD deny rule matches the flow.
    Deny,
    /// HEAD puts the endpoint in default deny and no rule allows the flow.
    DefaultDeny,
    /// No HEAD policy enforces the direction any more.
    NotEnforced,
    /// A BASE allow rule matched; in HEAD it is gone or no longer matches.
    AllowGone,
    /// A BASE deny rule matched; in HEAD it is gone or no longer matches.
    DenyGone,
}

impl Effect {
    fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
            Effect::DefaultDeny => "default_deny",
            Effect::NotEnforced => "not_enforced",
            Effect::AllowGone => "allow_gone",
            Effect::DenyGone => "deny_gone",
        }
    }
}

struct Cause {
    direction: &'static str,
    endpoint: String,
    tree: Tree,
    effect: Effect,
    rule: Option<Origin>,
    /// Policies that select the endpoint (for default deny).
    policies: Vec<String>,
    /// Whether default deny was already on in BASE (for default deny).
    was_enforced: bool,
}

impl Cause {
    fn text(&self, rule: impl Fn(&Origin) -> String) -> String {
        let side = format!("{} of {}", self.direction, self.endpoint);
        let r = self.rule.as_ref().map(rule).unwrap_or_default();
        match self.effect {
            Effect::Allow => format!("{side}: allowed by {r}"),
            Effect::Deny => format!("{side}: denied by {r}"),
            Effect::DefaultDeny if self.was_enforced => {
                format!("{side}: default deny, and no rule allows the flow any more")
            }
            Effect::DefaultDeny => format!(
                "{side}: default deny now applies ({} select{} it) and no rule allows the flow",
                self.policies.join(", "),
                if self.policies.len() == 1 { "s" } else { "" }
            ),
            Effect::NotEnforced => {
                format!(
                    "{side}: no policy enforces {} any more (no default deny)",
                    self.direction
                )
            }
            Effect::AllowGone => format!("{side}: no longer allowed by {r}"),
            Effect::DenyGone => format!("{side}: no longer denied by {r}"),
        }
    }

    fn json(&self) -> CauseJson<'_> {
        CauseJson {
            side: self.direction,
            endpoint: &self.endpoint,
            tree: self.tree.as_str(),
            effect: self.effect.as_str(),
            text: self.text(|o| format!("{} ({}:{})", rule_name(o), o.file, o.line)),
            rule: self.rule.as_ref(),
        }
    }
}

struct Change {
    from: String,
    to: String,
    port: String,
    causes: Vec<Cause>,
}

impl Change {
    fn json(&self) -> ChangeJson<'_> {
        ChangeJson {
            from: &self.from,
            to: &self.to,
            port: &self.port,
            causes: self.causes.iter().map(Cause::json).collect(),
        }
    }
}

/// `--format json`: field order is part of the format, so these are structs, not maps.
#[derive(Serialize)]
struct DiffJson<'a> {
    base: &'a str,
    head: &'a str,
    ports: Vec<String>,
    summary: SummaryJson,
    workloads: WorkloadsJson<'a>,
    gained: Vec<ChangeJson<'a>>,
    lost: Vec<ChangeJson<'a>>,
}

#[derive(Serialize)]
struct SummaryJson {
    gained: usize,
    lost: usize,
    workloads_added: usize,
    workloads_removed: usize,
}

#[derive(Serialize)]
struct WorkloadsJson<'a> {
    added: &'a [String],
    removed: &'a [String],
}

#[derive(Serialize)]
struct ChangeJson<'a> {
    from: &'a str,
    to: &'a str,
    port: &'a str,
    causes: Vec<CauseJson<'a>>,
}

#[derive(Serialize)]
struct CauseJson<'a> {
    side: &'static str,
    endpoint: &'a str,
    tree: &'static str,
    effect: &'static str,
    text: String,
    rule: Option<&'a Origin>,
}

struct Diff {
    base: String,
    head: String,
    ports: Vec<PortProto>,
    added: Vec<String>,
    removed: Vec<String>,
    gained: Vec<Change>,
    lost: Vec<Change>,
}

impl Diff {
    fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.gained.is_empty()
            && self.lost.is_empty()
    }

    fn json(&self) -> DiffJson<'_> {
        DiffJson {
            base: &self.base,
            head: &self.head,
            ports: self.ports.iter().map(|p| p.to_string()).collect(),
            summary: SummaryJson {
                gained: self.gained.len(),
                lost: self.lost.len(),
                workloads_added: self.added.len(),
                workloads_removed: self.removed.len(),
            },
            workloads: WorkloadsJson {
                added: &self.added,
                removed: &self.removed,
            },
            gained: self.gained.iter().map(Change::json).collect(),
            lost: self.lost.iter().map(Change::json).collect(),
        }
    }

    /// `2 flows gained, 1 flow lost; 1 workload added, 0 removed`.
    fn summary(&self) -> String {
        if self.is_empty() {
            return "no change in connectivity".to_owned();
        }
        format!(
            "{} gained, {} lost; {} added, {} removed",
            plural(self.gained.len(), "flow", "flows"),
            plural(self.lost.len(), "flow", "flows"),
            plural(self.added.len(), "workload", "workloads"),
            self.removed.len()
        )
    }

    fn ports_text(&self) -> String {
        let v: Vec<String> = self.ports.iter().map(|p| p.to_string()).collect();
        v.join(", ")
    }
}

fn names(loaded: &Loaded) -> BTreeSet<String> {
    loaded
        .compiled
        .inventory
        .workloads
        .iter()
        .map(|w| w.full_name())
        .collect()
}

fn compare(
    base: &Loaded,
    head: &Loaded,
    base_side: &TreeSide,
    head_side: &TreeSide,
    ports: Option<&[PortProto]>,
) -> Result<Diff, u8> {
    let (bn, hn) = (names(base), names(head));
    let common: Vec<&String> = bn.intersection(&hn).collect();
    let mut ports: Vec<PortProto> = match ports {
        Some(p) => p.to_vec(),
        None => declared_ports(&base.compiled.inventory)
            .into_iter()
            .chain(declared_ports(&head.compiled.inventory))
            .collect(),
    };
    ports.sort();
    ports.dedup();
    let (eb, eh) = (
        Evaluator::new(&base.compiled.bundle),
        Evaluator::new(&head.compiled.bundle),
    );
    let index = |l: &Loaded, name: &str| l.compiled.inventory.find(name).map(|w| w.index);
    let mut diff = Diff {
        base: base_side.label.clone(),
        head: head_side.label.clone(),
        ports: ports.clone(),
        added: hn.difference(&bn).cloned().collect(),
        removed: bn.difference(&hn).cloned().collect(),
        gained: Vec::new(),
        lost: Vec::new(),
    };
    for a in &common {
        for b in &common {
            if a == b {
                continue;
            }
            let (Some(ba), Some(bb), Some(ha), Some(hb)) = (
                index(base, a),
                index(base, b),
                index(head, a),
                index(head, b),
            ) else {
                continue;
            };
            for p in &ports {
                let flow = |from, to| Flow {
                    from: Peer::Workload(from),
                    to: Peer::Workload(to),
                    protocol: p.protocol,
                    port: p.port,
                    http: None,
                    dns: None,
                };
                let (fb, fh) = (flow(ba, bb), flow(ha, hb));
                let (vb, vh) = (eb.evaluate(&fb).verdict, eh.evaluate(&fh).verdict);
                if vb == vh {
                    continue;
                }
                let rb = explain(base, &fb);
                let rh = explain(head, &fh);
                if rb.verdict != vb || rh.verdict != vh {
                    log(format_args!(
                        "INTERNAL ERROR: the bundle evaluator and the reference evaluator \
                         disagree on {a} -> {b} {p}; please report this bug with both trees"
                    ));
                    return Err(EXIT_ERROR);
                }
                let cx = Cx {
                    base,
                    head,
                    base_side,
                    head_side,
                };
                let change = Change {
                    from: (*a).clone(),
                    to: (*b).clone(),
                    port: p.to_string(),
                    causes: cx.causes(&rb, &rh),
                };
                match vh {
                    Verdict::Allowed => diff.gained.push(change),
                    Verdict::Denied => diff.lost.push(change),
                }
            }
        }
    }
    Ok(diff)
}

fn explain(l: &Loaded, flow: &Flow) -> Explanation {
    reference::evaluate(
        &l.checked.tree,
        &l.compiled.inventory,
        flow,
        l.compiled.bundle.options.allow_host_ingress,
    )
}

struct Cx<'a> {
    base: &'a Loaded,
    head: &'a Loaded,
    base_side: &'a TreeSide,
    head_side: &'a TreeSide,
}

/// The same rule in both trees: same policy, same position.
fn same_rule(a: &RuleRef, b: &RuleRef) -> bool {
    a.policy_kind == b.policy_kind
        && a.namespace == b.namespace
        && a.name == b.name
        && a.rule_index == b.rule_index
}

impl Cx<'_> {
    fn origin(&self, tree: Tree, r: &RuleRef) -> Origin {
        let (l, side) = match tree {
            Tree::Base => (self.base, self.base_side),
            Tree::Head => (self.head, self.head_side),
        };
        let o = origin_of(r, &l.checked.sources, &l.compiled.bundle.rules);
        rebase(&o, &side.root, Path::new(""))
    }

    fn endpoint(&self, s: &SideResult) -> String {
        self.head
            .compiled
            .inventory
            .workloads
            .get(s.endpoint)
            .map(|w| w.full_name())
            .unwrap_or_default()
    }

    /// The causes of a changed verdict: for each side whose L4 verdict changed, what HEAD
    /// says now and which BASE rules stopped applying.
    fn causes(&self, rb: &Explanation, rh: &Explanation) -> Vec<Cause> {
        let mut out = Vec::new();
        for (sb, sh) in [(&rb.egress, &rh.egress), (&rb.ingress, &rh.ingress)] {
            let (Some(sb), Some(sh)) = (sb, sh) else {
                continue;
            };
            if sb.verdict == sh.verdict {
                continue;
            }
            let cause = |tree, effect, rule: Option<Origin>| Cause {
                direction: sh.direction.as_str(),
                endpoint: self.endpoint(sh),
                tree,
                effect,
                rule,
                policies: sh.selecting_policies.clone(),
                was_enforced: sb.enforced,
            };
            match sh.verdict {
                Verdict::Allowed => {
                    match sh.reason {
                        Reason::AllowedBy => {
                            for r in &sh.matched_allows {
                                out.push(cause(
                                    Tree::Head,
                                    Effect::Allow,
                                    Some(self.origin(Tree::Head, r)),
                                ));
                            }
                        }
                        Reason::NoPolicy => out.push(cause(Tree::Head, Effect::NotEnforced, None)),
                        _ => {}
                    }
                    for r in &sb.matched_denies {
                        if !sh.matched_denies.iter().any(|h| same_rule(h, r)) {
                            out.push(cause(
                                Tree::Base,
                                Effect::DenyGone,
                                Some(self.origin(Tree::Base, r)),
                            ));
                        }
                    }
                }
                Verdict::Denied => {
                    match sh.reason {
                        Reason::DeniedBy => {
                            for r in &sh.matched_denies {
                                out.push(cause(
                                    Tree::Head,
                                    Effect::Deny,
                                    Some(self.origin(Tree::Head, r)),
                                ));
                            }
                        }
                        Reason::DefaultDeny => {
                            out.push(cause(Tree::Head, Effect::DefaultDeny, None))
                        }
                        _ => {}
                    }
                    for r in &sb.matched_allows {
                        if !sh.matched_allows.iter().any(|h| same_rule(h, r)) {
                            out.push(cause(
                                Tree::Base,
                                Effect::AllowGone,
                                Some(self.origin(Tree::Base, r)),
                            ));
                        }
                    }
                }
            }
        }
        out
    }
}

// ------------------------------------------------------------------------------------------------
// Output
// ------------------------------------------------------------------------------------------------

/// `NetworkPolicy shop/allow-web rule #0 (np.yaml:12 in head)`.
fn human_rule(tree: Tree) -> impl Fn(&Origin) -> String {
    move |o| {
        format!(
            "{} ({}:{} in {})",
            rule_name(o),
            o.file,
            o.line,
            tree.as_str()
        )
    }
}

fn write_human(out: &mut dyn Write, d: &Diff) -> io::Result<()> {
    writeln!(
        out,
        "diff {} -> {}: {} (ports: {})",
        d.base,
        d.head,
        d.summary(),
        if d.ports.is_empty() {
            "none".to_owned()
        } else {
            d.ports_text()
        }
    )?;
    if !d.added.is_empty() {
        writeln!(out, "\nworkloads added:")?;
        for w in &d.added {
            writeln!(out, "  + {w}")?;
        }
    }
    if !d.removed.is_empty() {
        writeln!(out, "\nworkloads removed:")?;
        for w in &d.removed {
            writeln!(out, "  - {w}")?;
        }
    }
    for (title, mark, list) in [("gained", '+', &d.gained), ("lost", '-', &d.lost)] {
        if list.is_empty() {
            continue;
        }
        writeln!(out, "\nflows {title}:")?;
        for c in list.iter() {
            writeln!(out, "  {mark} {} -> {} {}", c.from, c.to, c.port)?;
            for cause in &c.causes {
                writeln!(out, "      {}", cause.text(human_rule(cause.tree)))?;
            }
        }
    }
    Ok(())
}

/// Escapes what would break a Markdown table cell.
fn md(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn write_markdown(out: &mut dyn Write, d: &Diff) -> io::Result<()> {
    if d.gained.is_empty() && d.lost.is_empty() {
        writeln!(out, "### Network policy diff: no flow gained or lost")?;
    } else {
        writeln!(
            out,
            "### Network policy diff: {} gained, {} lost",
            plural(d.gained.len(), "flow", "flows"),
            plural(d.lost.len(), "flow", "flows"),
        )?;
    }
    let ports: Vec<String> = d.ports.iter().map(|p| format!("`{p}`")).collect();
    writeln!(
        out,
        "\nBetween `{}` and `{}`, over every pair of workloads present in both, on {}: {}.",
        md(&d.base),
        md(&d.head),
        plural(d.ports.len(), "port", "ports"),
        if ports.is_empty() {
            "none".to_owned()
        } else {
            ports.join(", ")
        }
    )?;
    if !d.gained.is_empty() || !d.lost.is_empty() {
        writeln!(out, "\n| Change | From | To | Port | Why |")?;
        writeln!(out, "| --- | --- | --- | --- | --- |")?;
        for (what, list) in [("➕ gained", &d.gained), ("➖ lost", &d.lost)] {
            for c in list.iter() {
                let why: Vec<String> = c
                    .causes
                    .iter()
                    .map(|cause| {
                        let tree = cause.tree;
                        md(&cause.text(move |o| {
                            format!(
                                "{} (`{}:{}` in {})",
                                rule_name(o),
                                o.file,
                                o.line,
                                tree.as_str()
                            )
                        }))
                    })
                    .collect();
                writeln!(
                    out,
                    "| {what} | `{}` | `{}` | {} | {} |",
                    md(&c.from),
                    md(&c.to),
                    c.port,
                    why.join("<br>")
                )?;
            }
        }
    }
    if !d.added.is_empty() || !d.removed.is_empty() {
        writeln!(out)?;
        let list = |v: &[String]| {
            v.iter()
                .map(|w| format!("`{}`", md(w)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !d.added.is_empty() {
            writeln!(
                out,
                "**Workloads added** (flows not compared): {}  ",
                list(&d.added)
            )?;
        }
        if !d.removed.is_empty() {
            writeln!(out, "**Workloads removed:** {}  ", list(&d.removed))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_cells_escape_pipes() {
        assert_eq!(md("a|b\nc"), "a\\|b c");
    }

    #[test]
    fn temp_dirs_are_removed_on_drop() {
        let dir = TempDir::new("unit").unwrap_or_else(|e| panic!("{e}"));
        let path = dir.0.clone();
        std::fs::write(path.join("f"), "x").unwrap_or_else(|e| panic!("{e}"));
        assert!(path.is_dir());
        drop(dir);
        assert!(!path.exists());
    }
}
