//! The source builder: step 5 of the seed. Given the source files' URLs and a PPA, it builds
//! the binaries in isolation (sbuild), stores them with the build log, publishes them into
//! the PPA, and reports on a progress queue.
//!
//! [`fetch`] takes the sources from the data store and validates them again; [`order`] sorts a ticket's sources by their build-dependencies on each other;
//! [`process`] supervises the external tools: log streaming, heartbeats, timeouts and
//! cancels that end the whole process tree.

pub mod fetch;
pub mod order;
pub mod process;
