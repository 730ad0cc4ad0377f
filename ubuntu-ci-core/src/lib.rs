//! ubuntu-ci core: continuous integration of Debian/Ubuntu source packages.
//!
//! A developer hands in source packages (`_source.changes` and the files it lists); the
//! system records a ticket, stores the files, builds them into a per-request archive, and
//! reports every step on the ticket. This crate holds the domain model ([`model`]), one
//! trait per service with its backends ([`tickets`], [`store`]), upload validation
//! ([`upload`]), the operations that combine them ([`submit`]), configuration ([`config`])
//! and the REST server ([`server`]). Frontends (the `ubuntu-ci` CLI, Python) stay thin.

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
