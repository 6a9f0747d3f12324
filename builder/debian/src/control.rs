//! deb822 control data: the paragraph format of `Packages`, `Release`,
//! `status`, `.dsc` and a package's own `control` file.

use std::fmt;

/// One deb822 paragraph: fields in their original order, names compared
/// without regard to case (as dpkg does).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Paragraph {
    fields: Vec<(String, String)>,
}

/// A malformed deb822 document.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number in the input.
    pub line: usize,
    /// What is wrong there.
    pub reason: String,
}

impl Paragraph {
    /// The value of field `name` (case-insensitive), continuation lines
    /// joined with `\n` and the leading space of each removed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets field `name`, replacing an existing one in place or appending.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .fields
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name.to_string(), value)),
        }
    }

    /// Removes field `name` if present.
    pub fn remove(&mut self, name: &str) {
        self.fields.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    /// The fields in their original order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// True when the paragraph has no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl fmt::Display for Paragraph {
    /// Writes the paragraph back in deb822 form (no trailing blank line).
    /// A multi-line value keeps its first line on the field line and
    /// indents the rest; empty continuation lines become ` .`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.fields {
            let mut lines = v.split('\n');
            let first = lines.next().unwrap_or("");
            if first.is_empty() {
                writeln!(f, "{k}:")?;
            } else {
                writeln!(f, "{k}: {first}")?;
            }
            for line in lines {
                if line.is_empty() {
                    writeln!(f, " .")?;
                } else {
                    writeln!(f, " {line}")?;
                }
            }
        }
        Ok(())
    }
}

/// Parses a deb822 document into its paragraphs. Comment lines (`#`) are
/// skipped; blank lines separate paragraphs.
pub fn parse_paragraphs(text: &str) -> Result<Vec<Paragraph>, ParseError> {
    let mut out = Vec::new();
    let mut cur = Paragraph::default();
    for (i, raw) in text.lines().enumerate() {
        // `lines()` has taken the `\r` of a CRLF end already; any further
        // `\r` at the end is line-end junk too. Stripping only one more
        // left the others in a continuation value, which `Display` wrote
        // back and the next read shortened again.
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            let Some(last) = cur.fields.last_mut() else {
                return Err(ParseError {
                    line: i + 1,
                    reason: "continuation line before any field".into(),
                });
            };
            let cont = &line[1..];
            let cont = if cont == "." { "" } else { cont };
            last.1.push('\n');
            last.1.push_str(cont);
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ParseError {
                line: i + 1,
                reason: format!("expected `Field: value`, found {line:?}"),
            });
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(ParseError {
                line: i + 1,
                reason: format!("bad field name {name:?}"),
            });
        }
        cur.fields
            .push((name.to_string(), value.trim().to_string()));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_multiline_and_roundtrips() {
        let text =
            "Package: a\nDescription: short\n long\n .\n more\n\n# c\nPackage: b\nversion: 1\n";
        let ps = parse_paragraphs(text).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].get("description"), Some("short\nlong\n\nmore"));
        assert_eq!(ps[1].get("Version"), Some("1"));
        let again = parse_paragraphs(&ps[0].to_string()).unwrap();
        assert_eq!(again[0], ps[0]);
    }

    #[test]
    fn every_trailing_cr_is_a_line_end() {
        // Found by the deb822 fuzz target: a continuation line ending in
        // `\r\r\r\n` kept `\r` in its value, and the written paragraph
        // read back with fewer.
        let ps = parse_paragraphs("Package: a\r\r\nDescription: x\r\r\r\n y\r\r\r\n").unwrap();
        assert_eq!(ps[0].get("Package"), Some("a"));
        assert_eq!(ps[0].get("Description"), Some("x\ny"));
        let again = parse_paragraphs(&ps[0].to_string()).unwrap();
        assert_eq!(again, ps);
    }

    #[test]
    fn rejects_garbage() {
        let e = parse_paragraphs(" orphan\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(parse_paragraphs("no colon here\n").is_err());
    }
}
