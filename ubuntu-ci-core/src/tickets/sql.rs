//! The ticket system on SQL: SQLite (embedded default) and PostgreSQL (feature `postgres`).
//!
//! One implementation serves both databases through sqlx's `Any` driver; the few dialect
//! differences (identity columns, transaction start, locking) are named in [`Dialect`].
//! The schema is versioned: [`MIGRATIONS`] are applied in order at connect time, under a
//! lock, so several processes may open the same database at once.
//!
//! Every write that concerns a ticket first updates the ticket's row, which takes the row's
//! lock (PostgreSQL) or the database's write lock (SQLite, `BEGIN IMMEDIATE`): writes of
//! one ticket are serialised, so its events get increasing ids in commit order and a
//! subscriber reading "events after id N" never misses one.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use tokio::sync::broadcast;

use rusqlite::types::Value;

use super::sqlite_batch::{BatchThread, Outcome, ReturnedRow, Statement};
use super::{EventStream, TicketSystem};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    check_source_name, check_transition, Artifact, ArtifactFilter, ArtifactType, EventKind,
    NewArtifact, NewSourcePackageUpload, NewSubticket, NewTicket, NewTransition, Page, PageRequest,
    SourcePackage, SourcePackageFilter, SourcePackageUpload, SpuFilter, StepStatus, Subticket,
    SubticketFilter, Ticket, TicketDetail, TicketEvent, TicketFilter, TicketState, Transition,
    TransitionFilter, Uri, WorkflowStep,
};

/// How often a subscriber looks for events written by other processes.
const EVENT_POLL: Duration = Duration::from_millis(250);

/// One step of the schema: statements for both dialects (`;`-separated, `{id}` standing for
/// the dialect's identity column), then whole statements for one dialect only.
#[derive(Debug)]
pub struct Migration {
    /// Statements for every dialect, separated by `;`.
    pub common: &'static str,
    /// Statements for SQLite only, each whole (trigger bodies contain `;`).
    pub sqlite: &'static [&'static str],
    /// Statements for PostgreSQL only, each whole.
    pub postgres: &'static [&'static str],
}

// The creation event of a ticket is written by a trigger with the ticket itself, so creating
// a ticket is one statement: no transaction round trips on the hot path.
macro_rules! sqlite_ticket_trigger {
    () => {
        concat!(
            "CREATE TRIGGER ticket_created AFTER INSERT ON ticket BEGIN ",
            "INSERT INTO event (ticket_id, kind, resource_uri, step, status, message, created_at) VALUES ",
            "(NEW.id, 'ticket_created', '/api/v1/ticket/' || NEW.id || '/', NEW.step, NEW.status, NEW.title, NEW.created_at); ",
            "END"
        )
    };
}

macro_rules! postgres_ticket_trigger {
    () => {
        concat!(
            "CREATE FUNCTION ticket_created_event() RETURNS trigger AS $$ BEGIN ",
            "INSERT INTO event (ticket_id, kind, resource_uri, step, status, message, created_at) VALUES ",
            "(NEW.id, 'ticket_created', '/api/v1/ticket/' || NEW.id || '/', NEW.step, NEW.status, NEW.title, NEW.created_at); ",
            "RETURN NEW; END $$ LANGUAGE plpgsql"
        )
    };
}

