//! Connecting: credentials, the https policy, error mapping, and secrets kept out of errors.

mod common;

use common::*;
use deriva_catalog_client::{ConnectOptions, Credential, DerivaML, Error};
use deriva_test_catalog::TestCatalog;

fn options(dir: &std::path::Path, credential: Option<Credential>) -> ConnectOptions {
    ConnectOptions {
        credential,
        // A file that does not exist: anonymous unless `credential` is given.
        credential_file: Some(dir.join("no-credential.json")),
        working_dir: Some(dir.to_path_buf()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_reads_the_bearer_token_for_host_and_port_from_the_credential_file() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credential.json");
    let host = server.addr().to_string();
    std::fs::write(
        &file,
        serde_json::json!({ host: {"bearer-token": server.token()} }).to_string(),
    )
    .unwrap();
    let ml = DerivaML::connect_with(
        &server.url(),
        "1",
        ConnectOptions {
            credential_file: Some(file),
            working_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let me = ml.whoami().await.unwrap().unwrap();
    assert_eq!(me.id, "test-user");
    assert!(ml.model().resolve_table("Execution_Image_Glaucoma").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_authenticates_like_a_token() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = DerivaML::connect_with(
        &server.url(),
        "1",
        options(
            dir.path(),
            Some(Credential::Cookie("webpy_session=test-cookie".into())),
        ),
    )
    .await
    .unwrap();
    assert!(ml.whoami().await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_connect_fails_with_401_naming_the_schema_url() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = DerivaML::connect_with(&server.url(), "1", options(dir.path(), None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!(
            "GET {}/ermrest/catalog/1/schema: 401",
            server.url()
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_never_appears_in_errors_or_debug_output() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = "very-secret-token-123";
    let err = DerivaML::connect_with(
        &server.url(),
        "1",
        options(dir.path(), Some(Credential::BearerToken(secret.into()))),
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(!err.to_string().contains(secret));
    assert!(!format!("{err:?}").contains(secret));
    // And a working connection's Debug output does not leak the good token either.
    let ml = connect(&server, dir.path()).await;
    assert!(!format!("{ml:?}").contains(server.token()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_catalog_is_a_404_naming_the_url() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = DerivaML::connect_with(
        &server.url(),
        "7",
        options(
            dir.path(),
            Some(Credential::BearerToken(server.token().into())),
        ),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/ermrest/catalog/7/schema"),
        "{err}"
    );
}

#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let err = DerivaML::connect_with("http://example.org", "1", options(dir.path(), None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InsecureUrl { .. }), "{err:?}");
    assert!(err.to_string().contains("https is required"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refuses_plain_http_to_a_remote_host_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let err = DerivaML::connect_with("http://x.invalid", "1", options(dir.path(), None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InsecureUrl { ref url } if url == "http://x.invalid"),
        "{err:?}"
    );
    // Refused before the working directory (and so anything else) was touched.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A bare host name, as DerivaML users write it (`hostname="example.org"`), means https: the
/// first bytes the client sends to a loopback listener named that way are a TLS handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_with_a_bare_host_name_speaks_https() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    // The first byte of the first connection within 10 s, if any.
    let first_byte = std::thread::spawn(move || {
        use std::io::Read;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok((mut socket, _)) = listener.accept() {
                socket.set_nonblocking(false).unwrap();
                socket
                    .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                    .unwrap();
                let mut byte = [0u8; 1];
                return socket.read_exact(&mut byte).ok().map(|_| byte[0]);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        None
    });
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), None);
    opts.timeout = deriva_catalog_client::Timeouts::new(2, 2);
    opts.retry = Some(deriva_catalog_client::RetryPolicy {
        attempts: 1,
        base_delay: std::time::Duration::from_millis(1),
        max_delay: std::time::Duration::from_millis(1),
    });
    let err = DerivaML::connect_with(&format!("127.0.0.1:{port}"), "1", opts)
        .await
        .unwrap_err();
    // 0x16: a TLS handshake record (a plain-http client would send `G` of `GET`).
    assert_eq!(first_byte.join().unwrap(), Some(0x16), "{err:?}");
    assert!(
        err.to_string().contains(&format!(
            "https://127.0.0.1:{port}/ermrest/catalog/1/schema"
        )),
        "{err}"
    );
}
