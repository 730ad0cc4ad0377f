//! The ticket system: tickets, source packages, uploads, subtickets, artifacts and progress.
//!
//! [`TicketSystem`] is the service's trait; its doc comments are the contract every backend
//! keeps, and [`conformance`] is the suite that checks it. Backends: [`sql::SqlTicketSystem`]
//! on SQLite (the default, a file in the data dir) or PostgreSQL (cargo feature `postgres`),
//! and [`http::HttpTicketSystem`], the client of `ubuntu-ci serve`. [`open_ticket_system`]
//! picks one from a URL, so frontends never name a backend type.

pub mod conformance;
pub mod http;
pub mod sql;
pub(crate) mod sqlite_batch;

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Stream;

use crate::error::{Error, Result};
use crate::model::{
    Artifact, ArtifactFilter, NewArtifact, NewSourcePackageUpload, NewSubticket, NewTicket,
    NewTransition, Page, PageRequest, SourcePackage, SourcePackageFilter, SourcePackageUpload,
    SpuFilter, Subticket, SubticketFilter, Ticket, TicketDetail, TicketEvent, TicketFilter,
    Transition, TransitionFilter,
};

/// A stream of a ticket's events, oldest first.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<TicketEvent>> + Send>>;

/// The ticket system's operations.
///
/// Every `create_*` validates its input first (the `validate` method of the `New*` type) and
/// returns [`crate::ErrorKind::InvalidInput`] without storing anything when it fails; a
/// reference to a resource that does not exist is [`crate::ErrorKind::NotFound`] and also
/// stores nothing. Every call is atomic: it happens whole or not at all. Created resources
/// get increasing ids. Lists are ordered by id, oldest first.
#[async_trait]
pub trait TicketSystem: Send + Sync + std::fmt::Debug {
    /// Creates a ticket at step `NEW`, status `PENDING`, and records its creation event.
    ///
    /// # Errors
    /// `InvalidInput` for an empty owner or title, over-long fields, a bad bug reference.
    async fn create_ticket(&self, new: NewTicket) -> Result<Ticket>;

    /// The ticket with its subtickets, artifacts and progress history.
    ///
    /// # Errors
    /// `NotFound` when there is no such ticket.
    async fn get_ticket(&self, id: i64) -> Result<TicketDetail>;

    /// The ticket alone (its step, status and state), without what hangs on it: cheaper
    /// than [`TicketSystem::get_ticket`] where only that is needed.
    ///
    /// # Errors
    /// `NotFound` when there is no such ticket.
    async fn ticket(&self, id: i64) -> Result<Ticket> {
        Ok(self.get_ticket(id).await?.ticket)
    }

    /// Tickets matching `filter`, one page of them.
    async fn list_tickets(&self, filter: TicketFilter, page: PageRequest) -> Result<Page<Ticket>>;

    /// The source package of this name, created if it does not exist yet. Idempotent: the
    /// same name always gives the same package, even when called concurrently. The flag says
    /// whether this call created it.
    ///
    /// # Errors
    /// `InvalidInput` when `name` is not a valid Debian source package name.
    async fn get_or_create_source_package(&self, name: &str) -> Result<(SourcePackage, bool)>;

    /// The source package with this id (`NotFound` otherwise).
    async fn get_source_package(&self, id: i64) -> Result<SourcePackage>;

    /// Source packages matching `filter`.
    async fn list_source_packages(
        &self,
        filter: SourcePackageFilter,
        page: PageRequest,
    ) -> Result<Page<SourcePackage>>;

    /// Records a source package upload: a version of a source package.
    ///
    /// # Errors
    /// `Conflict` when the package already has an upload of this version (one version, one
    /// content; look it up with [`TicketSystem::list_spus`] to reuse it). `NotFound` when the
    /// source package does not exist. `InvalidInput` for a malformed version.
    async fn create_spu(&self, new: NewSourcePackageUpload) -> Result<SourcePackageUpload>;

    /// The source package upload with this id (`NotFound` otherwise).
    async fn get_spu(&self, id: i64) -> Result<SourcePackageUpload>;

    /// Source package uploads matching `filter`.
    async fn list_spus(
        &self,
        filter: SpuFilter,
        page: PageRequest,
    ) -> Result<Page<SourcePackageUpload>>;

    /// Adds a subticket (one upload) to a ticket, and records the event.
    ///
    /// # Errors
    /// `NotFound` when the ticket or the upload does not exist; `Conflict` when the ticket is
    /// closed.
    async fn create_subticket(&self, new: NewSubticket) -> Result<Subticket>;

    /// The subticket with this id (`NotFound` otherwise).
    async fn get_subticket(&self, id: i64) -> Result<Subticket>;

    /// Subtickets matching `filter`.
    async fn list_subtickets(
        &self,
        filter: SubticketFilter,
        page: PageRequest,
    ) -> Result<Page<Subticket>>;

    /// Records an artifact of a subticket (its ticket is implied) or of a ticket, and the
    /// event.
    ///
    /// # Errors
    /// `NotFound` when the subticket or ticket does not exist; `InvalidInput` when both are
    /// given and the subticket is not the ticket's.
    async fn create_artifact(&self, new: NewArtifact) -> Result<Artifact>;

