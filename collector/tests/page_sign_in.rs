//! The page signs in without the token in its URL (DESIGN §7): the printed
//! link's one-time code is traded once, from the page's own Origin, for a
//! page token; a used or old code is refused; page tokens expire, and all
//! of them stop working when the token is rotated.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hooktrail_collector::{codes_dir, create_code, rotate_token, PageAuth, CODE_LIFETIME};
use hooktrail_testkit::wait_until;
use serde_json::Value;
use support::in_process::{Reply, TestDb, TestServer};

const TOKEN: &str = "a-long-lived-token-of-at-least-32-characters";

fn start(db: &TestDb, token: &str, token_file: Option<PathBuf>, lifetime: Duration) -> TestServer {
    let page = PageAuth {
        codes_dir: Some(codes_dir(&db.dir.path().join("state/http-token"))),
        token_file,
        page_token_lifetime: lifetime,
    };
    TestServer::start_with(db, Some(token), page)
}

fn codes(db: &TestDb) -> PathBuf {
    codes_dir(&db.dir.path().join("state/http-token"))
}

/// `POST /api/page-token` with `code`, from `origin` (none: no header).
fn exchange(server: &TestServer, code: &str, origin: Option<&str>) -> Reply {
    let (host, _) = server.host_and_origin();
    let mut headers = vec![("Host", host.as_str())];
    headers.extend(origin.map(|origin| ("Origin", origin)));
    server.post_with(
        "/api/page-token",
        &headers,
        &serde_json::json!({ "code": code }).to_string(),
    )
}

fn page_token(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer: Value = serde_json::from_str(&reply.body).unwrap();
    answer["token"].as_str().expect("a token").to_owned()
}

fn api_status(server: &TestServer, token: &str) -> u16 {
    let (host, _) = server.host_and_origin();
    let bearer = format!("Bearer {token}");
    server
        .get_with(
            "/api/events",
            &[("Host", &host), ("Authorization", &bearer)],
        )
        .status
}

fn backdate(path: &Path, by: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - by).unwrap();
}

#[test]
fn a_printed_code_is_traded_once_for_a_page_token_and_a_used_or_old_code_is_refused() {
    let db = TestDb::new();
    let server = start(&db, TOKEN, None, Duration::from_secs(900));
    let (_, origin) = server.host_and_origin();
    let code = create_code(&codes(&db)).unwrap();

    // Only the page itself may trade it: no Origin, or another one, is refused.
    assert_eq!(exchange(&server, &code, None).status, 403);
    assert_eq!(
        exchange(&server, &code, Some("http://evil.example")).status,
        403
    );
    let token = page_token(&exchange(&server, &code, Some(&origin)));
    assert!(!token.contains(TOKEN), "the page token is not the token");
    assert_eq!(
        api_status(&server, &token),
        200,
        "the page token opens the API"
    );
    assert_eq!(api_status(&server, "p1.1.2.3"), 401);

    let again = exchange(&server, &code, Some(&origin));
    assert_eq!(again.status, 401, "a used code: {}", again.body);
    assert!(again.body.contains("already used"), "{}", again.body);

    let old = create_code(&codes(&db)).unwrap();
    backdate(
        &codes(&db).join(&old),
        CODE_LIFETIME + Duration::from_secs(60),
    );
    let refused = exchange(&server, &old, Some(&origin));
    assert_eq!(refused.status, 401, "an old code: {}", refused.body);
    assert!(refused.body.contains("expired"), "{}", refused.body);

    for body in ["not json", "{}", r#"{"code": "../http-token"}"#] {
        let (host, origin) = server.host_and_origin();
        let reply = server.post_with(
            "/api/page-token",
            &[("Host", &host), ("Origin", &origin)],
            body,
        );
        assert!(
            matches!(reply.status, 400 | 401),
            "{body}: {}",
            reply.status
        );
    }
    // The other POST routes need the token as well as the Origin.
    let (host, origin) = server.host_and_origin();
    let no_token = server.post_with(
        "/api/ws-ticket",
        &[("Host", &host), ("Origin", &origin)],
        "",
    );
    assert_eq!(no_token.status, 401);
}

#[test]
fn a_page_token_expires_unless_the_page_renews_it() {
    let db = TestDb::new();
    let server = start(&db, TOKEN, None, Duration::from_secs(2));
    let (host, origin) = server.host_and_origin();
    let first = page_token(&exchange(
        &server,
        &create_code(&codes(&db)).unwrap(),
        Some(&origin),
    ));
    assert_eq!(api_status(&server, &first), 200);
    let bearer = format!("Bearer {first}");
    let renewed = server.post_with(
        "/api/page-token/renew",
        &[
            ("Host", &host),
            ("Origin", &origin),
            ("Authorization", &bearer),
        ],
        "",
    );
    let second = page_token(&renewed);
    assert_ne!(second, first);
    assert_eq!(api_status(&server, &second), 200);
    // Nobody renews them (their browser closed): both stop working.
    wait_until("the page tokens to expire", Duration::from_secs(20), || {
        api_status(&server, &first) == 401 && api_status(&server, &second) == 401
    });
}

#[test]
fn a_rotation_ends_every_page_token_and_code_of_the_old_token() {
    let db = TestDb::new();
    let token_file = db.dir.path().join("state/http-token");
    rotate_token(&token_file).unwrap();
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let server = start(
        &db,
        &token,
        Some(token_file.clone()),
        Duration::from_secs(900),
    );
    let (_, origin) = server.host_and_origin();
    let page = page_token(&exchange(
        &server,
        &create_code(&codes(&db)).unwrap(),
        Some(&origin),
    ));
    let unused = create_code(&codes(&db)).unwrap();
    assert_eq!(api_status(&server, &page), 200);

    rotate_token(&token_file).unwrap();
    let rotated = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_ne!(rotated, token);
    wait_until(
        "the collector to follow the rotation",
        Duration::from_secs(20),
        || api_status(&server, &rotated) == 200,
    );
    assert_eq!(api_status(&server, &token), 401, "the old token");
    assert_eq!(
        api_status(&server, &page),
        401,
        "a page token of the old token"
    );
    assert_eq!(
        exchange(&server, &unused, Some(&origin)).status,
        401,
        "an unused code"
    );
    let fresh = page_token(&exchange(
        &server,
        &create_code(&codes(&db)).unwrap(),
        Some(&origin),
    ));
    assert_eq!(api_status(&server, &fresh), 200, "a new link works");
}
