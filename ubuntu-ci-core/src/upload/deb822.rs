//! A strict, panic-free parser of deb822 control files (`.changes`, `.dsc`, `debian/control`).
//!
//! A control file is a list of paragraphs separated by blank lines; each paragraph holds
//! `Field: value` lines, continued by lines starting with a space or a tab (a continuation
//! line holding only `.` stands for an empty line). Lines starting with `#` are comments.
//! Upload files are often clear-signed (OpenPGP, RFC 4880 §7): the armour is checked for
//! shape and stripped, the signature itself is not verified here. Input comes from outside
//! the process, so everything is bounded — file size by [`read_bounded`] and
//! [`Limits::max_bytes`], field count by [`Limits::max_fields`] — and every malformation is
//! an [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error naming the line.

use std::collections::HashSet;
use std::io::Read;

use crate::error::{Error, Result};

/// Largest `.changes` or `.dsc` accepted: real ones are a few kilobytes.
pub const MAX_CONTROL_FILE_BYTES: u64 = 1024 * 1024;

const SIGNED_MESSAGE_BEGIN: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const SIGNATURE_BEGIN: &str = "-----BEGIN PGP SIGNATURE-----";
const SIGNATURE_END: &str = "-----END PGP SIGNATURE-----";

/// Bounds on what one control file may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input, in bytes.
    pub max_bytes: u64,
    /// Most fields accepted, summed over all paragraphs.
    pub max_fields: usize,
}

impl Default for Limits {
    /// 1 MiB and 1000 fields: far above any real upload file.
    fn default() -> Limits {
        Limits {
            max_bytes: MAX_CONTROL_FILE_BYTES,
            max_fields: 1000,
        }
    }
}

/// One `Field: value` of a paragraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The name as written (compare with [`str::eq_ignore_ascii_case`]).
    pub name: String,
    /// The value: the text after the colon, then one line per continuation line (without
    /// its leading space; ` .` becomes an empty line), joined by `\n`, trailing blanks cut.
    pub value: String,
    /// Line of the field name in the input, counting from 1 (armour lines included).
    pub line: usize,
}

impl Field {
    /// The value's lines that hold text, each with its 1-based input line number.
    ///
    /// List fields (`Files`, `Checksums-Sha256`, …) put one entry on each such line.
    pub fn entries(&self) -> impl Iterator<Item = (usize, &str)> + '_ {
        self.value
            .split('\n')
            .enumerate()
            .filter(|(_, text)| !text.trim().is_empty())
            .map(move |(offset, text)| (self.line.saturating_add(offset), text.trim()))
    }
}

/// A paragraph: fields in input order, names unique regardless of case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraph {
    fields: Vec<Field>,
}

impl Paragraph {
    /// The field called `name` (case-insensitive), if present.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case(name))
    }

    /// The value of the field called `name` (case-insensitive), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.field(name).map(|field| field.value.as_str())
    }

    /// All fields in input order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The fields as `(name, value)` pairs in input order.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.fields
            .iter()
            .map(|field| (field.name.clone(), field.value.clone()))
            .collect()
    }

    /// Line of the paragraph's first field, counting from 1.
    pub fn line(&self) -> usize {
        self.fields.first().map_or(0, |field| field.line)
    }
}

/// Parses a control file given as bytes: checks size and UTF-8, strips a clear-signature.
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the input is larger than
/// `limits.max_bytes`, is not UTF-8 (the message gives the byte offset), has broken PGP
/// armour, a malformed line, a duplicate field in a paragraph, or too many fields.
pub fn parse(input: &[u8], limits: &Limits) -> Result<Vec<Paragraph>> {
    check_size(input.len(), limits)?;
    let text = std::str::from_utf8(input).map_err(|err| {
        let offset = err.valid_up_to();
        let line = input
            .get(..offset)
            .map_or(0, |prefix| count_newlines(prefix).saturating_add(1));
        Error::invalid(format!(
            "not valid UTF-8 at byte offset {offset} (line {line})"
        ))
    })?;
    parse_str(text, limits)
}

/// Parses a control file given as text; see [`parse`].
///
/// # Errors
///
/// As [`parse`], except for the UTF-8 check.
pub fn parse_str(text: &str, limits: &Limits) -> Result<Vec<Paragraph>> {
    check_size(text.len(), limits)?;
    let lines = split_lines(text);
    let body = strip_armour(&lines)?;
    parse_lines(&body, limits)
}

/// Reads at most `limit` bytes of `reader`, failing (without reading further) if it has more.
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the input exceeds
/// `limit` or reading fails.
pub fn read_bounded(reader: impl Read, limit: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    // One byte past the limit tells "exactly at the limit" from "over it".
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|err| Error::invalid("cannot read file").with_source(err))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

