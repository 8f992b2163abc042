//! The redaction corpus (issue 12): every built-in credential format,
//! generated here from a fixed seed (never a real key), in the surroundings a
//! hook sees it in: a prompt, a shell command, a `.env` file read back, JSON
//! quoted inside a string, a multi-line text; plus the real Claude Code
//! fixtures and a list of look-alikes as the no-false-positive corpus.
//!
//! It prints recall and false positives per rule (`cargo test -p
//! hooktrail-shared --test redaction_corpus -- --nocapture`) and asserts 100%
//! recall on the built-in formats and 0 changes to the fixtures apart from
//! planted secrets.
#![allow(
    clippy::print_stdout,
    reason = "the corpus prints its recall and false-positive table"
)]

use std::collections::BTreeMap;

use hooktrail_shared::redact::{Privacy, Redactor, Settings};
use serde_json::{json, Value};

/// A deterministic generator (xorshift64*), so the corpus is the same on
/// every run and holds no real key.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick(&mut self, alphabet: &str, length: usize) -> String {
        let alphabet = alphabet.as_bytes();
        (0..length)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize] as char)
            .collect()
    }

    /// Random text of `alphabet` that holds a digit, an upper- and a
    /// lower-case letter (as real keys of these alphabets do).
    fn mixed(&mut self, alphabet: &str, length: usize) -> String {
        loop {
            let text = self.pick(alphabet, length);
            let has = |test: fn(&u8) -> bool| text.as_bytes().iter().any(test);
            if has(u8::is_ascii_digit) && has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase)
            {
                return text;
            }
        }
    }
}

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const UPPER_DIGITS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const HEX: &str = "0123456789abcdef";

/// One planted secret.
struct Case {
    /// The rule expected to name it.
    rule: &'static str,
    /// What must not survive redaction.
    secret: String,
    /// The environment variable a person would keep it in.
    variable: &'static str,
    /// How it reads in prose; `None` when only its name makes it a secret
    /// (then prose uses `variable=secret`).
    bare: bool,
}

fn base64url_no_pad(bytes: &[u8]) -> String {
    base64_with(B64URL, bytes)
}

/// Standard base64 with its `=` padding, as Docker and kubectl write it.
fn base64_padded(bytes: &[u8]) -> String {
    let mut out = base64_with(B64, bytes);
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}

fn base64_with(alphabet: &str, bytes: &[u8]) -> String {
    let alphabet = alphabet.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, &b| acc << 8 | b as u32) << (8 * (3 - chunk.len()));
        for index in 0..=chunk.len() {
            out.push(alphabet[((n >> (18 - 6 * index)) & 63) as usize] as char);
        }
    }
    out
}

/// A PEM private key of random lines, as `ssh-keygen` or `openssl` would
/// lay it out.
fn pem_private_key(random: &mut Random, label: &str) -> String {
    let lines: Vec<String> = (0..6).map(|_| random.mixed(B64, 64)).collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----",
        lines.join("\n")
    )
}

