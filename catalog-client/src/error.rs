//! The one error type of the catalog client.

use std::path::PathBuf;

/// Errors of the catalog client. HTTP errors name the method, URL and status; none of them
/// ever carries a credential (URLs never hold one: tokens travel in headers).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A plain-http URL to a host other than loopback.
    #[error("refusing plain http to {url}: https is required except to loopback (127.0.0.1, ::1, localhost)")]
    InsecureUrl {
        /// The URL as given.
        url: String,
    },

    /// The host URL cannot be used.
    #[error("invalid catalog URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        reason: String,
    },

    /// A redirect that would leave the origin of the request (or break the URL rule).
    #[error("refusing the redirect from {from} to {to}: {reason}")]
    RedirectRefused {
        /// The URL that answered with the redirect.
        from: String,
        /// Where it pointed (resolved against `from`).
        to: String,
        /// Why it is not followed.
        reason: String,
    },

    /// A catalog request for a URL that is not on the catalog's origin (the credential
    /// would go with it).
    #[error("refusing to send a catalog request, and its credential, to {url}: not on the catalog's origin {catalog}")]
    OffCatalogUrl {
        /// The URL asked for.
        url: String,
        /// The catalog's origin.
        catalog: String,
    },

    /// A name from the catalog (schema, table, RID, asset `Filename`) that cannot be a file
    /// or directory name: joined onto a directory it would leave it.
    #[error("the catalog's {what} {value:?} cannot be used as a file or directory name: it is empty, `.` or `..`, absolute, or holds `/`, `\\` or NUL")]
    UnsafeName {
        /// What the value is (e.g. `schema name`, `Filename of demo:Image row 1-I001`).
        what: String,
        /// The value as the catalog sent it.
        value: String,
    },

    /// No connection, or no byte from the server, within the timeout.
    #[error("{method} {url}: timed out: {phase} took longer than {limit:?} (raise the {phase} timeout, e.g. DatasetSpec.timeout or --timeout)")]
    Timeout {
        /// HTTP method.
        method: String,
        /// Request URL.
        url: String,
        /// `connect`, or `read` (the longest silence allowed between bytes).
        phase: String,
        /// The limit that passed.
        limit: std::time::Duration,
    },

    /// The server sent more bytes than `fetch.txt` lists; reading stopped there.
    #[error("GET {url}: more bytes than the {expected} fetch.txt lists for {path}: stopped after receiving {received}")]
    LengthExceeded {
        /// Source URL.
        url: String,
        /// Bag-relative destination.
        path: String,
        /// LENGTH from fetch.txt.
        expected: u64,
        /// Bytes received when reading stopped.
        received: u64,
    },

    /// The server's complete answer is shorter than `fetch.txt`'s LENGTH.
    #[error("GET {url}: {path} has {received} bytes, but fetch.txt lists {expected}")]
    LengthMismatch {
        /// Source URL.
        url: String,
        /// Bag-relative destination.
        path: String,
        /// LENGTH from fetch.txt.
        expected: u64,
        /// Bytes received.
        received: u64,
    },

    /// The credential file cannot be read or parsed.
    #[error("credential file {path}: {reason}")]
    Credential {
        /// The credential file.
        path: PathBuf,
        /// What is wrong (never the secret).
        reason: String,
    },

    /// 401: no valid credential.
    #[error("{method} {url}: 401 Unauthorized (check ~/.deriva/credential.json or DERIVA_CREDENTIAL_FILE): {message}")]
    Unauthorized {
        /// HTTP method.
        method: String,
        /// Request URL.
        url: String,
        /// Server message.
        message: String,
    },

    /// 403: authenticated but not allowed.
    #[error("{method} {url}: 403 Forbidden: {message}")]
    Forbidden {
        /// HTTP method.
        method: String,
        /// Request URL.
        url: String,
        /// Server message.
        message: String,
    },

    /// 404: no such resource.
    #[error("{method} {url}: 404 Not Found: {message}")]
    NotFound {
        /// HTTP method.
        method: String,
        /// Request URL.
        url: String,
        /// Server message.
        message: String,
    },

    /// 409: the request conflicts with the catalog model or state.
    #[error("{method} {url}: 409 Conflict: {message}")]
    Conflict {
        /// HTTP method.
        method: String,
        /// Request URL.
        url: String,
        /// Server message.
        message: String,
    },

    /// 5xx: the server failed (retried where safe before this is returned).
    #[error("{method} {url}: server error {status}: {message}")]
    Server {
        /// HTTP method.
        method: String,
        /// Request URL.
        url: String,
        /// Status code.
        status: u16,
        /// Server message.
        message: String,
    },

    /// Any other non-success status.
    #[error("{method} {url}: HTTP {status}: {message}")]
    Http {
        /// HTTP method.
        method: String,
        /// Request URL.
        url: String,
        /// Status code.
        status: u16,
        /// Server message.
        message: String,
    },

    /// The request did not complete (connect error, dropped connection, timeout): its outcome
    /// on the server is unknown.
    #[error("{method} {url}: no response: {reason}")]
    Transport {
        /// HTTP method.
        method: String,
        /// Request URL.
        url: String,
        /// What happened.
        reason: String,
    },

    /// The server answered something the client cannot use.
    #[error("{url}: unexpected response: {reason}")]
    Protocol {
        /// Request URL.
        url: String,
        /// What is wrong.
        reason: String,
    },

    /// The local execution state database failed.
    #[error("local state {path}: {source}")]
    State {
        /// The SQLite file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },

    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Input rejected before any network traffic (e.g. records of two features in one call).
    #[error("{0}")]
    Validation(String),

    /// No execution with this RID in the local registry.
    #[error("execution {rid} is not in the local execution registry {path}")]
    ExecutionNotFound {
        /// The execution RID.
        rid: String,
        /// The registry database.
        path: PathBuf,
    },

    /// The local registry and the catalog disagree in a way the client cannot resolve.
    #[error("execution {rid}: {reason}")]
    StateInconsistency {
        /// The execution RID.
        rid: String,
        /// What disagrees.
        reason: String,
    },

    /// A downloaded file does not match its expected checksum.
    #[error(
        "checksum mismatch for {path} fetched from {url}: expected md5 {expected}, got {actual}"
    )]
    ChecksumMismatch {
        /// Source URL.
        url: String,
        /// Bag-relative destination.
        path: String,
        /// Expected hex md5.
        expected: String,
        /// Actual hex md5.
        actual: String,
    },

    /// A bag path (fetch.txt, manifest, Filename) that would escape the bag.
    #[error("{source_file}: path {path:?} escapes the bag directory")]
    UnsafePath {
        /// The offending path.
        path: String,
        /// The file that named it.
        source_file: PathBuf,
    },

    /// Reading or writing a bag failed (boxed: bag errors are large).
    #[error(transparent)]
    Bag(Box<deriva_bag_format::Error>),

    /// The catalog model or a record is invalid (boxed: model errors are large).
    #[error(transparent)]
    Model(Box<deriva_bag_features::Error>),
}

