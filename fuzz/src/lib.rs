//! Shared checks of the fuzz targets (also run over the committed inputs by `cargo test`).
//!
//! The property under test is only: `policy_lang::check_sources` never panics, and every
//! diagnostic's span lies inside its file, on character boundaries, and maps to a 1-based
//! line and column.

use std::path::PathBuf;

/// The file name every fuzz input is checked as.
pub const FILE_NAME: &str = "fuzz.yaml";

/// Checks one file's text and asserts the span properties of every diagnostic.
pub fn check_text(text: String) {
    let checked = policy_lang::check_sources(vec![(PathBuf::from(FILE_NAME), text)]);
    for d in &checked.diagnostics {
        let located = policy_lang::LocatedDiagnostic::new(d, &checked.sources);
        assert!(located.line >= 1, "line < 1 in {located:?}");
        assert!(located.column >= 1, "column < 1 in {located:?}");
        if let Some(span) = d.span() {
            let file = checked
                .sources
                .get(span.file)
                .unwrap_or_else(|| panic!("span of {d:?} names no loaded file"));
            let (start, end) = (span.start as usize, span.end as usize);
            assert!(
                file.text.get(start..end).is_some(),
                "span {start}..{end} of {d:?} is outside the text ({} bytes) or not on char boundaries",
                file.text.len()
            );
        }
    }
}

/// Valid policies and workloads that `check_policy_mutations` splices fuzz bytes into.
pub const SEEDS: &[&str] = &[
    include_str!("../seeds/check_yaml/01-networkpolicy-ingress.yaml"),
    include_str!("../seeds/check_yaml/02-networkpolicy-egress-ipblock.yaml"),
    include_str!("../seeds/check_yaml/03-networkpolicy-default-deny.yaml"),
    include_str!("../seeds/check_yaml/04-cnp-toports-http.yaml"),
    include_str!("../seeds/check_yaml/05-cnp-tofqdns-dns.yaml"),
    include_str!("../seeds/check_yaml/06-cnp-icmps.yaml"),
    include_str!("../seeds/check_yaml/07-cnp-tocidrset-except.yaml"),
    include_str!("../seeds/check_yaml/08-ccnp.yaml"),
    include_str!("../seeds/check_yaml/09-ccnp-specs-deny.yaml"),
    include_str!("../seeds/check_yaml/10-pod.yaml"),
    include_str!("../seeds/check_yaml/11-deployment.yaml"),
    include_str!("../seeds/check_yaml/12-list.yaml"),
    include_str!("../seeds/check_yaml/13-podlist.yaml"),
    include_str!("../seeds/check_yaml/15-policy.json"),
    include_str!("../seeds/check_yaml/16-anchors-aliases.yaml"),
    include_str!("../seeds/check_yaml/18-block-scalars-unicode.yaml"),
    include_str!("../seeds/check_yaml/21-daemonset-job-cronjob.yaml"),
];

/// Builds the text that `check_policy_mutations` checks from its input.
///
/// Input layout: byte 0 picks a seed (modulo [`SEEDS`]), bytes 1-2 a byte offset into it
/// (little-endian, modulo its length + 1, moved back to a character boundary), byte 3 how
/// to splice, and the rest (lossy UTF-8) is the text spliced in. Byte 3: the low two bits
/// choose the mode, the upper six bits `n` (0-63):
/// - 0: insert at the offset;
/// - 1: replace `n` bytes from the offset;
/// - 2: insert at the start of the offset's line, after its indentation (a new sibling key
///   or list item);
/// - 3: replace the rest of the offset's line (a new value for a key) and the `n` lines
///   after it.
///
/// Inputs shorter than 4 bytes return the seed they name unchanged.
pub fn splice(data: &[u8]) -> String {
    let seed = SEEDS[data.first().copied().unwrap_or(0) as usize % SEEDS.len()];
    if data.len() < 4 {
        return seed.to_owned();
    }
    let raw_offset = u16::from_le_bytes([data[1], data[2]]) as usize % (seed.len() + 1);
    let offset = floor_char_boundary(seed, raw_offset);
    let mode = data[3] & 3;
    let n = (data[3] >> 2) as usize;
    let payload = String::from_utf8_lossy(&data[4..]);

    let line_start = seed[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = seed[offset..].find('\n').map_or(seed.len(), |i| offset + i);
    let (from, to) = match mode {
        0 => (offset, offset),
        1 => (offset, floor_char_boundary(seed, (offset + n).min(seed.len()))),
        2 => {
            let indent = seed[line_start..line_end]
                .bytes()
                .take_while(|b| *b == b' ' || *b == b'-')
                .count();
            (line_start + indent, line_start + indent)
        }
        _ => {
            // Drop the rest of this line and `n` following lines.
            let mut to = line_end;
            for _ in 0..n {
                match seed[to..].strip_prefix('\n').and_then(|r| r.find('\n')) {
                    Some(i) => to = to + 1 + i,
                    None => {
                        to = seed.len();
                        break;
                    }
                }
            }
            (offset, to)
        }
    };
    let mut text = String::with_capacity(seed.len() + payload.len());
    text.push_str(&seed[..from]);
    text.push_str(&payload);
    text.push_str(&seed[to..]);
    text
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(dir: &str) -> Vec<PathBuf> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    #[test]
    fn seeds_check_without_panicking() {
        let files = files_in("seeds/check_yaml");
        assert!(files.len() >= 20);
        for f in files {
            let bytes = std::fs::read(&f).expect("read seed");
            check_text(String::from_utf8_lossy(&bytes).into_owned());
        }
        for f in files_in("seeds/check_policy_mutations") {
            let bytes = std::fs::read(&f).expect("read seed");
            check_text(splice(&bytes));
        }
    }

    /// Replays the minimised crash inputs (fixed; the check_yaml ones also run in the main
    /// workspace's `policy-lang/tests/fuzz_regressions.rs`).
    #[test]
    fn regressions_do_not_panic() {
        let yaml = files_in("regressions/check_yaml");
        let mutations = files_in("regressions/check_policy_mutations");
        assert!(!yaml.is_empty() && !mutations.is_empty());
        for f in yaml {
            let bytes = std::fs::read(&f).expect("read regression");
            eprintln!("{}", f.display());
            check_text(String::from_utf8_lossy(&bytes).into_owned());
        }
        for f in mutations {
            let bytes = std::fs::read(&f).expect("read regression");
            eprintln!("{}", f.display());
            check_text(splice(&bytes));
        }
    }

    #[test]
    fn splice_modes() {
        let seed = SEEDS[0];
        // Insert "x" at offset 0.
        assert_eq!(splice(&[0, 0, 0, 0, b'x']), format!("x{seed}"));
        // Replace 4 bytes ("apiV") at offset 0.
        assert_eq!(splice(&[0, 0, 0, 1 | (4 << 2), b'A']), format!("A{}", &seed[4..]));
        // Replace the rest of the first line.
        let first_line_end = seed.find('\n').unwrap();
        assert_eq!(splice(&[0, 12, 0, 3, b'v', b'2']), format!("{}v2{}", &seed[..12], &seed[first_line_end..]));
        // Never splits a multi-byte character.
        for off in 0..=u16::MAX {
            let [a, b] = off.to_le_bytes();
            let _ = splice(&[15, a, b, 1 | (63 << 2), b'z']);
        }
    }
}
