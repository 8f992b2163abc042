//! Host checks (DNS rebinding), the bearer token, the security headers, and
//! the token on the WebSocket.

mod support;

use std::time::Duration;

use support::in_process::{TestDb, TestServer};
use tungstenite::client::IntoClientRequest;

#[test]
fn a_foreign_host_gets_403_and_the_collectors_own_names_are_served() {
    let db = TestDb::new();
    let server = TestServer::start(&db, None);
    let port = server.port;
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("LOCALHOST:{port}"),
    ] {
        assert_eq!(
            server.get_with("/api/health", &[("Host", &host)]).status,
            200,
            "{host}"
        );
    }
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_owned(),
        format!("127.0.0.1:{}", port + 1),
        "127.0.0.1".to_owned(),
    ] {
        let reply = server.get_with("/api/health", &[("Host", &host)]);
        assert_eq!(reply.status, 403, "{host}");
        assert!(reply.body.contains("DNS rebinding"), "{}", reply.body);
        assert_eq!(
            server.get_with("/", &[("Host", &host)]).status,
            403,
            "{host}: the page too"
        );
    }
    assert_eq!(
        server.get_with("/api/health", &[]).status,
        403,
        "no Host at all"
    );
}

#[test]
fn with_a_token_every_route_but_the_page_shell_needs_it() {
    let db = TestDb::new();
    let server = TestServer::start(&db, Some("s3cret-token"));
    let host = format!("127.0.0.1:{}", server.port);
    for path in ["/", "/app.js", "/welcome.js", "/app.css", "/favicon.svg"] {
        assert_eq!(
            server.get_with(path, &[("Host", &host)]).status,
            200,
            "{path} is the shell"
        );
    }
    for path in [
        "/api/events",
        "/api/sessions",
        "/api/sessions/x",
        "/api/stats",
        "/api/health",
        "/metrics",
    ] {
        let none = server.get_with(path, &[("Host", &host)]);
        assert_eq!(none.status, 401, "{path} without the token");
        assert!(none.body.contains("token"));
        assert_eq!(
            server
                .get_with(
                    path,
                    &[("Host", &host), ("Authorization", "Bearer wrong-token!")]
                )
                .status,
            401,
            "{path}"
        );
        let good = server.get_with(
            path,
            &[("Host", &host), ("Authorization", "Bearer s3cret-token")],
        );
        assert!(
            good.status == 200 || (path == "/api/sessions/x" && good.status == 404),
            "{path}: {}",
            good.status
        );
    }
    // The token in the query string is for /ws only.
    assert_eq!(
        server
            .get_with("/api/events?token=s3cret-token", &[("Host", &host)])
            .status,
        401
    );
}

#[test]
fn the_websocket_takes_a_one_use_ticket_and_never_the_token_in_its_url() {
    let db = TestDb::new();
    let server = TestServer::start(&db, Some("s3cret-token"));
    let url = |query: &str| {
        format!("ws://127.0.0.1:{}/ws?{query}", server.port)
            .into_client_request()
            .unwrap()
    };
    let refused = |query: &str| match tungstenite::connect(url(query)) {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        other => panic!("{query}: expected a refusal, got {:?}", other.map(|_| ())),
    };
    assert_eq!(refused("after=0"), 401);
    // The token in a URL is what the console and logs print: not accepted.
    assert_eq!(refused("after=0&token=s3cret-token"), 400);
    assert_eq!(refused("after=0&ticket=never-issued"), 401);

    let (host, origin) = server.host_and_origin();
    let ticket = |authorization: &str| {
        server.post_with(
            "/api/ws-ticket",
            &[
                ("Host", &host),
                ("Origin", &origin),
                ("Authorization", authorization),
            ],
            "",
        )
    };
    assert_eq!(ticket("Bearer wrong").status, 401);
    let answer: serde_json::Value =
        serde_json::from_str(&ticket("Bearer s3cret-token").body).unwrap();
    let issued = answer["ticket"].as_str().expect("a ticket").to_owned();
    assert!(!issued.contains("s3cret"));
    let (mut client, _) = tungstenite::connect(url(&format!("after=0&ticket={issued}")))
        .expect("the ticket opens it");
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = client.get_ref() {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
    }
    let first = client.read().unwrap();
    assert!(first.to_text().unwrap().contains("\"live\""));
    assert_eq!(
        refused(&format!("after=0&ticket={issued}")),
        401,
        "a ticket works once"
    );
    // A client that can set headers sends the token there.
    let mut request = url("after=0");
    request
        .headers_mut()
        .insert("Authorization", "Bearer s3cret-token".parse().unwrap());
    tungstenite::connect(request).expect("the Authorization header opens it");
}

#[test]
fn every_response_carries_csp_nosniff_and_frame_denial() {
    let db = TestDb::new();
    let server = TestServer::start(&db, None);
    for path in ["/", "/app.js", "/api/events", "/api/nothing", "/metrics"] {
        let reply = server.get(path);
        let csp = reply
            .header("Content-Security-Policy")
            .unwrap_or_else(|| panic!("{path}: no CSP"));
        assert!(
            csp.contains("script-src 'self'")
                && !csp.contains("unsafe-inline")
                && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(
            reply.header("X-Content-Type-Options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(reply.header("X-Frame-Options"), Some("DENY"), "{path}");
    }
}

#[test]
fn only_get_and_the_pages_own_posts_are_served() {
    let db = TestDb::new();
    let server = TestServer::start(&db, None);
    let (host, origin) = server.host_and_origin();
    for method in ["PUT", "DELETE", "PATCH"] {
        let reply = support::in_process::http_request(
            server.port,
            method,
            "/api/events",
            &[("Host", &host)],
            "",
        );
        assert_eq!(reply.status, 405, "{method}");
    }
    // A POST needs the page's own Origin: a cross-site form sends another
    // one, and every browser sends one on a POST.
    let bare = server.post_with("/api/events", &[("Host", &host)], "");
    assert_eq!(bare.status, 403, "{}", bare.body);
    let foreign = server.post_with(
        "/api/events",
        &[("Host", &host), ("Origin", "http://evil.example")],
        "",
    );
    assert_eq!(foreign.status, 403);
    let own = server.post_with("/api/events", &[("Host", &host), ("Origin", &origin)], "");
    assert_eq!(own.status, 404, "no POST route there");
}

#[test]
fn the_page_may_act_on_a_loopback_listener() {
    let db = TestDb::new();
    let server = TestServer::start(&db, None);
    let capabilities = server.json("/api/capabilities", 200);
    assert_eq!(capabilities["actions_allowed"], true);
}
