//! The exports (`audit export`, `usage export`): rows streamed to stdout
//! as NDJSON or CSV (RFC 4180), one row in memory at a time.

use std::borrow::Cow;
use std::io::{self, BufWriter, StdoutLock, Write};

use serde::Serialize;

use super::{ExportFormat, format};

/// Stdout in one export format; CSV starts with its header.
pub struct Exporter {
    out: BufWriter<StdoutLock<'static>>,
    format: ExportFormat,
}

impl Exporter {
    pub fn stdout(format: ExportFormat, header: &[&str]) -> io::Result<Exporter> {
        let mut out = BufWriter::new(io::stdout().lock());
        if format == ExportFormat::Csv {
            write_row(&mut out, header.iter().map(|h| Some(*h)))?;
        }
        Ok(Exporter { out, format })
    }

    /// One row: `json` as an NDJSON object, or its `cells` (in the header's
    /// order) as a CSV record.
    pub fn row<const N: usize>(
        &mut self,
        json: &impl Serialize,
        cells: impl FnOnce() -> [Option<String>; N],
    ) -> io::Result<()> {
        match self.format {
            ExportFormat::Ndjson => format::write_json_line(&mut self.out, json),
            ExportFormat::Csv => write_row(&mut self.out, cells().iter().map(Option::as_deref)),
        }
    }

    /// A closed pipe ends the process quietly (see `cli::run`).
    pub fn finish(mut self) -> io::Result<()> {
        self.out.flush()
    }
}

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
