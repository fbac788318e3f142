//! Credentials from `~/.deriva/credential.json` (or `DERIVA_CREDENTIAL_FILE`), as deriva-py
//! stores them: a JSON object keyed by host string, each value `{"bearer-token": …}` or
//! `{"cookie": "name=value"}`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::error::{Error, Result};

/// A catalog credential. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// Sent as `Authorization: Bearer <token>`.
    BearerToken(String),
    /// An opaque `name=value` session cookie, sent as `Cookie: name=value`.
    Cookie(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::BearerToken(_) => f.write_str("Credential::BearerToken(<redacted>)"),
            Credential::Cookie(c) => {
                // The cookie name is not secret; its value is.
                let name = c.split('=').next().unwrap_or("");
                write!(f, "Credential::Cookie({name}=<redacted>)")
            }
        }
    }
}

/// The credential file path: `DERIVA_CREDENTIAL_FILE`, else `~/.deriva/credential.json`.
pub fn default_credential_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DERIVA_CREDENTIAL_FILE") {
        return Some(PathBuf::from(p));
    }
    dirs::home_dir().map(|h| h.join(".deriva").join("credential.json"))
}

/// Looks up the credential for `host` (e.g. `example.org` or `127.0.0.1:8080`, exactly as the
/// host part of the URL, with a lower-cased fallback) in `file`. A missing file means
/// anonymous (`Ok(None)`); an unreadable or malformed one is an error naming the file.
pub fn load_credential(host: &str, file: &Path) -> Result<Option<Credential>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Credential {
                path: file.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    let doc: Json = serde_json::from_str(&text).map_err(|e| Error::Credential {
        path: file.to_path_buf(),
        // serde's message quotes no input text beyond a token; still, report only the position.
        reason: format!("not valid JSON (line {} column {})", e.line(), e.column()),
    })?;
    let entry = doc
        .get(host)
        .or_else(|| doc.get(host.to_ascii_lowercase().as_str()));
    let Some(entry) = entry else {
        return Ok(None);
    };
    if let Some(t) = entry.get("bearer-token").and_then(Json::as_str) {
        return Ok(Some(Credential::BearerToken(t.to_string())));
    }
    if let Some(c) = entry.get("cookie").and_then(Json::as_str) {
        if !c.contains('=') {
            return Err(Error::Credential {
                path: file.to_path_buf(),
                reason: format!("the cookie for {host} is not of the form name=value"),
            });
        }
        return Ok(Some(Credential::Cookie(c.to_string())));
    }
    Err(Error::Credential {
        path: file.to_path_buf(),
        reason: format!(
            "the entry for {host} has neither \"bearer-token\" nor \"cookie\" (username/password login is not supported)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_credential_reads_bearer_tokens_and_cookies_by_host() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credential.json");
        std::fs::write(
            &file,
            r#"{"127.0.0.1:8080": {"bearer-token": "s3cret"}, "example.org": {"cookie": "webpy_session=abc"}}"#,
        )
        .unwrap();
        assert_eq!(
            load_credential("127.0.0.1:8080", &file).unwrap(),
            Some(Credential::BearerToken("s3cret".into()))
        );
        assert_eq!(
            load_credential("EXAMPLE.ORG", &file).unwrap(),
            Some(Credential::Cookie("webpy_session=abc".into()))
        );
        assert_eq!(load_credential("other.org", &file).unwrap(), None);
        assert_eq!(
            load_credential("x", &dir.path().join("missing.json")).unwrap(),
            None
        );
    }

    #[test]
    fn credential_debug_output_redacts_the_secret() {
        let t = format!("{:?}", Credential::BearerToken("s3cret".into()));
        let c = format!("{:?}", Credential::Cookie("webpy_session=abc".into()));
        assert_eq!(t, "Credential::BearerToken(<redacted>)");
        assert_eq!(c, "Credential::Cookie(webpy_session=<redacted>)");
    }

    #[test]
    fn malformed_credential_file_error_names_the_file_but_not_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credential.json");
        std::fs::write(&file, r#"{"h": {"bearer-token": "s3cret""#).unwrap();
        let msg = load_credential("h", &file).unwrap_err().to_string();
        assert!(msg.contains("credential.json"), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");
    }
}
