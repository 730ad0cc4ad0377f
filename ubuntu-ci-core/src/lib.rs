//! ubuntu-ci core: continuous integration of Debian/Ubuntu source packages.
//!
//! A developer hands in source packages (`_source.changes` and the files it lists); the
//! system records a ticket, stores the files, builds them into a per-request archive, and
//! reports every step on the ticket. This crate holds the domain model ([`model`]), one
//! trait per service with its backends ([`tickets`], [`store`]), upload validation
//! ([`upload`]), the operations that combine them ([`submit`]), configuration ([`config`])
//! and the REST server ([`server`]). Frontends (the `ubuntu-ci` CLI, Python) stay thin.
//!
//! # Quickstart
//!
//! One source package through the whole pipeline on the embedded defaults (state in
//! `$XDG_DATA_HOME/ubuntu-ci`): a ticket with its upload stored, then the [`lander`]
//! building it into a PPA, making an image, running its DEP-8 tests and publishing it.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use tokio_util::sync::CancellationToken;
//! use ubuntu_ci_core::config::Config;
//! use ubuntu_ci_core::lander::{ExecuteRequest, Lander, LanderOptions, RequestState};
//! use ubuntu_ci_core::queue::QueueName;
//! use ubuntu_ci_core::submit::{CreateTicket, NoProgress};
//!
//! # async fn quickstart() -> ubuntu_ci_core::Result<()> {
//! let services = Config::default().connect(None).await?;
//! let ticket = CreateTicket::new("dev@example.com", "hello-ci 1.0-1")
//!     .with_upload("hello-ci_1.0-1_source.changes")
//!     .run(&services, Arc::new(NoProgress))
//!     .await?;
//! let queue = QueueName::new(format!("ticket-{}-exchange", ticket.ticket.id))?;
//! let lander = Lander::new(services.clone(), LanderOptions::new("bookworm")?);
//! let outcome = lander
//!     .execute(ExecuteRequest::for_ticket(&ticket, &queue), CancellationToken::new())
//!     .await?;
//! assert_eq!(outcome.state, RequestState::Completed, "{:?}", outcome.reason);
//! # Ok(())
//! # }
//! ```
//!
//! `examples/rust/lander.rs` does the same and prints the progress as it comes
//! (`cargo run -p ubuntu-ci-core --example lander -- PATH/TO/SOURCE.changes`).

pub mod archive;
pub mod artifacts;
pub mod builder;
pub mod config;
pub mod doctor;
pub mod error;
pub mod fsutil;
pub mod image;
pub mod lander;
pub mod model;
pub mod ppa;
pub mod queue;
pub mod runner;
pub mod server;
pub mod store;
pub mod submit;
pub mod tickets;
pub mod upload;
pub mod wire;
pub mod workers;

pub use error::{Error, ErrorKind, Result};
