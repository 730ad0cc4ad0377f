//! Exit codes: the one table from how a command ended to the process's exit status, and
//! the error as it is printed (text, or a JSON object under `--json`).
//!
//! | code | kind | meaning |
//! |---|---|---|
//! | 0 | | success (for `test`: PASSED, SKIPPED or NO_TESTS, which do not fail a request) |
//! | 1 | `internal` | internal error (a bug or a broken environment) |
//! | 2 | `usage` | bad command line (from clap) |
//! | 3 | `invalid_input` | invalid input: a malformed upload, field or name |
//! | 4 | `not_found` | not found |
//! | 5 | `conflict` | conflict (a version already uploaded with other files; no request to cancel) |
//! | 6 | `unauthorized` | unauthorized: missing or wrong token |
//! | 7 | `unavailable` | unavailable: a service cannot be reached; try again later |
//! | 8 | `too_large` | too large |
//! | 9 | `unsupported` | unsupported: not implemented or not in this build |
//! | 10 | `tests_failed` | tests ran and failed (`test`; a request that failed at IMAGE_TEST) |
//! | 11 | `did_not_complete` | work ran and did not complete: a build, an image or a test run that failed, a request that stopped at another step or was cancelled |
//! | 12 | `prerequisites_missing` | `doctor`: something ubuntu-ci needs is missing on this machine |

use serde::Serialize;
use ubuntu_ci_core::{Error, ErrorKind};

/// Exit status of an internal error.
pub const INTERNAL: u8 = 1;

/// Exit status of a bad command line.
pub const USAGE: u8 = 2;

/// Exit status of tests that ran and failed.
pub const TESTS_FAILED: u8 = 10;

/// Exit status of work (a build, an image, a test run, a request) that ran and did not
/// complete.
pub const DID_NOT_COMPLETE: u8 = 11;

/// Exit status of `doctor` when a prerequisite is missing.
pub const PREREQUISITES_MISSING: u8 = 12;

/// A request ran and did not complete: why, and the step it ended at.
#[derive(Debug)]
pub struct RequestDidNotComplete {
    /// The step (`SOURCE_BUILD`).
    pub step: String,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for RequestDidNotComplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request ended at {}: {}", self.step, self.reason)
    }
}

impl std::error::Error for RequestDidNotComplete {}

/// A worker's job (a build, an image, a test run) ran and did not complete.
#[derive(Debug)]
pub struct DidNotComplete {
    /// What ran (`build`).
    pub what: String,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for DidNotComplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the {} failed: {}", self.what, self.reason)
    }
}

impl std::error::Error for DidNotComplete {}

/// Tests ran and failed: the test result with its reason (`FAILED (…)`).
#[derive(Debug)]
pub struct TestsDidNotPass(pub String);

impl std::fmt::Display for TestsDidNotPass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the tests did not pass: {}", self.0)
    }
}

impl std::error::Error for TestsDidNotPass {}

/// `doctor` found prerequisites missing: how many.
#[derive(Debug)]
pub struct PrerequisitesMissing(pub usize);

impl std::fmt::Display for PrerequisitesMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} prerequisite{} missing on this machine; see the fixes above",
            self.0,
            if self.0 == 1 { " is" } else { "s are" }
        )
    }
}

impl std::error::Error for PrerequisitesMissing {}

/// The exit status and the kind's name of an error.
pub fn classify(err: &anyhow::Error) -> (u8, &'static str) {
    if err.downcast_ref::<TestsDidNotPass>().is_some() {
        return (TESTS_FAILED, "tests_failed");
    }
    if err.downcast_ref::<RequestDidNotComplete>().is_some()
        || err.downcast_ref::<DidNotComplete>().is_some()
    {
        return (DID_NOT_COMPLETE, "did_not_complete");
    }
    if err.downcast_ref::<PrerequisitesMissing>().is_some() {
        return (PREREQUISITES_MISSING, "prerequisites_missing");
    }
    let Some(kind) = err.downcast_ref::<Error>().map(Error::kind) else {
        return (INTERNAL, ErrorKind::Internal.as_str());
    };
    let code = match kind {
        ErrorKind::InvalidInput => 3,
        ErrorKind::NotFound => 4,
        ErrorKind::Conflict => 5,
        ErrorKind::Unauthorized => 6,
        ErrorKind::Unavailable => 7,
        ErrorKind::TooLarge => 8,
        ErrorKind::Unsupported => 9,
        _ => INTERNAL,
    };
    (code, kind.as_str())
}

/// The exit status for an error.
pub fn code_of(err: &anyhow::Error) -> u8 {
    classify(err).0
}

/// An error as `--json` prints it on stderr: one JSON object on one line.
#[derive(Debug, Serialize)]
pub struct JsonError {
    /// The kind: a core error kind (`not_found`, …), `usage`, `tests_failed`,
    /// `did_not_complete` or `prerequisites_missing`.
    pub kind: &'static str,
    /// What went wrong, with its causes.
    pub message: String,
    /// Whether the same command may succeed later.
    pub retryable: bool,
    /// The process's exit status.
    pub exit_code: u8,
}

impl JsonError {
    /// The JSON form of `err`.
    pub fn of(err: &anyhow::Error) -> JsonError {
        let (exit_code, kind) = classify(err);
        JsonError {
            kind,
            message: err.to_string(),
            retryable: err.downcast_ref::<Error>().is_some_and(Error::is_retryable),
            exit_code,
        }
    }
}

/// The message for people: the error with its chain of causes.
pub fn describe(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    if let Some(core) = err.downcast_ref::<Error>() {
        if core.is_retryable() {
            text.push_str(" (temporary: try again later)");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_distinct_codes() {
        let codes: Vec<u8> = [
            Error::invalid("x"),
            Error::not_found("x"),
            Error::conflict("x"),
            Error::unauthorized("x"),
            Error::unavailable("x"),
            Error::too_large("x"),
            Error::unsupported("x"),
            Error::internal("x"),
        ]
        .into_iter()
        .map(|e| code_of(&anyhow::Error::new(e)))
        .collect();
        assert_eq!(codes, vec![3, 4, 5, 6, 7, 8, 9, 1]);
        assert_eq!(code_of(&anyhow::anyhow!("plain")), INTERNAL);
        let ended = [
            anyhow::Error::new(TestsDidNotPass("FAILED".into())),
            anyhow::Error::new(DidNotComplete {
                what: "build".into(),
                reason: "x".into(),
            }),
            anyhow::Error::new(RequestDidNotComplete {
                step: "SOURCE_BUILD".into(),
                reason: "x".into(),
            }),
            anyhow::Error::new(PrerequisitesMissing(2)),
        ];
        let codes: Vec<u8> = ended.iter().map(code_of).collect();
        assert_eq!(codes, vec![10, 11, 11, 12]);
    }

    #[test]
    fn json_errors_carry_kind_and_retryability() {
        let err = anyhow::Error::new(Error::unavailable("server down"));
        let json = serde_json::to_value(JsonError::of(&err)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "unavailable", "message": "server down",
                               "retryable": true, "exit_code": 7})
        );
    }
}
