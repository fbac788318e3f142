//! The HTTP layer: URL policy (https except loopback), credential headers, status → error
//! mapping, and retries with backoff for idempotent requests only.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, COOKIE};
use reqwest::Method;
use serde_json::Value as Json;
use url::Url;

use crate::credentials::Credential;
use crate::error::{Error, Result};

/// Retry policy for idempotent requests (GET, HEAD, PUT) and for POSTs made idempotent by
/// `onconflict=skip` on a natural key. Plain POSTs are never re-sent blindly (§5.3).
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

/// Checks the scheme policy: https anywhere, http only to loopback.
pub(crate) fn check_url(raw: &str) -> Result<Url> {
    let url = Url::parse(raw).map_err(|e| Error::InvalidUrl {
        url: raw.to_string(),
        reason: e.to_string(),
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::InvalidUrl {
            url: "<redacted: the URL embeds a user name or password>".to_string(),
            reason: "put credentials in the credential file, not the URL".to_string(),
        });
    }
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if !loopback {
                return Err(Error::InsecureUrl {
                    url: raw.to_string(),
                });
            }
        }
        other => {
            return Err(Error::InvalidUrl {
                url: raw.to_string(),
                reason: format!("unsupported scheme {other:?} (use https)"),
            })
        }
    }
    if url.host_str().is_none() {
        return Err(Error::InvalidUrl {
            url: raw.to_string(),
            reason: "no host".to_string(),
        });
    }
    Ok(url)
}

/// The host key used in credential.json: `host` or `host:port`.
pub(crate) fn host_key(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// A connection to one server (`scheme://host[:port]`).
#[derive(Clone)]
pub(crate) struct Transport {
    client: reqwest::Client,
    /// `scheme://host[:port]`, no trailing slash.
    origin: String,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately omits the default headers, which hold the credential.
        f.debug_struct("Transport")
            .field("origin", &self.origin)
            .finish()
    }
}

/// A successful response: status, headers and body.
pub(crate) struct Reply {
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Transport {
    pub(crate) fn new(
        base: &Url,
        credential: Option<&Credential>,
        retry: RetryPolicy,
        timeout: Option<Duration>,
    ) -> Result<Transport> {
        let mut headers = HeaderMap::new();
        let context = format!(
            "%7B%22cid%22%3A%22deriva-catalog-client%22%2C%22wid%22%3A%22{}%22%7D",
            uuid::Uuid::new_v4().simple()
        );
        if let Ok(v) = HeaderValue::from_str(&context) {
            headers.insert("deriva-client-context", v);
        }
        let bad = |what: &str| {
            Error::Validation(format!(
                "the {what} contains characters not allowed in an HTTP header"
            ))
        };
        match credential {
            Some(Credential::BearerToken(t)) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|_| bad("bearer token"))?;
                v.set_sensitive(true);
                headers.insert(AUTHORIZATION, v);
            }
            Some(Credential::Cookie(c)) => {
                let mut v = HeaderValue::from_str(c).map_err(|_| bad("cookie"))?;
                v.set_sensitive(true);
                headers.insert(COOKIE, v);
            }
            None => {}
        }
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(6))
            .pool_max_idle_per_host(32)
            // Redirects could carry the credential to another host.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(t) = timeout {
            builder = builder.read_timeout(t);
        }
        let client = builder
            .build()
            .map_err(|e| Error::Validation(format!("HTTP client: {e}")))?;
        let mut origin = format!(
            "{}://{}",
            base.scheme(),
            base.host_str().unwrap_or_default()
        );
        if let Some(p) = base.port() {
            origin.push_str(&format!(":{p}"));
        }
        Ok(Transport {
            client,
            origin,
            retry,
        })
    }

    /// `scheme://host[:port]`.
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// Absolute URL for a server path (`/ermrest/...`) or an absolute URL on the same origin.
    pub(crate) fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.origin, path)
        }
    }

    /// Sends one request once; non-success statuses become errors.
    pub(crate) async fn send_once(
        &self,
        method: Method,
        path: &str,
        body: Option<RequestBody<'_>>,
        accept: Option<&str>,
    ) -> Result<Reply> {
        let url = self.url(path);
        if !url.starts_with(&self.origin) {
            // Never send the credential to another origin.
            return Err(Error::Validation(format!(
                "refusing to send the catalog credential to {url}, which is not on {}",
                self.origin
            )));
        }
        let mut req = self.client.request(method.clone(), &url);
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        match body {
            Some(RequestBody::Json(j)) => {
                req = req
                    .header(CONTENT_TYPE, "application/json")
                    .body(serde_json::to_vec(j).map_err(|e| Error::Validation(e.to_string()))?)
            }
            Some(RequestBody::Bytes(b, ctype)) => {
                req = req.header(CONTENT_TYPE, ctype).body(b.clone())
            }
            None => {}
        }
        let transport = |e: reqwest::Error| Error::Transport {
            method: method.to_string(),
            url: url.clone(),
            reason: e.without_url().to_string(),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(transport)?;
        if status >= 400 {
            let text = String::from_utf8_lossy(&body);
            return Err(Error::from_status(method.as_str(), &url, status, &text));
        }
        Ok(Reply { headers, body })
    }

    /// Sends a request, retrying transport errors and 5xx with backoff. Only for requests
    /// whose repetition cannot change the outcome.
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

    /// A request builder for streaming downloads (credential headers included).
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// A request body.
#[derive(Clone)]
pub(crate) enum RequestBody<'a> {
    Json(&'a Json),
    Bytes(bytes::Bytes, &'static str),
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
    fn check_url_refuses_plain_http_to_a_non_loopback_host() {
        let err = check_url("http://example.org").unwrap_err();
        assert!(matches!(err, Error::InsecureUrl { .. }));
        assert!(err.to_string().contains("https is required"));
        assert!(check_url("http://127.0.0.1:8080").is_ok());
        assert!(check_url("http://localhost:8080").is_ok());
        assert!(check_url("http://[::1]:8080").is_ok());
        assert!(check_url("https://example.org").is_ok());
        assert!(check_url("ftp://example.org").is_err());
    }

    #[test]
    fn check_url_refuses_credentials_in_the_url_without_echoing_them() {
        let msg = check_url("https://user:s3cret@example.org")
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("s3cret"), "{msg}");
    }

    #[test]
    fn host_key_keeps_the_port() {
        let u = Url::parse("http://127.0.0.1:8080/x").unwrap();
        assert_eq!(host_key(&u), "127.0.0.1:8080");
        let u = Url::parse("https://example.org/").unwrap();
        assert_eq!(host_key(&u), "example.org");
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
