//! A deliberately tiny reader for the embedded reference CSV files.
//!
//! The files are under our control (see `data/README.md`): UTF-8, LF, a header row, comma
//! separated, and no quoting except in the `gso_note` column of the commune mapping, where a
//! value containing a comma is wrapped in double quotes. This reader handles exactly that, plus
//! RFC 4180 doubled quotes (`""`) and a stray CR before LF for safety. It is not a general CSV
//! parser and must never be fed outside input.
//!
//! It walks the bytes by hand instead of using `str::lines` and `str::split`: those generic
//! helpers are compiled without optimisation in debug builds and made start-up parsing several
//! times slower there.

/// The data records of `text`, each split into exactly `N` fields, after checking that the
/// header line equals `header`.
///
/// Blank lines are skipped. A line that does not split into `N` fields is skipped too; that
/// cannot happen with the embedded files (the registry's tests count every row), so debug builds
/// stop on it instead.
pub(super) fn records<const N: usize>(text: &'static str, header: &str) -> Records<N> {
    let header_end = text.find('\n').unwrap_or(text.len());
    debug_assert_eq!(
        text[..header_end].trim_end_matches('\r'),
        header,
        "unexpected header in embedded CSV"
    );
    Records {
        text,
        pos: (header_end + 1).min(text.len()),
    }
}

/// Iterator over the records of one embedded file; see [`records`].
#[derive(Debug)]
pub(super) struct Records<const N: usize> {
    text: &'static str,
    /// Byte offset of the next unread line.
    pos: usize,
}

impl<const N: usize> Iterator for Records<N> {
    type Item = [&'static str; N];

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.text.as_bytes();
        loop {
            while self.pos < bytes.len() && (bytes[self.pos] == b'\n' || bytes[self.pos] == b'\r') {
                self.pos += 1;
            }
            if self.pos >= bytes.len() {
                return None;
            }
            let line_start = self.pos;
            match self.record() {
                Some(record) => return Some(record),
                None => {
                    debug_assert!(
                        false,
                        "malformed line in embedded CSV at byte {line_start}: {:?}",
                        &self.text[line_start..self.pos]
                    );
                }
            }
        }
    }
}

impl<const N: usize> Records<N> {
    /// Reads the line at `self.pos` and leaves `self.pos` at the start of the next line,
    /// whether or not the line was well formed.
    fn record(&mut self) -> Option<[&'static str; N]> {
        let text = self.text;
        let bytes = text.as_bytes();
        let len = bytes.len();
        let mut pos = self.pos;
        let mut fields = [""; N];
        let mut count = 0;
        let mut well_formed = true;
        loop {
            let value = if pos < len && bytes[pos] == b'"' {
                let (value, after) = quoted(text, pos + 1);
                pos = after;
                value
            } else {
                // The hot path: an unquoted field, scanned byte by byte.
                let start = pos;
                while pos < len {
                    let byte = bytes[pos];
                    if byte == b',' || byte == b'\n' {
                        break;
                    }
                    pos += 1;
                }
                let end = if pos > start && bytes[pos - 1] == b'\r' {
                    pos - 1
                } else {
                    pos
                };
                Some(&text[start..end])
            };
            match value {
                Some(value) if count < N => fields[count] = value,
                _ => well_formed = false,
            }
            count += 1;
            if pos >= len {
                break;
            }
            let separator = bytes[pos];
            pos += 1;
            if separator == b'\n' {
                break;
            }
            if separator != b',' {
                // Text after a closing quote: give up on the rest of this line.
                well_formed = false;
                while pos < len && bytes[pos - 1] != b'\n' {
                    pos += 1;
                }
                break;
            }
        }
        self.pos = pos;
        (well_formed && count == N).then_some(fields)
    }
}

/// Reads a quoted field whose opening quote ends just before `start`. Returns the unquoted value
/// (`None` for an unterminated quote) and the position just after the closing quote (and after a
/// CR that follows it).
fn quoted(text: &'static str, start: usize) -> (Option<&'static str>, usize) {
    let bytes = text.as_bytes();
    let mut at = start;
    let mut doubled = false;
    loop {
        match (bytes.get(at), bytes.get(at + 1)) {
            (None, _) => return (None, at),
            (Some(b'"'), Some(b'"')) => {
                doubled = true;
                at += 2;
            }
            (Some(b'"'), _) => break,
            (Some(_), _) => at += 1,
        }
    }
    let raw = &text[start..at];
    let mut after = at + 1;
    if bytes.get(after) == Some(&b'\r') {
        after += 1;
    }
    if doubled {
        // Only reachable if a future data file uses `""`; leaked once at start-up so that every
        // field stays a `&'static str`.
        (
            Some(Box::leak(raw.replace("\"\"", "\"").into_boxed_str())),
            after,
        )
    } else {
        (Some(raw), after)
    }
}

#[cfg(test)]
// In tests a failed `expect` is the failure report.
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    /// Parses `body` after a header of `N` columns, without the debug assertion on bad lines.
    fn parse<const N: usize>(body: &'static str) -> Vec<Option<[&'static str; N]>> {
        let mut records = Records::<N> { text: body, pos: 0 };
        let mut out = Vec::new();
        while records.pos < body.len() {
            out.push(records.record());
        }
        out
    }

    #[test]
    fn plain_fields() {
        assert_eq!(parse::<3>("a,b,c"), [Some(["a", "b", "c"])]);
        assert_eq!(parse::<3>("a,,c\n"), [Some(["a", "", "c"])]);
        assert_eq!(
            parse::<3>("a,b,\r\nd,e,f"),
            [Some(["a", "b", ""]), Some(["d", "e", "f"])]
        );
    }

    #[test]
    fn quoted_fields() {
        assert_eq!(
            parse::<4>("00112,00103,true,\"Nhập một phần diện tích, toàn bộ dân số\"\n"),
            [Some([
                "00112",
                "00103",
                "true",
                "Nhập một phần diện tích, toàn bộ dân số"
            ])]
        );
        assert_eq!(parse::<2>("\"a, b\",c"), [Some(["a, b", "c"])]);
        assert_eq!(
            parse::<2>("\"say \"\"hi\"\"\",c"),
            [Some(["say \"hi\"", "c"])]
        );
        assert_eq!(parse::<2>("x,\"a\nb\"\n"), [Some(["x", "a\nb"])]);
    }

    #[test]
    fn bad_lines_are_rejected_and_the_next_line_still_read() {
        assert_eq!(parse::<3>("a,b\nc,d,e"), [None, Some(["c", "d", "e"])]);
        assert_eq!(parse::<2>("a,b,c\nd,e"), [None, Some(["d", "e"])]);
        assert_eq!(parse::<2>("\"a\"x,b\nd,e"), [None, Some(["d", "e"])]);
        assert_eq!(parse::<2>("\"a,b"), [None]);
    }

    #[test]
    fn header_is_skipped_and_blank_lines_ignored() {
        let rows: Vec<[&str; 2]> = records("x,y\n1,2\n\n3,4\n", "x,y").collect();
        assert_eq!(rows, [["1", "2"], ["3", "4"]]);
        assert_eq!(records::<2>("x,y", "x,y").count(), 0);
        assert_eq!(records::<2>("x,y\n", "x,y").count(), 0);
    }
}
