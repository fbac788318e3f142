//! The https-or-loopback rule: the one place a URL from the user, a catalog response or a
//! bag's `fetch.txt` becomes something the client may connect to.
//!
//! [`AllowedUrl`] is built only by [`AllowedUrl::parse`] (and by [`AllowedUrl::redirect`],
//! which applies the same rule plus the same-origin rule), so a function that takes one
//! cannot be handed a `file://`, `ftp://` or plain-http-to-the-internet URL. The check is
//! purely syntactic: a refused URL is refused before any DNS lookup or connection.

use std::fmt;

use url::{Host, Origin, Url};

use crate::error::{Error, Result};

/// How many redirects one request may follow (all on the same origin).
pub const MAX_REDIRECTS: usize = 5;

/// A URL the client may connect to: `https://` anywhere, `http://` only to a loopback host
/// (`127.0.0.0/8`, `::1`, `localhost`), never with a user name or password in it.
///
/// ```
/// use deriva_catalog_client::{AllowedUrl, Error};
///
/// assert!(AllowedUrl::parse("https://example.org/hatrac/a.png").is_ok());
/// assert!(AllowedUrl::parse("http://127.0.0.1:8080/ermrest").is_ok());
/// assert!(matches!(
///     AllowedUrl::parse("http://example.org/a.png"),
///     Err(Error::InsecureUrl { .. })
/// ));
/// assert!(matches!(
///     AllowedUrl::parse("file:///etc/passwd"),
///     Err(Error::InvalidUrl { .. })
/// ));
///
/// // A redirect is followed only on the same origin.
/// let asset = AllowedUrl::parse("https://example.org/hatrac/a.png").unwrap();
/// assert_eq!(
///     asset.redirect("/hatrac/b.png").unwrap().as_str(),
///     "https://example.org/hatrac/b.png"
/// );
/// assert!(matches!(
///     asset.redirect("https://elsewhere.example/a.png"),
///     Err(Error::RedirectRefused { .. })
/// ));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AllowedUrl(Url);

impl AllowedUrl {
    /// Applies the rule to `raw`. Errors: [`Error::InsecureUrl`] for plain http to a host
    /// that is not loopback, [`Error::InvalidUrl`] for anything else that is not an
    /// absolute `https`/`http` URL with a host (the user-name case names no secret).
    pub fn parse(raw: &str) -> Result<AllowedUrl> {
        let url = Url::parse(raw).map_err(|e| Error::InvalidUrl {
            url: raw.to_string(),
            reason: e.to_string(),
        })?;
        Self::check(url, raw)
    }

    /// A catalog server as a user names it: a bare host name with an optional port, as the
    /// DerivaML writes it (`example.org`, `example.org:8443`), means `https://` that host;
    /// anything with a scheme (`https://example.org`, `http://127.0.0.1:8080`) is a URL.
    /// Either way the result passes the rule of [`AllowedUrl::parse`]. A bare name with a
    /// path, query, fragment, user name or space is [`Error::InvalidUrl`].
    ///
    /// ```
    /// use deriva_catalog_client::{AllowedUrl, Error};
    ///
    /// assert_eq!(AllowedUrl::parse_server("example.org").unwrap().as_str(), "https://example.org/");
    /// assert_eq!(
    ///     AllowedUrl::parse_server("http://127.0.0.1:8080").unwrap().as_str(),
    ///     "http://127.0.0.1:8080/"
    /// );
    /// assert!(matches!(
    ///     AllowedUrl::parse_server("http://example.org"),
    ///     Err(Error::InsecureUrl { .. })
    /// ));
    /// ```
    pub fn parse_server(raw: &str) -> Result<AllowedUrl> {
        if raw.contains("://") {
            return Self::parse(raw);
        }
        if raw.is_empty()
            || raw.contains(['/', '?', '#', '@', '\\'])
            || raw.contains(char::is_whitespace)
        {
            return Err(Error::InvalidUrl {
                url: if raw.contains('@') {
                    "<redacted: the host name embeds a user name>".to_string()
                } else {
                    raw.to_string()
                },
                reason: "expected a host name (https is implied) or an https:// URL".to_string(),
            });
        }
        let url = format!("https://{raw}");
        Self::parse(&url).map_err(|e| match e {
            Error::InvalidUrl { reason, .. } => Error::InvalidUrl {
                url: raw.to_string(),
                reason,
            },
            other => other,
        })
    }