fn too_large(limit: u64) -> Error {
    Error::invalid(format!("file is larger than the limit of {limit} bytes"))
}

fn check_size(len: usize, limits: &Limits) -> Result<()> {
    if u64::try_from(len).unwrap_or(u64::MAX) > limits.max_bytes {
        return Err(too_large(limits.max_bytes));
    }
    Ok(())
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// A line of input with its 1-based number; `\r` before `\n` is dropped.
type Line<'a> = (usize, &'a str);

fn split_lines(text: &str) -> Vec<Line<'_>> {
    let mut lines: Vec<Line<'_>> = text
        .split('\n')
        .enumerate()
        .map(|(index, line)| {
            let line = line.strip_suffix('\r').unwrap_or(line);
            (index.saturating_add(1), line)
        })
        .collect();
    // A final newline ends the last line rather than starting an empty one.
    if text.ends_with('\n') {
        lines.pop();
    }
    lines
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Shortens and escapes outside text for an error message.
fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 60;
    let mut shown: String = text.chars().take(MAX_CHARS).collect();
    if text.chars().nth(MAX_CHARS).is_some() {
        shown.push('…');
    }
    format!("{shown:?}")
}

fn at_line(line: usize, message: impl std::fmt::Display) -> Error {
    Error::invalid(format!("line {line}: {message}"))
}

/// Returns the signed body of a clear-signed message (dash-escaping undone), or the lines
/// unchanged when the input is not signed.
fn strip_armour<'a>(lines: &[Line<'a>]) -> Result<Vec<Line<'a>>> {
    let mut rest = lines.iter().copied().skip_while(|(_, text)| is_blank(text));
    let Some((first_line, first)) = rest.next() else {
        return Ok(Vec::new());
    };
    if first.trim_end() != SIGNED_MESSAGE_BEGIN {
        if let Some((line, _)) = lines.iter().find(|(_, text)| {
            text.starts_with("-----BEGIN PGP") || text.starts_with("-----END PGP")
        }) {
            return Err(at_line(
                *line,
                "PGP armour line in a file that does not start with \
                 -----BEGIN PGP SIGNED MESSAGE----- (broken PGP armour)",
            ));
        }
        return Ok(lines.to_vec());
    }

    // Armour headers (`Hash: SHA256`) up to the first blank line.
    loop {
        let Some((line, text)) = rest.next() else {
            return Err(at_line(
                first_line,
                "broken PGP armour: signed message ends inside its armour headers",
            ));
        };
        if is_blank(text) {
            break;
        }
        if !is_armour_header(text) {
            return Err(at_line(
                line,
                format!(
                    "broken PGP armour: expected an armour header such as \"Hash: SHA256\" \
                     or a blank line, found {}",
                    excerpt(text)
                ),
            ));
        }
    }

    let mut body = Vec::new();
    let signature_line = loop {
        let Some((line, text)) = rest.next() else {
            return Err(at_line(
                first_line,
                "broken PGP armour: signed message has no PGP signature \
                 (-----BEGIN PGP SIGNATURE----- missing)",
            ));
        };
        if text.trim_end() == SIGNATURE_BEGIN {
            break line;
        }
        if let Some(unescaped) = text.strip_prefix("- ") {
            body.push((line, unescaped));
        } else if text.starts_with('-') {
            return Err(at_line(
                line,
                format!(
                    "broken PGP armour: line starting with '-' is not dash-escaped: {}",
                    excerpt(text)
                ),
            ));
        } else {
            body.push((line, text));
        }
    };

    let mut saw_data = false;
    loop {
        let Some((line, text)) = rest.next() else {
            return Err(at_line(
                signature_line,
                "broken PGP armour: PGP signature is not terminated \
                 (-----END PGP SIGNATURE----- missing)",
            ));
        };
        let text = text.trim_end();
        if text == SIGNATURE_END {
            break;
        }
        if text.is_empty() || (!saw_data && is_armour_header(text)) {
            continue;
        }
        if text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            saw_data = true;
            continue;
        }
        return Err(at_line(
            line,
            format!(
                "broken PGP armour: unexpected text inside the PGP signature: {}",
                excerpt(text)
            ),
        ));
    }
    if !saw_data {
        return Err(at_line(
            signature_line,
            "broken PGP armour: PGP signature block is empty",
        ));
    }

    if let Some((line, text)) = rest.find(|(_, text)| !is_blank(text)) {
        return Err(at_line(
            line,
            format!(
                "broken PGP armour: text after the end of the PGP signature: {}",
                excerpt(text)
            ),
        ));
    }
    Ok(body)
}

