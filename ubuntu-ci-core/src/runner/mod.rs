//! The test runner: step 7 of the seed. It runs the DEP-8 tests of a package's source in an
//! image and reports the seed's progress (`current` of `total` tests) and completion, with
//! a JUnit report and the log as artifacts.
//!
//! [`dep8`] reads the tests a source declares and the results autopkgtest writes;
//! [`autopkgtest::AutopkgtestRunner`] is the local backend (autopkgtest's unshare server on
//! `ROOTFS` images).

pub mod autopkgtest;
pub mod dep8;

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::queue::{Done, QueueName};

/// One package name or several (the seed sends one; a list is allowed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PackageNames {
    /// One binary package.
    One(String),
    /// Several binary packages of one source.
    Many(Vec<String>),
}

impl PackageNames {
    /// The names, in order.
    pub fn names(&self) -> Vec<String> {
        match self {
            PackageNames::One(name) => vec![name.clone()],
            PackageNames::Many(names) => names.clone(),
        }
    }
}

/// The seed's `test_image` message, with what it leaves implicit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestImage {
    /// The request's id, echoed in every message (`"1"`).
    pub test_request_id: String,
    /// The image's URL in the data store.
    pub image_url: String,
    /// The binary package(s) whose source's tests run.
    pub package_name: PackageNames,
    /// Where progress goes (default: `test-runner-<test_request_id>-exchange`).
    #[serde(default)]
    pub progress_queue: Option<String>,
    /// The ticket (results in `ticket.<id>.test-runner`, recorded as its artifacts).
    #[serde(default)]
    pub ticket_id: Option<i64>,
    /// The source upload's URLs in the data store, to take the tests from (default: the
    /// source the image's PPAs publish for the package).
    #[serde(default)]
    pub source_packages: Vec<String>,
}

impl TestImage {
    /// The progress queue: the given one, else `test-runner-<test_request_id>-exchange`.
    ///
    /// # Errors
    /// `InvalidInput` when that is not a valid queue name.
    pub fn queue(&self) -> Result<QueueName> {
        match &self.progress_queue {
            Some(queue) => QueueName::new(queue.clone()),
            None => QueueName::new(format!("test-runner-{}-exchange", self.test_request_id)),
        }
    }
}

/// Checks a test request id: 1 to 64 of `A-Z a-z 0-9 . _ -`.
///
/// # Errors
/// `InvalidInput`.
pub fn check_request_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "test_request_id {id:?}: 1 to 64 of A-Z a-z 0-9 . _ -"
        )))
    }
}

/// Runs DEP-8 tests in images.
#[async_trait]
pub trait TestRunner: Send + Sync + fmt::Debug {
    /// Runs the tests of `request` to their end, reporting on its progress queue; the final
    /// message is the seed's completion (`status`, `test_result`, `artifacts`), or
    /// `FAILED` with the reason when the tests could not run (`retryable` says whether
    /// running again may help). `cancel` ends the run and its whole process tree.
    ///
    /// # Errors
    /// Only when nothing can be reported (a malformed queue name, a broken queue).
    async fn test_image(&self, request: TestImage, cancel: CancellationToken) -> Result<Done>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_message_reads_as_written() {
        let request: TestImage = serde_json::from_value(serde_json::json!({
            "test_request_id": "1",
            "image_url": "http://glance_url/image-1.iso",
            "package_name": "unity8"
        }))
        .unwrap();
        assert_eq!(request.package_name.names(), ["unity8"]);
        assert_eq!(request.queue().unwrap().as_str(), "test-runner-1-exchange");
        let many: TestImage = serde_json::from_value(serde_json::json!({
            "test_request_id": "2",
            "image_url": "x",
            "package_name": ["a", "b"]
        }))
        .unwrap();
        assert_eq!(many.package_name.names(), ["a", "b"]);
        check_request_id("1").unwrap();
        for bad in ["", "../x", "a b", &"x".repeat(65)] {
            assert!(check_request_id(bad).is_err(), "{bad:?}");
        }
    }
}
