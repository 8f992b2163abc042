//! Shortening oversized payloads, so that every envelope fits its line
//! (DESIGN §3, `truncated`): the longest strings are cut first, each ending
//! with a marker that says how long it was ([`shorten_strings`]); when that
//! is not enough (millions of short strings), arrays and objects keep their
//! first members ([`fit_payload`]). A payload too large to parse whole is
//! parsed keeping a bounded part of it ([`bounded_value`]).
//!
//! Everything here works on `serde_json::Value`s and knows nothing of the
//! envelope: the limits come in as arguments, so this module imports nothing
//! of the crate.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

/// The first `max` characters of `text`.
pub(super) fn first_chars(text: &str, max: usize) -> String {
    if text.len() <= max {
        // No more bytes than `max`, so no more characters: nothing to count.
        return text.to_owned();
    }
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// How the marker ending a shortened string starts; the redaction reads it
/// to find where a cut may have split a secret.
pub const SHORTENED_MARKER_START: &str = "…[hooktrail: shortened from ";

pub(super) fn shortened_marker(original: u64) -> String {
    format!("{SHORTENED_MARKER_START}{original} bytes]")
}

/// The most values (of any kind, at any depth) a bounded parse keeps; the
/// rest of each array or object is counted, not kept.
const KEEP_VALUES: usize = 65_536;

/// The most string bytes a bounded parse keeps in all (one string keeps at
/// most its [`Limits::string_bytes`]).
const KEEP_STRING_BYTES: usize = 8 * 1024 * 1024;

/// The most a bounded parse keeps of one string and of one key.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// The most bytes kept of one string value (longer ones are cut and
    /// marked).
    pub(super) string_bytes: usize,
    /// The most characters kept of one object key.
    pub(super) key_chars: usize,
}

/// What a bounded parse may still keep.
struct Keep {
    /// The limits per string and per key.
    limits: Limits,
    /// Values left to keep.
    values: usize,
    /// String bytes left to keep.
    string_bytes: usize,
    /// Set when anything was cut or left out.
    shortened: bool,
}

/// Parses a large JSON object keeping a bounded part of it: every string at
/// most `limits.string_bytes` (marked), every key at most `limits.key_chars`
/// characters, at most [`KEEP_VALUES`] values and
/// [`KEEP_STRING_BYTES`] of strings (later members counted, not kept). So a
/// payload of millions of short strings costs a bounded amount of memory
/// instead of a `Value` many times its size. When `cut` (stdin was cut),
/// running out of input keeps what was parsed before. Returns the value
/// and whether anything was left out, or `None` for input that is not JSON.
pub(super) fn bounded_value(json: &[u8], cut: bool, limits: Limits) -> Option<(Value, bool)> {
    let mut value = Value::Null;
    let mut keep = Keep {
        limits,
        values: KEEP_VALUES,
        string_bytes: KEEP_STRING_BYTES,
        shortened: false,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let parsed = serde::de::DeserializeSeed::deserialize(
        Slot {
            target: &mut value,
            keep: &mut keep,
        },
        &mut deserializer,
    )
    .and_then(|()| deserializer.end());
    match parsed {
        Ok(()) => {}
        Err(error) if cut && error.classify() == serde_json::error::Category::Eof => {}
        Err(_) => return None,
    }
    value.is_object().then_some((value, keep.shortened))
}

/// One place in the value being built by [`bounded_value`]. It is filled in
/// as the parse goes, so a parse cut short keeps what came before.
struct Slot<'k> {
    /// Where the parsed value goes.
    target: &'k mut Value,
    /// The budget shared by the whole parse.
    keep: &'k mut Keep,
}