fn cases() -> Vec<Case> {
    let mut random = Random(0x5EED_1234_ABCD_0042);
    let mut cases = Vec::new();
    let mut add = |rule, secret: String, variable, bare| {
        cases.push(Case {
            rule,
            secret,
            variable,
            bare,
        })
    };
    for _ in 0..3 {
        add(
            "anthropic-key",
            format!("sk-ant-api03-{}AA", random.mixed(B64URL, 93)),
            "ANTHROPIC_API_KEY",
            true,
        );
        add(
            "openai-key",
            format!("sk-{}", random.mixed(ALNUM, 48)),
            "OPENAI_API_KEY",
            true,
        );
        add(
            "openai-key",
            format!("sk-proj-{}", random.mixed(B64URL, 120)),
            "OPENAI_API_KEY",
            true,
        );
        add(
            "aws-access-key-id",
            format!("AKIA{}", random.pick(UPPER_DIGITS, 16)),
            "AWS_ACCESS_KEY_ID",
            true,
        );
        add(
            "aws-access-key-id",
            format!("ASIA{}", random.pick(UPPER_DIGITS, 16)),
            "AWS_ACCESS_KEY_ID",
            true,
        );
        add(
            "aws-secret-key",
            random.mixed(B64, 40),
            "AWS_SECRET_ACCESS_KEY",
            false,
        );
        for prefix in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"] {
            add(
                "github-token",
                format!("{prefix}{}", random.mixed(ALNUM, 36)),
                "GITHUB_TOKEN",
                true,
            );
        }
        add(
            "github-token",
            format!(
                "github_pat_{}_{}",
                random.mixed(ALNUM, 22),
                random.mixed(ALNUM, 59)
            ),
            "GH_TOKEN",
            true,
        );
        add(
            "gitlab-token",
            format!("glpat-{}", random.mixed(B64URL, 20)),
            "GITLAB_TOKEN",
            true,
        );
        for prefix in ["xoxb", "xoxp", "xoxa", "xoxr"] {
            add(
                "slack-token",
                format!(
                    "{prefix}-{}-{}-{}",
                    random.pick("0123456789", 12),
                    random.pick("0123456789", 13),
                    random.mixed(ALNUM, 24)
                ),
                "SLACK_BOT_TOKEN",
                true,
            );
        }
        add(
            "slack-webhook",
            format!(
                "T{}/B{}/{}",
                random.pick(UPPER_DIGITS, 8),
                random.pick(UPPER_DIGITS, 10),
                random.mixed(ALNUM, 24)
            ),
            "SLACK_WEBHOOK_URL",
            true,
        );
        for prefix in ["sk_live_", "rk_live_", "sk_test_"] {
            add(
                "stripe-key",
                format!("{prefix}{}", random.mixed(ALNUM, 24)),
                "STRIPE_SECRET_KEY",
                true,
            );
        }
        add(
            "google-api-key",
            format!("AIza{}", random.mixed(B64URL, 35)),
            "GOOGLE_API_KEY",
            true,
        );
        let header = base64url_no_pad(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = base64url_no_pad(
            format!(
                r#"{{"sub":"{}","name":"Test User","iat":1700000000}}"#,
                random.pick(HEX, 12)
            )
            .as_bytes(),
        );
        add(
            "jwt",
            format!("{header}.{claims}.{}", random.mixed(B64URL, 43)),
            "ID_TOKEN",
            true,
        );
        for label in [
            "RSA PRIVATE KEY",
            "OPENSSH PRIVATE KEY",
            "PRIVATE KEY",
            "EC PRIVATE KEY",
        ] {
            add(
                "private-key",
                pem_private_key(&mut random, label),
                "SSH_KEY",
                true,
            );
        }
        add(
            "authorization-header",
            random.mixed(B64URL, 40),
            "AUTH",
            false,
        );
        add(
            "url-password",
            random.mixed(ALNUM, 20),
            "DATABASE_URL",
            false,
        );
        add(
            "secret-assignment",
            format!(
                "{}!{}",
                random.mixed(ALNUM, 10),
                random.pick("0123456789", 3)
            ),
            "DB_PASSWORD",
            false,
        );
        add(
            "secret-assignment",
            random.mixed(ALNUM, 32),
            "CLIENT_SECRET",
            false,
        );
        add(
            "secret-assignment",
            random.mixed(B64URL, 28),
            "SESSION_TOKEN",
            false,
        );
        add("high-entropy", random.pick(HEX, 40), "SIGNING_KEY", false);
    }
    // Issue 16, item 24: formats no rule covered before.
    let mut random = Random(0x0016_0024_5EED_0001);
    for _ in 0..3 {
        add(
            "secret-assignment",
            format!("{}!", random.mixed(ALNUM, 12)),
            "DB_PASS",
            false,
        );
        add(
            "registry-auth",
            base64_padded(format!("deploy:{}", random.mixed(ALNUM, 20)).as_bytes()),
            "auth",
            false,
        );
        let key = pem_private_key(&mut random, "RSA PRIVATE KEY");
        add(
            "private-key",
            base64_padded(key.as_bytes()),
            "client-key-data",
            false,
        );
    }
    cases
}