/// The schema, one migration per entry, applied in order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    common: r#"
CREATE TABLE ticket (
    id {id},
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    bug_id TEXT NOT NULL,
    step TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX ticket_owner ON ticket (owner);
CREATE TABLE sourcepackage (
    id {id},
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE spu (
    id {id},
    sourcepackage_id BIGINT NOT NULL REFERENCES sourcepackage (id),
    version TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (sourcepackage_id, version)
);
CREATE TABLE subticket (
    id {id},
    spu_id BIGINT NOT NULL REFERENCES spu (id),
    ticket_id BIGINT NOT NULL REFERENCES ticket (id),
    assignee TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX subticket_ticket ON subticket (ticket_id);
CREATE TABLE artifact (
    id {id},
    ticket_id BIGINT NOT NULL REFERENCES ticket (id),
    subticket_id BIGINT REFERENCES subticket (id),
    name TEXT NOT NULL,
    reference TEXT NOT NULL,
    type TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX artifact_ticket ON artifact (ticket_id);
CREATE TABLE transition (
    id {id},
    ticket_id BIGINT NOT NULL REFERENCES ticket (id),
    step TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX transition_ticket ON transition (ticket_id);
CREATE TABLE event (
    id {id},
    ticket_id BIGINT NOT NULL REFERENCES ticket (id),
    kind TEXT NOT NULL,
    resource_uri TEXT NOT NULL,
    step TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX event_ticket ON event (ticket_id, id)
"#,
    sqlite: &[sqlite_ticket_trigger!()],
    postgres: &[
        postgres_ticket_trigger!(),
        "CREATE TRIGGER ticket_created AFTER INSERT ON ticket FOR EACH ROW EXECUTE FUNCTION ticket_created_event()",
    ],
},
// The PPA pool (crate::ppa): one row per PPA; a ticket holds at most one.
Migration {
    common: r#"
CREATE TABLE ppa (
    id {id},
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    ticket_id BIGINT REFERENCES ticket (id),
    lease_expires_at TEXT,
    updated_at TEXT NOT NULL,
    UNIQUE (owner, name)
);
CREATE UNIQUE INDEX ppa_ticket ON ppa (ticket_id)
"#,
    sqlite: &[],
    postgres: &[],
},
// The lander's requests (crate::lander::store): each request and how far it got.
Migration {
    common: r#"
CREATE TABLE lander_request (
    ticket_id BIGINT PRIMARY KEY REFERENCES ticket (id),
    request TEXT NOT NULL,
    progress TEXT NOT NULL,
    finished BIGINT NOT NULL,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX lander_request_unfinished ON lander_request (finished, created_at)
"#,
    sqlite: &[],
    postgres: &[],
},
// What a lander's request waits for (a build, image or test slot; a PPA), and since when;
// which lander runs it, and until when its claim holds without renewal.
Migration {
    common: r#"
ALTER TABLE lander_request ADD COLUMN waiting_for TEXT;
ALTER TABLE lander_request ADD COLUMN waiting_since TEXT;
ALTER TABLE lander_request ADD COLUMN claimed_by TEXT;
ALTER TABLE lander_request ADD COLUMN claimed_until TEXT
"#,
    sqlite: &[],
    postgres: &[],
},
// A transition moves its ticket and records its event in the statement that inserts it:
// one statement (one round trip) for what took four.
Migration {
    common: "",
    sqlite: &[concat!(
        "CREATE TRIGGER transition_recorded AFTER INSERT ON transition BEGIN ",
        "UPDATE ticket SET step = NEW.step, status = NEW.status, updated_at = NEW.created_at ",
        "WHERE id = NEW.ticket_id; ",
        "INSERT INTO event (ticket_id, kind, resource_uri, step, status, message, created_at) VALUES ",
        "(NEW.ticket_id, 'progress', '/api/v1/progress/' || NEW.id || '/', NEW.step, NEW.status, NEW.message, NEW.created_at); ",
        "END"
    )],
    postgres: &[
        concat!(
            "CREATE FUNCTION transition_recorded() RETURNS trigger AS $$ BEGIN ",
            "UPDATE ticket SET step = NEW.step, status = NEW.status, updated_at = NEW.created_at ",
            "WHERE id = NEW.ticket_id; ",
            "INSERT INTO event (ticket_id, kind, resource_uri, step, status, message, created_at) VALUES ",
            "(NEW.ticket_id, 'progress', '/api/v1/progress/' || NEW.id || '/', NEW.step, NEW.status, NEW.message, NEW.created_at); ",
            "RETURN NEW; END $$ LANGUAGE plpgsql"
        ),
        "CREATE TRIGGER transition_recorded AFTER INSERT ON transition FOR EACH ROW EXECUTE FUNCTION transition_recorded()",
    ],
}];

/// The SQL dialect of the connected database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3.35 or later.
    Sqlite,
    /// PostgreSQL 12 or later.
    Postgres,
}

impl Dialect {
    fn identity(self) -> &'static str {
        match self {
            Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Dialect::Postgres => "BIGSERIAL PRIMARY KEY",
        }
    }

    /// A read-only transaction that sees one snapshot throughout.
    fn begin_read(self) -> &'static str {
        match self {
            // A deferred transaction reads one snapshot from its first SELECT on (WAL).
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }

    /// SQLite takes the write lock at BEGIN, so a transaction never fails half-way for
    /// a lock it could have waited for.
    fn begin(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }
}

/// The ticket system on a SQL database.
#[derive(Debug, Clone)]
pub struct SqlTicketSystem {
    pool: AnyPool,
    dialect: Dialect,
    /// The ticket id of every commit that wrote events, to wake this process's subscribers.
    events_written: Arc<broadcast::Sender<i64>>,
    /// This process's SQLite writer connection, for one writer at a time (none on
    /// PostgreSQL, whose row locks suffice).
    writer: Option<SharedWriter>,
    /// Dropped with the last clone, which ends the background checkpoints.
    alive: Arc<()>,
    /// Ticket creations, written in batches by [`write_tickets`].
    creates: tokio::sync::mpsc::Sender<PendingCreate>,
    /// Where this process last left tickets it moved.
    known: Arc<KnownStates>,
    /// Single-statement writes, committed in batches by [`write_batches`] (SQLite).
    writes: Option<tokio::sync::mpsc::Sender<PendingWrite>>,
}

/// A single-statement write waiting for the batch writer: its statement and where its
/// answer goes.
struct PendingWrite {
    statement: Statement,
    reply: tokio::sync::oneshot::Sender<Result<Written>>,
}

/// What a write did: the rows it changed, or the row it returned.
enum Written {
    Changed(u64),
    Row(Option<Returned>),
}

/// A row a write returned: through sqlx (PostgreSQL), or from the SQLite batch writer.
pub(crate) enum Returned {
    Any(AnyRow),
    Sqlite(ReturnedRow),
}

/// A row's columns by name, whichever way it was read.
pub(crate) trait Columns {
    fn int(&self, column: &str) -> Result<i64>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>>;
    fn text(&self, column: &str) -> Result<String>;
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
}

impl Columns for AnyRow {
    fn int(&self, column: &str) -> Result<i64> {
        self.try_get(column).map_err(db_error)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        self.try_get(column).map_err(db_error)
    }
    fn text(&self, column: &str) -> Result<String> {
        self.try_get(column).map_err(db_error)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        self.try_get(column).map_err(db_error)
    }
}

impl Columns for Returned {
    fn int(&self, column: &str) -> Result<i64> {
        self.opt_int(column)?
            .ok_or_else(|| Error::internal(format!("NULL {column} in the ticket database")))
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        match self {
            Returned::Any(row) => row.opt_int(column),
            Returned::Sqlite(row) => match row.value(column)? {
                Value::Null => Ok(None),
                Value::Integer(v) => Ok(Some(*v)),
                other => Err(Error::internal(format!(
                    "{column} in the ticket database is not a number: {other:?}"
                ))),
            },
        }
    }
    fn text(&self, column: &str) -> Result<String> {
        self.opt_text(column)?
            .ok_or_else(|| Error::internal(format!("NULL {column} in the ticket database")))
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        match self {
            Returned::Any(row) => row.opt_text(column),
            Returned::Sqlite(row) => match row.value(column)? {
                Value::Null => Ok(None),
                Value::Text(v) => Ok(Some(v.clone())),
                other => Err(Error::internal(format!(
                    "{column} in the ticket database is not text: {other:?}"
                ))),
            },
        }
    }
}

/// How long a SQLite connection waits for another process's write lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Most statements committed together.
const MAX_WRITE_BATCH: usize = 32;

/// Commits single-statement writes as they come, all those queued up in one hand-over to
/// the SQLite writer thread and one transaction (group commit): under many concurrent
/// requests each write would otherwise pay a round trip and a commit of its own. A
/// statement that fails is answered with its error; the others are kept. The process's
/// writer is held meanwhile, so that no transaction on the sqlx writer connection runs at
/// the same time. Ends when the last clone of the ticket system is dropped.
async fn write_batches(
    writer: SharedWriter,
    thread: BatchThread,
    mut writes: tokio::sync::mpsc::Receiver<PendingWrite>,
) {
    let mut batch = Vec::with_capacity(MAX_WRITE_BATCH);
    while writes.recv_many(&mut batch, MAX_WRITE_BATCH).await > 0 {
        let (statements, replies): (Vec<Statement>, Vec<_>) = batch
            .drain(..)
            .map(|write: PendingWrite| (write.statement, write.reply))
            .unzip();
        let results: Vec<Result<Written>> = match HeldWriter::take(&writer).await {
            Ok(held) => {
                let results = thread.run(statements).await;
                drop(held);
                results
                    .into_iter()
                    .map(|result| {
                        result.map(|outcome| match outcome {
                            Outcome::Changed(n) => Written::Changed(n),
                            Outcome::Row(row) => Written::Row(row.map(Returned::Sqlite)),
                        })
                    })
                    .collect()
            }
            Err(err) => replies
                .iter()
                .map(|_| Err(Error::new(err.kind(), err.to_string())))
                .collect(),
        };
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// Runs one write statement in autocommit.
async fn run_write<'c, E>(db: E, sql: &str, args: &[Arg], returning: bool) -> Result<Written>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let query = bind_all(sqlx::query(sql), args);
    if returning {
        query
            .fetch_optional(db)
            .await
            .map(|row| Written::Row(row.map(Returned::Any)))
    } else {
        query
            .execute(db)
            .await
            .map(|done| Written::Changed(done.rows_affected()))
    }
    .map_err(db_error)
}

/// Where this process last left the tickets it moved (step and status), so that their next
/// transition is one conditional statement instead of a transaction that reads them first.
/// A hint only: the statement checks it, and a closed ticket is forgotten.
#[derive(Debug, Default)]
struct KnownStates {
    states: std::sync::Mutex<HashMap<i64, (WorkflowStep, StepStatus)>>,
    /// Kept at all (SQLite only: see `record_transition_where_known`).
    kept: bool,
}

/// Most tickets whose state is remembered (beyond, the memory starts over).
const MAX_KNOWN_STATES: usize = 100_000;

impl KnownStates {
    fn kept(kept: bool) -> KnownStates {
        KnownStates {
            states: std::sync::Mutex::default(),
            kept,
        }
    }

    fn get(&self, ticket: i64) -> Option<(WorkflowStep, StepStatus)> {
        self.states.lock().ok()?.get(&ticket).copied()
    }

    fn note(&self, ticket: i64, step: WorkflowStep, status: StepStatus) {
        if !self.kept {
            return;
        }
        let Ok(mut known) = self.states.lock() else {
            return;
        };
        if TicketState::of(step, status) == TicketState::Closed {
            known.remove(&ticket);
            return;
        }
        if known.len() >= MAX_KNOWN_STATES {
            known.clear();
        }
        known.insert(ticket, (step, status));
    }

    fn forget(&self, ticket: i64) {
        if let Ok(mut known) = self.states.lock() {
            known.remove(&ticket);
        }
    }
}

/// A validated ticket waiting to be written, and where its answer goes.
type PendingCreate = (NewTicket, tokio::sync::oneshot::Sender<Result<Ticket>>);

/// Most tickets written by one statement.
const MAX_CREATE_BATCH: usize = 64;

/// Writes ticket creations as they come, several per statement when they queue up (group
/// commit): under many concurrent clients a single SQLite writer would otherwise pay a
/// statement and a commit per ticket. Each ticket still gets its own answer; a batch
/// that fails fails every ticket in it, and none of them is stored. Ends when the last
/// clone of the ticket system is dropped.
async fn write_tickets(
    pool: AnyPool,
    writer: Option<SharedWriter>,
    known: Arc<KnownStates>,
    mut creates: tokio::sync::mpsc::Receiver<PendingCreate>,
) {
    let mut batch = Vec::with_capacity(MAX_CREATE_BATCH);
    while creates.recv_many(&mut batch, MAX_CREATE_BATCH).await > 0 {
        let (tickets, replies): (Vec<NewTicket>, Vec<_>) = batch.drain(..).unzip();
        let result = match &writer {
            Some(writer) => match HeldWriter::take(writer).await {
                Ok(mut held) => insert_tickets(&mut *held, tickets).await,
                Err(err) => Err(err),
            },
            None => insert_tickets(&pool, tickets).await,
        };
        match result {
            Ok(created) => {
                // Nobody can be subscribed to a ticket that did not exist: no wake-up.
                for (reply, ticket) in replies.into_iter().zip(created) {
                    known.note(ticket.id, ticket.current_workflow_step, ticket.status);
                    let _ = reply.send(Ok(ticket));
                }
            }
            Err(err) => {
                for reply in replies {
                    let _ = reply.send(Err(Error::new(err.kind(), err.to_string())));
                }
            }
        }
    }
}

/// Inserts tickets with one statement (atomic on its own; the trigger adds each creation
/// event) and returns them in the order given.
async fn insert_tickets<'c, E>(db: E, tickets: Vec<NewTicket>) -> Result<Vec<Ticket>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let at = now();
    let rows: Vec<String> = (0..tickets.len())
        .map(|i| {
            let p = i * 7;
            format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7,
                p + 7
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO ticket (owner, title, description, bug_id, step, status, created_at, updated_at) \
         VALUES {} RETURNING *",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for new in &tickets {
        query = query
            .bind(new.owner.clone())
            .bind(new.title.clone())
            .bind(new.description.clone())
            .bind(new.bug_id.clone())
            .bind(WorkflowStep::New.as_str())
            .bind(StepStatus::Pending.as_str())
            .bind(at.clone());
    }
    let rows = query.fetch_all(db).await.map_err(db_error)?;
    let mut created: Vec<Option<Ticket>> = rows
        .iter()
        .map(ticket_from)
        .map(|t| t.map(Some))
        .collect::<Result<_>>()?;
    // Neither RETURNING's order nor the ids' order is promised to follow VALUES, so each
    // request takes a row of its own content; equal requests are interchangeable.
    tickets
        .iter()
        .map(|new| {
            created
                .iter_mut()
                .find(|row| {
                    row.as_ref().is_some_and(|t| {
                        t.owner == new.owner
                            && t.title == new.title
                            && t.description == new.description
                            && t.bug_id == new.bug_id
                    })
                })
                .and_then(Option::take)
                .ok_or_else(|| Error::internal("the database did not return every ticket it wrote"))
        })
        .collect()
}

/// How often the WAL is checkpointed in the background.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Checkpoints the WAL every [`CHECKPOINT_EVERY`] while the ticket system is alive. A
/// PASSIVE checkpoint runs beside readers and writers, so the fsync it costs never stalls
/// a request.
async fn checkpoints(pool: AnyPool, alive: std::sync::Weak<()>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if alive.upgrade().is_none() || pool.is_closed() {
            return;
        }
        if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %err, "SQLite checkpoint failed");
        }
    }
}

pub(crate) fn db_error(err: sqlx::Error) -> Error {
    let kind = match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => ErrorKind::Conflict,
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => ErrorKind::NotFound,
        sqlx::Error::Database(db) if db.message().contains("database is locked") => {
            ErrorKind::Unavailable
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    };
    Error::new(kind, "ticket database error").with_source(err)
}

pub(crate) fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn time(row: &impl Columns, column: &str) -> Result<DateTime<Utc>> {
    let text = row.text(column)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::internal(format!("bad timestamp {text:?} in database")).with_source(e))
}

