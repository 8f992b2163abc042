//! The single pass over a payload's JSON text that finds credentials.
//!
//! The scanner walks the bytes once. Most bytes are not an *anchor* (a byte
//! that can start or separate a secret: `s` of `sk-`, `A` of `AKIA`, `=` and
//! `:` of assignments, `-` of a PEM header, the first byte of a user prefix),
//! so they cost one table lookup each. At an anchor a hand-written matcher
//! looks a few bytes around it and either gives up at once (the common case)
//! or returns the span to replace. No regex is compiled: the rules are code,
//! and the only start-up work is filling a 256-byte table.
//!
//! **Why the raw JSON text, not parsed strings.** The emitter holds the hook's
//! JSON as text and sends it on verbatim. Redacting that text keeps an
//! unchanged payload byte for byte the same (no parse, no re-serialization,
//! no allocation when nothing fires, which is nearly always), and it sees
//! object keys and values together, so `"api_key": "…"` in the payload itself
//! is an assignment like `API_KEY=…` in a command. The price is that the
//! matchers must respect JSON escapes, and they do:
//! - every token charset excludes `"` and `\`, so a match ends at an escape
//!   (`\n` after a key, `\"` closing a quoted value) and never swallows half
//!   of one;
//! - the byte before a token counts as a boundary when it ends an escape
//!   (`\nAKIA…` starts a token although `n` is a letter);
//! - spans that contain escapes (a PEM block whose lines are joined by `\n`, a
//!   quoted value holding `\t`) end before an unescaped `"`, so they never
//!   leave the JSON string they started in.
//!
//! The replacement `[REDACTED:rule]` needs no escaping, so the text stays
//! valid JSON whatever is replaced.

use super::rules::{Builtin, RuleName, UserPattern};
use crate::envelope::SHORTENED_MARKER_START;

/// The marker's text up to its `:` (a separator anchor, where the check
/// for a cut fragment starts).
const SHORTENED_HEAD: &[u8] = "…[hooktrail".as_bytes();

/// What fired where: the span `start..end` of the text is replaced by
/// `[REDACTED:name]`.
#[derive(Debug, Clone, Copy)]
struct Hit<'r> {
    start: usize,
    end: usize,
    rule: RuleName<'r>,
}

/// Anchor classes: which matchers a byte can start.
const TOKEN: u8 = 1;
const SEPARATOR: u8 = 2;
const DASH: u8 = 4;
const USER: u8 = 8;

/// The scanner for one configuration: the anchor table and the rules.
#[derive(Debug, Clone)]
pub struct Scanner {
    /// For each byte value, the matchers it can anchor (`TOKEN`, …).
    anchors: [u8; 256],
    /// Built-in rules turned off in the config, one bit per [`Builtin`].
    disabled: u32,
}

impl Scanner {
    /// Builds the anchor table: a few dozen stores, no allocation.
    pub fn new(disabled: &[Builtin], user: &[UserPattern]) -> Scanner {
        // Each token format is anchored on its rarest fixed byte, not its
        // first: `k` of `sk-`/`rk_`, `_` of `ghp_`/`github_`, `-` of
        // `glpat-`, `x` of `xox`, `A` of `AKIA`/`AIza`, `J` of `eyJ` and of
        // `LS0tLS1CRUdJ` (a base64 PEM header). Common letters (`e`, `s`,
        // `g`) as anchors cost twice the time per MB.
        let mut anchors = [0u8; 256];
        for byte in [b'k', b'_', b'-', b'x', b'A', b'J'] {
            anchors[byte as usize] |= TOKEN;
        }
        anchors[b'=' as usize] |= SEPARATOR;
        anchors[b':' as usize] |= SEPARATOR;
        anchors[b'-' as usize] |= DASH;
        for pattern in user {
            if let Some(&first) = pattern.prefix.as_bytes().first() {
                anchors[first as usize] |= USER;
            }
        }
        Scanner {
            anchors,
            disabled: disabled.iter().fold(0, |bits, rule| bits | rule.bit()),
        }
    }

    fn enabled(&self, rule: Builtin) -> bool {
        self.disabled & rule.bit() == 0
    }

    /// Scans `text` (JSON text) once with the built-in rules and `user`'s
    /// patterns (the ones given to [`Scanner::new`]). Returns the redacted
    /// text, or `None` when nothing fired; `fired` is called once per
    /// replacement.
    pub fn scan<'r>(
        &self,
        text: &str,
        user: &'r [UserPattern],
        mut fired: impl FnMut(RuleName<'r>),
    ) -> Option<String> {
        let bytes = text.as_bytes();
        let mut output: Option<String> = None;
        let mut copied = 0;
        let mut at = 0;
        while let Some(offset) = next_anchor(&self.anchors, &bytes[at..]) {
            at += offset;
            let class = self.anchors[bytes[at] as usize];
            match self.match_at(bytes, at, class, copied, user) {
                Some(hit) if hit.start >= copied && hit.end > hit.start => {
                    let out = output.get_or_insert_with(|| String::with_capacity(text.len()));
                    out.push_str(&text[copied..hit.start]);
                    out.push_str("[REDACTED:");
                    out.push_str(hit.rule.as_str());
                    out.push(']');
                    fired(hit.rule);
                    copied = hit.end;
                    at = hit.end.max(at + 1);
                }
                _ => at += 1,
            }
        }
        let mut out = output?;
        out.push_str(&text[copied..]);
        Some(out)
    }

