//! The page signs in without the token in its URL (DESIGN §7): the printed
//! link's one-time code is traded once, from the page's own Origin, for a
//! page token and a binder session cookie, and the page token works only
//! with that cookie; a used or old code is refused; page tokens expire, and
//! all of them stop working when the token is rotated.

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
    exchange_holding(server, code, origin, None)
}

/// [`exchange`] from a browser that already holds `cookie` (`name=value`).
fn exchange_holding(
    server: &TestServer,
    code: &str,
    origin: Option<&str>,
    cookie: Option<&str>,
) -> Reply {
    let (host, _) = server.host_and_origin();
    let mut headers = vec![("Host", host.as_str())];
    headers.extend(origin.map(|origin| ("Origin", origin)));
    headers.extend(cookie.map(|cookie| ("Cookie", cookie)));
    server.post_with(
        "/api/page-token",
        &headers,
        &serde_json::json!({ "code": code }).to_string(),
    )
}

/// What a browser holds after signing in: the page token (sessionStorage)
/// and the binder cookie (`name=value`, in memory).
struct Signed {
    token: String,
    cookie: String,
}

fn signed(reply: &Reply) -> Signed {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer: Value = serde_json::from_str(&reply.body).unwrap();
    let set_cookie = reply.header("Set-Cookie").expect("a binder cookie");
    Signed {
        token: answer["token"].as_str().expect("a token").to_owned(),
        cookie: set_cookie.split(';').next().unwrap().trim().to_owned(),
    }
}

/// `GET /api/events` with `Authorization: Bearer token` and, if given, the cookie.
fn api_status_with(server: &TestServer, token: &str, cookie: Option<&str>) -> u16 {
    let (host, _) = server.host_and_origin();
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Host", host.as_str()), ("Authorization", bearer.as_str())];
    headers.extend(cookie.map(|cookie| ("Cookie", cookie)));
    server.get_with("/api/events", &headers).status
}

fn api_status(server: &TestServer, token: &str) -> u16 {
    api_status_with(server, token, None)
}