impl<'de> serde::de::DeserializeSeed<'de> for Slot<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Slot<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<(), E> {
        *self.target = Value::Bool(value);
        Ok(())
    }

    fn visit_i64<E>(self, value: i64) -> Result<(), E> {
        *self.target = Value::from(value);
        Ok(())
    }

    fn visit_u64<E>(self, value: u64) -> Result<(), E> {
        *self.target = Value::from(value);
        Ok(())
    }

    fn visit_f64<E>(self, value: f64) -> Result<(), E> {
        *self.target = Value::from(value);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        *self.target = Value::Null;
        Ok(())
    }

    fn visit_str<E>(self, text: &str) -> Result<(), E> {
        let keep = self.keep.limits.string_bytes.min(self.keep.string_bytes);
        let kept = if text.len() > keep {
            self.keep.shortened = true;
            let mut end = keep;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}{}", &text[..end], shortened_marker(text.len() as u64))
        } else {
            text.to_owned()
        };
        self.keep.string_bytes = self.keep.string_bytes.saturating_sub(kept.len());
        *self.target = Value::String(kept);
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut sequence: A) -> Result<(), A::Error> {
        *self.target = Value::Array(Vec::new());
        let Value::Array(items) = self.target else {
            unreachable!("just set")
        };
        let mut left_out = 0u64;
        // The marker goes in even when the input ends early (stdin was cut).
        let parsed = loop {
            if self.keep.values == 0 {
                match sequence.next_element::<serde::de::IgnoredAny>() {
                    Ok(Some(_)) => left_out += 1,
                    Ok(None) => break Ok(()),
                    Err(error) => break Err(error),
                }
                continue;
            }
            self.keep.values -= 1;
            items.push(Value::Null);
            let slot = Slot {
                target: items.last_mut().expect("just pushed"),
                keep: self.keep,
            };
            match sequence.next_element_seed(slot) {
                Ok(Some(())) => {}
                Ok(None) => {
                    items.pop();
                    break Ok(());
                }
                Err(error) => break Err(error),
            }
        };
        if left_out > 0 {
            self.keep.shortened = true;
            items.push(Value::String(more_items_marker(left_out)));
        }
        parsed
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        *self.target = Value::Object(serde_json::Map::new());
        let Value::Object(members) = self.target else {
            unreachable!("just set")
        };
        let mut left_out = 0u64;
        // The marker goes in even when the input ends early (stdin was cut).
        let parsed = loop {
            if self.keep.values == 0 {
                match map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>() {
                    Ok(Some(_)) => left_out += 1,
                    Ok(None) => break Ok(()),
                    Err(error) => break Err(error),
                }
                continue;
            }
            let key = match map.next_key::<Cow<str>>() {
                Ok(Some(key)) => key,
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            };
            self.keep.values -= 1;
            let key = first_chars(&key, self.keep.limits.key_chars);
            self.keep.string_bytes = self.keep.string_bytes.saturating_sub(key.len());
            let slot = Slot {
                target: members.entry(key).or_insert(Value::Null),
                keep: self.keep,
            };
            if let Err(error) = map.next_value_seed(slot) {
                break Err(error);
            }
        };
        if left_out > 0 {
            self.keep.shortened = true;
            members.insert(MORE_MEMBERS_KEY.to_owned(), Value::from(left_out));
        }
        parsed
    }
}

/// The key added to an object whose later members were left out; its value
/// is how many.
pub const MORE_MEMBERS_KEY: &str = "_hooktrail_more_members";

fn more_items_marker(count: u64) -> String {
    format!("…[hooktrail: {count} more items]")
}