    fn match_at<'r>(
        &self,
        bytes: &[u8],
        at: usize,
        class: u8,
        copied: usize,
        user: &'r [UserPattern],
    ) -> Option<Hit<'r>> {
        if class & USER != 0 && starts_token(bytes, at) {
            if let Some(hit) = user_at(user, bytes, at) {
                return Some(hit);
            }
        }
        if class & TOKEN != 0 {
            if let Some(start) = token_start(bytes, at) {
                if start >= copied && starts_token(bytes, start) {
                    if let Some((end, rule)) = token_at(bytes, start) {
                        if self.enabled(rule) {
                            return Some(Hit {
                                start,
                                end,
                                rule: RuleName::Builtin(rule),
                            });
                        }
                    }
                }
            }
            if bytes[at] == b'_' {
                if let Some(hit) = self.spaced_aws_assignment_at(bytes, at, copied) {
                    return Some(hit);
                }
            }
        }
        if class & DASH != 0 {
            if self.enabled(Builtin::PrivateKey) {
                if let Some(end) = private_key_at(bytes, at) {
                    return Some(Hit {
                        start: at,
                        end,
                        rule: RuleName::Builtin(Builtin::PrivateKey),
                    });
                }
            }
            return self
                .hit(Builtin::MysqlPassword, mysql_password_at(bytes, at))
                .filter(|hit| hit.start >= copied);
        }
        if class & SEPARATOR != 0 {
            if bytes[at] == b':' && bytes.get(at + 1..at + 3) == Some(b"//") {
                return self.url_at(bytes, at);
            }
            // `l` first: one compare for nearly every `:` of a payload.
            if bytes[at] == b':'
                && at >= SHORTENED_HEAD.len()
                && bytes[at - 1] == b'l'
                && bytes[..at].ends_with(SHORTENED_HEAD)
                && bytes[at - SHORTENED_HEAD.len()..].starts_with(SHORTENED_MARKER_START.as_bytes())
            {
                return self.cut_fragment_at(bytes, at - SHORTENED_HEAD.len(), copied);
            }
            return self.assignment_at(bytes, at, copied);
        }
        None
    }

    /// A hit of the built-in `rule` over `span`, when the rule is enabled.
    fn hit<'r>(&self, rule: Builtin, span: Option<(usize, usize)>) -> Option<Hit<'r>> {
        let (start, end) = span?;
        self.enabled(rule).then_some(Hit {
            start,
            end,
            rule: RuleName::Builtin(rule),
        })
    }

    /// The token-like text right before the marker that ends a string the
    /// 1 MiB shortening cut (`…[hooktrail: shortened from N bytes]`, which
    /// starts at `marker`). The cut may fall inside a secret, and what is
    /// left of it (`ghp_` and 14 characters) no longer fits its rule; so a
    /// fragment that starts like a known token, or looks random (8 or more
    /// characters with letters and digits), is redacted as that token
    /// would be. A cut word of prose is left alone.
    fn cut_fragment_at<'r>(&self, bytes: &[u8], marker: usize, copied: usize) -> Option<Hit<'r>> {
        let mut start = marker - run_back(bytes, marker, fragment_byte);
        // `\nghp_…`: the escape's letter is no part of the fragment.
        if start > 0 && bytes[start - 1] == b'\\' && !is_escaped(bytes, start - 1) {
            start += if bytes[start] == b'u' { 5 } else { 1 };
        }
        if start >= marker || start < copied {
            return None;
        }
        let fragment = &bytes[start..marker];
        let rule = token_prefix_rule(fragment).or_else(|| {
            (fragment.len() >= 8
                && fragment.iter().any(u8::is_ascii_digit)
                && fragment.iter().any(u8::is_ascii_alphabetic))
            .then_some(Builtin::HighEntropy)
        })?;
        self.hit(rule, Some((start, marker)))
    }

    /// `aws configure set aws_secret_access_key VALUE`: a secret AWS name
    /// and its value separated by spaces only (`=` and `:` forms are read by
    /// [`Scanner::assignment_at`]). `underscore` is the `_` after `aws`.
    fn spaced_aws_assignment_at<'r>(
        &self,
        bytes: &[u8],
        underscore: usize,
        copied: usize,
    ) -> Option<Hit<'r>> {
        let name_start = underscore.checked_sub(3)?;
        // `s` first: one compare for nearly every `_` of a payload.
        if bytes[underscore - 1] | 0x20 != b's'
            || name_start < copied
            || !bytes[name_start..underscore].eq_ignore_ascii_case(b"aws")
            || !starts_token(bytes, name_start)
        {
            return None;
        }
        let name_end = run(bytes, name_start, is_name_byte);
        let kind = classify_name(&bytes[name_start..name_end])?;
        let value = run(bytes, name_end, |byte| byte == b' ' || byte == b'\t');
        if value == name_end {
            return None;
        }
        let quote = match (bytes.get(value), bytes.get(value + 1)) {
            (Some(b'\''), _) => Quote::Single,
            (Some(b'\\'), Some(b'"')) => Quote::Escaped,
            _ => Quote::None,
        };
        let start = value + quote.width();
        let end = value_end(bytes, start, quote);
        let secret = &bytes[start..end];
        let rule = match kind {
            NameKind::AwsSecret if is_aws_secret(secret) => Builtin::AwsSecretKey,
            NameKind::AwsSecret | NameKind::Strong
                if secret.len() >= 16 && looks_secret(secret) && !is_placeholder(secret) =>
            {
                Builtin::SecretAssignment
            }
            _ => return None,
        };
        self.hit(rule, Some((start, end)))
    }
}

fn user_at<'r>(user: &'r [UserPattern], bytes: &[u8], at: usize) -> Option<Hit<'r>> {
    for pattern in user {
        let prefix = pattern.prefix.as_bytes();
        if !bytes[at..].starts_with(prefix) || in_marker(bytes, at) {
            continue;
        }
        let body = at + prefix.len();
        let end = run(bytes, body, |byte| pattern.allows(byte));
        let length = end - body;
        if length >= pattern.min_len && length <= pattern.max_len {
            return Some(Hit {
                start: at,
                end,
                rule: RuleName::User(&pattern.name),
            });
        }
    }
    None
}

