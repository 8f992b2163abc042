//! Secrets written with JSON escapes: `"key \u0041KIA…"` is the text
//! `key AKIA…` to every reader of the JSON (SQLite's `json_extract`, the
//! search index, the page), but not to the raw-text scan, which sees
//! `\u0041KIA…`. Claude Code never writes such escapes; a raw socket or
//! Redis producer (Python's `json.dumps` escapes every non-ASCII character,
//! PHP escapes `/`) can.
//!
//! So after the raw-text scan, [`decoded`] gives the text in which every JSON
//! string holding such an escape is written the plain way (`serde_json`'s
//! form: only `"`, `\` and control characters escaped), and the caller scans
//! that text again. Only when this second scan fires does the decoded text
//! replace the original; otherwise the payload stays byte for byte as it
//! came.
//!
//! Escapes that cannot hide a secret do not count: control characters
//! (`\u001b` of a coloured terminal output, `\n`, `\t`) can be no part of a
//! token, and the scanner already treats them as boundaries. The common
//! payload, with no `\u` and no `\/` at all, costs two substring searches.

/// The text with every JSON string that holds an escape of a printable
/// character (`\u0041`, `\u00e9`, `\/`) written without it; `None` when no
/// string does (nearly always). Strings are decoded with the JSON rules; a
/// lone surrogate becomes U+FFFD. The result is valid JSON whenever `text`
/// was.
pub fn decoded(text: &str) -> Option<String> {
    if !text.contains("\\u") && !text.contains("\\/") {
        return None;
    }
    let bytes = text.as_bytes();
    let mut output: Option<String> = None;
    let mut copied = 0;
    let mut at = 0;
    while let Some(offset) = bytes[at..].iter().position(|&byte| byte == b'"') {
        let start = at + offset;
        let (end, printable_escape) = string_end(bytes, start + 1);
        if printable_escape && end < bytes.len() {
            let plain = plain_string(&text[start + 1..end]);
            let out = output.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..start]);
            out.push_str(&serde_json::to_string(&plain).unwrap_or_default());
            copied = end + 1;
        }
        at = end + 1;
        if at >= bytes.len() {
            break;
        }
    }
    let mut out = output?;
    out.push_str(&text[copied..]);
    Some(out)
}

/// The index of the `"` closing the string whose contents start at `from`
/// (or the text's length), and whether the string holds an escape of a
/// printable character.
fn string_end(bytes: &[u8], from: usize) -> (usize, bool) {
    let mut printable_escape = false;
    let mut at = from;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => return (at, printable_escape),
            b'\\' => {
                match bytes.get(at + 1) {
                    Some(b'/') => printable_escape = true,
                    Some(b'u') => {
                        printable_escape |= hex4(bytes, at + 2).is_some_and(|unit| unit >= 0x20)
                    }
                    _ => {}
                }
                at += 2;
            }
            _ => at += 1,
        }
    }
    (bytes.len(), printable_escape)
}

/// The four hex digits at `at` as a UTF-16 code unit.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    digits.iter().try_fold(0, |unit, &digit| {
        Some(unit << 4 | (digit as char).to_digit(16)?)
    })
}

/// The contents of a JSON string (between its quotes) decoded. Unlike
/// `serde_json`, it never fails: a lone surrogate becomes U+FFFD and an
/// unknown escape keeps its letter, so a malformed string cannot hide what
/// follows it in the same string.
fn plain_string(contents: &str) -> String {
    let bytes = contents.as_bytes();
    let mut plain = String::with_capacity(contents.len());
    let mut run_start = 0;
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'\\' {
            at += 1;
            continue;
        }
        plain.push_str(&contents[run_start..at]);
        let Some(&letter) = bytes.get(at + 1) else {
            run_start = at + 1;
            break;
        };
        at += 2;
        match letter {
            b'n' => plain.push('\n'),
            b't' => plain.push('\t'),
            b'r' => plain.push('\r'),
            b'b' => plain.push('\u{8}'),
            b'f' => plain.push('\u{c}'),
            b'u' => at = push_unicode_escape(bytes, at, &mut plain),
            other => plain.push(other as char),
        }
        run_start = at;
    }
    plain.push_str(&contents[run_start.min(contents.len())..]);
    plain
}

/// Decodes the code unit of a `\u` escape whose digits start at `at` (and
/// the low surrogate after it when it is a high one); returns where the text
/// goes on.
fn push_unicode_escape(bytes: &[u8], at: usize, plain: &mut String) -> usize {
    let Some(unit) = hex4(bytes, at) else {
        plain.push('u');
        return at;
    };
    let after = at + 4;
    if (0xD800..0xDC00).contains(&unit) && bytes.get(after..after + 2) == Some(b"\\u".as_slice()) {
        if let Some(low @ 0xDC00..=0xDFFF) = hex4(bytes, after + 2) {
            let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
            plain.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
            return after + 6;
        }
    }
    plain.push(char::from_u32(unit).unwrap_or('\u{FFFD}'));
    after
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_with_printable_escapes_are_written_plainly() {
        assert_eq!(
            decoded(r#"{"prompt":"key \u0041KIA","n":"a\u001bb"}"#).as_deref(),
            Some(r#"{"prompt":"key AKIA","n":"a\u001bb"}"#)
        );
        assert_eq!(
            decoded(r#"{"k":"a\/b \"q\" \u00e9 \ud83d\ude00 \ud800x","x":1}"#).as_deref(),
            Some("{\"k\":\"a/b \\\"q\\\" \u{e9} \u{1F600} \u{FFFD}x\",\"x\":1}")
        );
        // Keys too: `"api\u005fkey"` is the key `api_key`.
        assert_eq!(
            decoded(r#"{"api\u005fkey":"v"}"#).as_deref(),
            Some(r#"{"api_key":"v"}"#)
        );
        for plain in [
            r#"{"a":"no escapes"}"#,
            r#"{"a":"only \u001b[31m colours \n"}"#,
            r#"{"a":"\\u0041 is a backslash and u"}"#,
            r#"{"unterminated":"\u0041"#,
        ] {
            assert_eq!(decoded(plain), None, "{plain}");
        }
    }
}
