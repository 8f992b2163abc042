//! Secrets written with JSON escapes: `"key \u0041KIA…"` is the text
//! `key AKIA…` to every reader of the JSON (SQLite's `json_extract`, the
//! search index, the page), but not to the raw-text scan, which sees
//! `\u0041KIA…`. Claude Code never writes such escapes; a raw socket or
//! Redis producer (Python's `json.dumps` escapes every non-ASCII character,
//! PHP escapes `/`) can.
//!
//! So after the raw-text scan, [`decoded`] gives the text with every escape
//! of a printable character written as that character, and the caller scans
//! that text again. Only when this second scan fires does the decoded text
//! replace the original; otherwise the payload stays byte for byte as it
//! came.
//!
//! Escapes that cannot hide a secret stay as they are: control characters
//! (`\u001b` of a coloured terminal output, `\n`, `\t`) can be no part of a
//! token, and the scanner already treats them as boundaries; `\"` and `\\`
//! must stay escaped. The common payload, with no `\u` and no `\/` at all,
//! costs two substring searches.

/// The text with every escape of a printable character (`\u0041`,
/// `\u00e9`, a surrogate pair, `\/`) replaced by the character itself
/// (`\u0022` and `\u005c` by `\"` and `\\`); `None` when there is none
/// (nearly always). Backslashes only occur inside JSON strings, so no
/// string boundary needs to be tracked, and the result is valid JSON
/// whenever `text` was.
pub fn decoded(text: &str) -> Option<String> {
    if !text.contains("\\u") && !text.contains("\\/") {
        return None;
    }
    let bytes = text.as_bytes();
    let mut output: Option<String> = None;
    let mut copied = 0;
    let mut at = 0;
    while let Some(offset) = bytes[at..].iter().position(|&byte| byte == b'\\') {
        let escape = at + offset;
        let (plain, length) = match bytes.get(escape + 1) {
            Some(b'/') => (Some('/'), 2),
            Some(b'u') => printable_unicode_escape(bytes, escape),
            _ => (None, 2),
        };
        if let Some(character) = plain {
            let out = output.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..escape]);
            match character {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                other => out.push(other),
            }
            copied = escape + length;
        }
        at = escape + length;
        if at >= bytes.len() {
            break;
        }
    }
    let mut out = output?;
    out.push_str(&text[copied.min(text.len())..]);
    Some(out)
}

/// The printable character of the `\u` escape at `escape` (with the low
/// surrogate after it when it is a high one) and the escape's length; no
/// character for a control character, a lone surrogate or malformed digits.
fn printable_unicode_escape(bytes: &[u8], escape: usize) -> (Option<char>, usize) {
    let Some(unit) = hex4(bytes, escape + 2) else {
        return (None, 2);
    };
    if (0xD800..0xDC00).contains(&unit) && bytes.get(escape + 6..escape + 8) == Some(b"\\u") {
        if let Some(low @ 0xDC00..=0xDFFF) = hex4(bytes, escape + 8) {
            let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
            return (char::from_u32(code), 12);
        }
    }
    let printable = char::from_u32(unit).filter(|character| !character.is_control());
    (printable, 6)
}

/// The four hex digits at `at` as a UTF-16 code unit.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    digits.iter().try_fold(0, |unit, &digit| {
        Some(unit << 4 | (digit as char).to_digit(16)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_of_printable_characters_are_written_plainly() {
        assert_eq!(
            decoded(r#"{"prompt":"key \u0041KIA","n":"a\u001bb\n"}"#).as_deref(),
            Some(r#"{"prompt":"key AKIA","n":"a\u001bb\n"}"#)
        );
        assert_eq!(
            decoded(r#"{"k":"a\/b \u0022q\u005c \u00e9 \ud83d\ude00 \ud800x","x":1}"#).as_deref(),
            Some("{\"k\":\"a/b \\\"q\\\\ \u{e9} \u{1F600} \\ud800x\",\"x\":1}")
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
            r#"{"a":"cut \u00"#,
        ] {
            assert_eq!(decoded(plain), None, "{plain}");
        }
        for text in [
            r#"{"k":"a\/b \u0022q\u005c \u00e9 \ud83d\ude00 \ud800x","x":1}"#,
            r#"{"k":"\u0041\\\u0042\"\/"}"#,
        ] {
            let out = decoded(text).unwrap();
            let before: serde_json::Value = serde_json::from_str(&text.replace("\\ud800", ""))
                .unwrap_or(serde_json::Value::Null);
            let after: serde_json::Value = serde_json::from_str(&out.replace("\\ud800", ""))
                .unwrap_or(serde_json::Value::Null);
            assert_eq!(before, after, "{out}");
        }
    }
}