impl Scanner {
    /// `scheme://user:password@host`: replaces the password. Also the path of
    /// a Slack webhook URL.
    fn url_at<'r>(&self, bytes: &[u8], colon: usize) -> Option<Hit<'r>> {
        let scheme_start = colon
            - run_back(bytes, colon, |byte| {
                byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'.' | b'-')
            });
        if colon - scheme_start < 2 || !bytes[scheme_start].is_ascii_alphabetic() {
            return None;
        }
        let authority = colon + 3;
        if self.enabled(Builtin::SlackWebhook)
            && bytes[authority..].starts_with(b"hooks.slack.com/services/")
        {
            let path = authority + "hooks.slack.com/services/".len();
            let end = run(bytes, path, |byte| {
                byte.is_ascii_alphanumeric() || matches!(byte, b'/' | b'_' | b'-')
            });
            return (end - path >= 20).then_some(Hit {
                start: path,
                end,
                rule: RuleName::Builtin(Builtin::SlackWebhook),
            });
        }
        if !self.enabled(Builtin::UrlPassword) {
            return None;
        }
        // The user-info ends at the first `@`; it may not hold anything that
        // ends a URL in text. A password may hold `/` (base64 ones do), the
        // user name may not.
        let limit = bytes.len().min(authority + 256);
        let mut password_start = None;
        let mut at = authority;
        while at < limit {
            match bytes[at] {
                b'@' => break,
                b':' if password_start.is_none() => password_start = Some(at + 1),
                b'/' | b'?' | b'#' if password_start.is_none() => return None,
                byte if ends_url(byte) => return None,
                _ => {}
            }
            at += 1;
        }
        let start = password_start?;
        if at >= limit || at == start {
            return None;
        }
        let password = &bytes[start..at];
        // `http://localhost:3000/@vite/client`: a port and a path, no password.
        let first_segment = password
            .split(|&byte| byte == b'/')
            .next()
            .unwrap_or_default();
        if is_placeholder(password)
            || (password.contains(&b'/') && first_segment.iter().all(u8::is_ascii_digit))
        {
            return None;
        }
        Some(Hit {
            start,
            end: at,
            rule: RuleName::Builtin(Builtin::UrlPassword),
        })
    }

    /// `NAME=value`, `NAME: value`, `"name": "value"`, `NAME => 'value'`: the
    /// separator is at `at`; the name is read backwards from it.
    fn assignment_at<'r>(&self, bytes: &[u8], at: usize, copied: usize) -> Option<Hit<'r>> {
        let separator = bytes[at];
        let before = at.checked_sub(1).map(|index| bytes[index]);
        let mut value = at + 1;
        match (separator, bytes.get(value)) {
            // Comparisons and paths, not assignments.
            (b'=', Some(b'=')) | (b':', Some(b':')) => return None,
            (b'=', _) if matches!(before, Some(b'=' | b'!' | b'<' | b'>' | b':')) => return None,
            (b'=', Some(b'>')) | (b':', Some(b'=')) => value += 1,
            _ => {}
        }
        // The name: skip spaces and a closing quote, then name bytes.
        let mut name_end = at;
        let spaced_before = bytes[..name_end].ends_with(b" ");
        while name_end > copied && name_end + 4 > at && bytes[name_end - 1] == b' ' {
            name_end -= 1;
        }
        let mut key_quote = Quote::None;
        if name_end > copied && bytes[name_end - 1] == b'"' {
            if name_end >= 2 && bytes[name_end - 2] == b'\\' && !is_escaped(bytes, name_end - 2) {
                key_quote = Quote::Escaped;
                name_end -= 2;
            } else if !is_escaped(bytes, name_end - 1) {
                key_quote = Quote::Raw;
                name_end -= 1;
            } else {
                return None;
            }
        } else if name_end > copied && bytes[name_end - 1] == b'\'' {
            key_quote = Quote::Single;
            name_end -= 1;
        }
        let mut name_start = name_end - run_back(bytes, name_end, is_name_byte);
        // `\nDB_PASSWORD=`: the `n` belongs to the escape, not the name.
        if name_start > 0 && bytes[name_start - 1] == b'\\' && !is_escaped(bytes, name_start - 1) {
            name_start += 1;
        }
        if name_start >= name_end || name_end - name_start > 64 || name_start < copied {
            return None;
        }
        let name = &bytes[name_start..name_end];
        let kind = classify_name(name)?;

        // The value: skip spaces, then a quoted or a bare value.
        let spaced_after = bytes.get(value) == Some(&b' ');
        while value < bytes.len() && matches!(bytes[value], b' ' | b'\t') {
            value += 1;
        }
        let quote = match bytes.get(value) {
            Some(b'"') if key_quote == Quote::Raw && !is_escaped(bytes, value) => Quote::Raw,
            Some(b'\\') if bytes.get(value + 1) == Some(&b'"') => Quote::Escaped,
            Some(b'\'') => Quote::Single,
            Some(_) => Quote::None,
            None => return None,
        };
        let start = value + quote.width();
        let mut scheme_end = start;
        if kind == NameKind::Authorization {
            // Keep the scheme word (`Bearer`, `Basic`) readable.
            let word = run(bytes, start, |byte| byte.is_ascii_alphabetic());
            if word > start && bytes.get(word) == Some(&b' ') {
                scheme_end = word + 1;
            }
        }
        let end = value_end(bytes, scheme_end, quote);
        if end <= scheme_end {
            return None;
        }
        // `password = getpass()`: a call, not a value.
        if quote == Quote::None && bytes.get(end) == Some(&b'(') {
            return None;
        }
        let value_bytes = &bytes[scheme_end..end];
        if is_placeholder(value_bytes) || value_bytes.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // A bare value after `:` or a spaced `=` is prose or code
        // (`password: must be long`, `token = request.token`) unless it looks
        // like a secret itself.
        let prose_like =
            quote == Quote::None && (separator == b':' || spaced_before || spaced_after);
        let rule = match kind {
            NameKind::RegistryAuth if base64_credentials(value_bytes) => Builtin::RegistryAuth,
            NameKind::RegistryAuth => return None,
            NameKind::Authorization => Builtin::AuthorizationHeader,
            _ if kind == NameKind::AwsSecret && is_aws_secret(value_bytes) => Builtin::AwsSecretKey,
            NameKind::Strong | NameKind::AwsSecret if !prose_like || looks_secret(value_bytes) => {
                Builtin::SecretAssignment
            }
            _ if high_entropy(value_bytes) => Builtin::HighEntropy,
            _ => return None,
        };
        // A known token format as the value is named by its own rule.
        let rule = match token_at(bytes, scheme_end) {
            Some((token_end, token_rule)) if token_end == end => token_rule,
            _ => rule,
        };
        self.enabled(rule).then_some(Hit {
            start: scheme_end,
            end,
            rule: RuleName::Builtin(rule),
        })
    }
}

