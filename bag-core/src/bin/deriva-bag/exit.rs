//! Exit statuses and the one error type of the CLI.
//!
//! 0 success, 1 validation failure (`validate` found problems), 2 bad input.
//! Every library error reaching `main` is bad input from the user's point of view: the bag
//! cannot be opened, a name or RID does not exist, a file is malformed — and its message
//! names the file, line or value at fault.

use std::error::Error as StdError;
use std::io;
use std::process::ExitCode;

use crate::output::StreamError;

/// How a command that ran to completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was printed.
    Success,
    /// `validate` found problems (they were printed).
    ValidationFailed,
}

/// Why a command could not complete.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The library refused: unopenable bag, unknown table/feature/RID, malformed file…
    /// (boxed: the library error is large and every command returns this type).
    #[error(transparent)]
    Bag(Box<deriva_bag_core::Error>),
    /// restructure refused (unknown target, unlabeled assets, unsafe label, occupied path…).
    #[error(transparent)]
    Restructure(Box<deriva_bag_core::restructure::Error>),
    /// The online client refused (`materialize`: a URL, a length, a digest, a timeout…).
    #[cfg(feature = "catalog")]
    #[error(transparent)]
    Catalog(Box<deriva_bag_core::catalog::Error>),
    /// Writing the output failed.
    #[error("writing to stdout: {0}")]
    Output(#[source] io::Error),
}

impl From<deriva_bag_core::Error> for CliError {
    fn from(e: deriva_bag_core::Error) -> Self {
        CliError::Bag(Box::new(e))
    }
}

impl From<deriva_bag_core::restructure::Error> for CliError {
    fn from(e: deriva_bag_core::restructure::Error) -> Self {
        CliError::Restructure(Box::new(e))
    }
}

#[cfg(feature = "catalog")]
impl From<deriva_bag_core::catalog::Error> for CliError {
    fn from(e: deriva_bag_core::catalog::Error) -> Self {
        CliError::Catalog(Box::new(e))
    }
}

impl From<deriva_bag_core::features::Error> for CliError {
    fn from(e: deriva_bag_core::features::Error) -> Self {
        CliError::from(deriva_bag_core::Error::Features(e))
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        CliError::Output(e)
    }
}

impl<E: Into<CliError>> From<StreamError<E>> for CliError {
    fn from(e: StreamError<E>) -> Self {
        match e {
            StreamError::Item(e) => e.into(),
            StreamError::Output(e) => CliError::Output(e),
        }
    }
}

/// Exit status 0.
pub const SUCCESS: u8 = 0;
/// Exit status 1: validation found problems.
pub const VALIDATION_FAILED: u8 = 1;
/// Exit status 2: bad input (also clap's status for usage errors).
pub const BAD_INPUT: u8 = 2;

/// Why a run failed, for stderr: a short kind and the message (with its causes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What kind of error, kebab-case: `not-a-bag`, `table-not-found`, `csv`, … (see
    /// [`error_kind`]).
    pub kind: &'static str,
    /// The error's message followed by its causes ([`error_chain`]).
    pub message: String,
}

impl Failure {
    /// The stderr text: `error: <message>`, or with `--json` one JSON object
    /// `{"error":{"kind","message","exit_code"}}` (the exit code is unchanged either way).
    pub fn render(&self, json: bool, status: u8) -> String {
        if json {
            serde_json::json!({"error": {"kind": self.kind, "message": self.message, "exit_code": status}})
                .to_string()
        } else {
            format!("error: {}", self.message)
        }
    }
}

/// The exit status of a finished run, and why it failed (if it did).
pub fn finish(result: Result<Outcome, CliError>) -> (u8, Option<Failure>) {
    match result {
        Ok(Outcome::Success) => (SUCCESS, None),
        Ok(Outcome::ValidationFailed) => (VALIDATION_FAILED, None),
        // A closed pipe (`deriva-bag table … | head`) is the reader's choice, not a failure.
        Err(CliError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => (SUCCESS, None),
        Err(e) => (
            BAD_INPUT,
            Some(Failure {
                kind: error_kind(&e),
                message: error_chain(&e),
            }),
        ),
    }
}

/// The `kind` of an error in `--json` output: the library variant, kebab-case.
pub fn error_kind(err: &CliError) -> &'static str {
    match err {
        CliError::Bag(e) => bag_error_kind(e),
        CliError::Restructure(_) => "restructure",
        #[cfg(feature = "catalog")]
        CliError::Catalog(_) => "catalog",
        CliError::Output(_) => "output",
    }
}

