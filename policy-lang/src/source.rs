//! Source files held in memory, and byte spans that map back to 1-based lines and columns.

use std::path::{Path, PathBuf};

/// Index of a file inside a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FileId(pub u32);

/// A byte range inside one source file. Equality of the values that carry a span
/// never looks at it (see [`Spanned`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span {
            file,
            start: start as u32,
            end: end.max(start) as u32,
        }
    }

    /// The smallest span covering both (same file assumed).
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// A value with the span it was read from; comparisons and hashing ignore the span.
#[derive(Clone, Copy, Debug, Default)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

impl<T: PartialEq> PartialEq for Spanned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl<T: Eq> Eq for Spanned<T> {}
impl<T: std::hash::Hash> std::hash::Hash for Spanned<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.value.hash(state)
    }
}
impl<T: PartialOrd> PartialOrd for Spanned<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.value.partial_cmp(&other.value)
    }
}
impl<T: Ord> Ord for Spanned<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}
impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// A 1-based line and column; the column counts Unicode code points (SARIF's
/// `unicodeCodePoints`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineCol {
    pub line: u32,
    pub column: u32,
}

/// One file's text and where its lines start.
#[derive(Debug)]
pub struct SourceFile {
    /// The path as reached from what the user gave (used in every report).
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<u32>,
    /// The text was not kept (no finding needed it); [`SourceMap::load_text`] reads it again.
    pub unloaded: bool,
}

impl SourceFile {
    pub fn new(path: PathBuf, text: String) -> SourceFile {
        let line_starts = line_starts(&text);
        SourceFile::with_line_starts(path, text, line_starts)
    }

    /// A file whose line starts are known already (see [`line_starts`]).
    pub(crate) fn with_line_starts(
        path: PathBuf,
        text: String,
        line_starts: Vec<u32>,
    ) -> SourceFile {
        SourceFile {
            path,
            text,
            line_starts,
            unloaded: false,
        }
    }

    /// An ASCII file whose text is not kept, only where its lines start (enough for
    /// positions); [`SourceMap::load_text`] reads the text again when a report shows it.
    pub fn unloaded(path: PathBuf, text: &str) -> SourceFile {
        debug_assert!(text.is_ascii());
        SourceFile::unloaded_with_line_starts(path, line_starts(text))
    }

    /// [`SourceFile::unloaded`] with the line starts of its text known already.
    pub(crate) fn unloaded_with_line_starts(path: PathBuf, line_starts: Vec<u32>) -> SourceFile {
        SourceFile {
            path,
            text: String::new(),
            line_starts,
            unloaded: true,
        }
    }

    /// Line and column of a byte offset (clamped to the text).
    pub fn line_col(&self, offset: u32) -> LineCol {
        if self.unloaded {
            // Only ASCII files are unloaded: a column is a byte count.
            let line_index = match self.line_starts.binary_search(&offset) {
                Ok(i) => i,
                Err(i) => i.saturating_sub(1),
            };
            let start = self.line_starts.get(line_index).copied().unwrap_or(0);
            return LineCol {
                line: line_index as u32 + 1,
                column: offset.saturating_sub(start) + 1,
            };
        }
        let offset = offset.min(self.text.len() as u32);
        let line_index = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let line_start = self.line_starts[line_index] as usize;
        let mut end = offset as usize;
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let column = self.text[line_start..end].chars().count() as u32 + 1;
        LineCol {
            line: line_index as u32 + 1,
            column,
        }
    }

    /// The text of the span (empty when it does not fall on character boundaries).
    pub fn slice(&self, span: Span) -> &str {
        self.text
            .get(span.start as usize..span.end as usize)
            .unwrap_or("")
    }
}

/// Byte offsets where the lines of `text` start: 0, then one past every `\n`.
pub fn line_starts(text: &str) -> Vec<u32> {
    let bytes = text.as_bytes();
    // Counted first (in byte-wide counters: a loop the compiler vectorizes) so that the vector, which lives as long
    // as the file's entry, is allocated once at its final size.
    let count: usize = bytes
        .chunks(255)
        .map(|block| {
            let in_block = block
                .iter()
                .fold(0u8, |n, &b| n.wrapping_add(u8::from(b == b'\n')));
            usize::from(in_block)
        })
        .sum();
    let mut starts = Vec::with_capacity(count + 1);
    starts.push(0);
    let mut words = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let mut found = newline_bytes(u64::from_le_bytes(word));
        while found != 0 {
            starts.push((base + found.trailing_zeros() as usize / 8 + 1) as u32);
            found &= found - 1;
        }
        base += 8;
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        if b == b'\n' {
            starts.push((base + i + 1) as u32);
        }
    }
    starts
}

/// The high bit of each byte of `word` that is `\n`, and no other bit: eight bytes per step
/// instead of one, for the millions of lines of a large tree.
fn newline_bytes(word: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // Bytes equal to `\n` become 0; a 0 byte is the only one whose low seven bits plus 0x7f
    // leave the high bit clear and whose own high bit is clear.
    let x = word ^ 0x0a0a_0a0a_0a0a_0a0a;
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// Every file read in one run, addressed by [`FileId`].
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    pub fn add(&mut self, path: PathBuf, text: String) -> FileId {
        self.files.push(SourceFile::new(path, text));
        FileId(self.files.len() as u32 - 1)
    }

    /// Adds a file read elsewhere (see [`SourceFile::unloaded`]).
    pub fn push(&mut self, file: SourceFile) -> FileId {
        self.files.push(file);
        FileId(self.files.len() as u32 - 1)
    }

    /// Reads the text of an unloaded file again, so that findings about it can be shown.
    pub fn load_text(&mut self, id: FileId) {
        let Some(file) = self.files.get_mut(id.0 as usize) else {
            return;
        };
        if !file.unloaded {
            return;
        }
        if let Ok(bytes) = std::fs::read(&file.path) {
            *file = SourceFile::new(
                file.path.clone(),
                String::from_utf8_lossy(&bytes).into_owned(),
            );
        }
    }

    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn path(&self, id: FileId) -> &Path {
        self.get(id)
            .map(|f| f.path.as_path())
            .unwrap_or(Path::new(""))
    }

    /// File, start and end position of a span.
    pub fn locate(&self, span: Span) -> Option<(&SourceFile, LineCol, LineCol)> {
        let file = self.get(span.file)?;
        Some((file, file.line_col(span.start), file.line_col(span.end)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_code_points_from_one() {
        let f = SourceFile::new("a.yaml".into(), "ab\nçd: x\n".into());
        assert_eq!(f.line_col(0), LineCol { line: 1, column: 1 });
        assert_eq!(f.line_col(3), LineCol { line: 2, column: 1 });
        // 'ç' is two bytes but one column.
        assert_eq!(f.line_col(6), LineCol { line: 2, column: 3 });
    }

    #[test]
    fn line_starts_follow_every_newline() {
        assert_eq!(line_starts(""), vec![0]);
        assert_eq!(line_starts("a"), vec![0]);
        assert_eq!(line_starts("a\n"), vec![0, 2]);
        assert_eq!(line_starts("\n\nb\n"), vec![0, 1, 2, 4]);
        // Across 64-byte blocks, against the obvious definition.
        let text: String = (0..500)
            .map(|i| {
                if i % 7 == 0 || i % 64 == 63 {
                    '\n'
                } else {
                    'x'
                }
            })
            .collect();
        let expected: Vec<u32> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i as u32 + 1))
            .collect();
        assert_eq!(line_starts(&text), expected);
    }
}