/// The offset of the first anchor byte in `bytes`. Kept out of line and
/// branch-light (one branch per 8 bytes): it is where a payload spends
/// nearly all of its scan, about a third of a nanosecond per byte.
#[inline(never)]
fn next_anchor(anchors: &[u8; 256], bytes: &[u8]) -> Option<usize> {
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let any = chunk
            .iter()
            .fold(0u8, |seen, &byte| seen | anchors[byte as usize]);
        if any != 0 {
            return chunk
                .iter()
                .position(|&byte| anchors[byte as usize] != 0)
                .map(|position| offset + position);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&byte| anchors[byte as usize] != 0)
        .map(|position| offset + position)
}

/// How a key or a value is quoted in the JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    /// Bare.
    None,
    /// A JSON string of the payload itself: `"…"`.
    Raw,
    /// A quote inside a JSON string: `\"…\"`.
    Escaped,
    /// `'…'`.
    Single,
}

impl Quote {
    fn width(self) -> usize {
        match self {
            Quote::None => 0,
            Quote::Raw | Quote::Single => 1,
            Quote::Escaped => 2,
        }
    }
}

/// Where a value that starts at `start` ends. Never past an unescaped `"`
/// (the end of the JSON string), never inside an escape.
fn value_end(bytes: &[u8], start: usize, quote: Quote) -> usize {
    const LONGEST: usize = 4096;
    let limit = bytes.len().min(start + LONGEST);
    let mut at = start;
    while at < limit {
        let byte = bytes[at];
        // A value cut by the shortening ends where the cut was; the marker
        // is hooktrail's text, and the fragment before it is judged by
        // `Scanner::cut_fragment_at` when this value is not a secret.
        if byte == 0xE2 && bytes[at..].starts_with(SHORTENED_MARKER_START.as_bytes()) {
            return at;
        }
        match quote {
            Quote::None => {
                if byte.is_ascii_whitespace()
                    || matches!(
                        byte,
                        b'"' | b'\\'
                            | b'\''
                            | b'`'
                            | b';'
                            | b'&'
                            | b'|'
                            | b','
                            | b')'
                            | b'('
                            | b'}'
                            | b']'
                            | b'<'
                            | b'>'
                    )
                {
                    return at;
                }
            }
            Quote::Raw => match byte {
                b'"' => return at,
                b'\\' => at += 1,
                _ => {}
            },
            Quote::Escaped | Quote::Single => match byte {
                b'"' => return at,
                b'\\' if bytes.get(at + 1) == Some(&b'"') => return at,
                // `\\\"` in the text is `\"` once decoded: an escaped quote
                // of the inner JSON, part of the value. Skip the decoded
                // backslash and the escape after it.
                b'\\'
                    if quote == Quote::Escaped
                        && bytes.get(at + 1) == Some(&b'\\')
                        && bytes.get(at + 2) == Some(&b'\\') =>
                {
                    at += 3
                }
                b'\\' => at += 1,
                b'\'' if quote == Quote::Single => return at,
                _ => {}
            },
        }
        at += 1;
    }
    let mut end = at.min(bytes.len());
    // A cap in the middle of a character or after a lone backslash would cut
    // a character or an escape in two.
    while end > start && (bytes[end - 1] == b'\\' || !is_char_start(bytes, end)) {
        end -= 1;
    }
    end
}

fn is_char_start(bytes: &[u8], at: usize) -> bool {
    bytes.get(at).is_none_or(|&byte| (byte as i8) >= -0x40)
}

/// What a name says about the value assigned to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameKind {
    /// `Authorization`: the value is a scheme and a credential.
    Authorization,
    /// Names an AWS secret key: a 40-character value is `aws-secret-key`.
    AwsSecret,
    /// Certainly a secret (`*_TOKEN`, `*_SECRET`, `*_PASSWORD`, `API_KEY`).
    Strong,
    /// May be a secret (`*_KEY`): only a random-looking value is redacted.
    Weak,
    /// `auth`, `_auth`: a registry's base64 `user:password`, or anything
    /// else (`"auth": "oauth2"`, `auth: required`), which is kept.
    RegistryAuth,
}

fn classify_name(name: &[u8]) -> Option<NameKind> {
    // Called at every `:` and `=` of the text, so it rejects on the last two
    // letters first: every name below ends in one of these pairs, and
    // `"name":`, `size:`, `value =` do not.
    let [.., second_last, last] = name else {
        return None;
    };
    if last | 0x20 == b'h'
        && name.len() <= 5
        && (name.eq_ignore_ascii_case(b"auth") || name.eq_ignore_ascii_case(b"_auth"))
    {
        return Some(NameKind::RegistryAuth);
    }
    if !matches!(
        [second_last.to_ascii_lowercase(), last.to_ascii_lowercase()],
        [b'e', b'n']
            | [b'e', b't']
            | [b'r', b'd']
            | [b'w', b'd']
            | [b's', b'e']
            | [b'e', b'y']
            | [b'l', b's']
            | [b'o', b'n']
            | [b's', b's']
    ) {
        return None;
    }
    let ends = |suffix: &[u8]| {
        name.len() >= suffix.len() && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    let contains = |needle: &[u8]| {
        name.windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle))
    };
    if name.eq_ignore_ascii_case(b"authorization")
        || name.eq_ignore_ascii_case(b"proxy-authorization")
    {
        return Some(NameKind::Authorization);
    }
    const STRONG: [&[u8]; 15] = [
        b"token",
        b"secret",
        b"password",
        b"passwd",
        b"_pass",
        b"passphrase",
        b"_pwd",
        b"apikey",
        b"api_key",
        b"api-key",
        b"secretkey",
        b"secret_key",
        b"privatekey",
        b"private_key",
        b"credentials",
    ];
    let weak = name.len() > 3
        && ends(b"key")
        && (matches!(name[name.len() - 4], b'_' | b'-' | b'.')
            || name[name.len() - 3] == b'K' && name[name.len() - 4].is_ascii_lowercase());
    let strong = STRONG.iter().any(|suffix| ends(suffix));
    if !(strong || weak) {
        return None;
    }
    if contains(b"aws") && contains(b"secret") || name.eq_ignore_ascii_case(b"secretaccesskey") {
        return Some(NameKind::AwsSecret);
    }
    Some(if strong {
        NameKind::Strong
    } else {
        NameKind::Weak
    })
}

