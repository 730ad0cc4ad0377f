//! The source builder: step 5 of the seed. Given the source files' URLs and a PPA, it builds
//! the binaries in isolation (sbuild), stores them with the build log, publishes them into
//! the PPA, and reports on a progress queue.
//!
//! [`fetch`] takes the sources from the data store and validates them again; [`order`] sorts
//! a ticket's sources by their build-dependencies on each other; [`process`] supervises the
//! external tools; [`sbuild::SbuildBuilder`] is the local backend.

pub mod fetch;
pub mod order;
pub mod process;
pub mod sbuild;
pub mod standalone;

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::queue::Done;

/// The seed's `build_source` message, with what it leaves implicit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSource {
    /// URLs of the upload's files in the data store (the `.changes` among them).
    pub source_packages: Vec<String>,
    /// The PPA to build against and publish into (`ppa:ci-team/ppa_build_1`).
    pub ppa: String,
    /// Where progress goes (`bsbuilder-1-exchange`).
    pub progress_queue: String,
    /// The ticket, whose subticket gets the artifacts (none for standalone builds).
    #[serde(default)]
    pub ticket_id: Option<i64>,
    /// The series (default: the configured one).
    #[serde(default)]
    pub series: Option<String>,
    /// The architecture (default: the host's).
    #[serde(default)]
    pub architecture: Option<String>,
}

/// Builds source packages.
#[async_trait]
pub trait SourceBuilder: Send + Sync + fmt::Debug {
    /// Builds `request` to its end, reporting on its progress queue: phases, the build log
    /// in batches, heartbeats, and the final message, which is also returned. A failed build
    /// is a `FAILED` final message, not an error; `cancel` ends the build (and its whole
    /// process tree) with `FAILED`.
    ///
    /// # Errors
    /// Only when nothing can be reported: a malformed queue name, a broken queue.
    async fn build_source(&self, request: BuildSource, cancel: CancellationToken) -> Result<Done>;
}
