//! Plain-text layout shared by the verbs: aligned columns.

/// Rows as aligned columns (two spaces apart, the last column unpadded), each line starting
/// with `indent` and ending with a line break.
pub fn columns(rows: &[Vec<String>], indent: &str) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(width(cell)),
                None => widths.push(width(cell)),
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = indent.to_owned();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths.get(i).copied().unwrap_or(0) - width(cell) + 2;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_trim() {
        let rows = vec![
            vec!["ID".to_owned(), "NAME".to_owned()],
            vec!["256".to_owned(), "shop/web".to_owned()],
            vec!["1".to_owned(), String::new()],
        ];
        assert_eq!(columns(&rows, "  "), "  ID   NAME\n  256  shop/web\n  1\n");
    }
}