/// The plain text (before JSON escaping) each surrounding puts a case in;
/// every one must lose the secret.
fn surroundings(case: &Case) -> Vec<(&'static str, String)> {
    let secret = &case.secret;
    let variable = case.variable;
    // How the secret is written where a person would write it.
    let written = match case.rule {
        "authorization-header" => format!("Authorization: Bearer {secret}"),
        "url-password" => format!("postgres://app:{secret}@db.internal:5432/prod"),
        "slack-webhook" => format!("https://hooks.slack.com/services/{secret}"),
        _ if case.bare => secret.clone(),
        _ => format!("{variable}={secret}"),
    };
    let assignment = match case.rule {
        "authorization-header" => format!("API_AUTH_HEADER=\"Authorization: Bearer {secret}\""),
        "url-password" | "slack-webhook" => format!("{variable}={written}"),
        _ => format!("{variable}={secret}"),
    };
    let shell = match case.rule {
        "authorization-header" => {
            format!("curl -sS -H 'Authorization: Bearer {secret}' https://api.example.com/v1/items")
        }
        "private-key" => {
            format!("printf '%s\\n' '{secret}' > ~/.ssh/id_test && chmod 600 ~/.ssh/id_test")
        }
        _ => format!("export {assignment} && ./deploy.sh --env prod"),
    };
    vec![
        ("prompt", format!("Can you check why this fails? I set it up with {written} and the call returns 401.")),
        ("shell", shell),
        (
            "env-file",
            format!("# generated by setup\nNODE_ENV=production\n{assignment}\nPORT=8080\n"),
        ),
        ("read-numbered", format!("     1\t# settings\n     2\t{assignment}\n     3\tDEBUG=false\n")),
        ("quoted-json", json!({"config": {"name": variable, "value": written}}).to_string()),
        ("line-start", format!("first line\n{written}\nlast line")),
        ("yaml", format!("services:\n  api:\n    environment:\n      - {assignment}\n")),
    ]
}

/// Hook payloads for one surrounding text: as a prompt, as a Bash command, as
/// the content of a file read back.
fn payloads(text: &str) -> Vec<String> {
    vec![
        json!({"session_id": "s", "hook_event_name": "UserPromptSubmit", "prompt": text}).to_string(),
        json!({"session_id": "s", "hook_event_name": "PreToolUse", "tool_name": "Bash",
               "tool_input": {"command": text, "description": "run it"}, "tool_use_id": "toolu_1"})
        .to_string(),
        json!({"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Read",
               "tool_input": {"file_path": "/home/dev/project/config/settings.txt"},
               "tool_response": {"type": "text", "file": {"filePath": "/home/dev/project/config/settings.txt",
                                 "content": text, "numLines": 4}}})
        .to_string(),
    ]
}

/// What a secret leaves behind: itself, and for a multi-line one each of
/// its lines.
fn leaks(case: &Case, output: &str) -> bool {
    let parsed: Value = serde_json::from_str(output).expect("redacted output is valid JSON");
    let mut strings = Vec::new();
    collect_strings(&parsed, &mut strings);
    let all = strings.join("\u{1}");
    case.secret
        .lines()
        .filter(|line| line.len() >= 16 && !line.starts_with("-----"))
        .chain(std::iter::once(case.secret.as_str()))
        .any(|piece| all.contains(piece) || output.contains(piece))
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(text) => out.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| collect_strings(item, out)),
        Value::Object(map) => map.iter().for_each(|(key, item)| {
            out.push(key.clone());
            collect_strings(item, out)
        }),
        _ => {}
    }
}

#[derive(Default)]
struct Tally {
    planted: u32,
    caught: u32,
    named: u32,
    false_positives: u32,
}

fn detectors_only() -> Redactor {
    Redactor::new(Settings {
        privacy: Privacy::Full,
        ..Settings::default()
    })
}