fn page_status(server: &TestServer, page: &Signed) -> u16 {
    api_status_with(server, &page.token, Some(&page.cookie))
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
    let page = signed(&exchange(&server, &code, Some(&origin)));
    assert!(
        !page.token.contains(TOKEN),
        "the page token is not the token"
    );
    assert_eq!(
        page_status(&server, &page),
        200,
        "the page token opens the API with its cookie"
    );
    assert_eq!(api_status(&server, "p2.1.2.3"), 401);

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
    let first = signed(&exchange(
        &server,
        &create_code(&codes(&db)).unwrap(),
        Some(&origin),
    ));
    assert_eq!(page_status(&server, &first), 200);
    let bearer = format!("Bearer {}", first.token);
    let renewed = server.post_with(
        "/api/page-token/renew",
        &[
            ("Host", &host),
            ("Origin", &origin),
            ("Authorization", &bearer),
            ("Cookie", &first.cookie),
        ],
        "",
    );
    let second = signed(&renewed);
    assert_ne!(second.token, first.token);
    assert_eq!(second.cookie, first.cookie, "the browser keeps its binder");
    assert_eq!(page_status(&server, &second), 200);
    // Nobody renews them (their browser stayed open, the tab slept): both
    // stop working, cookie or not.
    wait_until("the page tokens to expire", Duration::from_secs(20), || {
        page_status(&server, &first) == 401 && page_status(&server, &second) == 401
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
    let page = signed(&exchange(
        &server,
        &create_code(&codes(&db)).unwrap(),
        Some(&origin),
    ));
    let unused = create_code(&codes(&db)).unwrap();
    assert_eq!(page_status(&server, &page), 200);

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
        page_status(&server, &page),
        401,
        "a page token of the old token"
    );
    // Its binder was signed with the old token too: a new sign-in from the
    // same browser gets a new one.
    let again = signed(&exchange_holding(
        &server,
        &create_code(&codes(&db)).unwrap(),
        Some(&origin),
        Some(&page.cookie),
    ));
    assert_ne!(again.cookie, page.cookie);
    assert_eq!(page_status(&server, &again), 200);
    assert_eq!(
        exchange(&server, &unused, Some(&origin)).status,
        401,
        "an unused code"
    );
    let fresh = signed(&exchange(
        &server,
        &create_code(&codes(&db)).unwrap(),
        Some(&origin),
    ));
    assert_eq!(page_status(&server, &fresh), 200, "a new link works");
}

/// Issue 24: a page token works only with the binder cookie set at the
/// exchange, a session cookie the browser keeps in memory; the token
/// itself (scripts) needs none.
#[test]
fn a_page_token_works_only_with_its_binder_session_cookie() {
    let db = TestDb::new();
    let server = start(&db, TOKEN, None, Duration::from_secs(900));
    let (host, origin) = server.host_and_origin();
    let reply = exchange(&server, &create_code(&codes(&db)).unwrap(), Some(&origin));
    let set_cookie = reply
        .header("Set-Cookie")
        .expect("a binder cookie")
        .to_owned();
    let page = signed(&reply);
    // A session cookie: no lifetime, out of scripts' reach, never cross-site.
    assert!(
        page.cookie
            .starts_with(&format!("hooktrail_binder_{}=b1.", server.port)),
        "{set_cookie}"
    );
    let attributes: Vec<String> = set_cookie
        .split(';')
        .skip(1)
        .map(|part| part.trim().to_ascii_lowercase())
        .collect();
    for wanted in ["path=/", "httponly", "samesite=strict"] {
        assert!(attributes.iter().any(|a| a == wanted), "{set_cookie}");
    }
    assert!(
        !attributes
            .iter()
            .any(|a| a.starts_with("max-age") || a.starts_with("expires") || a == "secure"),
        "a session cookie, not Secure without TLS: {set_cookie}"
    );

    assert_eq!(page_status(&server, &page), 200);
    assert_eq!(api_status(&server, &page.token), 401, "without its cookie");
    let name = page.cookie.split_once('=').unwrap().0.to_owned();
    for other in [
        format!("{name}=b1.0123456789abcdef0123456789abcdef.00"),
        format!("{name}="),
        format!(
            "hooktrail_binder_1={}",
            page.cookie.split_once('=').unwrap().1
        ),
    ] {
        assert_eq!(
            api_status_with(&server, &page.token, Some(&other)),
            401,
            "{other}"
        );
    }
    // The browser's other cookies beside it do not matter.
    let among = format!("a=b; {}; c=d", page.cookie);
    assert_eq!(api_status_with(&server, &page.token, Some(&among)), 200);

    // A second tab signs in with another link: the browser keeps its binder,
    // so the first tab's page token goes on working.
    let second = signed(&exchange_holding(
        &server,
        &create_code(&codes(&db)).unwrap(),
        Some(&origin),
        Some(&page.cookie),
    ));
    assert_eq!(second.cookie, page.cookie);
    assert_eq!(page_status(&server, &page), 200);
    // A binder this collector did not sign is not kept: no fixing it.
    let planted = format!("{name}=b1.0123456789abcdef0123456789abcdef.00");
    let fixed = signed(&exchange_holding(
        &server,
        &create_code(&codes(&db)).unwrap(),
        Some(&origin),
        Some(&planted),
    ));
    assert_ne!(fixed.cookie, planted);

    // The WebSocket ticket needs the cookie with the page token.
    let ticket = |cookie: Option<&str>| {
        let bearer = format!("Bearer {}", page.token);
        let mut headers = vec![
            ("Host", host.as_str()),
            ("Origin", origin.as_str()),
            ("Authorization", bearer.as_str()),
        ];
        headers.extend(cookie.map(|cookie| ("Cookie", cookie)));
        server.post_with("/api/ws-ticket", &headers, "").status
    };
    assert_eq!(ticket(None), 401);
    assert_eq!(ticket(Some(&page.cookie)), 200);

    // Scripts: the token itself, no cookie, as before.
    assert_eq!(api_status(&server, TOKEN), 200);
    // A pasted token traded on the page: renew with the token sets a binder.
    let bearer = format!("Bearer {TOKEN}");
    let traded = signed(&server.post_with(
        "/api/page-token/renew",
        &[
            ("Host", &host),
            ("Origin", &origin),
            ("Authorization", &bearer),
        ],
        "",
    ));
    assert_eq!(page_status(&server, &traded), 200);
}
