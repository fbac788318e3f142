//! `deriva-bag materialize`: a holey bag's `fetch.txt` files are fetched from a loopback
//! server, checked, and not fetched again; URLs that break the https-or-loopback rule and
//! archives are refused before anything is fetched or written.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use deriva_bag_core::bagit::write::{BagWriter, RemoteFile};
use md5::{Digest, Md5};
use serde_json::{json, Value};

const FILES: [(&str, &[u8]); 2] = [
    ("a.bin", b"first asset's bytes\n"),
    ("b.bin", b"second asset, a little longer\n"),
];

/// A loopback server answering `GET /NAME` with that file of [`FILES`]; counts requests.
fn serve() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            seen.fetch_add(1, Ordering::SeqCst);
            let path = request.split(' ').nth(1).unwrap_or("/");
            let body = FILES
                .iter()
                .find(|(name, _)| path == format!("/{name}"))
                .map(|(_, bytes)| *bytes);
            let reply = match body {
                Some(bytes) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        bytes.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(bytes);
                    r
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = stream.write_all(&reply);
        }
    });
    (base, count)
}

/// A bag whose payload is only `fetch.txt` entries `data/asset/NAME` from `base`.
fn holey_bag(bag: &Path, base: &str) {
    std::fs::create_dir_all(bag.join("data")).unwrap();
    std::fs::write(bag.join("data/README.txt"), "test bag\n").unwrap();
    let remote: Vec<RemoteFile> = FILES
        .iter()
        .map(|(name, bytes)| RemoteFile {
            url: format!("{base}/{name}"),
            length: bytes.len() as u64,
            path: format!("data/asset/{name}"),
            md5: hex::encode(Md5::digest(bytes)),
            sha256: None,
        })
        .collect();
    BagWriter::new().remote_files(remote).write(bag).unwrap();
}

fn deriva_bag(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deriva-bag"))
        .args(args)
        .env("DERIVA_BAG_CACHE", cache)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn materialize_fetches_every_fetch_txt_file_and_a_second_run_fetches_none() {
    let (base, requests) = serve();
    let dir = tempfile::tempdir().unwrap();
    let bag = dir.path().join("bag");
    holey_bag(&bag, &base);
    let cache = dir.path().join("cache");
    let bag_arg = bag.to_str().unwrap();

    let first = deriva_bag(
        &["materialize", bag_arg, "--json", "--parallelism", "2"],
        &cache,
    );
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    let report: Value = serde_json::from_slice(&first.stdout).unwrap();
    let bytes: usize = FILES.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(
        report,
        json!({"fetched": 2, "already_present": 0, "bytes": bytes, "resumed": 0})
    );
    for (name, content) in FILES {
        assert_eq!(
            std::fs::read(bag.join("data/asset").join(name)).unwrap(),
            content
        );
    }
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    // Nothing but the payload is left: no partial-file directory, and full validation passes.
    assert!(!bag.join(".deriva-partial").exists());
    let validate = deriva_bag(&["validate", bag_arg, "--mode", "full"], &cache);
    assert_eq!(validate.status.code(), Some(0), "{validate:?}");

    let second = deriva_bag(&["materialize", bag_arg, "--json"], &cache);
    assert_eq!(second.status.code(), Some(0), "{second:?}");
    let report: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(
        report,
        json!({"fetched": 0, "already_present": 2, "bytes": 0, "resumed": 0})
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        2,
        "a present file is not fetched again"
    );
}

#[test]
fn materialize_refuses_plain_http_to_a_remote_host_before_fetching_anything() {
    let dir = tempfile::tempdir().unwrap();
    let bag = dir.path().join("bag");
    holey_bag(&bag, "http://assets.invalid");
    let out = deriva_bag(
        &["materialize", bag.to_str().unwrap()],
        &dir.path().join("cache"),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("http://assets.invalid/a.bin"),
        "the error names the URL: {stderr}"
    );
    assert!(!bag.join("data/asset").exists(), "nothing was written");
}

#[test]
fn materialize_refuses_an_archive_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("Dataset_1-D000.zip");
    std::fs::write(&archive, b"PK\x05\x06").unwrap();
    let out = deriva_bag(
        &["materialize", archive.to_str().unwrap()],
        &dir.path().join("cache"),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Dataset_1-D000.zip"), "{stderr}");
    assert!(stderr.contains("unpack the archive"), "{stderr}");
}