#[test]
fn corpus_recall_is_complete_and_fixtures_come_through_unchanged() {
    let redactor = detectors_only();
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut misses = Vec::new();
    for case in cases() {
        for (surrounding, text) in surroundings(&case) {
            for payload in payloads(&text) {
                let redacted = redactor.redact_payload(&payload);
                let tally = tallies.entry(case.rule).or_default();
                tally.planted += 1;
                if leaks(&case, &redacted.text) {
                    misses.push(format!("{} in {surrounding}: {}", case.rule, redacted.text));
                } else {
                    tally.caught += 1;
                }
                if redacted.report.count(case.rule) > 0 {
                    tally.named += 1;
                }
            }
        }
    }

    // The no-false-positive corpus: the real fixtures, the same with
    // secrets planted into their prompts and commands, and look-alikes.
    let fixtures = fixture_lines();
    let mut changed_fixtures = Vec::new();
    for line in &fixtures {
        let redacted = Redactor::new(Settings::default()).redact_payload(line);
        for (rule, count) in &redacted.report.counts {
            tallies.entry(leak_name(rule)).or_default().false_positives += *count as u32;
        }
        if redacted.text != line.as_str() {
            changed_fixtures.push(line.clone());
        }
    }
    let mut benign_changed = Vec::new();
    for text in LOOK_ALIKES {
        for payload in payloads(text) {
            let redacted = redactor.redact_payload(&payload);
            for (rule, count) in &redacted.report.counts {
                tallies.entry(leak_name(rule)).or_default().false_positives += *count as u32;
            }
            if redacted.text != payload.as_str() {
                benign_changed.push(redacted.text.into_owned());
            }
        }
    }

    println!(
        "\n{:<22} {:>7} {:>7} {:>8} {:>7} {:>6}",
        "rule", "planted", "caught", "recall", "named", "false+"
    );
    for (rule, tally) in &tallies {
        let recall = if tally.planted > 0 {
            format!("{:.1}%", 100.0 * tally.caught as f64 / tally.planted as f64)
        } else {
            "-".to_owned()
        };
        println!(
            "{rule:<22} {:>7} {:>7} {recall:>8} {:>7} {:>6}",
            tally.planted, tally.caught, tally.named, tally.false_positives
        );
    }
    println!(
        "fixture payloads: {} ({} changed); look-alike payloads: {} ({} changed)\n",
        fixtures.len(),
        changed_fixtures.len(),
        LOOK_ALIKES.len() * 3,
        benign_changed.len()
    );
    assert!(
        misses.is_empty(),
        "{} secrets survived:\n{}",
        misses.len(),
        misses.join("\n")
    );
    assert!(
        changed_fixtures.is_empty(),
        "fixtures changed:\n{}",
        changed_fixtures.join("\n")
    );
    assert!(
        benign_changed.is_empty(),
        "look-alikes changed:\n{}",
        benign_changed.join("\n")
    );
}

fn leak_name(rule: &str) -> &'static str {
    // Tally keys are 'static: known rule names, or "other".
    hooktrail_shared::redact::builtin_rule_names()
        .chain(["drop-path", "metadata"])
        .find(|name| *name == rule)
        .unwrap_or("other")
}

fn fixture_lines() -> Vec<String> {
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut lines = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    names.sort();
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        lines.extend(
            text.lines()
                .filter(|line| !line.trim().is_empty())
                .map(str::to_owned),
        );
    }
    assert!(
        lines.len() >= 30,
        "the fixtures are missing from {}",
        directory.display()
    );
    lines
}