/// [`error_kind`] of a bag error; a storage error behind a model error is named by its own
/// variant (a bad CSV is `csv` wherever it surfaced).
fn bag_error_kind(err: &deriva_bag_core::Error) -> &'static str {
    use deriva_bag_core::features::Error as M;
    use deriva_bag_core::Error as B;
    match err {
        B::Io { .. } => "io",
        B::NotABag { .. } => "not-a-bag",
        B::TagFile { .. } => "tag-file",
        B::UnsafePath { .. } => "unsafe-path",
        B::LinkEscapesBag { .. } => "link-escapes-bag",
        B::ArchiveTooLarge { .. } => "archive-too-large",
        B::Setting { .. } => "setting",
        B::Csv { .. } => "csv",
        B::UnknownColumn { .. } => "unknown-column",
        B::BadValue { .. } => "bad-value",
        B::Model { .. } => "model",
        B::ChecksumMismatch { .. } => "checksum-mismatch",
        B::NotInManifest { .. } => "not-in-manifest",
        B::IndexBuild { .. } | B::Index { .. } => "index",
        B::Write { .. } => "write",
        B::ReadOnly { .. } => "read-only",
        B::Features(m) => match m {
            M::InvalidRid { .. } => "invalid-rid",
            M::TableNotFound { .. } => "table-not-found",
            M::AmbiguousTable { .. } => "ambiguous-table",
            M::FeatureNotFound { .. } => "feature-not-found",
            M::DatasetNotFound { .. } => "dataset-not-found",
            M::Backend(inner) => inner.downcast_ref::<B>().map_or("backend", bag_error_kind),
            _ => "model",
        },
        _ => "bag",
    }
}

/// Converts a status from [`finish`] into the process exit code.
pub fn exit_code(status: u8) -> ExitCode {
    ExitCode::from(status)
}

/// The error's message followed by each cause that adds something: many of our messages
/// already embed their source (`{path}: {source}`), so a cause already contained in the
/// text so far is not repeated.
pub fn error_chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use deriva_bag_core::features::Error as ModelError;
    use deriva_bag_core::Error;

    #[test]
    fn success_and_validation_failure_map_to_0_and_1() {
        assert_eq!(finish(Ok(Outcome::Success)), (0, None));
        assert_eq!(finish(Ok(Outcome::ValidationFailed)), (1, None));
    }

    #[test]
    fn unknown_table_exits_2_naming_the_table() {
        let err = CliError::from(ModelError::TableNotFound {
            name: "Imagez".into(),
            known: vec!["demo:Image".into(), "demo:Subject".into()],
        });
        let (status, failure) = finish(Err(err));
        let message = failure.map(|f| f.render(false, status));
        assert_eq!(status, 2);
        assert_eq!(
            message.as_deref(),
            Some(
                "error: table \"Imagez\" does not exist in the bag's model \
                 (did you mean demo:Image?); known tables: demo:Image, demo:Subject"
            )
        );
    }

    #[test]
    fn with_json_an_error_is_one_object_with_kind_message_and_exit_code() {
        let err = CliError::from(ModelError::FeatureNotFound {
            table: "demo:Image".into(),
            name: "Glaucous".into(),
            known: vec!["Glaucoma".into()],
        });
        let (status, failure) = finish(Err(err));
        let rendered = failure.unwrap().render(true, status);
        let json: serde_json::Value = serde_json::from_str(&rendered).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {
                "kind": "feature-not-found",
                "message": "feature \"Glaucous\" not found on table demo:Image \
                            (did you mean Glaucoma?); features there: [Glaucoma]",
                "exit_code": 2,
            }})
        );
    }

    #[test]
    fn missing_bag_exits_2_naming_the_path_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let err = CliError::from(Error::io(PathBuf::from("/no/such/bag"), io));
        let (status, failure) = finish(Err(err));
        let message = failure.map(|f| f.render(false, status));
        assert_eq!(status, 2);
        // The Io variant's text already embeds its source: it is not printed twice.
        assert_eq!(
            message.as_deref(),
            Some("error: /no/such/bag: No such file or directory")
        );
    }

    #[test]
    fn backend_errors_show_the_storage_cause() {
        let inner = Error::Csv {
            path: PathBuf::from("data/demo/Image.csv"),
            line: 4,
            detail: "unterminated quoted field".into(),
        };
        let err = CliError::from(ModelError::Backend(Box::new(inner)));
        let (status, failure) = finish(Err(err));
        let message = failure.map(|f| f.render(false, status));
        assert_eq!(status, 2);
        assert_eq!(
            message.as_deref(),
            Some("error: data/demo/Image.csv line 4: unterminated quoted field")
        );
    }

    #[test]
    fn a_closed_stdout_pipe_is_not_an_error() {
        let err = CliError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert_eq!(finish(Err(err)), (0, None));
        let full = CliError::from(std::io::Error::other("disk full"));
        let (status, failure) = finish(Err(full));
        assert_eq!(status, 2);
        assert_eq!(
            failure.map(|f| f.render(false, status)).as_deref(),
            Some("error: writing to stdout: disk full")
        );
    }

    #[test]
    fn error_chain_appends_causes_that_add_information() {
        #[derive(Debug, thiserror::Error)]
        #[error("opening bag.zip")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::other(
            "invalid Zip archive: bad central directory",
        ));
        assert_eq!(
            error_chain(&err),
            "opening bag.zip: invalid Zip archive: bad central directory"
        );
    }
}
