//! `rediss://` against a private redis-server with TLS, using certificates
//! made here with `openssl`: a self-signed CA given as `redis.ca_file` works;
//! without it the server is not trusted and the event goes to the spool.

mod common;

use std::path::Path;
use std::process::Command;

use common::{envelope, fixture_line, ids, stream_envelopes, World};
use hooktrail_testkit::{free_port, RedisServer};

/// A CA and a server certificate for `localhost` and 127.0.0.1.
struct Certificates {
    /// Holds the PEM files.
    dir: tempfile::TempDir,
}

impl Certificates {
    fn make() -> Certificates {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap_or_else(|error| {
                    panic!("cannot run openssl ({error}); install it: apt-get install openssl")
                });
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=hooktrail test CA",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(
            dir.path().join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        Certificates { dir }
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A redis-server with a plain port (for the testkit and for reading back)
/// and a TLS port (for the emitter).
fn tls_server(certificates: &Certificates, tls_port: u16, extra: &[&str]) -> RedisServer {
    let port = tls_port.to_string();
    let (cert, key, ca) = (
        certificates.file("server.crt"),
        certificates.file("server.key"),
        certificates.file("ca.crt"),
    );
    let mut args = vec![
        "--tls-port",
        port.as_str(),
        "--tls-cert-file",
        cert.as_str(),
        "--tls-key-file",
        key.as_str(),
        "--tls-ca-cert-file",
        ca.as_str(),
        "--tls-auth-clients",
        "no",
    ];
    args.extend_from_slice(extra);
    RedisServer::start_with(&args)
}

#[test]
fn rediss_with_a_configured_ca_delivers_with_auth() {
    let certificates = Certificates::make();
    let tls_port = free_port();
    let server = tls_server(&certificates, tls_port, &["--requirepass", "tls-pw"]);
    for host in ["127.0.0.1", "localhost"] {
        let mut world = World::new();
        world
            .set(
                "HOOKTRAIL_REDIS_URL",
                format!("rediss://:tls-pw@{host}:{tls_port}"),
            )
            .set("HOOKTRAIL_REDIS_CA_FILE", certificates.file("ca.crt"));
        let payload = fixture_line("SubagentStart");
        let run = world.hook_with_id(&format!("tls-{host}"), &payload);
        run.assert_silent_success();
        assert!(
            world.spool_lines().is_empty(),
            "not delivered over TLS to {host}"
        );
        let stored = stream_envelopes(&server, "hooktrail:events");
        assert_eq!(stored.last().unwrap()["id"], format!("tls-{host}"));
        assert_eq!(stored.last().unwrap()["payload"], envelope(&payload));
    }
}

#[test]
fn rediss_to_an_untrusted_server_spools_and_says_why() {
    let certificates = Certificates::make();
    let tls_port = free_port();
    let server = tls_server(&certificates, tls_port, &[]);
    let mut world = World::new();
    world
        .set(
            "HOOKTRAIL_REDIS_URL",
            format!("rediss://127.0.0.1:{tls_port}"),
        )
        .set("HOOKTRAIL_DEBUG", "1");
    let run = world.hook_with_id("untrusted-1", &fixture_line("Stop"));
    run.assert_silent_success();
    assert!(
        run.stderr.to_lowercase().contains("certificate"),
        "{}",
        run.stderr
    );
    let spooled: Vec<_> = world
        .spool_lines()
        .iter()
        .map(|line| envelope(line))
        .collect();
    assert_eq!(ids(&spooled), ["untrusted-1"]);
    assert_eq!(server.command(&["EXISTS", "hooktrail:events"]), "0");
    assert!(Path::new(&world.state_dir().join("redis-breaker")).exists());
}
