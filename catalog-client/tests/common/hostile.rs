//! A hand-rolled HTTP/1.1 server on 127.0.0.1 that misbehaves on purpose: redirects, stalls
//! after the headers, trickles, or streams more than it should. It records every request
//! (method, path, headers) and every accepted connection, so a test can assert what the
//! client sent, or that it never connected at all.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deriva_bag_format::bagit::write::{BagWriter, RemoteFile};
use deriva_bag_format::bagit::Algorithm;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `200 OK` with this body and its exact `Content-Length`.
    Body(Vec<u8>),
    /// `302 Found` to this `Location`.
    Redirect(String),
    /// The headers of a `200` announcing `content_length` bytes, then `first`, then silence
    /// until the client gives up.
    HeadersThenStall { content_length: u64, first: Vec<u8> },
    /// `200` with `body`, sent `chunk` bytes at a time with `every` between writes.
    Trickle {
        body: Vec<u8>,
        chunk: usize,
        every: Duration,
    },
    /// `200` without `Content-Length`, then zeros until the client closes (or `limit` bytes).
    Endless { limit: u64 },
    /// `206 Partial Content`: `body[start..]` with its `Content-Range`.
    Partial { body: Vec<u8>, start: usize },
}

/// One request as the server read it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Lower-cased header names.
    pub headers: BTreeMap<String, String>,
}

type Route = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A running hostile server; dropping it stops accepting.
pub struct Hostile {
    pub addr: std::net::SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub connections: Arc<AtomicUsize>,
    /// Bytes of body the server managed to write, over all requests.
    pub body_bytes_sent: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hostile {
    /// Starts a server whose answer to each request is `route(request)`.
    pub async fn start(route: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let body_bytes_sent = Arc::new(AtomicUsize::new(0));
        let route: Arc<Route> = Arc::new(route);
        let (s, c, b) = (seen.clone(), connections.clone(), body_bytes_sent.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (route, s, b) = (route.clone(), s.clone(), b.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, route, s, b).await;
                });
            }
        });
        Hostile {
            addr,
            seen,
            connections,
            body_bytes_sent,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Ok(None);
        }
        buf.push(byte[0]);
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

async fn serve(
    mut stream: TcpStream,
    route: Arc<Route>,
    seen: Arc<Mutex<Vec<Seen>>>,
    sent: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    // One request per connection keeps the server simple: every reply closes it.
    let Some(head) = read_head(&mut stream).await? else {
        return Ok(());
    };
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let request = Seen {
        method,
        path,
        headers,
    };
    seen.lock().unwrap().push(request.clone());
    match route(&request) {
        Reply::Body(body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
            sent.fetch_add(body.len(), Ordering::SeqCst);
        }
        Reply::Redirect(location) => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
        }
        Reply::HeadersThenStall {
            content_length,
            first,
        } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {content_length}\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&first).await?;
            stream.flush().await?;
            sent.fetch_add(first.len(), Ordering::SeqCst);
            // Hold the connection open, silent, until the client hangs up.
            let mut sink = [0u8; 64];
            while stream.read(&mut sink).await? > 0 {}
        }
        Reply::Trickle { body, chunk, every } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            for part in body.chunks(chunk.max(1)) {
                tokio::time::sleep(every).await;
                stream.write_all(part).await?;
                stream.flush().await?;
                sent.fetch_add(part.len(), Ordering::SeqCst);
            }
        }
        Reply::Partial { body, start } => {
            let rest = &body[start.min(body.len())..];
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\nConnection: close\r\n\r\n",
                rest.len(),
                start,
                body.len().saturating_sub(1),
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(rest).await?;
            sent.fetch_add(rest.len(), Ordering::SeqCst);
        }
        Reply::Endless { limit } => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                .await?;
            let zeros = vec![0u8; 16 * 1024];
            let mut total = 0u64;
            while total < limit {
                stream.write_all(&zeros).await?;
                total += zeros.len() as u64;
                sent.fetch_add(zeros.len(), Ordering::SeqCst);
            }
        }
    }
    stream.shutdown().await
}

/// Writes a holey bag at `bag` whose `fetch.txt` lists `files` (`url`, `length`, `path`,
/// `md5`), with md5 manifest entries for them.
pub fn holey_bag(bag: &Path, files: &[(String, u64, &str, &str)]) {
    std::fs::create_dir_all(bag.join("data")).unwrap();
    std::fs::write(bag.join("data/schema.json"), b"{}").unwrap();
    let remote = files.iter().map(|(url, length, path, md5)| RemoteFile {
        url: url.clone(),
        length: *length,
        path: path.to_string(),
        md5: md5.to_string(),
        sha256: None,
    });
    BagWriter::new()
        .algorithms(&[Algorithm::Md5])
        .remote_files(remote)
        .write(bag)
        .unwrap();
}

/// Hex md5 of `bytes`.
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(bytes))
}
