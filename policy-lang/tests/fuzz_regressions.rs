//! Inputs the fuzzer found (fuzz/regressions/check_yaml) and its seeds: checking them never
//! panics, and every finding's span lies inside its file on character boundaries.

use std::path::{Path, PathBuf};

fn inputs(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files
}

fn assert_spans_valid(input: &Path) {
    let bytes = std::fs::read(input).expect("read input");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let checked = policy_lang::check_sources(vec![("fuzz.yaml".into(), text)]);
    for d in &checked.diagnostics {
        let located = policy_lang::LocatedDiagnostic::new(d, &checked.sources);
        assert!(
            located.line >= 1 && located.column >= 1,
            "{}: {located:?}",
            input.display()
        );
        if let Some(span) = d.span() {
            let file = checked.sources.get(span.file).expect("file of span");
            assert!(
                file.text
                    .get(span.start as usize..span.end as usize)
                    .is_some(),
                "{}: span {}..{} of {:?} splits a character or leaves the text",
                input.display(),
                span.start,
                span.end,
                d.message
            );
        }
    }
}

#[test]
fn fuzz_regressions_have_valid_spans() {
    let files = inputs("fuzz/regressions/check_yaml");
    assert!(!files.is_empty());
    files.iter().for_each(|f| assert_spans_valid(f));
}

#[test]
fn fuzz_seeds_have_valid_spans() {
    let files = inputs("fuzz/seeds/check_yaml");
    assert!(files.len() >= 10);
    files.iter().for_each(|f| assert_spans_valid(f));
}
