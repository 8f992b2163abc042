//! Skimming a transcript line before serde sees it: the bodies of tool
//! results are cut to their first characters, so they are not decoded at
//! all.
//!
//! Nine tenths of a transcript's bytes are tool results: a `user` line holds
//! each twice, in the `tool_result` block's `content` and in the line's
//! `toolUseResult`. The import needs neither whole: from `toolUseResult` only
//! an `Agent` call's short `agentId`, from the block's `content` only the
//! first [`KEEP_CHARS`] characters, for the error text of a failed call
//! (cut at 2,000). serde_json validated every byte of both, one at a time,
//! only to skip them: the reading thread ran at about 110 MB/s.
//!
//! [`cut_tool_results`] walks the line's structure instead: it finds where
//! each string ends with `memchr('"')` (SIMD), tracks only the path
//! to the two places above, and copies the line with every string value
//! there cut after [`KEEP_CHARS`] characters. Everything else, keys,
//! numbers, prompts, tool inputs, is copied as it is, so serde reads the
//! same line with shorter tool results. What is cut is still checked (UTF-8,
//! balanced quotes and brackets), but not its escapes and control bytes:
//! a line whose only flaw lies deep in a tool result's body is now read,
//! where serde refused it whole (nothing of it was kept anyway).
//!
//! The cut line also tells an `attachment` line as the whole line would
//! (`synthesize::is_attachment`, a search for `"type":"attachment"`): that
//! text has bare quotes, which a string's body never holds, so it can only
//! overlap a cut body by ending at its closing quote followed by `:`, and a
//! string followed by `:` (a key, never cut, or broken JSON) is not cut.

/// The characters kept of a cut string: more than the 2,000 of an error
/// text (`synthesize::MAX_ERROR_CHARS`), so its cut and its ellipsis come
/// out the same.
pub(super) const KEEP_CHARS: usize = 2048;

/// Lines shorter than this hold no string worth cutting: skimming them
/// would only copy them.
const SKIM_ABOVE_BYTES: usize = 16 * 1024;

/// Where a value lies, as far as cutting goes: only the path to a tool
/// result's body is told apart.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The line's own object.
    Line,
    /// The line's `message`.
    Message,
    /// The message's `content` (a prompt's text, or blocks).
    MessageContent,
    /// One content block.
    Block,
    /// Inside `toolUseResult` or a block's `content`: strings are cut.
    ToolResult,
    /// Anything else: copied as it is.
    Other,
}

impl Place {
    /// Where the value of `key` in an object at `self` lies.
    fn of_key(self, key: &[u8]) -> Place {
        match (self, key) {
            (Place::Line, b"toolUseResult") => Place::ToolResult,
            (Place::Line, b"message") => Place::Message,
            (Place::Message, b"content") => Place::MessageContent,
            (Place::Block, b"content") => Place::ToolResult,
            (Place::ToolResult, _) => Place::ToolResult,
            _ => Place::Other,
        }
    }

    /// Where an element of an array at `self` lies.
    fn of_element(self) -> Place {
        match self {
            Place::MessageContent => Place::Block,
            Place::ToolResult => Place::ToolResult,
            _ => Place::Other,
        }
    }
}

/// One open object or array.
#[derive(Clone, Copy)]
struct Frame {
    /// Whether it is an object (keys and values) or an array.
    object: bool,
    /// Where it lies.
    place: Place,
}