fn is_armour_header(text: &str) -> bool {
    match text.split_once(": ") {
        Some((key, _)) => {
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }
        None => false,
    }
}

fn is_valid_field_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['#', '-'])
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

fn check_characters(line: usize, text: &str) -> Result<()> {
    match text.chars().find(|&c| c.is_control() && c != '\t') {
        Some(c) => Err(at_line(
            line,
            format!("control character U+{:04X} is not allowed", u32::from(c)),
        )),
        None => Ok(()),
    }
}

fn parse_lines(lines: &[Line<'_>], limits: &Limits) -> Result<Vec<Paragraph>> {
    let mut paragraphs = Vec::new();
    let mut current = Paragraph::default();
    let mut names = HashSet::new();
    let mut field_count = 0usize;

    for &(line, text) in lines {
        check_characters(line, text)?;
        if is_blank(text) {
            if !current.fields.is_empty() {
                paragraphs.push(std::mem::take(&mut current));
                names.clear();
            }
            continue;
        }
        if text.starts_with('#') {
            continue;
        }
        if let Some(continued) = text.strip_prefix([' ', '\t']) {
            let Some(field) = current.fields.last_mut() else {
                return Err(at_line(
                    line,
                    format!(
                        "continuation line without a field before it: {}",
                        excerpt(text)
                    ),
                ));
            };
            let continued = continued.trim_end();
            field.value.push('\n');
            if continued != "." {
                field.value.push_str(continued);
            }
            continue;
        }
        let Some((name, value)) = text.split_once(':') else {
            return Err(at_line(
                line,
                format!("expected \"Field: value\", found {}", excerpt(text)),
            ));
        };
        if !is_valid_field_name(name) {
            return Err(at_line(
                line,
                format!("invalid field name {}", excerpt(name)),
            ));
        }
        if !names.insert(name.to_ascii_lowercase()) {
            return Err(at_line(
                line,
                format!("duplicate field {name} in one paragraph"),
            ));
        }
        field_count = field_count.saturating_add(1);
        if field_count > limits.max_fields {
            return Err(at_line(
                line,
                format!("more than {} fields", limits.max_fields),
            ));
        }
        current.fields.push(Field {
            name: name.to_owned(),
            value: value.trim().to_owned(),
            line,
        });
    }
    if !current.fields.is_empty() {
        paragraphs.push(current);
    }
    // Trailing empty continuation lines (` .`) carry no meaning.
    for field in paragraphs.iter_mut().flat_map(|p| p.fields.iter_mut()) {
        let kept = field.value.trim_end().len();
        field.value.truncate(kept);
    }
    Ok(paragraphs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use proptest::prelude::*;

    fn parse_text(text: &str) -> Result<Vec<Paragraph>> {
        parse(text.as_bytes(), &Limits::default())
    }

    fn error_of(text: &str) -> String {
        let err = parse_text(text).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        err.to_string()
    }

    const PLAIN: &str = "Format: 1.8\n\
        Source: hello\n\
        Description: short\n  second line with indent\n .\n last\n\
        Files:\n 0123 12 hello.dsc\n\t4567 34 hello.tar.xz\n";

    #[test]
    fn parses_fields_and_continuations() {
        let paragraphs = parse_text(PLAIN).unwrap();
        assert_eq!(paragraphs.len(), 1);
        let p = &paragraphs[0];
        assert_eq!(p.get("Format"), Some("1.8"));
        assert_eq!(p.get("source"), Some("hello"), "names are case-insensitive");
        assert_eq!(
            p.get("Description"),
            Some("short\n second line with indent\n\nlast")
        );
        let files = p.field("FILES").unwrap();
        assert_eq!(files.line, 7);
        let entries: Vec<_> = files.entries().collect();
        assert_eq!(
            entries,
            vec![(8, "0123 12 hello.dsc"), (9, "4567 34 hello.tar.xz")]
        );
        assert_eq!(p.to_pairs()[0], ("Format".to_owned(), "1.8".to_owned()));
    }

    #[test]
    fn paragraphs_comments_and_line_endings() {
        let text = "\n\n# a comment\nA: 1\r\nB: 2\r\n\r\n \t\nC: 3\n# trailing comment\n";
        let paragraphs = parse_text(text).unwrap();
        assert_eq!(paragraphs.len(), 2);
        assert_eq!(paragraphs[0].get("B"), Some("2"));
        assert_eq!(paragraphs[1].get("C"), Some("3"));
        assert_eq!(paragraphs[1].line(), 8);
        assert!(parse_text("").unwrap().is_empty());
        assert!(parse_text("\n \n# only a comment\n").unwrap().is_empty());
    }

    #[test]
    fn syntax_errors_name_the_line() {
        assert!(error_of("A: 1\nnot a field\n").contains("line 2: expected \"Field: value\""));
        assert!(error_of(" leading continuation\nA: 1\n").contains("line 1: continuation line"));
        assert!(error_of("A: 1\na: 2\n").contains("line 2: duplicate field a"));
        assert!(error_of("A: 1\n: 2\n").contains("invalid field name"));
        assert!(error_of("A b: 1\n").contains("invalid field name"));
        assert!(error_of("-A: 1\n").contains("invalid field name"));
        assert!(error_of("A: 1\x1b[31m\n").contains("control character U+001B"));
        assert!(error_of("A: 1\0\n").contains("control character U+0000"));
        // The same name in two paragraphs is fine.
        assert_eq!(parse_text("A: 1\n\nA: 2\n").unwrap().len(), 2);
    }

    #[test]
    fn utf8_errors_give_the_byte_offset() {
        let err = parse(b"A: ok\nB: \xff\n", &Limits::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.message(), "not valid UTF-8 at byte offset 9 (line 2)");
        // Non-ASCII UTF-8 in values is fine.
        let ok = parse(
            "Maintainer: Jörg Müller <j@example.com>\n".as_bytes(),
            &Limits::default(),
        );
        assert_eq!(
            ok.unwrap()[0].get("Maintainer"),
            Some("Jörg Müller <j@example.com>")
        );
    }

    #[test]
    fn limits_are_enforced() {
        let small = Limits {
            max_bytes: 10,
            max_fields: 1000,
        };
        let err = parse(b"A: 0123456789\n", &small).unwrap_err();
        assert!(
            err.message().contains("larger than the limit of 10 bytes"),
            "{err}"
        );
        let few = Limits {
            max_bytes: 1000,
            max_fields: 2,
        };
        let err = parse(b"A: 1\nB: 2\n\nC: 3\n", &few).unwrap_err();
        assert!(
            err.message().contains("line 4: more than 2 fields"),
            "{err}"
        );
    }

    #[test]
    fn read_bounded_stops_after_the_limit() {
        assert_eq!(read_bounded(&b"12345"[..], 5).unwrap(), b"12345");
        let err = read_bounded(&b"123456"[..], 5).unwrap_err();
        assert!(err.message().contains("larger than the limit of 5 bytes"));
        // An endless reader: only limit + 1 bytes are ever requested.
        let err = read_bounded(std::io::repeat(b'a'), 1024).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    fn signed(body: &str) -> String {
        format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{body}\
             -----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCgAdFiEE+abc/def=\n=AbCd\n\
             -----END PGP SIGNATURE-----\n"
        )
    }

    #[test]
    fn clear_signed_input_is_unwrapped() {
        let text = signed("Source: hello\nDescription: x\n - dash line\n- -escaped\n");
        // "- -escaped" is not valid deb822 once unescaped; use a continuation instead.
        let text = text.replace("- -escaped\n", "-  escaped continuation\n");
        let paragraphs = parse_text(&text).unwrap();
        assert_eq!(paragraphs.len(), 1);
        assert_eq!(paragraphs[0].get("Source"), Some("hello"));
        assert_eq!(
            paragraphs[0].get("Description"),
            Some("x\n- dash line\nescaped continuation")
        );
        // Line numbers count from the top of the file, armour included.
        assert_eq!(paragraphs[0].line(), 4);
        // Blank lines around the armour are tolerated.
        let padded = format!("\n\n{}\n\n", signed("A: 1\n"));
        assert_eq!(parse_text(&padded).unwrap()[0].get("A"), Some("1"));
    }

    #[test]
    fn broken_armour_is_rejected() {
        let no_signature = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nA: 1\n";
        assert!(error_of(no_signature).contains("no PGP signature"));

        let no_end = signed("A: 1\n").replace("-----END PGP SIGNATURE-----\n", "");
        assert!(error_of(&no_end).contains("not terminated"));

        let trailing = format!("{}Evil: 1\n", signed("A: 1\n"));
        assert!(error_of(&trailing).contains("text after the end of the PGP signature"));

        let headers_only = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n";
        assert!(error_of(headers_only).contains("inside its armour headers"));

        let bad_header = signed("A: 1\n").replace("Hash: SHA512\n", "Hash SHA512\n");
        assert!(error_of(&bad_header).contains("armour header"));

        let undashed = signed("A: 1\n-----BEGIN PGP SIGNED MESSAGE-----\n");
        assert!(error_of(&undashed).contains("not dash-escaped"));

        let garbage = signed("A: 1\n").replace("=AbCd", "not base64!");
        assert!(error_of(&garbage).contains("unexpected text inside the PGP signature"));

        let empty = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nA: 1\n\
                     -----BEGIN PGP SIGNATURE-----\n-----END PGP SIGNATURE-----\n";
        assert!(error_of(empty).contains("signature block is empty"));

        let signature_only =
            "A: 1\n-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n";
        assert!(error_of(signature_only).contains("line 2: PGP armour line"));

        let text_before = format!("A: 1\n{}", signed("B: 2\n"));
        assert!(error_of(&text_before).contains("line 2: PGP armour line"));
    }

    fn field_name() -> impl Strategy<Value = String> {
        "[A-Za-z][A-Za-z0-9-]{0,15}"
    }

    fn field_value() -> impl Strategy<Value = String> {
        // First line and continuation lines with visible text, as writers produce them.
        (
            "[!-~]([ -~]{0,20}[!-~])?",
            // A continuation line of just "." stands for an empty line, so avoid it here.
            prop::collection::vec(
                "[!-~]([ -~]{0,20}[!-~])?".prop_filter("not the empty-line marker", |l| l != "."),
                0..4,
            ),
        )
            .prop_map(|(first, rest)| {
                let mut value = first;
                for line in rest {
                    value.push('\n');
                    value.push_str(&line);
                }
                value
            })
    }

    fn render(fields: &[(String, String)]) -> String {
        let mut text = String::new();
        for (name, value) in fields {
            text.push_str(name);
            text.push_str(": ");
            text.push_str(&value.replace('\n', "\n "));
            text.push('\n');
        }
        text
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            match parse(&bytes, &Limits::default()) {
                Ok(paragraphs) => {
                    for p in &paragraphs {
                        prop_assert!(!p.fields().is_empty());
                        let mut names: Vec<String> =
                            p.fields().iter().map(|f| f.name.to_ascii_lowercase()).collect();
                        let count = names.len();
                        names.sort();
                        names.dedup();
                        prop_assert_eq!(names.len(), count, "duplicate names accepted");
                    }
                }
                Err(err) => prop_assert_eq!(err.kind(), ErrorKind::InvalidInput),
            }
        }

        #[test]
        fn near_valid_text_never_panics(
            lines in prop::collection::vec(
                prop_oneof![
                    Just(String::new()),
                    Just(SIGNED_MESSAGE_BEGIN.to_owned()),
                    Just(SIGNATURE_BEGIN.to_owned()),
                    Just(SIGNATURE_END.to_owned()),
                    Just("Hash: SHA256".to_owned()),
                    Just(" .".to_owned()),
                    "- [A-Za-z]{1,5}: [ -~]{0,10}",
                    "[ \t][ -~]{0,20}",
                    "[A-Za-z#-][A-Za-z0-9-]{0,6}:[ -~]{0,20}",
                    "[A-Za-z0-9+/=]{0,30}",
                    "\\PC{0,20}",
                ],
                0..30,
            )
        ) {
            let text = lines.join("\n");
            if let Err(err) = parse_str(&text, &Limits::default()) {
                prop_assert_eq!(err.kind(), ErrorKind::InvalidInput);
                prop_assert!(err.message().starts_with("line ") || err.message().contains("limit"));
            }
        }

        #[test]
        fn written_paragraphs_parse_back(
            fields in prop::collection::btree_map(field_name(), field_value(), 1..10)
        ) {
            // Keys differing only in case would be duplicates; keep one of each.
            let mut seen = std::collections::HashSet::new();
            let fields: Vec<(String, String)> = fields
                .into_iter()
                .filter(|(name, _)| seen.insert(name.to_ascii_lowercase()))
                .filter(|(name, _)| !name.starts_with('-'))
                .collect();
            let text = render(&fields);
            let paragraphs = parse_str(&text, &Limits::default()).unwrap();
            prop_assert_eq!(paragraphs.len(), 1);
            prop_assert_eq!(paragraphs[0].to_pairs(), fields.clone());

            // Clear-signing (with dash-escaping of every line) does not change the result.
            let escaped: String = text.lines().map(|line| format!("- {line}\n")).collect();
            let armoured = signed(&escaped);
            let from_signed = parse_str(&armoured, &Limits::default()).unwrap();
            prop_assert_eq!(from_signed[0].to_pairs(), fields);
        }
    }
}