/// Makes `value` fit in `budget` bytes serialized: the longest strings are
/// shortened first ([`shorten_strings`]); if that is not enough (many short
/// strings), arrays and objects keep only their first members
/// ([`keep_first_members`]). Returns whether anything changed.
pub fn fit_payload(value: &mut Value, budget: usize) -> bool {
    let shortened = shorten_strings(value, budget);
    if serialized_len(value) <= budget {
        return shortened;
    }
    let widest = widest_container(value);
    // The largest number of members per container that fits.
    let (mut low, mut high) = (0, widest);
    while low < high {
        let middle = (low + high).div_ceil(2);
        if len_keeping(value, middle) <= budget {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    keep_first_members(value, low);
    true
}

/// Counts bytes written, to measure serialized sizes without building them.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn serialized_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = ByteCounter(0);
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

fn widest_container(value: &Value) -> usize {
    match value {
        Value::Array(items) => items
            .iter()
            .map(widest_container)
            .fold(items.len(), usize::max),
        Value::Object(map) => map
            .values()
            .map(widest_container)
            .fold(map.len(), usize::max),
        _ => 0,
    }
}

/// The serialized size of `value` if each array and object kept only its
/// first `members` (plus a marker, counted as [`MARKER_ALLOWANCE`]).
fn len_keeping(value: &Value, members: usize) -> usize {
    let marker = |total: usize| {
        if total > members {
            MARKER_ALLOWANCE + 1
        } else {
            0
        }
    };
    match value {
        Value::Array(items) => {
            let kept = items.len().min(members);
            2 + kept.saturating_sub(1)
                + items[..kept]
                    .iter()
                    .map(|item| len_keeping(item, members))
                    .sum::<usize>()
                + marker(items.len())
        }
        Value::Object(map) => {
            let kept = map.len().min(members);
            2 + kept.saturating_sub(1)
                + map
                    .iter()
                    .take(kept)
                    .map(|(key, item)| serialized_len(key) + 1 + len_keeping(item, members))
                    .sum::<usize>()
                + marker(map.len())
        }
        leaf => serialized_len(leaf),
    }
}

/// Cuts every array and object to its first `members`, marking each cut.
fn keep_first_members(value: &mut Value, members: usize) {
    match value {
        Value::Array(items) => {
            let total = items.len();
            items.truncate(members);
            items
                .iter_mut()
                .for_each(|item| keep_first_members(item, members));
            if total > members {
                items.push(Value::String(more_items_marker((total - members) as u64)));
            }
        }
        Value::Object(map) => {
            let total = map.len();
            let kept: serde_json::Map<String, Value> = std::mem::take(map)
                .into_iter()
                .take(members)
                .map(|(key, mut item)| {
                    keep_first_members(&mut item, members);
                    (key, item)
                })
                .collect();
            *map = kept;
            if total > members {
                map.insert(
                    MORE_MEMBERS_KEY.to_owned(),
                    Value::from((total - members) as u64),
                );
            }
        }
        _ => {}
    }
}

/// Shortens the longest strings of `value` until its serialized form fits in
/// `budget` bytes. Each shortened string ends with a marker saying how long it
/// was. Returns whether anything was shortened.
pub fn shorten_strings(value: &mut Value, budget: usize) -> bool {
    let mut shortened = false;
    for _ in 0..4 {
        let size = serde_json::to_string(value).map(|s| s.len()).unwrap_or(0);
        if size <= budget {
            break;
        }
        let mut lengths = Vec::new();
        collect_string_lengths(value, &mut lengths);
        if lengths.is_empty() {
            break;
        }
        let excess = size - budget;
        // The largest cap whose cuts remove at least `excess` bytes, markers
        // included.
        let removed_at = |cap: usize| -> usize {
            lengths
                .iter()
                .filter(|&&len| len > cap + MARKER_ALLOWANCE)
                .map(|&len| len - cap - MARKER_ALLOWANCE)
                .sum()
        };
        let (mut low, mut high) = (0usize, lengths.iter().copied().max().unwrap_or(0));
        while low < high {
            let middle = (low + high).div_ceil(2);
            if removed_at(middle) >= excess {
                low = middle;
            } else {
                high = middle - 1;
            }
        }
        if cut_strings(value, low) {
            shortened = true;
        } else {
            break;
        }
    }
    shortened
}

/// Room kept for the marker appended to a shortened string.
const MARKER_ALLOWANCE: usize = 64;

fn collect_string_lengths(value: &Value, lengths: &mut Vec<usize>) {
    match value {
        Value::String(text) => lengths.push(text.len()),
        Value::Array(items) => items
            .iter()
            .for_each(|item| collect_string_lengths(item, lengths)),
        Value::Object(map) => map
            .values()
            .for_each(|item| collect_string_lengths(item, lengths)),
        _ => {}
    }
}

fn cut_strings(value: &mut Value, cap: usize) -> bool {
    match value {
        Value::String(text) if text.len() > cap + MARKER_ALLOWANCE => {
            // A string shortened before (while parsing) keeps its first length.
            let original = text
                .rsplit_once(SHORTENED_MARKER_START)
                .and_then(|(_, rest)| rest.strip_suffix(" bytes]")?.parse().ok())
                .unwrap_or(text.len());
            let mut end = cap;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str(&shortened_marker(original as u64));
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |any, item| cut_strings(item, cap) | any),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |any, item| cut_strings(item, cap) | any),
        _ => false,
    }
}