    fn check(url: Url, raw: &str) -> Result<AllowedUrl> {
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
                    Some(Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(Host::Ipv6(ip)) => ip.is_loopback(),
                    Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
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
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Error::InvalidUrl {
                url: raw.to_string(),
                reason: "no host".to_string(),
            });
        }
        Ok(AllowedUrl(url))
    }

    /// The URL text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The parsed URL.
    pub fn url(&self) -> &Url {
        &self.0
    }

    /// Scheme, host and port: what credentials and redirects are scoped to.
    pub fn origin(&self) -> Origin {
        self.0.origin()
    }

    /// Whether `other` is on the same origin (same scheme, host and port).
    pub fn same_origin(&self, other: &AllowedUrl) -> bool {
        self.origin() == other.origin()
    }

    /// `path` (starting with `/`, possibly with a query) on this URL's origin.
    pub(crate) fn with_path(&self, path: &str) -> Result<AllowedUrl> {
        let joined = self.0.join(path).map_err(|e| Error::InvalidUrl {
            url: path.to_string(),
            reason: e.to_string(),
        })?;
        let next = Self::check(joined.clone(), joined.as_str())?;
        if !self.same_origin(&next) {
            return Err(Error::InvalidUrl {
                url: path.to_string(),
                reason: format!("not a path on {}", self.origin().ascii_serialization()),
            });
        }
        Ok(next)
    }

    /// The target of a redirect from this URL to `location` (absolute or relative): it must
    /// pass the rule and stay on this URL's origin, which also rules out https → http.
    pub fn redirect(&self, location: &str) -> Result<AllowedUrl> {
        let refused = |to: String, reason: String| Error::RedirectRefused {
            from: self.as_str().to_string(),
            to,
            reason,
        };
        let next = self
            .0
            .join(location)
            .map_err(|e| refused(location.to_string(), e.to_string()))?;
        let next = Self::check(next.clone(), next.as_str())
            .map_err(|e| refused(next.to_string(), e.to_string()))?;
        if !self.same_origin(&next) {
            return Err(refused(
                next.as_str().to_string(),
                format!(
                    "it leaves {} (redirects are followed on the same origin only)",
                    self.origin().ascii_serialization()
                ),
            ));
        }
        Ok(next)
    }
}

impl fmt::Display for AllowedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for AllowedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AllowedUrl({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_allowed_to_loopback_only() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.8.9.10/x",
            "http://localhost:8080",
            "http://[::1]:8080",
            "https://example.org",
            "https://x.invalid/a",
        ] {
            assert!(AllowedUrl::parse(ok).is_ok(), "{ok}");
        }
        let err = AllowedUrl::parse("http://example.org").unwrap_err();
        assert!(matches!(err, Error::InsecureUrl { ref url } if url == "http://example.org"));
        assert!(err.to_string().contains("https is required"), "{err}");
    }

    #[test]
    fn other_schemes_and_relative_urls_are_invalid() {
        for bad in [
            "file:///etc/passwd",
            "ftp://x.invalid/a",
            "data:text/plain,hi",
            "/hatrac/a.png",
            "https://",
        ] {
            match AllowedUrl::parse(bad) {
                Err(Error::InvalidUrl { url, .. }) => assert_eq!(url, bad),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_being_echoed() {
        let msg = AllowedUrl::parse("https://user:s3cret@example.org")
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("s3cret"), "{msg}");
    }

    #[test]
    fn redirects_stay_on_the_origin() {
        let from = AllowedUrl::parse("https://example.org/hatrac/a").unwrap();
        assert_eq!(
            from.redirect("b?x=1").unwrap().as_str(),
            "https://example.org/hatrac/b?x=1"
        );
        for (to, shown) in [
            ("http://example.org/a", "http://example.org/a"),
            ("https://example.org:8443/a", "https://example.org:8443/a"),
            (
                "https://example.org.evil.invalid/a",
                "https://example.org.evil.invalid/a",
            ),
            ("file:///etc/passwd", "file:///etc/passwd"),
            ("//other.invalid/a", "https://other.invalid/a"),
        ] {
            match from.redirect(to) {
                Err(Error::RedirectRefused { from: f, to: t, .. }) => {
                    assert_eq!(f, "https://example.org/hatrac/a");
                    assert_eq!(t, shown);
                }
                other => panic!("{to}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_bare_host_name_means_https() {
        for (given, formed) in [
            ("example.invalid", "https://example.invalid/"),
            ("Example.Invalid", "https://example.invalid/"),
            ("x.invalid:8443", "https://x.invalid:8443/"),
            ("127.0.0.1:8080", "https://127.0.0.1:8080/"),
            ("[::1]:8443", "https://[::1]:8443/"),
            ("https://x.invalid", "https://x.invalid/"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
        ] {
            assert_eq!(
                AllowedUrl::parse_server(given).unwrap().as_str(),
                formed,
                "{given}"
            );
        }
    }

    #[test]
    fn a_server_given_as_a_url_still_follows_the_https_rule() {
        match AllowedUrl::parse_server("http://x.invalid") {
            Err(Error::InsecureUrl { url }) => assert_eq!(url, "http://x.invalid"),
            other => panic!("{other:?}"),
        }
        for bad in [
            "",
            "x.invalid/ermrest",
            "x.invalid?a=b",
            "x.invalid#f",
            "user@x.invalid",
            "x .invalid",
            "ftp://x.invalid",
        ] {
            match AllowedUrl::parse_server(bad) {
                Err(Error::InvalidUrl { .. }) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_default_port_is_part_of_the_origin() {
        let catalog = AllowedUrl::parse("http://127.0.0.1").unwrap();
        let other = AllowedUrl::parse("http://127.0.0.1:8080/x").unwrap();
        assert!(!catalog.same_origin(&other));
        assert!(catalog.same_origin(&AllowedUrl::parse("http://127.0.0.1:80/y").unwrap()));
        assert!(catalog.with_path("/ermrest/catalog/1/schema").is_ok());
    }
}