/// Values that stand for a secret without being one: references, already
/// redacted text, masks and empty literals.
/// The longest rule name a marker is searched back over: user rule names
/// are short words; a longer run is not a marker's name.
const MARKER_NAME_MAX: usize = 128;

/// Whether `at` lies in the name of a `[REDACTED:name]` marker: a user
/// pattern may match its own rule's name (prefix `acme_`, rule
/// `acme_api_key`), and replacing it again would break the invariant that
/// redacting twice changes nothing (which lets the collector skip its
/// second pass, `fingerprint`).
fn in_marker(bytes: &[u8], at: usize) -> bool {
    const OPEN: &[u8] = b"[REDACTED:";
    let window = &bytes[at.saturating_sub(MARKER_NAME_MAX + OPEN.len())..at];
    memchr::memmem::rfind(window, OPEN)
        .is_some_and(|open| !window[open + OPEN.len()..].contains(&b']'))
}

fn is_placeholder(value: &[u8]) -> bool {
    if value.len() < 3 {
        return true;
    }
    let starts = |prefix: &[u8]| value.starts_with(prefix);
    if starts(b"$")
        || starts(b"%")
        || starts(b"{{")
        || starts(b"<")
        || starts(b"[REDACTED")
        || starts(b"process.env")
        || starts(b"os.environ")
        || starts(b"env.")
    {
        return true;
    }
    if value
        .iter()
        .all(|&byte| matches!(byte, b'*' | b'x' | b'X' | b'.' | b'-' | b'_' | b'#'))
    {
        return true;
    }
    const LITERALS: [&[u8]; 6] = [b"null", b"none", b"true", b"false", b"undefined", b"nil"];
    LITERALS
        .iter()
        .any(|literal| value.eq_ignore_ascii_case(literal))
}

/// A value that looks like a password rather than a word or an expression:
/// at least 8 characters with both letters and digits (`hunter2024!`, not
/// `request.token` or `must`).
fn looks_secret(value: &[u8]) -> bool {
    value.len() >= 8
        && value.iter().any(u8::is_ascii_digit)
        && value.iter().any(u8::is_ascii_alphabetic)
        && !value.iter().any(|&byte| matches!(byte, b'[' | b'{'))
}

/// A random-looking token: 16 to 512 characters of a token alphabet, letters
/// and digits both present, and at least 3 bits of entropy per character.
fn high_entropy(value: &[u8]) -> bool {
    if !(16..=512).contains(&value.len())
        || !value.iter().all(|&byte| {
            byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'=' | b'_' | b'-' | b'.')
        })
        || !value.iter().any(u8::is_ascii_digit)
        || !value.iter().any(u8::is_ascii_alphabetic)
    {
        return false;
    }
    let mut counts = [0u32; 128];
    for &byte in value {
        counts[byte as usize] += 1;
    }
    let length = value.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&count| count > 0)
        .map(|&count| {
            let share = count as f64 / length;
            -share * share.log2()
        })
        .sum();
    entropy >= 3.0
}

fn is_aws_secret(value: &[u8]) -> bool {
    value.len() == 40
        && value
            .iter()
            .all(|&byte| byte.is_ascii_alphanumeric() || matches!(byte, b'/' | b'+'))
}

/// The bytes of a token that a cut may have split: every token charset's
/// (base64 and base64url, with `_` and `-`).
fn fragment_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'+' | b'/')
}

/// The rule of the vendor token `fragment` starts like (a literal prefix
/// and at least one byte after it), whatever its length.
fn token_prefix_rule(fragment: &[u8]) -> Option<Builtin> {
    const PREFIXES: [(&[u8], Builtin); 24] = [
        (b"sk-ant-", Builtin::AnthropicKey),
        (b"sk-", Builtin::OpenaiKey),
        (b"sk_live_", Builtin::StripeKey),
        (b"sk_test_", Builtin::StripeKey),
        (b"rk_live_", Builtin::StripeKey),
        (b"rk_test_", Builtin::StripeKey),
        (b"ghp_", Builtin::GithubToken),
        (b"gho_", Builtin::GithubToken),
        (b"ghu_", Builtin::GithubToken),
        (b"ghs_", Builtin::GithubToken),
        (b"ghr_", Builtin::GithubToken),
        (b"github_pat_", Builtin::GithubToken),
        (b"glpat-", Builtin::GitlabToken),
        (b"xoxa-", Builtin::SlackToken),
        (b"xoxb-", Builtin::SlackToken),
        (b"xoxp-", Builtin::SlackToken),
        (b"xoxr-", Builtin::SlackToken),
        (b"xoxs-", Builtin::SlackToken),
        (b"AKIA", Builtin::AwsAccessKeyId),
        (b"ASIA", Builtin::AwsAccessKeyId),
        (b"ABIA", Builtin::AwsAccessKeyId),
        (b"ACCA", Builtin::AwsAccessKeyId),
        (b"AIza", Builtin::GoogleApiKey),
        (b"eyJ", Builtin::Jwt),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| fragment.len() > prefix.len() && fragment.starts_with(prefix))
        .map(|&(_, rule)| rule)
}

