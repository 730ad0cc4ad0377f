//! Exit codes: the one table from error kinds to the process's exit status.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | internal error (a bug or a broken environment) |
//! | 2 | bad command line (from clap) |
//! | 3 | invalid input: a malformed upload, field or name |
//! | 4 | not found |
//! | 5 | conflict (e.g. a version already uploaded with other files) |
//! | 6 | unauthorized: missing or wrong token |
//! | 7 | unavailable: a service cannot be reached; try again later |
//! | 8 | too large |
//! | 9 | unsupported: not implemented or not in this build |
//! | 10 | the tests ran and did not pass (`test`: FAILED, or no tests to run) |
//! | 11 | a request ran and did not complete (`create-ticket --wait`: a build or image failed, or it was cancelled) |

use ubuntu_ci_core::{Error, ErrorKind};

/// Exit status of an internal error.
pub const INTERNAL: u8 = 1;

/// Exit status of tests that ran and did not pass.
pub const TESTS_DID_NOT_PASS: u8 = 10;

/// Exit status of a request that ran and did not complete.
pub const REQUEST_DID_NOT_COMPLETE: u8 = 11;

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

/// Tests ran and did not pass: the test result (`FAILED`, `NO_TESTS`).
#[derive(Debug)]
pub struct TestsDidNotPass(pub String);

impl std::fmt::Display for TestsDidNotPass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_str() {
            "NO_TESTS" => f.write_str("no tests to run"),
            other => write!(f, "the tests did not pass: {other}"),
        }
    }
}

impl std::error::Error for TestsDidNotPass {}

/// The exit status for an error.
pub fn code_of(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<TestsDidNotPass>().is_some() {
        return TESTS_DID_NOT_PASS;
    }
    if err.downcast_ref::<RequestDidNotComplete>().is_some() {
        return REQUEST_DID_NOT_COMPLETE;
    }
    match err.downcast_ref::<Error>().map(Error::kind) {
        Some(ErrorKind::InvalidInput) => 3,
        Some(ErrorKind::NotFound) => 4,
        Some(ErrorKind::Conflict) => 5,
        Some(ErrorKind::Unauthorized) => 6,
        Some(ErrorKind::Unavailable) => 7,
        Some(ErrorKind::TooLarge) => 8,
        Some(ErrorKind::Unsupported) => 9,
        _ => INTERNAL,
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
    }
}