/// Copies `line` into `out` with the string values of tool results cut
/// after [`KEEP_CHARS`] characters. Returns false, leaving `out`
/// meaningless, when there was nothing to cut or the line's structure is
/// not understood (then the line is parsed as it is, and serde judges it).
pub(crate) fn cut_tool_results(line: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    if line.len() < SKIM_ABOVE_BYTES {
        return false;
    }
    let mut stack: Vec<Frame> = Vec::with_capacity(16);
    // The place of the next value in the innermost object (set by its key).
    let mut next_place = Place::Other;
    let mut expect_key = false;
    let mut copied = 0;
    let mut cut_any = false;
    let mut at = 0;
    while at < line.len() {
        let byte = line[at];
        match byte {
            b'{' | b'[' => {
                let place = value_place(&stack, next_place);
                stack.push(Frame {
                    object: byte == b'{',
                    place,
                });
                expect_key = byte == b'{';
                at += 1;
            }
            b'}' | b']' => {
                if stack.pop().is_none() {
                    return false;
                }
                expect_key = false;
                at += 1;
            }
            b',' => {
                expect_key = stack.last().is_some_and(|frame| frame.object);
                at += 1;
            }
            b'"' => {
                let start = at + 1;
                let Some(end) = string_end(line, start) else {
                    return false;
                };
                let in_object = stack.last().is_some_and(|frame| frame.object);
                if in_object && expect_key {
                    let parent = stack.last().map_or(Place::Other, |frame| frame.place);
                    next_place = parent.of_key(&line[start..end]);
                    expect_key = false;
                } else if value_place(&stack, next_place) == Place::ToolResult {
                    if let Some(cut) = cut_point(line, start, end) {
                        // A value followed by `:` is no JSON; cutting it
                        // could also make or unmake a `"type":"attachment"`
                        // across the cut (`synthesize::is_attachment`).
                        if !dropped_is_valid(&line[cut..end]) || line.get(end + 1) == Some(&b':') {
                            return false;
                        }
                        out.extend_from_slice(&line[copied..cut]);
                        out.push(b'"');
                        copied = end + 1;
                        cut_any = true;
                    }
                }
                at = end + 1;
            }
            _ => at += 1,
        }
    }
    if !cut_any || !stack.is_empty() {
        return false;
    }
    out.extend_from_slice(&line[copied..]);
    true
}

/// The place of a value about to start: the line itself, an object's value
/// (placed by its key), or an array's element.
fn value_place(stack: &[Frame], next_place: Place) -> Place {
    match stack.last() {
        None => Place::Line,
        Some(frame) if frame.object => next_place,
        Some(frame) => frame.place.of_element(),
    }
}

/// The index of the quote that ends the string whose body starts at
/// `start`; None for an unterminated string. It jumps from quote to quote
/// (`memchr`, SIMD): a quote ends the string unless an odd number of
/// backslashes precedes it. Stopping at every backslash instead would stop
/// at every `\n` of a tool's output. Escapes are left to serde for what is
/// kept.
fn string_end(line: &[u8], start: usize) -> Option<usize> {
    let mut at = start;
    loop {
        at += memchr::memchr(b'"', &line[at..])?;
        let backslashes = line[start..at]
            .iter()
            .rev()
            .take_while(|&&byte| byte == b'\\')
            .count();
        if backslashes % 2 == 0 {
            return Some(at);
        }
        at += 1;
    }
}

/// Where to cut the string body `line[start..end]`: after [`KEEP_CHARS`]
/// characters (an escape is one, a surrogate pair of escapes too), at a
/// character's boundary. None when it is not longer than that.
fn cut_point(line: &[u8], start: usize, end: usize) -> Option<usize> {
    if end - start <= KEEP_CHARS {
        return None;
    }
    let mut at = start;
    let mut chars = 0;
    while chars < KEEP_CHARS && at < end {
        at += match line[at] {
            b'\\' if line.get(at + 1) == Some(&b'u') => {
                let high_surrogate = line.get(at + 2..at + 4).is_some_and(|hex| {
                    hex[0].eq_ignore_ascii_case(&b'd') && b"89abAB".contains(&hex[1])
                });
                if high_surrogate && line.get(at + 6..at + 8) == Some(b"\\u") {
                    12
                } else {
                    6
                }
            }
            b'\\' => 2,
            lead if lead < 0x80 => 1,
            lead if lead >= 0xf0 => 4,
            lead if lead >= 0xe0 => 3,
            lead if lead >= 0xc0 => 2,
            _ => 1,
        };
        chars += 1;
    }
    (at < end).then_some(at)
}

