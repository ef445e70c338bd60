//! CSV (RFC 4180) for the exports: `audit export` and `usage export`.

use std::borrow::Cow;
use std::io::{self, Write};

/// One CSV record: fields joined by commas, CRLF at the end; a NULL is an
/// empty field.
pub fn write_row<'a>(
    out: &mut impl Write,
    cells: impl Iterator<Item = Option<&'a str>>,
) -> io::Result<()> {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(field(cell.unwrap_or("")).as_bytes())?;
    }
    out.write_all(b"\r\n")
}

/// A field quoted when it holds a comma, a quote or a line break (quotes
/// doubled inside), or leading/trailing spaces that readers may trim.
/// Values are never otherwise changed, so exported hashes can be recomputed.
pub fn field(value: &str) -> Cow<'_, str> {
    let needs_quotes =
        value.contains([',', '"', '\r', '\n']) || value.starts_with(' ') || value.ends_with(' ');
    if needs_quotes {
        format!("\"{}\"", value.replace('"', "\"\"")).into()
    } else {
        value.into()
    }
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field(""), "");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("cr\rhere"), "\"cr\rhere\"");
        assert_eq!(field(" padded"), "\" padded\"");
    }
}