/// `mysql … -pPASSWORD`: the `-p` at `dash` with its value attached (a
/// lone `-p` asks for the password, and `-P 3306` is a port). Only in a
/// command that runs a MySQL client: `mkdir -pv` is no password.
fn mysql_password_at(bytes: &[u8], dash: usize) -> Option<(usize, usize)> {
    if bytes.get(dash + 1) != Some(&b'p') || dash == 0 || !matches!(bytes[dash - 1], b' ' | b'\t') {
        return None;
    }
    let value = dash + 2;
    let quote = match (bytes.get(value), bytes.get(value + 1)) {
        (Some(b'\''), _) => Quote::Single,
        (Some(b'\\'), Some(b'"')) => Quote::Escaped,
        (Some(&byte), _) if byte.is_ascii_graphic() && !matches!(byte, b'"' | b'\\' | b'-') => {
            Quote::None
        }
        _ => return None,
    };
    let start = value + quote.width();
    let end = value_end(bytes, start, quote);
    if end <= start || is_placeholder(&bytes[start..end]) || !in_mysql_command(bytes, dash) {
        return None;
    }
    Some((start, end))
}

/// Whether the shell command holding `at` runs a MySQL or MariaDB client
/// before `at`: a word starting `mysql` or `mariadb` with no `;`, `|`, `&`,
/// line break or end of the JSON string between it and `at`.
fn in_mysql_command(bytes: &[u8], at: usize) -> bool {
    let floor = at.saturating_sub(512);
    let mut index = at;
    while index > floor {
        index -= 1;
        match bytes[index] {
            b';' | b'|' | b'&' => return false,
            b'"' if !is_escaped(bytes, index) => return false,
            b'n' if index > 0 && bytes[index - 1] == b'\\' && !is_escaped(bytes, index - 1) => {
                return false
            }
            b'm' => {
                let word_start = index == 0
                    || !(bytes[index - 1].is_ascii_alphanumeric()
                        || matches!(bytes[index - 1], b'_' | b'-'));
                if word_start
                    && (bytes[index..].starts_with(b"mysql")
                        || bytes[index..].starts_with(b"mariadb"))
                {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// A byte of standard or URL-safe base64 (padding aside).
fn base64_value(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'-' | b'_')
}

/// Decodes base64 (standard or URL-safe, padding optional) up to `limit`
/// output bytes; `None` when `text` is not base64.
fn base64_decode(text: &[u8], limit: usize) -> Option<Vec<u8>> {
    let digits = text
        .strip_suffix(b"==")
        .or(text.strip_suffix(b"="))
        .unwrap_or(text);
    let mut out = Vec::with_capacity(limit.min(digits.len()));
    let mut bits = 0u32;
    let mut count = 0;
    for &byte in digits {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        bits = bits << 6 | u32::from(sextet);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            if out.len() >= limit {
                break;
            }
        }
    }
    Some(out)
}

/// A base64 PEM private key: `LS0tLS1CRUdJTi…`, which is
/// `-----BEGIN … PRIVATE KEY-----` encoded.
fn base64_private_key(value: &[u8]) -> bool {
    if !value.starts_with(b"LS0tLS1CRUdJTi") {
        return false;
    }
    let head = &value[..value.len().min(96) / 4 * 4];
    base64_decode(head, 72).is_some_and(|header| {
        let label = header.get(10..).unwrap_or_default();
        let label = &label[..find(label, b"-----").unwrap_or(label.len())];
        find(label, b"PRIVATE KEY").is_some()
    })
}

/// A base64 `user:password` pair (what Docker writes as a registry's
/// `auth`): printable text with a non-empty name and password.
fn base64_credentials(value: &[u8]) -> bool {
    if !(8..=1024).contains(&value.len()) {
        return false;
    }
    let Some(decoded) = base64_decode(value, 1024) else {
        return false;
    };
    let printable = decoded.iter().all(|byte| (0x20..0x7f).contains(byte));
    let colon = decoded.iter().position(|&byte| byte == b':');
    printable && colon.is_some_and(|colon| colon > 0 && colon + 1 < decoded.len())
}

/// Whether a token may start at `at`: the byte before is not part of a word,
/// or it is the letter of a JSON escape (`\n`, `\t`, `\u001b`).
fn starts_token(bytes: &[u8], at: usize) -> bool {
    let Some(&before) = at.checked_sub(1).and_then(|index| bytes.get(index)) else {
        return true;
    };
    // `task-sk-…` and `my_ghp_…` are inside a slug or a name.
    if !(before.is_ascii_alphanumeric() || before == b'_' || before == b'-') {
        return true;
    }
    // `\n`, `\t`, `\r`, `\b`, `\f` directly before.
    if at >= 2 && bytes[at - 2] == b'\\' && !is_escaped(bytes, at - 2) {
        return matches!(before, b'n' | b't' | b'r' | b'b' | b'f');
    }
    // `\uXXXX` directly before.
    at >= 6
        && bytes[at - 6] == b'\\'
        && bytes[at - 5] == b'u'
        && bytes[at - 4..at].iter().all(u8::is_ascii_hexdigit)
        && !is_escaped(bytes, at - 6)
}

/// Whether the byte at `at` is escaped: an odd number of backslashes right
/// before it.
fn is_escaped(bytes: &[u8], at: usize) -> bool {
    run_back(bytes, at, |byte| byte == b'\\') % 2 == 1
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.')
}

fn ends_url(byte: u8) -> bool {
    byte.is_ascii_whitespace() || matches!(byte, b'"' | b'\\' | b'\'' | b'<' | b'>' | b'`')
}

/// The end of the run of bytes from `start` that `allowed` accepts.
fn run(bytes: &[u8], start: usize, allowed: impl Fn(u8) -> bool) -> usize {
    let mut end = start;
    while end < bytes.len() && allowed(bytes[end]) {
        end += 1;
    }
    end
}

/// The length of the run of bytes ending just before `end` that `allowed`
/// accepts.
fn run_back(bytes: &[u8], end: usize, allowed: impl Fn(u8) -> bool) -> usize {
    bytes[..end]
        .iter()
        .rev()
        .take_while(|&&byte| allowed(byte))
        .count()
}

fn alphanumeric(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
}

fn base64url(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// Where a token anchored at `at` would start (see the anchor table in
/// [`Scanner::new`]), when the bytes around the anchor fit a prefix.
fn token_start(bytes: &[u8], at: usize) -> Option<usize> {
    let back = |distance: usize, literal: &[u8]| -> Option<usize> {
        let start = at.checked_sub(distance)?;
        bytes[start..].starts_with(literal).then_some(start)
    };
    match bytes[at] {
        b'k' => back(1, b"sk").or_else(|| back(1, b"rk")),
        b'_' => back(3, b"gh").or_else(|| back(6, b"github_")),
        b'-' => back(5, b"glpat-"),
        b'x' => bytes[at..].starts_with(b"xox").then_some(at),
        b'A' => Some(at),
        b'J' => back(2, b"eyJ").or_else(|| back(11, b"LS0tLS1CRUdJ")),
        _ => None,
    }
}

/// The vendor token formats that start with a literal prefix. `at` is at a
/// token boundary. Returns the token's end and rule.
fn token_at(bytes: &[u8], at: usize) -> Option<(usize, Builtin)> {
    let rest = &bytes[at..];
    let body = |prefix: &[u8], allowed: fn(u8) -> bool, min: usize| -> Option<usize> {
        if !rest.starts_with(prefix) {
            return None;
        }
        let start = at + prefix.len();
        let end = run(bytes, start, allowed);
        (end - start >= min).then_some(end)
    };
    match rest.first()? {
        b's' => {
            if let Some(end) = body(b"sk-ant-", base64url, 20) {
                return Some((end, Builtin::AnthropicKey));
            }
            if let Some(end) = body(b"sk-", base64url, 20) {
                // Mixed case and digits: a long slug such as
                // `sk-learn-compatible-estimators` is not a key.
                let token = &bytes[at + 3..end];
                let mixed = token.iter().any(u8::is_ascii_digit)
                    && token.iter().any(u8::is_ascii_uppercase)
                    && token.iter().any(u8::is_ascii_lowercase);
                return mixed.then_some((end, Builtin::OpenaiKey));
            }
            body(b"sk_live_", alphanumeric, 16)
                .or_else(|| body(b"sk_test_", alphanumeric, 16))
                .map(|end| (end, Builtin::StripeKey))
        }
        b'r' => body(b"rk_live_", alphanumeric, 16)
            .or_else(|| body(b"rk_test_", alphanumeric, 16))
            .map(|end| (end, Builtin::StripeKey)),
        b'g' => {
            if rest.len() > 4
                && rest[1] == b'h'
                && matches!(rest[2], b'p' | b'o' | b'u' | b's' | b'r')
                && rest[3] == b'_'
            {
                let end = run(bytes, at + 4, |byte| byte.is_ascii_alphanumeric());
                return (end - at - 4 >= 30).then_some((end, Builtin::GithubToken));
            }
            body(
                b"github_pat_",
                |byte| byte.is_ascii_alphanumeric() || byte == b'_',
                22,
            )
            .map(|end| (end, Builtin::GithubToken))
            .or_else(|| body(b"glpat-", base64url, 20).map(|end| (end, Builtin::GitlabToken)))
        }
        b'x' => {
            if rest.len() > 5
                && rest.starts_with(b"xox")
                && matches!(rest[3], b'a' | b'b' | b'p' | b'r' | b's')
                && rest[4] == b'-'
            {
                let end = run(bytes, at + 5, |byte| {
                    byte.is_ascii_alphanumeric() || byte == b'-'
                });
                let token = &bytes[at + 5..end];
                let real = token.len() >= 10 && token.iter().any(u8::is_ascii_digit);
                return real.then_some((end, Builtin::SlackToken));
            }
            None
        }
        b'A' => {
            if rest.len() >= 20
                && (rest.starts_with(b"AKIA")
                    || rest.starts_with(b"ASIA")
                    || rest.starts_with(b"ABIA")
                    || rest.starts_with(b"ACCA"))
            {
                let end = run(bytes, at + 4, |byte| {
                    byte.is_ascii_uppercase() || byte.is_ascii_digit()
                });
                let after_ok = bytes
                    .get(end)
                    .is_none_or(|byte| !byte.is_ascii_alphanumeric());
                return (end - at == 20 && after_ok).then_some((end, Builtin::AwsAccessKeyId));
            }
            let end = body(b"AIza", base64url, 35)?;
            (end - at == 39).then_some((end, Builtin::GoogleApiKey))
        }
        b'e' => jwt_at(bytes, at).map(|end| (end, Builtin::Jwt)),
        // A base64 PEM private key (kubeconfig's `client-key-data`, a
        // Kubernetes secret's `tls.key`), redacted whole however long.
        b'L' => {
            let end = run(bytes, at, |byte| base64_value(byte) || byte == b'=');
            base64_private_key(&bytes[at..end]).then_some((end, Builtin::PrivateKey))
        }
        _ => None,
    }
}

/// `eyJ<header>.eyJ<claims>.<signature>`: base64url JSON header and claims.
fn jwt_at(bytes: &[u8], at: usize) -> Option<usize> {
    let part = |start: usize, min: usize| -> Option<usize> {
        let end = run(bytes, start, base64url);
        (end - start >= min).then_some(end)
    };
    if !bytes[at..].starts_with(b"eyJ") {
        return None;
    }
    let header_end = part(at, 10)?;
    if bytes.get(header_end) != Some(&b'.') || !bytes[header_end + 1..].starts_with(b"eyJ") {
        return None;
    }
    let claims_end = part(header_end + 1, 10)?;
    if bytes.get(claims_end) != Some(&b'.') {
        return None;
    }
    // An unsigned token (`alg: none`) ends at its second dot.
    Some(run(bytes, claims_end + 1, base64url))
}

/// `-----BEGIN … PRIVATE KEY-----` through the matching `-----END …-----`,
/// within the current JSON string. A block cut short (no END) is redacted to
/// the end of the string.
fn private_key_at(bytes: &[u8], at: usize) -> Option<usize> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    if !bytes[at..].starts_with(BEGIN) {
        return None;
    }
    let label_start = at + BEGIN.len();
    let label_end = label_start
        + find(
            &bytes[label_start..bytes.len().min(label_start + 64)],
            b"-----",
        )?;
    let label = &bytes[label_start..label_end];
    // Certificates and public keys are not secrets.
    find(label, b"PRIVATE KEY")?;
    let string_end = string_end(bytes, label_end);
    let body = &bytes[label_end..string_end];
    let Some(end_line) = find(body, b"-----END ") else {
        return Some(string_end);
    };
    let closing_start = label_end + end_line + "-----END ".len();
    let closing = &bytes[closing_start..string_end.min(closing_start + 80)];
    Some(match find(closing, b"-----") {
        Some(offset) => closing_start + offset + 5,
        None => string_end,
    })
}

/// The index of the next unescaped `"` at or after `from` (the end of the
/// JSON string holding `from`), or the end of the text.
fn string_end(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => return at,
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
    bytes.len()
}

/// The first index of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while from + needle.len() <= haystack.len() {
        let offset = haystack[from..].iter().position(|&byte| byte == first)?;
        let at = from + offset;
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::rules::parse_charset;
    use super::*;

    fn redact(text: &str) -> String {
        redact_with(text, &[], &[])
    }

    fn redact_with(text: &str, disabled: &[Builtin], user: &[UserPattern]) -> String {
        let scanner = Scanner::new(disabled, user);
        let out = scanner
            .scan(text, user, |_| {})
            .unwrap_or_else(|| text.to_owned());
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap_or_else(|error| panic!("{error}: {out}"));
        out
    }

    #[test]
    fn payload_keys_are_assignments_too() {
        assert_eq!(
            redact(r#"{"password":"hunter2","user":"bob"}"#),
            r#"{"password":"[REDACTED:secret-assignment]","user":"bob"}"#
        );
        // JSON quoted inside a string, with an escaped quote in the value.
        assert_eq!(
            redact(r#"{"c":"{\"api_key\": \"ab\\\"cd1234\", \"n\": 1}"}"#),
            r#"{"c":"{\"api_key\": \"[REDACTED:secret-assignment]\", \"n\": 1}"}"#
        );
        // Numbers, references and comparisons are not secrets.
        for text in [
            r#"{"max_token":5,"password":null}"#,
            r#"{"c":"TOKEN=$TOKEN; if token == other"}"#,
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn escapes_are_boundaries_and_never_cut() {
        assert_eq!(
            redact(r#"{"p":"a\nAKIAABCDEFGHIJKLMNOP\tb"}"#),
            r#"{"p":"a\n[REDACTED:aws-access-key-id]\tb"}"#
        );
        assert_eq!(
            redact(r#"{"p":"x\u001bghp_0123456789abcdefghijABCDEFGHIJklmnop"}"#),
            r#"{"p":"x\u001b[REDACTED:github-token]"}"#
        );
        // A PEM block cut short by the end of its string stays inside it.
        assert_eq!(
            redact(r#"{"p":"-----BEGIN PRIVATE KEY-----\nMIIEvQ\\\"x","q":"y"}"#),
            r#"{"p":"[REDACTED:private-key]","q":"y"}"#
        );
        // A value at the end of the text, a lone separator.
        for text in [r#"{"a":"x="}"#, r#"{"password":"#, "token:", "="] {
            let scanner = Scanner::new(&[], &[]);
            let _ = scanner.scan(text, &[], |_| {});
        }
    }

    #[test]
    fn user_patterns_and_disabled_rules() {
        let user = [UserPattern {
            name: "acme".to_owned(),
            prefix: "acme_".to_owned(),
            chars: parse_charset("a-z0-9").unwrap(),
            min_len: 10,
            max_len: 20,
            chars_text: "a-z0-9".to_owned(),
        }];
        assert_eq!(
            redact_with(
                r#"{"p":"use acme_0123456789ab now, not acme_short"}"#,
                &[],
                &user
            ),
            r#"{"p":"use [REDACTED:acme] now, not acme_short"}"#
        );
        let jwt = r#"{"p":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijklmnop"}"#;
        assert_eq!(redact(jwt), r#"{"p":"[REDACTED:jwt]"}"#);
        assert_eq!(redact_with(jwt, &[Builtin::Jwt], &[]), jwt);
    }

    #[test]
    fn a_token_cut_by_the_shortening_is_redacted_and_the_marker_kept() {
        let marker = "…[hooktrail: shortened from 1100000 bytes]";
        for (kept, expected) in [
            ("text ghp_0123456789abcd", "text [REDACTED:github-token]"),
            ("a\\nAKIA0123", "a\\n[REDACTED:aws-access-key-id]"),
            ("blob Zq8v1Xw3Ty5Ur7", "blob [REDACTED:high-entropy]"),
            ("password=hunt", "password=[REDACTED:secret-assignment]"),
            // A cut word of prose, or a token prefix alone, is no secret.
            ("the quick brown fo", "the quick brown fo"),
            ("then ghp_", "then ghp_"),
        ] {
            assert_eq!(
                redact(&format!(r#"{{"p":"{kept}{marker}"}}"#)),
                format!(r#"{{"p":"{expected}{marker}"}}"#)
            );
        }
    }

    #[test]
    fn mysql_passwords_only_in_mysql_commands() {
        assert_eq!(
            redact(r#"{"c":"mysql -h db -uapp -pS3cretPass shop && mkdir -pv out"}"#),
            r#"{"c":"mysql -h db -uapp -p[REDACTED:mysql-password] shop && mkdir -pv out"}"#
        );
        for plain in [
            r#"{"c":"mysql -u root -p shop; mkdir -pv out"}"#,
            r#"{"c":"mkdir -pv out","d":"mysql"}"#,
        ] {
            assert_eq!(redact(plain), plain);
        }
    }

    #[test]
    fn url_passwords_keep_user_and_host() {
        assert_eq!(
            redact(r#"{"p":"psql postgres://app:s3cr3t/x+y@db:5432/prod"}"#),
            r#"{"p":"psql postgres://app:[REDACTED:url-password]@db:5432/prod"}"#
        );
        let plain = r#"{"p":"https://example.com:8443/a/b@c and http://u@h"}"#;
        assert_eq!(redact(plain), plain);
    }
}