impl From<deriva_bag_format::Error> for Error {
    fn from(e: deriva_bag_format::Error) -> Self {
        Error::Bag(Box::new(e))
    }
}

impl From<deriva_bag_features::Error> for Error {
    fn from(e: deriva_bag_features::Error) -> Self {
        Error::Model(Box::new(e))
    }
}

/// For the live dataset's `DatasetLike` methods: a model error comes back as itself, anything
/// else (network, catalog, cache) as [`deriva_bag_features::Error::Backend`].
impl From<Error> for deriva_bag_features::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Model(inner) => *inner,
            other => deriva_bag_features::Error::Backend(Box::new(other)),
        }
    }
}

impl Error {
    /// True when a request may have been performed without the client seeing the answer
    /// (transport failure, timeout or 5xx): only idempotent operations may be retried
    /// blindly. Refusals (URL rule, redirects, names, lengths, digests) are never retried.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Transport { .. } | Error::Server { .. } | Error::Timeout { .. }
        )
    }

    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { .. } => Some(401),
            Error::Forbidden { .. } => Some(403),
            Error::NotFound { .. } => Some(404),
            Error::Conflict { .. } => Some(409),
            Error::Server { status, .. } | Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Maps a non-success status to the matching variant.
    pub(crate) fn from_status(method: &str, url: &str, status: u16, body: &str) -> Error {
        let method = method.to_string();
        let url = url.to_string();
        let message = body.trim().chars().take(500).collect::<String>();
        match status {
            401 => Error::Unauthorized {
                method,
                url,
                message,
            },
            403 => Error::Forbidden {
                method,
                url,
                message,
            },
            404 => Error::NotFound {
                method,
                url,
                message,
            },
            409 => Error::Conflict {
                method,
                url,
                message,
            },
            500..=599 => Error::Server {
                method,
                url,
                status,
                message,
            },
            _ => Error::Http {
                method,
                url,
                status,
                message,
            },
        }
    }

    pub(crate) fn state(path: &std::path::Path, source: rusqlite::Error) -> Error {
        Error::State {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result with the client's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
