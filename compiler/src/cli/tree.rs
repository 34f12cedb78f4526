//! Loading a policy tree for the verbs that compile it: check it, refuse it when it has errors,
//! then compile it; and naming rules by file, line and policy.
//!
//! A tree with errors cannot be compiled: its findings go to stderr (as `policyc check` prints
//! them) and the verb exits 2, the status for input it cannot work with.

use super::report::{self, human};
use super::{log, ColorChoice, EXIT_ERROR};
use compiler::bundle::Options;
use compiler::ir::Origin;
use compiler::lower::{self, Compiled};
use compiler::reference::RuleRef;
use policy_lang::model::PolicyKind;
use policy_lang::{Checked, SourceMap};
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};

/// A checked tree and what it compiles to.
pub struct Loaded {
    pub checked: Checked,
    pub compiled: Compiled,
}

/// Checks and compiles the tree under `paths`. On errors, prints the findings to stderr and
/// returns the exit status (2). `label` names the tree in the error line (`diff` loads two).
pub fn load(paths: &[PathBuf], color: ColorChoice, label: Option<&str>) -> Result<Loaded, u8> {
    let t = compiler::timing::Phase::start();
    let checked = policy_lang::check(paths);
    t.lap("check");
    if checked.has_io_errors() || checked.errors() > 0 {
        let options = report::Options {
            color: color.resolve(
                io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            ),
            ..report::Options::default()
        };
        let _ = human::write(&mut io::stderr().lock(), &checked, &options);
        let which = label.map(|l| format!("{l} ")).unwrap_or_default();
        log(format_args!(
            "error: the {which}tree has {} and cannot be compiled",
            plural(checked.errors(), "error", "errors")
        ));
        return Err(EXIT_ERROR);
    }
    let compiled = lower::compile(&checked.tree, &checked.sources, None, Options::default());
    t.lap("compile");
    Ok(Loaded { checked, compiled })
}

/// `1 error`, `2 errors`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A reference evaluator's rule as an [`Origin`] (file, line, column from the span; the
/// description from the bundle's copy of the same rule when it has one).
pub fn origin_of(rule: &RuleRef, sources: &SourceMap, bundle_rules: &[Origin]) -> Origin {
    let (file, line, column) = match sources.locate(rule.span) {
        Some((f, start, _)) => (f.path.display().to_string(), start.line, start.column),
        None => (sources.path(rule.span.file).display().to_string(), 0, 0),
    };
    let namespace = if rule.policy_kind == PolicyKind::CiliumClusterwideNetworkPolicy {
        String::new()
    } else {
        rule.namespace.clone()
    };
    let kind = rule.policy_kind.as_str().to_owned();
    let description = bundle_rules
        .iter()
        .find(|o| {
            o.kind == kind
                && o.namespace == namespace
                && o.name == rule.name
                && o.rule_index == rule.rule_index
        })
        .map(|o| o.description.clone())
        .unwrap_or_default();
    Origin {
        kind,
        namespace,
        name: rule.name.clone(),
        rule_index: rule.rule_index,
        file,
        line,
        column,
        description,
    }
}

/// `Kind ns/name rule #i`.
pub fn rule_name(o: &Origin) -> String {
    format!("{} rule #{}", o.policy(), o.rule_index)
}

/// `file:line (Kind ns/name rule #i)`.
pub fn rule_line(o: &Origin) -> String {
    o.location()
}

/// Rewrites an origin's file to be relative to `root`, then placed under `prefix` (used by
/// `diff`, whose two trees live in different directories but share file names).
pub fn rebase(o: &Origin, root: &Path, prefix: &Path) -> Origin {
    let path = Path::new(&o.file);
    let file = match path.strip_prefix(root) {
        Ok(rest) => prefix
            .join(rest)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => o.file.clone(),
    };
    Origin { file, ..o.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(file: &str) -> Origin {
        Origin {
            kind: "NetworkPolicy".into(),
            namespace: "shop".into(),
            name: "allow-web".into(),
            rule_index: 1,
            file: file.into(),
            line: 12,
            column: 7,
            description: String::new(),
        }
    }

    #[test]
    fn rules_read_as_file_line_and_policy() {
        assert_eq!(
            rule_line(&origin("tree/np.yaml")),
            "tree/np.yaml:12 (NetworkPolicy shop/allow-web rule #1)"
        );
    }

    #[test]
    fn rebase_strips_the_root_and_adds_the_prefix() {
        let o = origin("/tmp/x/base/policies/np.yaml");
        let r = rebase(&o, Path::new("/tmp/x/base"), Path::new(""));
        assert_eq!(r.file, "policies/np.yaml");
        let r = rebase(&o, Path::new("/tmp/x/base"), Path::new("deploy"));
        assert_eq!(r.file, "deploy/policies/np.yaml");
        let other = rebase(&o, Path::new("/elsewhere"), Path::new(""));
        assert_eq!(other.file, o.file);
    }
}