fn parsed<T: FromStr<Err = Error>>(row: &impl Columns, column: &str) -> Result<T> {
    let text = row.text(column)?;
    text.parse()
        .map_err(|e: Error| Error::internal(format!("bad {column} in database: {}", e.message())))
}

fn int(row: &impl Columns, column: &str) -> Result<i64> {
    row.int(column)
}

fn text(row: &impl Columns, column: &str) -> Result<String> {
    row.text(column)
}

fn ticket_from(row: &AnyRow) -> Result<Ticket> {
    let id = int(row, "id")?;
    let step: WorkflowStep = parsed(row, "step")?;
    let status: StepStatus = parsed(row, "status")?;
    Ok(Ticket {
        id,
        resource_uri: Uri::new(id),
        owner: text(row, "owner")?,
        title: text(row, "title")?,
        description: text(row, "description")?,
        bug_id: text(row, "bug_id")?,
        current_workflow_step: step,
        status,
        state: TicketState::of(step, status),
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn source_package_from(row: &AnyRow) -> Result<SourcePackage> {
    let id = int(row, "id")?;
    Ok(SourcePackage {
        id,
        resource_uri: Uri::new(id),
        name: text(row, "name")?,
    })
}

fn spu_from(row: &AnyRow) -> Result<SourcePackageUpload> {
    let id = int(row, "id")?;
    Ok(SourcePackageUpload {
        id,
        resource_uri: Uri::new(id),
        sourcepackage: Uri::new(int(row, "sourcepackage_id")?),
        version: text(row, "version")?,
        fingerprint: text(row, "fingerprint")?,
        created_at: time(row, "created_at")?,
    })
}

fn subticket_from(row: &AnyRow) -> Result<Subticket> {
    let id = int(row, "id")?;
    Ok(Subticket {
        id,
        resource_uri: Uri::new(id),
        source_package_upload: Uri::new(int(row, "spu_id")?),
        ticket: Uri::new(int(row, "ticket_id")?),
        assignee: text(row, "assignee")?,
        created_at: time(row, "created_at")?,
    })
}

fn artifact_from(row: &AnyRow) -> Result<Artifact> {
    let id = int(row, "id")?;
    let subticket: Option<i64> = row.try_get("subticket_id").map_err(db_error)?;
    Ok(Artifact {
        id,
        resource_uri: Uri::new(id),
        name: text(row, "name")?,
        subticket: subticket.map(Uri::new),
        ticket: Uri::new(int(row, "ticket_id")?),
        reference: text(row, "reference")?,
        artifact_type: parsed::<ArtifactType>(row, "type")?,
        created_at: time(row, "created_at")?,
    })
}

fn transition_from(row: &impl Columns) -> Result<Transition> {
    let id = int(row, "id")?;
    Ok(Transition {
        id,
        resource_uri: Uri::new(id),
        ticket: Uri::new(int(row, "ticket_id")?),
        step: parsed(row, "step")?,
        status: parsed(row, "status")?,
        message: text(row, "message")?,
        created_at: time(row, "created_at")?,
    })
}

fn event_from(row: &AnyRow) -> Result<TicketEvent> {
    Ok(TicketEvent {
        id: int(row, "id")?,
        ticket: Uri::new(int(row, "ticket_id")?),
        kind: parsed::<EventKind>(row, "kind")?,
        resource_uri: text(row, "resource_uri")?,
        step: parsed(row, "step")?,
        status: parsed(row, "status")?,
        message: text(row, "message")?,
        created_at: time(row, "created_at")?,
    })
}

/// A value bound to a numbered placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
    /// A text column's NULL.
    Null,
}

/// A `WHERE` clause under construction, with its arguments in placeholder order.
#[derive(Debug, Default)]
struct Filter {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

impl Filter {
    fn eq(&mut self, column: &str, arg: Arg) {
        self.args.push(arg);
        self.clauses
            .push(format!("{column} = ${}", self.args.len()));
    }

    fn raw(&mut self, clause: &str) {
        self.clauses.push(clause.to_owned());
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    args: &[Arg],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for arg in args {
        query = match arg {
            Arg::Int(v) => query.bind(*v),
            Arg::Text(v) => query.bind(v.clone()),
            Arg::Null => query.bind(None::<String>),
        };
    }
    query
}

/// Closed tickets, as SQL (the same rule as [`TicketState::of`]).
const CLOSED_SQL: &str =
    "(status IN ('FAILED', 'CANCELLED') OR (step = 'COMPLETE' AND status = 'SUCCEEDED'))";

pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Begins a transaction with `statement`, in a task of its own so that it is begun whole
/// even when the caller is dropped meanwhile (a timeout, an aborted task): sqlx would
/// otherwise put the connection back in the pool inside the open transaction, where on
/// SQLite it holds the write lock and every later writer waits for it in vain. Begun
/// whole, the transaction is dropped as one, and rolled back.
async fn begin_whole(pool: &sqlx::AnyPool, statement: &'static str) -> Result<Tx> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.begin_with(statement).await })
        .await
        .map_err(|e| Error::internal(format!("a database transaction could not begin: {e}")))?
        .map_err(db_error)
}

/// This process's SQLite writer: a connection kept aside for writes (no pool checkout,
/// no ping at each release), used by one writer at a time, so that writers queue here
/// instead of sleeping in SQLite's busy handler (whose back-off costs milliseconds).
/// Other processes still meet at SQLite's own lock.
pub(crate) struct Writer {
    conn: sqlx::AnyConnection,
    /// A transaction was begun and not ended: its writer was dropped half-way.
    open: bool,
    /// The ticket system was closed: no more writes.
    closed: bool,
}

type SharedWriter = Arc<tokio::sync::Mutex<Writer>>;

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("open", &self.open).finish()
    }
}

impl Writer {
    /// Rolls back what a writer dropped half-way left open (nothing when its BEGIN had not
    /// run: SQLite then says no transaction is active). A rollback that failed otherwise
    /// leaves the writer marked open: nothing is written inside that transaction.
    async fn end_open(&mut self) -> Result<()> {
        if !self.open {
            return Ok(());
        }
        rollback(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }
}

/// Rolls back the connection's transaction: `true` when there was one, `false` when there
/// was none (it had ended, or never begun).
async fn rollback(conn: &mut sqlx::AnyConnection) -> Result<bool> {
    match sqlx::query("ROLLBACK").execute(conn).await {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(db)) if db.message().contains("no transaction is active") => {
            Ok(false)
        }
        Err(err) => Err(db_error(err)),
    }
}

/// The writer, held. A transaction its holder leaves open is rolled back by the next
/// holder, and at once by a task that queues for it, so that the database is never left
/// locked.
pub(crate) struct HeldWriter {
    guard: tokio::sync::OwnedMutexGuard<Writer>,
    writer: SharedWriter,
}

impl HeldWriter {
    async fn take(writer: &SharedWriter) -> Result<HeldWriter> {
        let mut guard = Arc::clone(writer).lock_owned().await;
        if guard.closed {
            return Err(Error::unavailable("the ticket database is closed"));
        }
        guard.end_open().await?;
        Ok(HeldWriter {
            guard,
            writer: Arc::clone(writer),
        })
    }
}

impl Drop for HeldWriter {
    fn drop(&mut self) {
        if self.guard.open {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let writer = Arc::clone(&self.writer);
                runtime.spawn(async move {
                    if let Err(err) = writer.lock().await.end_open().await {
                        tracing::warn!(error = %err, "cannot roll back an abandoned write");
                    }
                });
            }
        }
    }
}

impl std::ops::Deref for HeldWriter {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.guard.conn
    }
}

