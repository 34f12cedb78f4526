//! The public conformance corpus (../shared/conformance) loads with no error findings.

use std::path::PathBuf;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/netpol-analyzer/tests")
}

#[test]
fn netpol_analyzer_corpus_has_no_errors() {
    let root = corpus();
    assert!(
        root.is_dir(),
        "conformance corpus missing at {}",
        root.display()
    );
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("read corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 19, "expected the 19 scenario directories");
    let mut policies = 0;
    let mut workloads = 0;
    for dir in &dirs {
        let checked = policy_lang::check(std::slice::from_ref(dir));
        let errors: Vec<String> = checked
            .diagnostics
            .iter()
            .filter(|d| d.severity == policy_lang::Severity::Error)
            .map(|d| {
                let l = policy_lang::LocatedDiagnostic::new(d, &checked.sources);
                format!(
                    "{}:{}:{}: {} {}",
                    l.file, l.line, l.column, l.code, l.message
                )
            })
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", dir.display());
        policies += checked.summary.policies;
        workloads += checked.summary.workloads;
    }
    assert!(policies > 20, "the corpus declares policies ({policies})");
    assert!(
        workloads > 20,
        "the corpus declares workloads ({workloads})"
    );
}
