//! The SQLite batch writer's thread: the single-statement writes queued up together run in
//! one transaction on a connection of its own, each statement compiled once and kept
//! (rusqlite's statement cache). Through sqlx, each batch would be compiled anew as one
//! multi-statement text, and every statement's result handed back across threads one by
//! one; here a batch costs one hand-over to the thread and one back.
//!
//! The thread is told what to run by [`super::sql`]'s batch writer, which holds the
//! process's writer lock meanwhile: the sqlx writer connection and this one never write at
//! once (other processes meet at SQLite's own lock).

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use super::sql::Arg;
use crate::error::{Error, ErrorKind, Result};

/// Compiled statements kept: every distinct single-statement write of the ticket system,
/// the PPA pool and the lander's store, with room to spare.
const STATEMENT_CACHE: usize = 128;

/// A row a write returned (`RETURNING`): its columns by name.
#[derive(Debug, Clone)]
pub(crate) struct ReturnedRow {
    columns: Vec<(String, Value)>,
}

impl ReturnedRow {
    /// The value of `column`; an internal error when the row has no such column.
    pub(crate) fn value(&self, column: &str) -> Result<&Value> {
        self.columns
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, value)| value)
            .ok_or_else(|| Error::internal(format!("no column {column:?} in a written row")))
    }
}

/// What one statement of a batch did: the rows it changed, or the first row it returned.
#[derive(Debug)]
pub(crate) enum Outcome {
    Changed(u64),
    Row(Option<ReturnedRow>),
}

/// One statement to run: its SQL (`$N` placeholders), its arguments, whether it returns a
/// row.
#[derive(Debug)]
pub(crate) struct Statement {
    pub(crate) sql: &'static str,
    pub(crate) args: Vec<Arg>,
    pub(crate) returning: bool,
}

struct Job {
    batch: Vec<Statement>,
    reply: tokio::sync::oneshot::Sender<Vec<Result<Outcome>>>,
}

/// The thread, reached through a channel; it ends when this is dropped.
#[derive(Debug)]
pub(crate) struct BatchThread {
    jobs: mpsc::Sender<Job>,
}

impl BatchThread {
    /// Opens `path` (made by the ticket system's own connection already) on a thread of
    /// its own, with the settings of the ticket system's connections.
    pub(crate) fn open(path: &Path, busy_timeout: Duration) -> Result<BatchThread> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| {
            Error::unavailable("cannot open the ticket database")
                .with_resource(path.display().to_string())
                .with_source(e)
        })?;
        conn.busy_timeout(busy_timeout).map_err(sqlite_error)?;
        // As the other connections (see `SqlTicketSystem::connect`): checkpoints run in
        // the background, not in whichever commit crosses the threshold.
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA wal_autocheckpoint = 0;",
        )
        .map_err(sqlite_error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let (jobs, receiver) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("ubuntu-ci-sqlite-writer".into())
            .spawn(move || {
                for job in receiver {
                    let _ = job.reply.send(run_batch(&conn, job.batch));
                }
            })
            .map_err(|e| Error::internal("cannot start the SQLite writer thread").with_source(e))?;
        Ok(BatchThread { jobs })
    }

    /// Runs `batch` as one transaction: one answer per statement, in order.
    pub(crate) async fn run(&self, batch: Vec<Statement>) -> Vec<Result<Outcome>> {
        let count = batch.len();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || {
            (0..count)
                .map(|_| {
                    Err(Error::internal(
                        "the ticket database's writer thread stopped",
                    ))
                })
                .collect()
        };
        if self.jobs.send(Job { batch, reply }).is_err() {
            return stopped();
        }
        answer.await.unwrap_or_else(|_| stopped())
    }
}