/// Whether the part of a string that is cut away is text: UTF-8 (std's
/// check runs a word at a time over ASCII). Its escapes and control bytes
/// are not checked: a byte-by-byte pass over them was what this module
/// exists to avoid, and a line damaged there still has its structure.
fn dropped_is_valid(dropped: &[u8]) -> bool {
    std::str::from_utf8(dropped).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skimmed(line: &str) -> Option<String> {
        let mut out = Vec::new();
        cut_tool_results(line.as_bytes(), &mut out).then(|| String::from_utf8(out).unwrap())
    }

    fn long(text: &str, count: usize) -> String {
        text.repeat(count)
    }

    #[test]
    fn tool_result_bodies_are_cut_and_the_rest_is_kept() {
        let body = long("x", 40_000);
        let prompt = long("p", 40_000);
        let line = format!(
            r#"{{"type":"user","message":{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":"{body}"}},{{"type":"text","text":"{prompt}"}}]}},"toolUseResult":{{"stdout":"{body}","agentId":"a1","n":[1,{{"s":"{body}"}}]}},"uuid":"u"}}"#
        );
        let out = skimmed(&line).expect("cut");
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        let original: serde_json::Value = serde_json::from_str(&line).unwrap();
        let kept = long("x", KEEP_CHARS);
        assert_eq!(value["message"]["content"][0]["content"], kept.as_str());
        assert_eq!(
            value["message"]["content"][1],
            original["message"]["content"][1]
        );
        assert_eq!(value["toolUseResult"]["stdout"], kept.as_str());
        assert_eq!(value["toolUseResult"]["agentId"], "a1");
        assert_eq!(value["toolUseResult"]["n"][1]["s"], kept.as_str());
        assert_eq!(value["uuid"], "u");
        assert_eq!(value["message"]["content"][0]["is_error"], true);
    }

    #[test]
    fn a_cut_never_splits_a_character_or_an_escape() {
        for unit in ["é", "€", "😀", "\\n", "\\u00e9", "\\ud83d\\ude00", "a\\\"b"] {
            let body = long(unit, 20_000);
            let line = format!(r#"{{"type":"user","toolUseResult":"{body}"}}"#);
            let out = skimmed(&line).expect("cut");
            let value: serde_json::Value = serde_json::from_str(&out).expect(unit);
            let original: serde_json::Value = serde_json::from_str(&line).unwrap();
            let kept: String = original["toolUseResult"]
                .as_str()
                .unwrap()
                .chars()
                .take(KEEP_CHARS)
                .collect();
            let text = value["toolUseResult"].as_str().unwrap();
            assert!(
                kept.starts_with(text) && text.chars().count() + 2 >= KEEP_CHARS,
                "{unit}"
            );
        }
    }

    #[test]
    fn broken_structure_and_bad_text_are_left_to_serde() {
        let unterminated = format!(r#"{{"toolUseResult":"{}"#, long("x", 20_000));
        assert_eq!(skimmed(&unterminated), None);
        let mut invalid_utf8 = format!(r#"{{"toolUseResult":"{}"#, long("x", 20_000)).into_bytes();
        invalid_utf8.extend_from_slice(b"\xff\"}");
        assert!(!cut_tool_results(&invalid_utf8, &mut Vec::new()));
    }

    #[test]
    fn prompts_tool_inputs_and_short_lines_are_left_alone() {
        let text = long("p", 40_000);
        let prompt = format!(r#"{{"type":"user","message":{{"content":"{text}"}}}}"#);
        assert_eq!(skimmed(&prompt), None);
        let input = format!(
            r#"{{"type":"assistant","message":{{"content":[{{"type":"tool_use","input":{{"content":"{text}"}}}}]}}}}"#
        );
        assert_eq!(skimmed(&input), None);
        assert_eq!(skimmed(r#"{"toolUseResult":"short"}"#), None);
    }
}
