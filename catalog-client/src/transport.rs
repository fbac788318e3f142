//! The HTTP layer: every request the client sends, to the catalog or for an asset, goes
//! through [`Transport::start`], which enforces the trust rules in one place:
//!
//! - **URLs**: only an [`AllowedUrl`] (https, or http to loopback) is ever requested.
//! - **Redirects**: never followed by reqwest; `start` follows at most
//!   [`MAX_REDIRECTS`](crate::urls::MAX_REDIRECTS) hops for GET/HEAD, each through
//!   [`AllowedUrl::redirect`], i.e. on the same origin only.
//! - **Credentials**: attached per request by [`Transport::credential_for`], only when the
//!   URL is on the catalog's origin — never a client-wide default header.
//! - **Timeouts** ([`Timeouts`]): connect, and read = the longest silence allowed between
//!   bytes in either direction (an upload's chunks count as activity), never a total
//!   deadline, so a large file is not cut off while bytes keep flowing.
//!
//! It also maps statuses to errors and retries idempotent requests with backoff.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE,
    COOKIE, LOCATION,
};
use reqwest::Method;
use serde_json::Value as Json;

use crate::credentials::Credential;
use crate::error::{Error, Result};
use crate::urls::{AllowedUrl, MAX_REDIRECTS};

/// Retry policy for idempotent requests (GET, HEAD, PUT) and for POSTs made idempotent by
/// `onconflict=skip` on a natural key. Plain POSTs are never re-sent blindly.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts (1 = no retry).
    pub attempts: u32,
    /// First backoff; doubled per attempt.
    pub base_delay: Duration,
    /// Backoff cap.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(16));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// DerivaML's `timeout=(connect, read)` pair.
///
/// `read` is the longest silence allowed between bytes — waiting for the answer, or between
/// two pieces of a body (sent or received) — not a deadline for the whole transfer: a 10 GB
/// file that keeps arriving is never cut off. The default is the reference client's
/// `(6 s, 63 s)` (deriva-py `DEFAULT_SESSION_CONFIG`); DerivaML suggests raising the read
/// part for large datasets, e.g. `Timeouts::new(10, 1800)`.
///
/// ```
/// use std::time::Duration;
/// use deriva_catalog_client::{DatasetSpec, Timeouts};
///
/// assert_eq!(Timeouts::default(), Timeouts::new(6, 63));
/// let spec = DatasetSpec { timeout: Timeouts::new(10, 1800), ..DatasetSpec::new("1-D000", None) };
/// assert_eq!(spec.timeout.read, Duration::from_secs(1800));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Time allowed to open the TCP (and TLS) connection.
    pub connect: Duration,
    /// Longest silence allowed between bytes.
    pub read: Duration,
}

impl Timeouts {
    /// `(connect, read)` in seconds, as DerivaML writes them.
    pub const fn new(connect_secs: u64, read_secs: u64) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(connect_secs),
            read: Duration::from_secs(read_secs),
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::new(6, 63)
    }
}

/// `CONNECT,READ` in whole seconds, both positive (the CLIs' `--timeout` value), e.g. `10,1800`.
///
/// ```
/// use deriva_catalog_client::Timeouts;
/// assert_eq!("10,1800".parse::<Timeouts>()?, Timeouts::new(10, 1800));
/// assert!("10".parse::<Timeouts>().is_err());
/// # Ok::<(), String>(())
/// ```
impl std::str::FromStr for Timeouts {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Timeouts, String> {
        let (connect, read) = text
            .split_once(',')
            .ok_or_else(|| format!("{text:?}: expected CONNECT,READ in seconds, e.g. 10,1800"))?;
        let secs = |s: &str| match s.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "{s:?} in {text:?} is not a positive number of seconds"
            )),
        };
        Ok(Timeouts::new(secs(connect)?, secs(read)?))
    }
}

impl From<(Duration, Duration)> for Timeouts {
    fn from((connect, read): (Duration, Duration)) -> Self {
        Timeouts { connect, read }
    }
}