/// Text that looks like a secret to a careless detector and is not one.
const LOOK_ALIKES: &[&str] = &[
    "pip install scikit-learn # not sk-learn-compatible-estimators-for-everyone",
    "the task-sk-0123456789abcdefghijABCDEF slug is an id",
    "const token = request.headers.get('x-token');",
    "if password == confirm_password: return True",
    "password: must be at least 12 characters long",
    "API_KEY=${API_KEY} docker compose up",
    "export GITHUB_TOKEN=$(gh auth token)",
    "echo $AWS_SECRET_ACCESS_KEY | wc -c",
    "open http://localhost:3000/@vite/client and https://example.com:8443/a/b@c",
    "git clone https://github.com/org/repo.git && cd repo",
    "session 0563891a-a62b-492e-964e-eab56fe414d5 commit 4f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39",
    "max_tokens: 4096, input_tokens: 120, output_tokens: 55",
    "cache_key: user-profile, primary_key = id",
    "let config = Config::password(); x := 3",
    "TOKEN_URL=https://oauth2.googleapis.com/token",
    "the AKIA prefix marks AWS key ids; AKIASHORT is too short",
    "use eyJhbGciOi as an example of a JWT header start",
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
    "password=\"\" and token='' and secret=null",
    "DB_PASSWORD=*** (masked) SECRET_KEY=xxxxxxxx",
    "redis://user:***@host:6379/0 is how redact_url prints it",
    "curl -H 'Authorization: Bearer $TOKEN' https://api.example.com",
    "{\"key\": \"hooktrail:events\", \"maxlen\": 1000000}",
    "[REDACTED:github-token] was already redacted, DB_PASSWORD=[REDACTED:secret-assignment]",
    // Look-alikes of the rules of issue 16, item 24.
    "aws configure get aws_secret_access_key --profile dev",
    "aws configure set region eu-west-1 && aws configure set output json",
    "put aws_secret_access_key in ~/.aws/credentials and aws_session_token next to it",
    "FIRST_PASS=true BYPASS=1 ./build.sh --second-pass=2",
    "mysql -u root -p shop < dump.sql",
    "mkdir -p build/out && mysql -h db -u app -p -e 'select 1'",
    "docker run -p 3306:3306 -e MYSQL_ROOT_PASSWORD=$PASS mysql:8",
    "mysql -P 3306 -h 127.0.0.1 -u app -p$MYSQL_PWD shop",
    "find . -name '*.sql' -print | xargs mysql -u root",
    "mysqldump shop > dump.sql; gzip -9 dump.sql; tar -pczf out.tgz dump.sql.gz",
    "{\"auths\": {\"ghcr.io\": {}}, \"auth\": \"required-for-admins\", \"credsStore\": \"desktop\"}",
    "auth: basic, auth=oauth2, _auth: none",
    "client-key-data: DATA+OMITTED and client-key-data: REDACTED",
    "client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=",
    "certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=",
];

