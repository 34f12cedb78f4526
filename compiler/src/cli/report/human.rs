//! `--format human`: miette's graphical report for each finding, then the summary line.

use super::{summary_line, Options};
use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};
use policy_lang::{Checked, Diagnostic, Location, Severity};
use std::fmt;
use std::io::{self, Write};

pub fn write(out: &mut dyn Write, checked: &Checked, options: &Options) -> io::Result<()> {
    let handler = handler(options);
    for d in &checked.diagnostics {
        let report = render(&handler, d, checked);
        writeln!(out, "{report}")?;
    }
    writeln!(out, "{}", summary_line(checked))
}

/// A handler that renders the same bytes wherever it runs: an explicit theme, a fixed width,
/// no hyperlinks and no syntax highlighting.
fn handler(options: &Options) -> GraphicalReportHandler {
    let theme = if options.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    GraphicalReportHandler::new_themed(theme)
        .with_width(options.width)
        .with_links(false)
        .without_syntax_highlighting()
}

/// One finding as text; falls back to plain lines if miette cannot render it.
fn render(handler: &GraphicalReportHandler, d: &Diagnostic, checked: &Checked) -> String {
    let report = Report::new(d, checked);
    let mut text = String::new();
    if handler.render_report(&mut text, &report).is_ok() {
        return text;
    }
    let mut text = format!("{}\n  {}\n", report.header, d.message);
    if let Some(help) = &d.help {
        text.push_str(&format!("  help: {help}\n"));
    }
    text
}

/// A finding seen through miette's `Diagnostic` trait.
#[derive(Debug)]
struct Report<'a> {
    header: String,
    message: &'a str,
    severity: Severity,
    help: Option<&'a str>,
    source: Option<Source<'a>>,
    label: Option<LabeledSpan>,
}

impl<'a> Report<'a> {
    fn new(d: &'a Diagnostic, checked: &'a Checked) -> Report<'a> {
        let header = format!(
            "{}[{}]: {}",
            d.severity.as_str(),
            d.code.as_str(),
            d.code.name()
        );
        let mut report = Report {
            header,
            message: &d.message,
            severity: d.severity,
            help: d.help.as_deref().filter(|h| !h.is_empty()),
            source: None,
            label: None,
        };
        // Path findings (I/O errors) have no text to show.
        if let Location::Span(span) = d.location {
            if let Some(file) = checked.sources.get(span.file) {
                let (start, end) = clamp(&file.text, span.start as usize, span.end as usize);
                report.label = Some(LabeledSpan::new_primary_with_span(
                    Some(d.message.clone()),
                    SourceSpan::from(start..end),
                ));
                report.source = Some(Source {
                    name: file.path.display().to_string(),
                    text: &file.text,
                });
            }
        }
        report
    }
}

/// Keeps a span inside the text and on character boundaries, so that a bad span still renders.
///
/// An empty span at the very end (an unexpected end of file) moves back before the final line
/// break, because miette draws no label past the last line.
fn clamp(text: &str, start: usize, end: usize) -> (usize, usize) {
    let floor = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let start = floor(start);
    let end = floor(end).max(start);
    if start == end && start == text.len() {
        let before = text.trim_end_matches(['\n', '\r']).len();
        return (before, before);
    }
    (start, end)
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(&self.header))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.help.map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let label = self.label.clone()?;
        Some(Box::new(std::iter::once(label)))
    }
}

/// A file's text under the path the user gave, without copying the text.
#[derive(Debug)]
struct Source<'a> {
    name: String,
    text: &'a str,
}

impl SourceCode for Source<'_> {
    fn read_span<'b>(
        &'b self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'b> + 'b>, MietteError> {
        let inner = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn human(path: &str, text: &str, color: bool) -> String {
        let c = policy_lang::check_sources(vec![(path.into(), text.to_owned())]);
        let options = Options {
            color,
            ..Options::default()
        };
        let mut buf = Vec::new();
        write(&mut buf, &c, &options).expect("write to a Vec");
        String::from_utf8(buf).expect("utf-8")
    }

    #[test]
    fn clamp_keeps_spans_inside_text_and_on_char_boundaries() {
        assert_eq!(clamp("abc", 1, 2), (1, 2));
        assert_eq!(clamp("abc", 5, 9), (3, 3));
        assert_eq!(clamp("ab\n", 3, 3), (2, 2));
        assert_eq!(clamp("aé", 2, 3), (1, 3));
        assert_eq!(clamp("abc", 2, 1), (2, 2));
    }

    #[test]
    fn report_shows_code_snippet_label_and_help() {
        let out = human("a.yaml", "apiVersion: v1\nkind: Pod\nkind: Pod\n", false);
        assert!(out.contains("error[PL105]: duplicate-key"), "{out}");
        assert!(out.contains("a.yaml:3:1"), "{out}");
        assert!(out.contains("3 │ kind: Pod"), "{out}");
        assert!(out.contains("╰── duplicate key `kind`"), "{out}");
        assert!(out.contains("help: "), "{out}");
        assert!(!out.contains('\u{1b}'), "{out}");
    }

    #[test]
    fn colour_only_when_asked() {
        let out = human("a.yaml", "apiVersion: v1\nkind: Pod\nkind: Pod\n", true);
        assert!(out.contains('\u{1b}'), "{out}");
    }
}