/// The host key used in credential.json: `host` or `host:port`.
pub(crate) fn host_key(url: &AllowedUrl) -> String {
    let url = url.url();
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// A connection to one catalog server (`scheme://host[:port]`), also used for asset fetches
/// to other origins (without the credential).
#[derive(Clone)]
pub(crate) struct Transport {
    client: reqwest::Client,
    /// The catalog's host URL: its origin scopes the credential.
    base: AllowedUrl,
    /// The credential header, attached by `credential_for` only.
    credential: Option<(HeaderName, HeaderValue)>,
    timeouts: Timeouts,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately omits the credential.
        f.debug_struct("Transport")
            .field("origin", &self.origin())
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// A successful response: headers and body.
pub(crate) struct Reply {
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Error bodies are read up to this size (the message keeps 500 characters anyway).
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Upload bodies are handed to hyper in pieces this large; each piece taken counts as
/// activity for the read timeout.
const UPLOAD_PIECE: usize = 64 * 1024;

fn build_client(timeouts: Timeouts) -> Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    let context = format!(
        "%7B%22cid%22%3A%22deriva-catalog-client%22%2C%22wid%22%3A%22{}%22%7D",
        uuid::Uuid::new_v4().simple()
    );
    if let Ok(v) = HeaderValue::from_str(&context) {
        headers.insert("deriva-client-context", v);
    }
    reqwest::Client::builder()
        // Not secret: the credential is never a default header (see `credential_for`).
        .default_headers(headers)
        .connect_timeout(timeouts.connect)
        .pool_max_idle_per_host(32)
        // Redirects are followed by `Transport::start`, on the same origin only.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Validation(format!("HTTP client: {e}")))
}

/// When the last byte went either way; `quiet_for` resolves after `limit` of silence.
struct Activity {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    /// Starts counting silence only after `grace` (the connect timeout: connecting is not
    /// silence from the server).
    fn new(grace: Duration) -> Arc<Activity> {
        Arc::new(Activity {
            origin: Instant::now(),
            last_ms: AtomicU64::new(grace.as_millis() as u64),
        })
    }

    fn touch(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    async fn quiet_for(&self, limit: Duration) {
        loop {
            let last = self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A response body read piece by piece, each piece within the read timeout.
pub(crate) struct BodyStream {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    method: Method,
    url: String,
    timeouts: Timeouts,
}

impl BodyStream {
    /// The next piece; `None` at the end. A silence longer than the read timeout is
    /// [`Error::Timeout`] naming the URL.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>> {
        match tokio::time::timeout(self.timeouts.read, self.inner.next()).await {
            Err(_) => Err(Error::Timeout {
                method: self.method.to_string(),
                url: self.url.clone(),
                phase: "read".into(),
                limit: self.timeouts.read,
            }),
            Ok(None) => Ok(None),
            Ok(Some(Ok(b))) => Ok(Some(b)),
            Ok(Some(Err(e))) => Err(transport_error(&self.method, &self.url, e, self.timeouts)),
        }
    }

    /// The whole body, or the first `limit` bytes of it.
    async fn collect(mut self, limit: usize) -> Result<Bytes> {
        let mut out = Vec::new();
        while let Some(piece) = self.next().await? {
            out.extend_from_slice(&piece);
            if out.len() >= limit {
                out.truncate(limit);
                break;
            }
        }
        Ok(out.into())
    }
}

fn transport_error(method: &Method, url: &str, e: reqwest::Error, timeouts: Timeouts) -> Error {
    if e.is_timeout() {
        let (phase, limit) = if e.is_connect() {
            ("connect", timeouts.connect)
        } else {
            ("read", timeouts.read)
        };
        return Error::Timeout {
            method: method.to_string(),
            url: url.to_string(),
            phase: phase.into(),
            limit,
        };
    }
    // The error's chain holds the useful part (connection refused, reset, …).
    let e = e.without_url();
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    Error::Transport {
        method: method.to_string(),
        url: url.to_string(),
        reason,
    }
}

impl Transport {
    pub(crate) fn new(
        base: &AllowedUrl,
        credential: Option<&Credential>,
        retry: RetryPolicy,
        timeouts: Timeouts,
    ) -> Result<Transport> {
        let bad = |what: &str| {
            Error::Validation(format!(
                "the {what} contains characters not allowed in an HTTP header"
            ))
        };
        let credential = match credential {
            Some(Credential::BearerToken(t)) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|_| bad("bearer token"))?;
                v.set_sensitive(true);
                Some((AUTHORIZATION, v))
            }
            Some(Credential::Cookie(c)) => {
                let mut v = HeaderValue::from_str(c).map_err(|_| bad("cookie"))?;
                v.set_sensitive(true);
                Some((COOKIE, v))
            }
            None => None,
        };
        Ok(Transport {
            client: build_client(timeouts)?,
            base: base.clone(),
            credential,
            timeouts,
            retry,
        })
    }

    /// The same transport with other timeouts (e.g. a `DatasetSpec`'s for asset fetches).
    pub(crate) fn with_timeouts(&self, timeouts: Timeouts) -> Result<Transport> {
        if timeouts == self.timeouts {
            return Ok(self.clone());
        }
        Ok(Transport {
            client: build_client(timeouts)?,
            timeouts,
            ..self.clone()
        })
    }

    /// The same transport on an HTTP client of its own, with its own connection pool. A
    /// pooled connection is driven by the runtime that opened it, so the live dataset, which
    /// runs its requests on a runtime of its own (`dataset::bridge`), must not share the
    /// caller's pool: a blocked caller runtime would stall it.
    pub(crate) fn detached(&self) -> Result<Transport> {
        Ok(Transport {
            client: build_client(self.timeouts)?,
            ..self.clone()
        })
    }

    /// The timeouts requests use.
    pub(crate) fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// `scheme://host[:port]` of the catalog.
    pub(crate) fn origin(&self) -> String {
        self.base.origin().ascii_serialization()
    }

    /// The catalog URL of `path` (`/ermrest/...`); an absolute URL must be on the catalog's
    /// origin ([`Error::OffCatalogUrl`] otherwise).
    pub(crate) fn catalog_url(&self, path: &str) -> Result<AllowedUrl> {
        if path.starts_with('/') && !path.starts_with("//") {
            return self.base.with_path(path);
        }
        let url = AllowedUrl::parse(path)?;
        if !self.base.same_origin(&url) {
            return Err(Error::OffCatalogUrl {
                url: path.to_string(),
                catalog: self.origin(),
            });
        }
        Ok(url)
    }

    /// The text of [`Transport::catalog_url`] for messages and `fetch.txt` (the path
    /// appended to the origin where it is not a valid catalog URL).
    pub(crate) fn url(&self, path: &str) -> String {
        match self.catalog_url(path) {
            Ok(u) => u.as_str().to_string(),
            Err(_) if path.starts_with('/') => format!("{}{path}", self.origin()),
            Err(_) => path.to_string(),
        }
    }

    /// The credential header for a request to `url`: only on the catalog's own origin, so
    /// asset hosts, redirect targets and look-alike hosts never see it.
    fn credential_for(&self, url: &AllowedUrl) -> Option<&(HeaderName, HeaderValue)> {
        self.credential
            .as_ref()
            .filter(|_| self.base.same_origin(url))
    }

    /// Sends `method url` with `headers` and `body` and returns the response head and the
    /// URL that answered. Follows same-origin redirects of GET/HEAD (at most
    /// [`MAX_REDIRECTS`]); refuses any other ([`Error::RedirectRefused`]). Does not look at
    /// the status otherwise.
    pub(crate) async fn start(
        &self,
        method: Method,
        url: AllowedUrl,
        headers: &HeaderMap,
        body: Option<&RequestBody<'_>>,
    ) -> Result<(reqwest::Response, AllowedUrl)> {
        let mut url = url;
        let mut hops = 0;
        loop {
            let activity = Activity::new(self.timeouts.connect);
            let mut req = self
                .client
                .request(method.clone(), url.url().clone())
                .headers(headers.clone());
            if let Some((name, value)) = self.credential_for(&url) {
                req = req.header(name, value.clone());
            }
            if let Some(body) = body {
                let (bytes, ctype) = body.bytes()?;
                req = req
                    .header(CONTENT_TYPE, ctype)
                    .header(CONTENT_LENGTH, bytes.len())
                    .body(upload_body(bytes, activity.clone()));
            }
            let read = self.timeouts.read;
            let resp = tokio::select! {
                r = req.send() => r.map_err(|e| transport_error(&method, url.as_str(), e, self.timeouts))?,
                _ = activity.quiet_for(read) => {
                    return Err(Error::Timeout {
                        method: method.to_string(),
                        url: url.as_str().to_string(),
                        phase: "read".into(),
                        limit: read,
                    })
                }
            };
            if !resp.status().is_redirection() || resp.status().as_u16() == 304 {
                return Ok((resp, url));
            }
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_string);
            let Some(location) = location else {
                return Ok((resp, url));
            };
            if method != Method::GET && method != Method::HEAD {
                return Err(Error::RedirectRefused {
                    from: url.as_str().to_string(),
                    to: location,
                    reason: format!("a {method} request is never redirected"),
                });
            }
            let next = url.redirect(&location)?;
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(Error::RedirectRefused {
                    from: url.as_str().to_string(),
                    to: next.as_str().to_string(),
                    reason: format!("more than {MAX_REDIRECTS} redirects"),
                });
            }
            tracing::debug!(from = %url, to = %next, "following a same-origin redirect");
            url = next;
        }
    }

    /// The body of `resp`, to be read piece by piece within the read timeout.
    pub(crate) fn body(
        &self,
        method: &Method,
        url: &AllowedUrl,
        resp: reqwest::Response,
    ) -> BodyStream {
        BodyStream {
            inner: Box::pin(resp.bytes_stream()),
            method: method.clone(),
            url: url.as_str().to_string(),
            timeouts: self.timeouts,
        }
    }

    /// Turns a status of 400 or more into the matching error (reading a bounded piece of
    /// the body for the message); passes other responses through.
    pub(crate) async fn check_status(
        &self,
        method: &Method,
        url: &AllowedUrl,
        resp: reqwest::Response,
    ) -> Result<reqwest::Response> {
        let status = resp.status().as_u16();
        if status < 300 {
            return Ok(resp);
        }
        let body = self
            .body(method, url, resp)
            .collect(ERROR_BODY_LIMIT)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        Err(Error::from_status(
            method.as_str(),
            url.as_str(),
            status,
            &text,
        ))
    }

    /// Sends one catalog request once; non-success statuses become errors.
    pub(crate) async fn send_once(
        &self,
        method: Method,
        path: &str,
        body: Option<RequestBody<'_>>,
        accept: Option<&str>,
    ) -> Result<Reply> {
        let url = self.catalog_url(path)?;
        let mut headers = HeaderMap::new();
        if let Some(a) = accept.and_then(|a| HeaderValue::from_str(a).ok()) {
            headers.insert(ACCEPT, a);
        }
        let (resp, url) = self
            .start(method.clone(), url, &headers, body.as_ref())
            .await?;
        let resp = self.check_status(&method, &url, resp).await?;
        let headers = resp.headers().clone();
        let body = self.body(&method, &url, resp).collect(usize::MAX).await?;
        Ok(Reply { headers, body })
    }

    /// Sends a request, retrying transport errors, timeouts and 5xx with backoff. Only for
    /// requests whose repetition cannot change the outcome.
    pub(crate) async fn send_idempotent(
        &self,
        method: Method,
        path: &str,
        body: Option<RequestBody<'_>>,
        accept: Option<&str>,
    ) -> Result<Reply> {
        let mut attempt = 0;
        loop {
            match self
                .send_once(method.clone(), path, body.clone(), accept)
                .await
            {
                Err(e) if e.is_retryable() && attempt + 1 < self.retry.attempts => {
                    tracing::warn!(error = %e, attempt, "retrying idempotent request");
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// GET with retries, parsed as JSON.
    pub(crate) async fn get_json(&self, path: &str) -> Result<Json> {
        let reply = self
            .send_idempotent(Method::GET, path, None, Some("application/json"))
            .await?;
        parse_json(&self.url(path), &reply.body)
    }

    /// A GET request's raw reply with retries.
    pub(crate) async fn get_raw(&self, path: &str, accept: Option<&str>) -> Result<Reply> {
        self.send_idempotent(Method::GET, path, None, accept).await
    }
}

/// An upload body handed to hyper piece by piece; taking a piece counts as activity.
fn upload_body(bytes: Bytes, activity: Arc<Activity>) -> reqwest::Body {
    let pieces: Vec<Bytes> = (0..bytes.len())
        .step_by(UPLOAD_PIECE)
        .map(|at| bytes.slice(at..(at + UPLOAD_PIECE).min(bytes.len())))
        .collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(pieces).map(move |piece| {
        activity.touch();
        Ok::<_, std::io::Error>(piece)
    }))
}

/// A request body.
#[derive(Clone)]
pub(crate) enum RequestBody<'a> {
    Json(&'a Json),
    Bytes(Bytes, &'static str),
}

impl RequestBody<'_> {
    fn bytes(&self) -> Result<(Bytes, &'static str)> {
        match self {
            RequestBody::Json(j) => Ok((
                serde_json::to_vec(j)
                    .map_err(|e| Error::Validation(e.to_string()))?
                    .into(),
                "application/json",
            )),
            RequestBody::Bytes(b, ctype) => Ok((b.clone(), ctype)),
        }
    }
}

pub(crate) fn parse_json(url: &str, body: &[u8]) -> Result<Json> {
    serde_json::from_slice(body).map_err(|e| Error::Protocol {
        url: url.to_string(),
        reason: format!("response is not JSON: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_key_keeps_the_port() {
        let u = AllowedUrl::parse("http://127.0.0.1:8080/x").unwrap();
        assert_eq!(host_key(&u), "127.0.0.1:8080");
        let u = AllowedUrl::parse("https://example.org/").unwrap();
        assert_eq!(host_key(&u), "example.org");
    }

    /// The catalog at `http://127.0.0.1` (port 80) is a prefix of `http://127.0.0.1:PORT`,
    /// another service's origin: a catalog request there must be refused before connecting,
    /// so the credential never reaches it.
    #[tokio::test]
    async fn the_credential_never_goes_to_an_origin_that_merely_extends_the_catalog_url() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = vec![0u8; 4096];
            let n = stream.read(&mut head).await.unwrap_or(0);
            String::from_utf8_lossy(&head[..n]).into_owned()
        });
        let base = AllowedUrl::parse("http://127.0.0.1").unwrap();
        let transport = Transport::new(
            &base,
            Some(&Credential::BearerToken("s3cret".into())),
            RetryPolicy {
                attempts: 1,
                ..Default::default()
            },
            Timeouts::default(),
        )
        .unwrap();
        let target = format!("http://127.0.0.1:{port}/ermrest/catalog/1/schema");
        let outcome = tokio::time::timeout(
            Duration::from_secs(2),
            transport.send_once(Method::GET, &target, None, None),
        )
        .await;
        let err = match outcome {
            Ok(Err(e)) => e,
            other => panic!("expected a refusal, got {:?}", other.map(|r| r.is_ok())),
        };
        match &err {
            Error::OffCatalogUrl { url, catalog } => {
                assert_eq!(url, &target);
                assert_eq!(catalog, "http://127.0.0.1");
            }
            other => panic!("expected OffCatalogUrl, got {other:?}"),
        }
        assert!(!accepted.is_finished(), "the client connected to {target}");
        accepted.abort();
    }

    /// A loopback server answering `/a` with a redirect to `location` and anything else with
    /// `ok`; returns its URL and the request heads it saw.
    async fn redirecting_server(
        location: &'static str,
    ) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = vec![0u8; 4096];
                let n = stream.read(&mut head).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&head[..n]).into_owned();
                let reply = if head.starts_with("GET /a ") {
                    format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        .to_string()
                };
                log.lock().unwrap().push(head);
                let _ = stream.write_all(reply.as_bytes()).await;
            }
        });
        (url, seen)
    }

    fn transport_for(base: &str) -> Transport {
        Transport::new(
            &AllowedUrl::parse(base).unwrap(),
            Some(&Credential::BearerToken("s3cret".into())),
            RetryPolicy {
                attempts: 1,
                ..Default::default()
            },
            Timeouts::default(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn the_credential_follows_a_same_origin_redirect_and_an_asset_host_never_sees_it() {
        let (catalog, seen) = redirecting_server("/b").await;
        let transport = transport_for(&catalog);
        let reply = transport
            .send_once(Method::GET, "/a", None, None)
            .await
            .unwrap();
        assert_eq!(&reply.body[..], b"ok");
        let heads = seen.lock().unwrap().clone();
        assert_eq!(heads.len(), 2);
        assert!(heads[1].starts_with("GET /b "), "{heads:?}");
        assert!(
            heads
                .iter()
                .all(|h| h.contains("authorization: Bearer s3cret")),
            "{heads:?}"
        );

        // The same transport fetching from another origin (an asset host) sends no credential.
        let (assets, seen) = redirecting_server("/b").await;
        let url = AllowedUrl::parse(&format!("{assets}/a")).unwrap();
        let (resp, answered) = transport
            .start(Method::GET, url, &HeaderMap::new(), None)
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(answered.as_str(), format!("{assets}/b"));
        let heads = seen.lock().unwrap().clone();
        assert_eq!(heads.len(), 2);
        assert!(
            heads
                .iter()
                .all(|h| !h.to_ascii_lowercase().contains("authorization")),
            "{heads:?}"
        );
    }

    #[tokio::test]
    async fn a_redirect_off_the_catalog_origin_is_refused_before_connecting_there() {
        let (catalog, seen) = redirecting_server("http://elsewhere.invalid/b").await;
        let transport = transport_for(&catalog);
        match transport.send_once(Method::GET, "/a", None, None).await {
            Err(Error::RedirectRefused { from, to, .. }) => {
                assert_eq!(from, format!("{catalog}/a"));
                assert_eq!(to, "http://elsewhere.invalid/b");
            }
            other => panic!("expected RedirectRefused, got {:?}", other.map(|r| r.body)),
        }
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn retry_delay_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        assert_eq!(p.delay(0), Duration::from_millis(100));
        assert_eq!(p.delay(1), Duration::from_millis(200));
        assert_eq!(p.delay(2), Duration::from_millis(350));
    }
}