/// Runs `batch` in one transaction. A statement that fails is undone alone (SQLite's
/// statement journal) and answered with its error; the others are kept. When an error ends
/// the whole transaction (I/O, a full disk), the statements run again one by one, each on
/// its own.
fn run_batch(conn: &Connection, batch: Vec<Statement>) -> Vec<Result<Outcome>> {
    if batch.len() == 1 {
        return batch.iter().map(|s| run_statement(conn, s)).collect();
    }
    if let Err(err) = conn.execute_batch("BEGIN IMMEDIATE") {
        // Another process held the database past the busy timeout: every write would wait
        // again; each gets the error.
        let err = sqlite_error(err);
        return batch.iter().map(|_| Err(same(&err))).collect();
    }
    let mut results = Vec::with_capacity(batch.len());
    for statement in &batch {
        results.push(run_statement(conn, statement));
        if conn.is_autocommit() {
            // The transaction is gone with what ran before: nothing of it was kept.
            return batch.iter().map(|s| run_statement(conn, s)).collect();
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => results,
        Err(err) => {
            let err = sqlite_error(err);
            if !conn.is_autocommit() {
                if let Err(rollback) = conn.execute_batch("ROLLBACK") {
                    tracing::warn!(error = %rollback, "cannot roll back a failed batch");
                }
            }
            batch.iter().map(|_| Err(same(&err))).collect()
        }
    }
}

/// Runs one statement, its `$N` placeholders bound to `args[N - 1]`.
fn run_statement(conn: &Connection, statement: &Statement) -> Result<Outcome> {
    let mut prepared = conn.prepare_cached(statement.sql).map_err(sqlite_error)?;
    for index in 1..=prepared.parameter_count() {
        let number = match prepared.parameter_name(index) {
            // `$N` and `?N` name the Nth argument; a bare `?` the next one.
            Some(name) => name
                .get(1..)
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| Error::internal(format!("unexpected SQL parameter {name}")))?,
            None => index,
        };
        let arg = number
            .checked_sub(1)
            .and_then(|i| statement.args.get(i))
            .ok_or_else(|| Error::internal(format!("no argument for SQL parameter {number}")))?;
        let bound = match arg {
            Arg::Int(v) => prepared.raw_bind_parameter(index, v),
            Arg::Text(v) => prepared.raw_bind_parameter(index, v),
            Arg::Null => prepared.raw_bind_parameter(index, Value::Null),
        };
        bound.map_err(sqlite_error)?;
    }
    let names: Vec<String> = if statement.returning {
        prepared
            .column_names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    } else {
        Vec::new()
    };
    let mut rows = prepared.raw_query();
    let mut first = None;
    // Every row is stepped through: a statement's changes are all made only then.
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        if statement.returning && first.is_none() {
            let mut columns = Vec::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                columns.push((name.clone(), row.get::<_, Value>(i).map_err(sqlite_error)?));
            }
            first = Some(ReturnedRow { columns });
        }
    }
    if statement.returning {
        Ok(Outcome::Row(first))
    } else {
        Ok(Outcome::Changed(conn.changes()))
    }
}

fn same(err: &Error) -> Error {
    Error::new(err.kind(), err.to_string())
}

/// A SQLite error as the ticket system's kinds (as `db_error` does for sqlx's).
pub(crate) fn sqlite_error(err: rusqlite::Error) -> Error {
    use rusqlite::ffi;
    let kind = match &err {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::Conflict
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::NotFound,
            _ => match failure.code {
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                    ErrorKind::Unavailable
                }
                _ => ErrorKind::Internal,
            },
        },
        _ => ErrorKind::Internal,
    };
    Error::new(kind, "ticket database error").with_source(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(sql: &'static str, args: Vec<Arg>, returning: bool) -> Statement {
        Statement {
            sql,
            args,
            returning,
        }
    }

    #[tokio::test]
    async fn a_batch_binds_by_number_returns_rows_and_keeps_all_but_a_failed_statement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "PRAGMA journal_mode = WAL; \
                 CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, note TEXT)",
            )
            .unwrap();
        let thread = BatchThread::open(&path, Duration::from_secs(1)).unwrap();
        let results = thread
            .run(vec![
                // Placeholders out of order, one used twice.
                statement(
                    "INSERT INTO t (name, note) VALUES ($2, $1 || '/' || $2)",
                    vec![Arg::Text("a note".into()), Arg::Text("one".into())],
                    false,
                ),
                // The same name again: refused alone.
                statement(
                    "INSERT INTO t (name, note) VALUES ($1, $2)",
                    vec![Arg::Text("one".into()), Arg::Null],
                    false,
                ),
                statement(
                    "INSERT INTO t (name, note) VALUES ($1, $2) RETURNING id, name, note",
                    vec![Arg::Text("two".into()), Arg::Null],
                    true,
                ),
                statement(
                    "UPDATE t SET note = coalesce(note, '') || '+' WHERE id > $1",
                    vec![Arg::Int(0)],
                    false,
                ),
            ])
            .await;
        assert!(matches!(results[0], Ok(Outcome::Changed(1))), "{results:?}");
        let err = results[1].as_ref().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        let Ok(Outcome::Row(Some(row))) = &results[2] else {
            panic!("{results:?}");
        };
        assert_eq!(row.value("name").unwrap(), &Value::Text("two".into()));
        assert_eq!(row.value("note").unwrap(), &Value::Null);
        assert!(row.value("nothing").is_err());
        assert!(matches!(results[3], Ok(Outcome::Changed(2))), "{results:?}");
        let conn = Connection::open(&path).unwrap();
        let kept: Vec<String> = conn
            .prepare("SELECT name || ':' || note FROM t ORDER BY id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(kept, ["one:a note/one+", "two:+"]);
    }

    #[tokio::test]
    async fn an_argument_missing_for_a_placeholder_is_an_error_not_a_null() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (a TEXT)")
            .unwrap();
        let thread = BatchThread::open(&path, Duration::from_secs(1)).unwrap();
        let results = thread
            .run(vec![statement(
                "INSERT INTO t (a) VALUES ($2)",
                vec![Arg::Text("only one".into())],
                false,
            )])
            .await;
        assert_eq!(results[0].as_ref().unwrap_err().kind(), ErrorKind::Internal);
    }
}
