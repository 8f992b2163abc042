//! Host checks (DNS rebinding), the bearer token, the security headers, and
//! the token on the WebSocket.

mod ui_support;

use std::time::Duration;

use tungstenite::client::IntoClientRequest;
use ui_support::{TestDb, TestServer};

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
fn the_websocket_takes_the_token_as_a_query_parameter() {
    let db = TestDb::new();
    let server = TestServer::start(&db, Some("s3cret-token"));
    let url = |query: &str| {
        format!("ws://127.0.0.1:{}/ws?{query}", server.port)
            .into_client_request()
            .unwrap()
    };
    match tungstenite::connect(url("after=0")) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    match tungstenite::connect(url("after=0&token=nope")) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    let (mut client, _) =
        tungstenite::connect(url("after=0&token=s3cret-token")).expect("the token opens it");
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = client.get_ref() {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
    }
    let first = client.read().unwrap();
    assert!(first.to_text().unwrap().contains("\"live\""));
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
fn only_get_is_served() {
    use std::io::{Read, Write};
    let db = TestDb::new();
    let server = TestServer::start(&db, None);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(stream, "POST /api/events HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", server.port).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
}