impl std::ops::DerefMut for HeldWriter {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.guard.conn
    }
}

/// A write transaction: on SQLite, on this process's writer connection; on PostgreSQL,
/// on a connection of the pool.
pub(crate) enum WriteTx {
    Pooled(Tx),
    Writer(HeldWriter),
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            WriteTx::Pooled(tx) => tx.commit().await.map_err(db_error),
            WriteTx::Writer(mut held) => {
                sqlx::query("COMMIT")
                    .execute(&mut *held)
                    .await
                    .map_err(db_error)?;
                held.guard.open = false;
                Ok(())
            }
        }
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        match self {
            WriteTx::Pooled(tx) => tx,
            WriteTx::Writer(held) => held,
        }
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        match self {
            WriteTx::Pooled(tx) => tx,
            WriteTx::Writer(held) => held,
        }
    }
}

impl SqlTicketSystem {
    /// Connects to `sqlite://PATH` (creating the file and its folder) or `postgres://…`,
    /// and brings the schema up to date.
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached; `Unsupported` for PostgreSQL in a
    /// build without the `postgres` feature; `InvalidInput` for another URL.
    pub async fn connect(url: &str) -> Result<SqlTicketSystem> {
        sqlx::any::install_default_drivers();
        let mut file = None;
        let (dialect, url) = if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err(Error::invalid("sqlite URL without a path"));
            }
            // sqlx decodes %-escapes in the path (`?` and `#` in file names).
            let path = percent_encoding::percent_decode_str(path)
                .decode_utf8()
                .map_err(|_| Error::invalid("sqlite URL whose path is not UTF-8"))?;
            if path == ":memory:" {
                // Each connection would have a database of its own.
                return Err(Error::invalid(
                    "sqlite://:memory: is a database per connection: give a file \
                     (sqlite:///path/to/tickets.db)",
                ));
            }
            if let Some(parent) = std::path::Path::new(&*path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| Error::from(e).with_resource(parent.display().to_string()))?;
                }
            }
            file = Some(std::path::PathBuf::from(&*path));
            let url = if url.contains('?') {
                url.to_owned()
            } else {
                format!("{url}?mode=rwc")
            };
            (Dialect::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if !cfg!(feature = "postgres") {
                return Err(Error::unsupported(
                    "PostgreSQL support is not in this build (cargo feature `postgres`)",
                ));
            }
            (Dialect::Postgres, url.to_owned())
        } else {
            return Err(Error::invalid(format!("not a SQL database URL: {url:?}")));
        };
        let max = match dialect {
            Dialect::Sqlite => 8,
            Dialect::Postgres => 16,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(30))
            // A SQLite connection is a file of this host: pinging it at every acquire would
            // cost a round trip to its worker thread for each statement, and catch nothing.
            .test_before_acquire(dialect == Dialect::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // WAL lets readers go on during a write; NORMAL sync keeps every
                        // commit across a process crash.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA foreign_keys = ON",
                            // SQLITE_BUSY_TIMEOUT
                            "PRAGMA busy_timeout = 30000",
                            // Checkpoints run in the background (see `checkpoints`), not in
                            // the commit of whichever writer crosses the threshold.
                            "PRAGMA wal_autocheckpoint = 0",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| {
                Error::unavailable("cannot open the ticket database")
                    .with_resource(redact(&url))
                    .with_source(e)
            })?;
        let events_written = Arc::new(broadcast::channel(1024).0);
        let writer = match dialect {
            Dialect::Sqlite => {
                let conn = pool.acquire().await.map_err(|e| {
                    Error::unavailable("cannot open the ticket database")
                        .with_resource(redact(&url))
                        .with_source(e)
                })?;
                Some(Arc::new(tokio::sync::Mutex::new(Writer {
                    conn: conn.detach(),
                    open: false,
                    closed: false,
                })))
            }
            Dialect::Postgres => None,
        };
        let known = Arc::new(KnownStates::kept(dialect == Dialect::Sqlite));
        let writes = match (&writer, &file) {
            (Some(writer), Some(file)) => {
                let thread = BatchThread::open(file, SQLITE_BUSY_TIMEOUT)?;
                let (writes, pending) = tokio::sync::mpsc::channel(1024);
                tokio::spawn(write_batches(Arc::clone(writer), thread, pending));
                Some(writes)
            }
            _ => None,
        };
        let (creates, pending) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(write_tickets(
            pool.clone(),
            writer.clone(),
            Arc::clone(&known),
            pending,
        ));
        let system = SqlTicketSystem {
            pool,
            dialect,
            events_written,
            writer,
            alive: Arc::new(()),
            creates,
            known,
            writes,
        };
        system.migrate().await?;
        if dialect == Dialect::Sqlite {
            system.checkpoint().await;
            tokio::spawn(checkpoints(
                system.pool.clone(),
                Arc::downgrade(&system.alive),
            ));
        }
        Ok(system)
    }

    /// Copies committed WAL pages into the database without blocking readers or writers.
    async fn checkpoint(&self) {
        if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %err, "SQLite checkpoint failed");
        }
    }

    /// The connected database's dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The connection pool, for services that keep their state in the same database.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection.
    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            let mut writer = writer.lock().await;
            if let Err(err) = writer.end_open().await {
                tracing::warn!(error = %err, "cannot roll back an abandoned write");
            }
            writer.closed = true;
        }
        self.pool.close().await
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self.begin().await?;
        match self.dialect {
            // One migrator at a time across processes; even `CREATE TABLE IF NOT EXISTS`
            // races with itself on PostgreSQL, so it waits for the lock too.
            Dialect::Postgres => {
                sqlx::query("SELECT pg_advisory_xact_lock(7215090412)")
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            // BEGIN IMMEDIATE already holds SQLite's write lock.
            Dialect::Sqlite => {}
        }
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let current: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM schema_version")
            .fetch_one(&mut *tx)
            .await
            .and_then(|row| row.try_get::<Option<i64>, _>("v"))
            .map_err(db_error)?;
        let current = current.unwrap_or(0);
        let known = MIGRATIONS.len() as i64;
        if current > known {
            return Err(Error::unsupported(format!(
                "the ticket database has schema version {current}, newer than this program's {known}; upgrade ubuntu-ci"
            )));
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let common = migration.common.replace("{id}", self.dialect.identity());
            let own = match self.dialect {
                Dialect::Sqlite => migration.sqlite,
                Dialect::Postgres => migration.postgres,
            };
            let statements = common
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .chain(own.iter().copied());
            for statement in statements {
                sqlx::query(statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            sqlx::query("INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)")
                .bind(index as i64 + 1)
                .bind(now())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await
    }

    /// This process's SQLite writer, held (nothing on PostgreSQL).
    async fn writer(&self) -> Result<Option<HeldWriter>> {
        match &self.writer {
            Some(writer) => Ok(Some(HeldWriter::take(writer).await?)),
            None => Ok(None),
        }
    }

    pub(crate) async fn begin(&self) -> Result<WriteTx> {
        match self.writer().await? {
            Some(mut held) => {
                // Marked open first: a writer dropped during BEGIN is rolled back too.
                held.guard.open = true;
                sqlx::query(self.dialect.begin())
                    .execute(&mut *held)
                    .await
                    .map_err(db_error)?;
                Ok(WriteTx::Writer(held))
            }
            None => Ok(WriteTx::Pooled(
                begin_whole(&self.pool, self.dialect.begin()).await?,
            )),
        }
    }

    async fn count(&self, table: &str, filter: &Filter) -> Result<u64> {
        let sql = format!("SELECT COUNT(*) AS n FROM {table}{}", filter.sql());
        let row = bind_all(sqlx::query(&sql), &filter.args)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(u64::try_from(int(&row, "n")?).unwrap_or(0))
    }

    async fn list<T>(
        &self,
        table: &str,
        filter: Filter,
        page: PageRequest,
        from_row: fn(&AnyRow) -> Result<T>,
    ) -> Result<Page<T>> {
        let page = PageRequest::new(page.limit, page.offset);
        let total = self.count(table, &filter).await?;
        let n = filter.args.len();
        // Tickets newest first, as people look at them (gh, osc); the rest in the order
        // they were made.
        let order = if table == "ticket" { "id DESC" } else { "id" };
        let sql = format!(
            "SELECT * FROM {table}{} ORDER BY {order} LIMIT ${} OFFSET ${}",
            filter.sql(),
            n + 1,
            n + 2
        );
        let offset = i64::try_from(page.offset).unwrap_or(i64::MAX);
        let rows = bind_all(sqlx::query(&sql), &filter.args)
            .bind(i64::from(page.limit))
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let objects = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::new(page, total, objects))
    }

    async fn get_one<T>(
        &self,
        table: &str,
        resource: &str,
        id: i64,
        from_row: fn(&AnyRow) -> Result<T>,
    ) -> Result<T> {
        let sql = format!("SELECT * FROM {table} WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        match row {
            Some(row) => from_row(&row),
            None => Err(Error::not_found(format!("no such {resource}"))
                .with_resource(format!("/api/v1/{resource}/{id}/"))),
        }
    }

    /// Takes the ticket's write lock by touching its row, and returns its step and status.
    async fn lock_ticket(
        &self,
        tx: &mut WriteTx,
        ticket: i64,
        at: &str,
    ) -> Result<(WorkflowStep, StepStatus)> {
        let row =
            sqlx::query("UPDATE ticket SET updated_at = $1 WHERE id = $2 RETURNING step, status")
                .bind(at.to_owned())
                .bind(ticket)
                .fetch_optional(&mut **tx)
                .await
                .map_err(db_error)?;
        match row {
            Some(row) => Ok((parsed(&row, "step")?, parsed(&row, "status")?)),
            None => Err(Error::not_found("no such ticket")
                .with_resource(Uri::<Ticket>::new(ticket).to_string())),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_event(
        &self,
        tx: &mut WriteTx,
        ticket: i64,
        kind: EventKind,
        resource_uri: String,
        step: WorkflowStep,
        status: StepStatus,
        message: &str,
        at: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO event (ticket_id, kind, resource_uri, step, status, message, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(ticket)
        .bind(kind.as_str())
        .bind(resource_uri)
        .bind(step.as_str())
        .bind(status.as_str())
        .bind(message.to_owned())
        .bind(at.to_owned())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// Records `new` in one statement when this process knows where its ticket stands
    /// (it moved it last) and the move is allowed from there: the statement inserts only
    /// if the ticket is still there. `None` when the state is unknown, was changed
    /// elsewhere, or forbids the move (the full path then reads it and says why). SQLite
    /// only: its write lock makes the check and the insert one step; PostgreSQL takes the
    /// ticket's row lock in a transaction.
    async fn record_transition_where_known(
        &self,
        new: &NewTransition,
        at: &str,
    ) -> Result<Option<Transition>> {
        let ticket = new.ticket.id();
        // Known states are kept on SQLite only.
        let Some((step, status)) = self.known.get(ticket) else {
            return Ok(None);
        };
        if check_transition(step, status, new.step, new.status).is_err() {
            return Ok(None);
        }
        let row = self
            .write_returning(
                "INSERT INTO transition (ticket_id, step, status, message, created_at) \
                 SELECT $1, $2, $3, $4, $5 \
                 WHERE EXISTS (SELECT 1 FROM ticket WHERE id = $1 AND step = $6 AND status = $7) \
                 RETURNING *",
                vec![
                    Arg::Int(ticket),
                    Arg::Text(new.step.as_str().to_owned()),
                    Arg::Text(new.status.as_str().to_owned()),
                    Arg::Text(new.message.clone()),
                    Arg::Text(at.to_owned()),
                    Arg::Text(step.as_str().to_owned()),
                    Arg::Text(status.as_str().to_owned()),
                ],
            )
            .await?;
        let Some(row) = row else {
            self.known.forget(ticket);
            return Ok(None);
        };
        let transition = transition_from(&row)?;
        self.known.note(ticket, new.step, new.status);
        let _ = self.events_written.send(ticket);
        Ok(Some(transition))
    }

    /// Runs the one statement `sql` with `args`, atomic on its own: on SQLite, committed
    /// with the other writes queued meanwhile (see [`write_batches`]). The rows it changed.
    /// Once queued, a write is made even when its caller stops waiting for the answer.
    pub(crate) async fn write_one(&self, sql: &'static str, args: Vec<Arg>) -> Result<u64> {
        match self.write(sql, args, false).await? {
            Written::Changed(n) => Ok(n),
            Written::Row(row) => Ok(u64::from(row.is_some())),
        }
    }

    /// As [`SqlTicketSystem::write_one`], for a statement that returns a row.
    pub(crate) async fn write_returning(
        &self,
        sql: &'static str,
        args: Vec<Arg>,
    ) -> Result<Option<Returned>> {
        match self.write(sql, args, true).await? {
            Written::Row(row) => Ok(row),
            Written::Changed(_) => Ok(None),
        }
    }

    async fn write(&self, sql: &'static str, args: Vec<Arg>, returning: bool) -> Result<Written> {
        let Some(writes) = &self.writes else {
            return run_write(&self.pool, sql, &args, returning).await;
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        writes
            .send(PendingWrite {
                statement: Statement {
                    sql,
                    args,
                    returning,
                },
                reply,
            })
            .await
            .map_err(|_| Error::unavailable("the ticket database is shutting down"))?;
        answer
            .await
            .map_err(|_| Error::internal("the ticket database's writer stopped"))?
    }

    /// Commits a write that recorded events of `ticket`, and wakes its subscribers.
    async fn commit_with_events(&self, tx: WriteTx, ticket: i64) -> Result<()> {
        tx.commit().await?;
        // No receiver is fine: nobody is watching.
        let _ = self.events_written.send(ticket);
        Ok(())
    }

    async fn is_closed(&self, ticket: i64) -> Result<bool> {
        let row = sqlx::query("SELECT step, status FROM ticket WHERE id = $1")
            .bind(ticket)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        let step: WorkflowStep = parsed(&row, "step")?;
        let status: StepStatus = parsed(&row, "status")?;
        Ok(TicketState::of(step, status) == TicketState::Closed)
    }

    async fn events_after(&self, ticket: i64, after: i64) -> Result<Vec<TicketEvent>> {
        let rows = sqlx::query(
            "SELECT * FROM event WHERE ticket_id = $1 AND id > $2 ORDER BY id LIMIT 500",
        )
        .bind(ticket)
        .bind(after)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(event_from).collect()
    }
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[async_trait]
impl TicketSystem for SqlTicketSystem {
    async fn create_ticket(&self, new: NewTicket) -> Result<Ticket> {
        let new = new.validate()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.creates
            .send((new, reply))
            .await
            .map_err(|_| Error::unavailable("the ticket database is shutting down"))?;
        answer
            .await
            .map_err(|_| Error::internal("the ticket writer stopped"))?
    }

    async fn ticket(&self, id: i64) -> Result<Ticket> {
        self.get_one("ticket", "ticket", id, ticket_from).await
    }

    async fn get_ticket(&self, id: i64) -> Result<TicketDetail> {
        // One snapshot: the ticket's state agrees with the history read beside it.
        let mut tx = begin_whole(&self.pool, self.dialect.begin_read()).await?;
        let row = sqlx::query("SELECT * FROM ticket WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or_else(|| {
                Error::not_found("no such ticket").with_resource(Uri::<Ticket>::new(id).to_string())
            })?;
        let ticket = ticket_from(&row)?;
        let mut by_ticket = async |table: &str| {
            let sql = format!("SELECT * FROM {table} WHERE ticket_id = $1 ORDER BY id");
            sqlx::query(&sql)
                .bind(id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)
        };
        let subtickets = by_ticket("subticket")
            .await?
            .iter()
            .map(subticket_from)
            .collect::<Result<_>>()?;
        let artifacts = by_ticket("artifact")
            .await?
            .iter()
            .map(artifact_from)
            .collect::<Result<_>>()?;
        let progress = by_ticket("transition")
            .await?
            .iter()
            .map(transition_from)
            .collect::<Result<_>>()?;
        tx.commit().await.map_err(db_error)?;
        Ok(TicketDetail {
            ticket,
            subtickets,
            artifacts,
            progress,
        })
    }

    async fn list_tickets(&self, filter: TicketFilter, page: PageRequest) -> Result<Page<Ticket>> {
        let mut f = Filter::default();
        if let Some(owner) = filter.owner {
            f.eq(
                "owner",
                Arg::Text(crate::model::person_address("owner", &owner)?),
            );
        }
        if let Some(step) = filter.step {
            f.eq("step", Arg::Text(step.as_str().into()));
        }
        if let Some(status) = filter.status {
            f.eq("status", Arg::Text(status.as_str().into()));
        }
        match filter.state {
            Some(TicketState::Closed) => f.raw(CLOSED_SQL),
            Some(TicketState::Open) => f.raw(&format!("NOT {CLOSED_SQL}")),
            None => {}
        }
        self.list("ticket", f, page, ticket_from).await
    }

    async fn get_or_create_source_package(&self, name: &str) -> Result<(SourcePackage, bool)> {
        check_source_name(name)?;
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO sourcepackage (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name.to_owned())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected()
            == 1;
        let row = sqlx::query("SELECT * FROM sourcepackage WHERE name = $1")
            .bind(name.to_owned())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await?;
        Ok((source_package_from(&row)?, inserted))
    }

    async fn get_source_package(&self, id: i64) -> Result<SourcePackage> {
        self.get_one("sourcepackage", "sourcepackage", id, source_package_from)
            .await
    }

    async fn list_source_packages(
        &self,
        filter: SourcePackageFilter,
        page: PageRequest,
    ) -> Result<Page<SourcePackage>> {
        let mut f = Filter::default();
        if let Some(name) = filter.name {
            f.eq("name", Arg::Text(name));
        }
        self.list("sourcepackage", f, page, source_package_from)
            .await
    }

    async fn create_spu(&self, new: NewSourcePackageUpload) -> Result<SourcePackageUpload> {
        let new = new.validate()?;
        let package = self.get_source_package(new.sourcepackage.id()).await?;
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO spu (sourcepackage_id, version, fingerprint, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING *",
        )
        .bind(package.id)
        .bind(new.version.clone())
        .bind(new.fingerprint)
        .bind(now())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            let err = db_error(e);
            if err.kind() == ErrorKind::Conflict {
                Error::conflict(format!(
                    "{} {} was already uploaded (one version, one content)",
                    package.name, new.version
                ))
            } else {
                err
            }
        })?;
        tx.commit().await?;
        spu_from(&row)
    }

    async fn get_spu(&self, id: i64) -> Result<SourcePackageUpload> {
        self.get_one("spu", "spu", id, spu_from).await
    }

    async fn list_spus(
        &self,
        filter: SpuFilter,
        page: PageRequest,
    ) -> Result<Page<SourcePackageUpload>> {
        let mut f = Filter::default();
        if let Some(package) = filter.sourcepackage {
            f.eq("sourcepackage_id", Arg::Int(package.id()));
        }
        if let Some(version) = filter.version {
            f.eq("version", Arg::Text(version));
        }
        self.list("spu", f, page, spu_from).await
    }

    async fn create_subticket(&self, new: NewSubticket) -> Result<Subticket> {
        let new = new.validate()?;
        self.get_spu(new.source_package_upload.id()).await?;
        let at = now();
        let mut tx = self.begin().await?;
        let (step, status) = self.lock_ticket(&mut tx, new.ticket.id(), &at).await?;
        if TicketState::of(step, status) == TicketState::Closed {
            return Err(
                Error::conflict("the ticket is closed; it takes no new subtickets")
                    .with_resource(new.ticket.to_string()),
            );
        }
        let row = sqlx::query(
            "INSERT INTO subticket (spu_id, ticket_id, assignee, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING *",
        )
        .bind(new.source_package_upload.id())
        .bind(new.ticket.id())
        .bind(new.assignee)
        .bind(at.clone())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        let subticket = subticket_from(&row)?;
        self.insert_event(
            &mut tx,
            new.ticket.id(),
            EventKind::SubticketCreated,
            subticket.resource_uri.to_string(),
            step,
            status,
            &subticket.source_package_upload.to_string(),
            &at,
        )
        .await?;
        self.commit_with_events(tx, new.ticket.id()).await?;
        Ok(subticket)
    }

    async fn get_subticket(&self, id: i64) -> Result<Subticket> {
        self.get_one("subticket", "subticket", id, subticket_from)
            .await
    }

    async fn list_subtickets(
        &self,
        filter: SubticketFilter,
        page: PageRequest,
    ) -> Result<Page<Subticket>> {
        let mut f = Filter::default();
        if let Some(ticket) = filter.ticket {
            f.eq("ticket_id", Arg::Int(ticket.id()));
        }
        if let Some(spu) = filter.source_package_upload {
            f.eq("spu_id", Arg::Int(spu.id()));
        }
        self.list("subticket", f, page, subticket_from).await
    }

    async fn create_artifact(&self, new: NewArtifact) -> Result<Artifact> {
        let new = new.validate()?;
        let ticket = match (new.subticket, new.ticket) {
            (Some(sub), ticket) => {
                let subticket = self.get_subticket(sub.id()).await?;
                if let Some(ticket) = ticket {
                    if ticket != subticket.ticket {
                        return Err(Error::invalid(format!(
                            "subticket {} belongs to {}, not {}",
                            sub, subticket.ticket, ticket
                        )));
                    }
                }
                subticket.ticket
            }
            (None, Some(ticket)) => ticket,
            (None, None) => {
                return Err(Error::invalid("an artifact needs a subticket or a ticket"))
            }
        };
        let at = now();
        let mut tx = self.begin().await?;
        let (step, status) = self.lock_ticket(&mut tx, ticket.id(), &at).await?;
        let row = sqlx::query(
            "INSERT INTO artifact (ticket_id, subticket_id, name, reference, type, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        )
        .bind(ticket.id())
        .bind(new.subticket.map(|s| s.id()))
        .bind(new.name)
        .bind(new.reference)
        .bind(new.artifact_type.as_str())
        .bind(at.clone())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        let artifact = artifact_from(&row)?;
        self.insert_event(
            &mut tx,
            ticket.id(),
            EventKind::ArtifactCreated,
            artifact.resource_uri.to_string(),
            step,
            status,
            &format!("{} {}", artifact.artifact_type, artifact.name),
            &at,
        )
        .await?;
        self.commit_with_events(tx, ticket.id()).await?;
        Ok(artifact)
    }

    async fn get_artifact(&self, id: i64) -> Result<Artifact> {
        self.get_one("artifact", "artifact", id, artifact_from)
            .await
    }

    async fn list_artifacts(
        &self,
        filter: ArtifactFilter,
        page: PageRequest,
    ) -> Result<Page<Artifact>> {
        let mut f = Filter::default();
        if let Some(ticket) = filter.ticket {
            f.eq("ticket_id", Arg::Int(ticket.id()));
        }
        if let Some(subticket) = filter.subticket {
            f.eq("subticket_id", Arg::Int(subticket.id()));
        }
        if let Some(t) = filter.artifact_type {
            f.eq("type", Arg::Text(t.as_str().into()));
        }
        self.list("artifact", f, page, artifact_from).await
    }

    async fn record_transition(&self, new: NewTransition) -> Result<Transition> {
        let new = new.validate()?;
        let ticket = new.ticket.id();
        let at = now();
        // The insert's trigger moves the ticket and records the event.
        if let Some(transition) = self.record_transition_where_known(&new, &at).await? {
            return Ok(transition);
        }
        let mut tx = self.begin().await?;
        let (step, status) = self.lock_ticket(&mut tx, ticket, &at).await?;
        check_transition(step, status, new.step, new.status)
            .map_err(|e| e.with_resource(new.ticket.to_string()))?;
        let row = sqlx::query(
            "INSERT INTO transition (ticket_id, step, status, message, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING *",
        )
        .bind(ticket)
        .bind(new.step.as_str())
        .bind(new.status.as_str())
        .bind(new.message.clone())
        .bind(at)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        let transition = transition_from(&row)?;
        self.commit_with_events(tx, ticket).await?;
        self.known.note(ticket, new.step, new.status);
        Ok(transition)
    }

    async fn get_transition(&self, id: i64) -> Result<Transition> {
        self.get_one("transition", "progress", id, transition_from)
            .await
    }

    async fn list_transitions(
        &self,
        filter: TransitionFilter,
        page: PageRequest,
    ) -> Result<Page<Transition>> {
        let mut f = Filter::default();
        if let Some(ticket) = filter.ticket {
            f.eq("ticket_id", Arg::Int(ticket.id()));
        }
        self.list("transition", f, page, transition_from).await
    }

    async fn events(&self, ticket: i64, after: Option<i64>) -> Result<EventStream> {
        self.get_one("ticket", "ticket", ticket, ticket_from)
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let system = self.clone();
        let mut wake = self.events_written.subscribe();
        tokio::spawn(async move {
            let mut last = after.unwrap_or(0);
            loop {
                let batch = match system.events_after(ticket, last).await {
                    Ok(batch) => batch,
                    Err(err) => {
                        let _ = tx.send(Err(err)).await;
                        return;
                    }
                };
                let empty = batch.is_empty();
                for event in batch {
                    last = event.id;
                    let closes = event.closes_ticket();
                    if tx.send(Ok(event)).await.is_err() || closes {
                        return;
                    }
                }
                if empty {
                    // A subscriber that resumes after the closing event has nothing more to
                    // wait for. The closing event commits with the ticket's new state, so a
                    // closed state means every event is already readable.
                    match system.is_closed(ticket).await {
                        Ok(false) => {}
                        Ok(true) => match system.events_after(ticket, last).await {
                            Ok(rest) if rest.is_empty() => return,
                            Ok(_) => continue,
                            Err(err) => {
                                let _ = tx.send(Err(err)).await;
                                return;
                            }
                        },
                        Err(err) => {
                            let _ = tx.send(Err(err)).await;
                            return;
                        }
                    }
                    tokio::select! {
                        _ = tx.closed() => return,
                        _ = wait_for_ticket(&mut wake, ticket) => {}
                        _ = tokio::time::sleep(EVENT_POLL) => {}
                    }
                }
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}

/// Resolves when this process wrote events of `ticket` (or may have: missed wake-ups count
/// as one). Writes of other processes are found by polling instead.
async fn wait_for_ticket(wake: &mut broadcast::Receiver<i64>, ticket: i64) {
    loop {
        match wake.recv().await {
            Ok(id) if id == ticket => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite() -> (tempfile::TempDir, SqlTicketSystem) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/tickets.db", dir.path().display());
        let system = SqlTicketSystem::connect(&url).await.unwrap();
        (dir, system)
    }

    #[tokio::test]
    async fn sqlite_passes_the_conformance_suite() {
        let (_dir, system) = sqlite().await;
        super::super::conformance::run_all(Arc::new(system)).await;
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_does_not_migrate_twice() {
        let (dir, system) = sqlite().await;
        let ticket = system
            .create_ticket(NewTicket {
                owner: "dev@example.com".into(),
                title: "t".into(),
                description: String::new(),
                bug_id: String::new(),
            })
            .await
            .unwrap();
        system.close().await;
        let url = format!("sqlite://{}/tickets.db", dir.path().display());
        let again = SqlTicketSystem::connect(&url).await.unwrap();
        assert_eq!(again.get_ticket(ticket.id).await.unwrap().ticket, ticket);
        let versions = sqlx::query("SELECT COUNT(*) AS n FROM schema_version")
            .fetch_one(&again.pool)
            .await
            .unwrap();
        assert_eq!(int(&versions, "n").unwrap(), MIGRATIONS.len() as i64);
    }

    #[tokio::test]
    async fn several_openers_of_a_fresh_database_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/fresh.db", dir.path().display());
        let opening = (0..4).map(|_| SqlTicketSystem::connect(&url));
        for opened in futures::future::join_all(opening).await {
            opened.unwrap().close().await;
        }
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let (dir, system) = sqlite().await;
        sqlx::query("INSERT INTO schema_version (version, applied_at) VALUES (999, 'x')")
            .execute(&system.pool)
            .await
            .unwrap();
        system.close().await;
        let url = format!("sqlite://{}/tickets.db", dir.path().display());
        let err = SqlTicketSystem::connect(&url).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
    }

    fn new_ticket(title: &str) -> NewTicket {
        NewTicket {
            owner: "dev@example.com".into(),
            title: title.into(),
            description: String::new(),
            bug_id: String::new(),
        }
    }

    /// A writer dropped at any point of its transaction (a timeout, an aborted task)
    /// leaves no transaction open: the next writer goes on at once.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_write_dropped_half_way_leaves_the_database_writable() {
        let (_dir, system) = sqlite().await;
        for step in 0..40u64 {
            let dropped = async {
                let mut tx = system.begin().await?;
                sqlx::query("UPDATE ticket SET title = 'x' WHERE id = 0")
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tx.commit().await
            };
            let early = std::time::Duration::from_micros(step * 25);
            let _ = tokio::time::timeout(early, dropped).await;
            let next = system.create_ticket(new_ticket(&format!(
                "after a write dropped at {} µs",
                step * 25
            )));
            tokio::time::timeout(std::time::Duration::from_secs(10), next)
                .await
                .expect("the next write is not kept waiting")
                .unwrap();
        }
    }

    /// Following a ticket gives its events as they come and ends once it is closed.
    #[tokio::test(flavor = "multi_thread")]
    async fn following_a_ticket_ends_when_it_closes() {
        use futures::StreamExt;
        let (_dir, system) = sqlite().await;
        let ticket = system.create_ticket(new_ticket("followed")).await.unwrap();
        let tickets: Arc<dyn TicketSystem> = Arc::new(system.clone());
        let following = tokio::spawn(
            crate::tickets::follow(tickets, ticket.id)
                .map(|event| event.map(|e| (e.step, e.status)))
                .collect::<Vec<_>>(),
        );
        for (step, status) in [
            (WorkflowStep::Queued, StepStatus::InProgress),
            (WorkflowStep::Queued, StepStatus::Failed),
        ] {
            system
                .record_transition(NewTransition {
                    ticket: Uri::new(ticket.id),
                    step,
                    status,
                    message: String::new(),
                })
                .await
                .unwrap();
        }
        let seen = tokio::time::timeout(Duration::from_secs(10), following)
            .await
            .expect("the stream ended with the ticket")
            .unwrap();
        let seen: Vec<_> = seen.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            seen.last(),
            Some(&(WorkflowStep::Queued, StepStatus::Failed)),
            "{seen:?}"
        );
    }

    /// Writes queued together are committed together, and a failing one is answered on its
    /// own: the others are kept.
    #[tokio::test(flavor = "multi_thread")]
    async fn writes_committed_together_each_get_their_own_answer() {
        let (_dir, system) = sqlite().await;
        let ticket = system.create_ticket(new_ticket("batched")).await.unwrap();
        let writes = (0..60i64).map(|i| {
            let system = system.clone();
            async move {
                if i % 20 == 7 {
                    // No such ticket: the foreign key refuses it.
                    system
                        .write_one(
                            "INSERT INTO artifact (ticket_id, name, reference, type, created_at) \
                             VALUES ($1, 'x', 'x', 'LOGS', 'x')",
                            vec![Arg::Int(999_999)],
                        )
                        .await
                } else {
                    system
                        .write_one(
                            "UPDATE ticket SET description = description || $1 WHERE id = $2",
                            vec![Arg::Text(format!("<{i}>")), Arg::Int(ticket.id)],
                        )
                        .await
                }
            }
        });
        let results = futures::future::join_all(writes).await;
        for (i, result) in results.iter().enumerate() {
            if i % 20 == 7 {
                assert!(result.is_err(), "write {i}: {result:?}");
            } else {
                assert_eq!(*result.as_ref().unwrap(), 1, "write {i}");
            }
        }
        let kept = system
            .get_ticket(ticket.id)
            .await
            .unwrap()
            .ticket
            .description;
        for i in (0..60).filter(|i| i % 20 != 7) {
            assert!(kept.contains(&format!("<{i}>")), "write {i} was kept");
        }
        let artifacts = sqlx::query("SELECT COUNT(*) AS n FROM artifact")
            .fetch_one(&system.pool)
            .await
            .unwrap();
        assert_eq!(int(&artifacts, "n").unwrap(), 0);
    }

    #[tokio::test]
    async fn unknown_urls_are_refused() {
        let err = SqlTicketSystem::connect("mysql://x").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        // A database per connection would lose every write to the others.
        let err = SqlTicketSystem::connect("sqlite://:memory:")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("give a file"), "{err}");
    }

    /// Runs the conformance suite on a fresh PostgreSQL database made for this run, when
    /// `UBUNTU_CI_TEST_POSTGRES` names a server (e.g. `postgres://postgres@127.0.0.1/postgres`).
    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_passes_the_conformance_suite() {
        let Some(db) = crate::tickets::conformance::postgres_test_database().await else {
            return;
        };
        // Several processes opening a fresh database at once: one migrates, all succeed.
        let opening = (0..4).map(|_| SqlTicketSystem::connect(db.url()));
        for opened in futures::future::join_all(opening).await {
            opened.unwrap().close().await;
        }
        let system = SqlTicketSystem::connect(db.url()).await.unwrap();
        assert_eq!(system.dialect(), Dialect::Postgres);
        super::super::conformance::run_all(Arc::new(system.clone())).await;
        system.close().await;
        db.drop().await;
    }
}