    /// The artifact with this id (`NotFound` otherwise).
    async fn get_artifact(&self, id: i64) -> Result<Artifact>;

    /// Artifacts matching `filter`.
    async fn list_artifacts(
        &self,
        filter: ArtifactFilter,
        page: PageRequest,
    ) -> Result<Page<Artifact>>;

    /// Moves a ticket to a workflow step and status, keeps the transition in its history
    /// and records the event. Transitions of one ticket are serialised.
    ///
    /// # Errors
    /// `NotFound` for an unknown ticket; `Conflict` when the ticket is closed (but for a
    /// retry) or the step is earlier than the ticket's current one (see
    /// [`crate::model::check_transition`]).
    async fn record_transition(&self, new: NewTransition) -> Result<Transition>;

    /// The transition with this id (`NotFound` otherwise).
    async fn get_transition(&self, id: i64) -> Result<Transition>;

    /// Transitions matching `filter`.
    async fn list_transitions(
        &self,
        filter: TransitionFilter,
        page: PageRequest,
    ) -> Result<Page<Transition>>;

    /// The ticket's events with an id greater than `after` (all of them for `None`), then
    /// every new one as it happens. The stream ends after the event that closes the ticket;
    /// a subscriber that comes late still gets the whole history first.
    ///
    /// # Errors
    /// `NotFound` for an unknown ticket (before the stream starts).
    async fn events(&self, ticket: i64, after: Option<i64>) -> Result<EventStream>;
}

/// How to reach a ticket system: the one place where a URL becomes a backend.
#[derive(Debug, Clone, Default)]
pub struct TicketSystemOptions {
    /// Bearer token for `http://` backends.
    pub token: Option<String>,
}

/// Opens the ticket system named by `url`: `sqlite:///path/to/tickets.db` (created with its
/// schema if absent), `postgres://…` (with the `postgres` feature), or `http://host:port/`
/// (a `ubuntu-ci serve`).
///
/// # Errors
/// `InvalidInput` for an unknown scheme; `Unsupported` for `postgres://` in a build without
/// the feature; `Unavailable` when the database cannot be reached.
pub async fn open_ticket_system(
    url: &str,
    options: &TicketSystemOptions,
) -> Result<Arc<dyn TicketSystem>> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    match scheme {
        "sqlite" | "postgres" | "postgresql" => {
            Ok(Arc::new(sql::SqlTicketSystem::connect(url).await?))
        }
        "http" | "https" => Ok(Arc::new(http::HttpTicketSystem::new(
            url,
            options.token.clone(),
        )?)),
        _ => Err(Error::invalid(format!(
            "unknown ticket system URL {url:?}: use sqlite://PATH, postgres://… or http://HOST:PORT/"
        ))),
    }
}

/// How many times in a row [`follow`] makes a lost connection again before it gives up.
const FOLLOW_RETRIES: u32 = 30;
/// How long [`follow`] waits before it makes a lost connection again.
const FOLLOW_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// Every event of `ticket` as it comes, until it is closed: an event stream ends when the
/// ticket closes, and a ticket retried since was open again, so what came after is read on
/// until a stream brings nothing new and the ticket is closed. A connection lost on the way
/// (`Unavailable`) is made again from the last event, up to 30 times in a row.
pub fn follow(tickets: Arc<dyn TicketSystem>, ticket: i64) -> EventStream {
    struct Following {
        tickets: Arc<dyn TicketSystem>,
        ticket: i64,
        after: Option<i64>,
        events: Option<EventStream>,
        new: bool,
        failed: u32,
    }
    /// One step: the next event, or the end; `Err` keeps trying when worth it.
    async fn next(state: &mut Following) -> Option<Result<TicketEvent>> {
        use futures::StreamExt;
        loop {
            let events = match state.events.as_mut() {
                Some(events) => events,
                None => match state.tickets.events(state.ticket, state.after).await {
                    Ok(events) => {
                        state.new = false;
                        state.events.insert(events)
                    }
                    Err(err) => return Some(Err(err)),
                },
            };
            match events.next().await {
                Some(Ok(event)) => {
                    state.failed = 0;
                    state.new = true;
                    state.after = Some(event.id);
                    return Some(Ok(event));
                }
                Some(Err(err)) => {
                    state.events = None;
                    return Some(Err(err));
                }
                None => {
                    state.events = None;
                    if !state.new {
                        let now = state.tickets.get_ticket(state.ticket).await;
                        match now {
                            Ok(now) if now.ticket.state == crate::model::TicketState::Closed => {
                                return None;
                            }
                            Ok(_) => {}
                            Err(err) => return Some(Err(err)),
                        }
                    }
                }
            }
        }
    }
    let state = Following {
        tickets,
        ticket,
        after: None,
        events: None,
        new: false,
        failed: 0,
    };
    // Ends after the first error not tried again.
    Box::pin(futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            match next(&mut state).await? {
                Ok(event) => return Some((Ok(event), Some(state))),
                Err(err)
                    if err.kind() == crate::error::ErrorKind::Unavailable
                        && state.failed < FOLLOW_RETRIES =>
                {
                    state.failed += 1;
                    tokio::time::sleep(FOLLOW_RETRY_AFTER).await;
                }
                Err(err) => return Some((Err(err), None)),
            }
        }
    }))
}