/// Issue 16, item 24: commands and files that hold a secret no rule
/// covered: `aws configure set`, `mysql -p`, Docker's `config.json`, a
/// kubeconfig, and environment files named by their stage.
#[test]
fn common_secrets_no_rule_covered_are_redacted() {
    let mut random = Random(0x0016_0024_0000_0002);
    let aws_secret = random.mixed(B64, 40);
    let session_token = random.mixed(B64, 300);
    let mysql_password = random.mixed(ALNUM, 14);
    let registry = base64_padded(format!("octo:{}", random.mixed(ALNUM, 24)).as_bytes());
    let key = base64_padded(pem_private_key(&mut random, "EC PRIVATE KEY").as_bytes());
    let certificate = base64_padded(
        b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("aws-secret-key", format!("aws configure set aws_secret_access_key {aws_secret} --profile prod"), &aws_secret),
        ("secret-assignment", format!("aws configure set aws_session_token '{session_token}'"), &session_token),
        ("mysql-password", format!("mysql -h db.internal -u app -p{mysql_password} shop < dump.sql"), &mysql_password),
        ("mysql-password", format!("cd /srv && /usr/bin/mysqldump -uroot -p'{mysql_password}' shop > dump.sql"), &mysql_password),
        ("mysql-password", format!("docker exec db mariadb -uroot -p\"{mysql_password}\" -e 'show databases'"), &mysql_password),
        ("registry-auth", format!("{{\n  \"auths\": {{\n    \"ghcr.io\": {{\n      \"auth\": \"{registry}\"\n    }}\n  }}\n}}\n"), &registry),
        ("registry-auth", format!("//registry.npmjs.org/:_auth={registry}\nalways-auth=true\n"), &registry),
        ("private-key", format!("users:\n- name: admin\n  user:\n    client-certificate-data: {certificate}\n    client-key-data: {key}\n"), &key),
    ];
    let redactor = detectors_only();
    for (rule, text, secret) in &cases {
        for payload in payloads(text) {
            let redacted = redactor.redact_payload(&payload);
            let decoded: Value = serde_json::from_str(&redacted.text).unwrap();
            let mut strings = Vec::new();
            collect_strings(&decoded, &mut strings);
            assert!(
                !strings.join("\n").contains(*secret),
                "{rule} leaked: {}",
                redacted.text
            );
            assert!(
                redacted.report.count(rule) >= 1,
                "{rule} not named: {:?} {}",
                redacted.report,
                redacted.text
            );
        }
    }
    // The certificate next to the key stays.
    let kubeconfig = &cases.last().unwrap().1;
    let payload = &payloads(kubeconfig)[0];
    let redacted = redactor.redact_payload(payload);
    assert!(redacted.text.contains(&certificate), "{}", redacted.text);

    // Environment files named by their stage are dropped like `.env`;
    // files that only mention env are not.
    let redactor = Redactor::new(Settings::default());
    let read = |path: &str| {
        json!({"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Read",
               "tool_input": {"file_path": path},
               "tool_response": {"type": "text", "file": {"filePath": path, "content": "MODE=fast\n"}}})
        .to_string()
    };
    for path in [
        "/srv/app/prod.env",
        "/srv/app/.env.production",
        "/srv/app/config/staging.env",
    ] {
        let payload = read(path);
        let redacted = redactor.redact_payload(&payload);
        assert_eq!(
            redacted.report.count("drop-path"),
            1,
            "{path}: {}",
            redacted.text
        );
    }
    for path in [
        "/srv/app/src/environment.ts",
        "/srv/app/env.go",
        "/srv/app/prod.env.md",
    ] {
        let payload = read(path);
        assert_eq!(
            redactor.redact_payload(&payload).text,
            payload.as_str(),
            "{path}"
        );
    }
}

#[test]
fn redacting_twice_changes_nothing_more() {
    for redactor in [
        Redactor::new(Settings::default()),
        Redactor::new(self_matching_settings()),
    ] {
        for case in cases() {
            for (_, text) in surroundings(&case) {
                for payload in payloads(&text) {
                    let once = redactor.redact_payload(&payload).text.into_owned();
                    let twice = redactor.redact_payload(&once);
                    assert_eq!(twice.text, once.as_str());
                    assert!(twice.report.is_empty(), "{:?}", twice.report);
                }
            }
        }
    }
}

