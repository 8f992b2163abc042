//! The rules a redaction names: the built-in detectors ([`Builtin`]), the
//! user's patterns ([`UserPattern`], with the character sets they are
//! written in) and [`RuleName`], either of them without a copy.
//!
//! Both the scanner (`scan.rs`, which runs them) and the config
//! (`settings.rs`, which turns them on and off) depend on this module and it
//! on neither, so the two never import each other.

/// The built-in detectors, in the order their names are listed by `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `sk-ant-…`.
    AnthropicKey,
    /// `sk-…`, `sk-proj-…`.
    OpenaiKey,
    /// `AKIA…`, `ASIA…` (16 more upper-case letters and digits).
    AwsAccessKeyId,
    /// 40 base64 characters assigned to a name holding `aws` and `secret`.
    AwsSecretKey,
    /// `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`.
    GithubToken,
    /// `glpat-…`.
    GitlabToken,
    /// `xoxa-`, `xoxb-`, `xoxp-`, `xoxr-`, `xoxs-`.
    SlackToken,
    /// `https://hooks.slack.com/services/…`.
    SlackWebhook,
    /// `sk_live_`, `sk_test_`, `rk_live_`, `rk_test_`.
    StripeKey,
    /// `AIza` and 35 more characters.
    GoogleApiKey,
    /// `eyJ….eyJ….signature`.
    Jwt,
    /// `-----BEGIN … PRIVATE KEY-----` through its `-----END …-----`.
    PrivateKey,
    /// The credential of an `Authorization: Bearer|Basic …` header.
    AuthorizationHeader,
    /// A base64 `user:password` pair in an `auth` or `_auth` field: the
    /// `auths` of Docker's and Podman's `config.json`, npm's `_auth`.
    RegistryAuth,
    /// The password of `scheme://user:password@host`.
    UrlPassword,
    /// The password of `mysql -pPASSWORD` (and `mysqldump`, `mariadb`, …).
    MysqlPassword,
    /// The value of `NAME=value`, `NAME: value` or `"name": "value"` whose
    /// name says it is a secret (`*_TOKEN`, `*_SECRET`, `*_PASSWORD`, …).
    SecretAssignment,
    /// A random-looking value assigned to a name that only may be a secret
    /// (`*_KEY`).
    HighEntropy,
}

impl Builtin {
    /// Every built-in rule.
    pub const ALL: [Builtin; 18] = [
        Builtin::AnthropicKey,
        Builtin::OpenaiKey,
        Builtin::AwsAccessKeyId,
        Builtin::AwsSecretKey,
        Builtin::GithubToken,
        Builtin::GitlabToken,
        Builtin::SlackToken,
        Builtin::SlackWebhook,
        Builtin::StripeKey,
        Builtin::GoogleApiKey,
        Builtin::Jwt,
        Builtin::PrivateKey,
        Builtin::AuthorizationHeader,
        Builtin::RegistryAuth,
        Builtin::UrlPassword,
        Builtin::MysqlPassword,
        Builtin::SecretAssignment,
        Builtin::HighEntropy,
    ];

    /// The rule's name, as it appears in `[REDACTED:name]` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::AnthropicKey => "anthropic-key",
            Builtin::OpenaiKey => "openai-key",
            Builtin::AwsAccessKeyId => "aws-access-key-id",
            Builtin::AwsSecretKey => "aws-secret-key",
            Builtin::GithubToken => "github-token",
            Builtin::GitlabToken => "gitlab-token",
            Builtin::SlackToken => "slack-token",
            Builtin::SlackWebhook => "slack-webhook",
            Builtin::StripeKey => "stripe-key",
            Builtin::GoogleApiKey => "google-api-key",
            Builtin::Jwt => "jwt",
            Builtin::PrivateKey => "private-key",
            Builtin::AuthorizationHeader => "authorization-header",
            Builtin::RegistryAuth => "registry-auth",
            Builtin::UrlPassword => "url-password",
            Builtin::MysqlPassword => "mysql-password",
            Builtin::SecretAssignment => "secret-assignment",
            Builtin::HighEntropy => "high-entropy",
        }
    }

    /// The rule named `name`, if it is a built-in one.
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|rule| rule.name() == name)
    }

    /// The rule's bit in the scanner's set of disabled rules.
    pub(super) fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// A rule's name without copying it.
#[derive(Debug, Clone, Copy)]
pub enum RuleName<'r> {
    /// A built-in rule.
    Builtin(Builtin),
    /// A user pattern, by its configured name.
    User(&'r str),
}

impl RuleName<'_> {
    /// The name shown in the replacement and the report.
    pub fn as_str(&self) -> &str {
        match self {
            RuleName::Builtin(rule) => rule.name(),
            RuleName::User(name) => name,
        }
    }
}

/// A user pattern: `prefix` followed by `min_len..=max_len` characters of
/// `chars`. Redacted as `[REDACTED:<name>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPattern {
    /// The rule's name in replacements and reports.
    pub name: String,
    /// The literal that starts every match; its first byte is the anchor.
    pub prefix: String,
    /// The characters allowed after the prefix, one bit per byte value.
    pub chars: [u64; 4],
    /// The shortest run after the prefix that counts (shorter is a word).
    pub min_len: usize,
    /// The longest run after the prefix that counts.
    pub max_len: usize,
    /// The character set as written, for `check`.
    pub chars_text: String,
}

impl UserPattern {
    /// Whether `byte` may follow the prefix.
    pub fn allows(&self, byte: u8) -> bool {
        self.chars[(byte >> 6) as usize] & (1 << (byte & 63)) != 0
    }
}

/// Parses a character set written like a regex class body: `A-Za-z0-9_-`
/// (ranges of ASCII characters, a `-` first or last is literal, `\` escapes
/// the next character).
pub fn parse_charset(text: &str) -> Result<[u64; 4], String> {
    let mut set = [0u64; 4];
    let bytes = text.as_bytes();
    if !text.is_ascii() || bytes.is_empty() {
        return Err(format!("\"chars\" {text:?} must be non-empty ASCII"));
    }
    let mut at = 0;
    while at < bytes.len() {
        let mut low = bytes[at];
        if low == b'\\' && at + 1 < bytes.len() {
            at += 1;
            low = bytes[at];
        }
        let mut high = low;
        if at + 2 < bytes.len() && bytes[at + 1] == b'-' {
            high = bytes[at + 2];
            at += 2;
            if high < low {
                return Err(format!(
                    "\"chars\" {text:?}: range {}-{} is backwards",
                    low as char, high as char
                ));
            }
        }
        for byte in low..=high {
            // A set must never take the bytes that end a JSON string or an
            // escape: a match could then leave the string it started in.
            if byte != b'"' && byte != b'\\' {
                set[(byte >> 6) as usize] |= 1 << (byte & 63);
            }
        }
        at += 1;
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charset_ranges_and_literal_dash() {
        let set = parse_charset("A-Za-z0-9_-").unwrap();
        let allows = |byte: u8| set[(byte >> 6) as usize] & (1 << (byte & 63)) != 0;
        assert!(allows(b'Q') && allows(b'q') && allows(b'7') && allows(b'_') && allows(b'-'));
        assert!(!allows(b'.') && !allows(b' '));
        let quotes = parse_charset(" -~").unwrap();
        let allows = |byte: u8| quotes[(byte >> 6) as usize] & (1 << (byte & 63)) != 0;
        assert!(!allows(b'"') && !allows(b'\\') && allows(b'~'));
        assert!(parse_charset("z-a").is_err());
    }
}