/// A user pattern whose rule name it matches itself (`acme_api_key` starts
/// with its prefix `acme_`), and a disabled built-in rule: the settings
/// where a second pass could find its own replacements.
fn self_matching_settings() -> Settings {
    let config = json!({"patterns": [
        {"name": "acme_api_key", "prefix": "acme_", "chars": "a-z0-9_", "min_len": 4},
        {"name": "k9", "prefix": "k", "chars": "0-9", "min_len": 1}]});
    let (mut origins, mut problems) = (Vec::new(), Vec::new());
    let mut settings = hooktrail_shared::redact::settings::from_config(
        None,
        Some(config),
        None,
        &mut origins,
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    settings.disabled = vec![hooktrail_shared::redact::Builtin::ALL[0]];
    settings
}

#[test]
fn a_user_pattern_never_matches_its_own_marker() {
    let redactor = Redactor::new(self_matching_settings());
    let once = redactor.redact_payload(r#"{"prompt":"token acme_deadbeef01 and k42"}"#);
    assert_eq!(
        once.text,
        r#"{"prompt":"token [REDACTED:acme_api_key] and [REDACTED:k9]"}"#
    );
    let twice = redactor.redact_payload(&once.text);
    assert!(twice.report.is_empty(), "{:?}", twice.report);
}

#[test]
fn planted_secrets_change_a_fixture_only_where_planted() {
    let redactor = Redactor::new(Settings::default());
    let planted = "ghp_0123456789abcdefghijABCDEFGHIJklmnop";
    for line in fixture_lines() {
        let mut value: Value = serde_json::from_str(&line).unwrap();
        let pointer = if value.get("prompt").is_some() {
            "/prompt"
        } else if value.pointer("/tool_input/command").is_some() {
            "/tool_input/command"
        } else {
            continue;
        };
        let original = value.pointer(pointer).unwrap().as_str().unwrap().to_owned();
        *value.pointer_mut(pointer).unwrap() = Value::from(format!("{original} {planted}"));
        let with_secret = serde_json::to_string(&value).unwrap();
        *value.pointer_mut(pointer).unwrap() =
            Value::from(format!("{original} [REDACTED:github-token]"));
        let expected = serde_json::to_string(&value).unwrap();
        let redacted = redactor.redact_payload(&with_secret);
        assert_eq!(redacted.text, expected.as_str());
        assert_eq!(redacted.report.total(), 1);
    }
}

#[test]
fn a_megabyte_payload_with_escapes_is_redacted_whole_and_its_time_is_reported() {
    // A Read of a large file: 1 MB of code-like text with escapes, and five
    // secrets spread through it.
    let mut random = Random(7);
    let mut content = String::new();
    let mut planted = 0;
    while content.len() < 1024 * 1024 {
        content.push_str(
            "    let value = compute(input, &config)?; // see docs: https://example.com/a\n",
        );
        content.push_str("\t\"name\": \"widget\", \"size\": 42, \"tags\": [\"a\", \"b\"],\n");
        if content.len() > planted * 200_000 + 100_000 {
            content.push_str(&format!(
                "AWS_SECRET_ACCESS_KEY={}\n",
                random.mixed(B64, 40)
            ));
            planted += 1;
        }
    }
    let payload = json!({"hook_event_name": "PostToolUse", "tool_name": "Read",
        "tool_input": {"file_path": "/p/src/big.rs"}, "tool_response": {"file": {"content": content}}})
    .to_string();
    // The best of a few runs: the machine is shared, and the figure wanted
    // is the cost of the work, not of a neighbour's build.
    let time = |redactor: &Redactor| {
        (0..5)
            .map(|_| {
                let started = std::time::Instant::now();
                let redacted = redactor.redact_payload(&payload);
                assert_eq!(redacted.report.count("aws-secret-key"), planted as u64);
                started.elapsed()
            })
            .min()
            .unwrap()
    };
    let scan_only = time(&detectors_only());
    let elapsed = time(&Redactor::new(Settings::default()));
    println!(
        "1 MB payload ({} bytes): {:.2} ms at privacy redacted (drop-rule probe and scan), {:.2} ms scan only, {planted} secrets",
        payload.len(),
        elapsed.as_secs_f64() * 1000.0,
        scan_only.as_secs_f64() * 1000.0,
    );
    // Only reported: speed is measured by benchmarks, not asserted on a
    // shared machine (this bound failed 3 runs in 4 under a parallel build).

    // The same text as a producer that escapes every non-ASCII character
    // writes it (`\u00e9`, as Python's `json.dumps` does): each string is
    // then decoded and scanned a second time (issue 16, item 5).
    let escaped = payload.replace("widget", "widg\\u00e9t");
    let redactor = Redactor::new(Settings::default());
    let escaped_elapsed = (0..5)
        .map(|_| {
            let started = std::time::Instant::now();
            let redacted = redactor.redact_payload(&escaped);
            assert_eq!(redacted.report.count("aws-secret-key"), planted as u64);
            started.elapsed()
        })
        .min()
        .unwrap();
    println!(
        "the same with a \\u00e9 escape per line: {:.2} ms",
        escaped_elapsed.as_secs_f64() * 1000.0
    );
}
