//! The PPA pool in the ticket system's SQL database (SQLite or PostgreSQL).
//!
//! One row per PPA. Every change of the pool happens in one transaction that first takes
//! the pool's lock (SQLite's write lock; a PostgreSQL advisory lock per owner), so two
//! tickets never get one PPA, whatever the number of processes. Emptying an archive takes
//! time and happens outside any transaction, between the `cleaning` and `free` states; a
//! cleaning that a crash interrupted is taken up again once it is older than
//! [`STALE_CLEANING`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{PoolOptions, Ppa, PpaAssigner, PpaCleaner, PpaName};
use crate::error::{Error, ErrorKind, Result};
use crate::tickets::sql::{db_error, now, Arg, Columns, Dialect, SqlTicketSystem, WriteTx};

/// How often a waiting `get_ppa` looks again for PPAs freed by other processes.
const POLL: Duration = Duration::from_millis(200);

/// A quarantined PPA is tried again after this long.
const QUARANTINE_RETRY: Duration = Duration::from_secs(600);

/// A cleaning older than this was interrupted (its process died) and is started again.
pub const STALE_CLEANING: Duration = Duration::from_secs(600);

/// The PPA pool of one owner, kept beside the tickets.
#[derive(Debug, Clone)]
pub struct SqlPpaPool {
    db: SqlTicketSystem,
    options: PoolOptions,
    cleaner: Arc<dyn PpaCleaner>,
    /// Woken when this process frees a PPA.
    freed: Arc<tokio::sync::Notify>,
    /// Set once the first `size` PPAs exist.
    seeded: Arc<tokio::sync::OnceCell<()>>,
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::internal(format!("bad timestamp {text:?} in database")).with_source(e))
}

fn ppa_from(row: &impl Columns) -> Result<Ppa> {
    let owner = row.text("owner")?;
    let name = row.text("name")?;
    let state = row.text("state")?;
    let lease = row.opt_text("lease_expires_at")?;
    let updated = row.text("updated_at")?;
    Ok(Ppa {
        name: PpaName::new(&owner, &name)?,
        state: state
            .parse()
            .map_err(|e: Error| Error::internal(format!("bad PPA state in database: {e}")))?,
        ticket: row.opt_int("ticket_id")?,
        lease_expires_at: lease.as_deref().map(time).transpose()?,
        updated_at: time(&updated)?,
    })
}

impl SqlPpaPool {
    /// The pool of `options.owner` in `tickets`' database; its first `size` PPAs are made,
    /// if they do not exist yet, by the first call that needs them (opening the services for
    /// a command that never touches PPAs costs no write); `cleaner` empties released
    /// archives.
    ///
    /// # Errors
    /// `InvalidInput` for bad options.
    pub async fn new(
        tickets: &SqlTicketSystem,
        options: PoolOptions,
        cleaner: Arc<dyn PpaCleaner>,
    ) -> Result<SqlPpaPool> {
        options.validate()?;
        Ok(SqlPpaPool {
            db: tickets.clone(),
            options,
            cleaner,
            freed: Arc::new(tokio::sync::Notify::new()),
            seeded: Arc::new(tokio::sync::OnceCell::new()),
        })
    }

    /// Makes the pool's first `size` PPAs, once per pool handle.
    async fn seed(&self) -> Result<()> {
        self.seeded
            .get_or_try_init(|| async {
                let mut tx = self.begin_locked().await?;
                for n in 1..=self.options.size {
                    sqlx::query(
                        "INSERT INTO ppa (owner, name, state, updated_at) \
                         VALUES ($1, $2, 'free', $3) ON CONFLICT (owner, name) DO NOTHING",
                    )
                    .bind(self.options.owner.clone())
                    .bind(format!("ppa_build_{n}"))
                    .bind(now())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                }
                tx.commit().await
            })
            .await
            .map(drop)
    }

    /// The pool's options.
    pub fn options(&self) -> &PoolOptions {
        &self.options
    }

    /// A write transaction holding the pool's lock.
    async fn begin_locked(&self) -> Result<WriteTx> {
        let mut tx = self.db.begin().await?;
        if self.db.dialect() == Dialect::Postgres {
            // One key per owner: pools of different owners do not wait for each other.
            let digest = Sha256::digest(format!("ppa:{}", self.options.owner).as_bytes());
            let mut key = [0u8; 8];
            key.copy_from_slice(&digest[..8]);
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(i64::from_be_bytes(key))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        Ok(tx)
    }

    fn lease_end(&self) -> String {
        let lease = chrono::Duration::from_std(self.options.lease).unwrap_or(chrono::Duration::MAX);
        timestamp(
            Utc::now()
                .checked_add_signed(lease)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    /// Extends the lease of the PPA `ticket` holds, if it holds one.
    async fn extend_lease(&self, tx: &mut WriteTx, ticket: i64) -> Result<Option<Ppa>> {
        sqlx::query(
            "UPDATE ppa SET lease_expires_at = $1 WHERE owner = $2 AND ticket_id = $3 \
             AND state = 'reserved' RETURNING *",
        )
        .bind(self.lease_end())
        .bind(self.options.owner.clone())
        .bind(ticket)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(ppa_from)
        .transpose()
    }

    /// A free PPA of the pool reserved for `ticket`, in one statement (no transaction
    /// holding the writer), when the ticket holds none and one is free; `None` otherwise
    /// (the full attempt then decides). SQLite only (see `try_assign`).
    async fn reserve_free(&self, ticket: i64) -> Result<Option<Ppa>> {
        let row = self
            .db
            .write_returning(
                "UPDATE ppa SET state = 'reserved', ticket_id = $1, lease_expires_at = $2, \
                 updated_at = $3 \
                 WHERE id = (SELECT id FROM ppa WHERE owner = $4 AND state = 'free' \
                   ORDER BY id LIMIT 1) \
                 AND state = 'free' \
                 AND NOT EXISTS (SELECT 1 FROM ppa WHERE ticket_id = $1) \
                 AND EXISTS (SELECT 1 FROM ticket WHERE id = $1) \
                 RETURNING *",
                vec![
                    Arg::Int(ticket),
                    Arg::Text(self.lease_end()),
                    Arg::Text(now()),
                    Arg::Text(self.options.owner.clone()),
                ],
            )
            .await;
        match row {
            Ok(row) => row.as_ref().map(ppa_from).transpose(),
            // Another process reserved one for the ticket meanwhile: the full attempt finds it.
            Err(err) if err.kind() == ErrorKind::Conflict => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// One attempt: the ticket's PPA, or a free or new one; `None` when all are busy.
    async fn try_assign(&self, ticket: i64) -> Result<Option<Ppa>> {
        // On SQLite every write is serialized, the full attempt's included. On PostgreSQL
        // the full attempt counts on the pool's lock, which the one statement does not take.
        if self.db.dialect() == Dialect::Sqlite {
            if let Some(ppa) = self.reserve_free(ticket).await? {
                return Ok(Some(ppa));
            }
        }
        let owner = self.options.owner.clone();
        let at = now();
        let mut tx = self.begin_locked().await?;
        if let Some(ppa) = self.extend_lease(&mut tx, ticket).await? {
            tx.commit().await?;
            return Ok(Some(ppa));
        }
        let known = sqlx::query("SELECT id FROM ticket WHERE id = $1")
            .bind(ticket)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        if known.is_none() {
            return Err(Error::not_found("no such ticket")
                .with_resource(format!("/api/v1/ticket/{ticket}/")));
        }
        // Lapsed leases: their tickets are gone or stuck; the PPAs go back to the pool.
        sqlx::query(
            "UPDATE ppa SET state = 'dirty', ticket_id = NULL, lease_expires_at = NULL, \
             updated_at = $1 WHERE owner = $2 AND state = 'reserved' AND lease_expires_at < $1",
        )
        .bind(at.clone())
        .bind(owner.clone())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let free = sqlx::query(
            "SELECT id FROM ppa WHERE owner = $1 AND state = 'free' ORDER BY id LIMIT 1",
        )
        .bind(owner.clone())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let row = match free {
            Some(free) => {
                let id: i64 = free.try_get("id").map_err(db_error)?;
                sqlx::query(
                    "UPDATE ppa SET state = 'reserved', ticket_id = $1, lease_expires_at = $2, \
                     updated_at = $3 WHERE id = $4 RETURNING *",
                )
                .bind(ticket)
                .bind(self.lease_end())
                .bind(at)
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?
            }
            None => {
                let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM ppa WHERE owner = $1")
                    .bind(owner.clone())
                    .fetch_one(&mut *tx)
                    .await
                    .and_then(|row| row.try_get("n"))
                    .map_err(db_error)?;
                if count >= i64::from(self.options.max) {
                    tx.commit().await?;
                    return Ok(None);
                }
                // PPAs are never removed, so the next number is the count plus one.
                sqlx::query(
                    "INSERT INTO ppa (owner, name, state, ticket_id, lease_expires_at, updated_at) \
                     VALUES ($1, $2, 'reserved', $3, $4, $5) RETURNING *",
                )
                .bind(owner)
                .bind(format!("ppa_build_{}", count + 1))
                .bind(ticket)
                .bind(self.lease_end())
                .bind(at)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?
            }
        };
        let ppa = ppa_from(&row)?;
        tx.commit().await?;
        Ok(Some(ppa))
    }

    /// Waits while PPA `id` is being emptied by another cleaner (at most as long as a
    /// cleaning may take before it counts as interrupted).
    async fn wait_cleaned(&self, id: i64) -> Result<()> {
        let deadline = Instant::now() + STALE_CLEANING;
        while Instant::now() < deadline {
            let state: Option<String> = sqlx::query_scalar("SELECT state FROM ppa WHERE id = $1")
                .bind(id)
                .fetch_optional(self.db.pool())
                .await
                .map_err(db_error)?;
            if state.as_deref() != Some("cleaning") {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Empties one dirty PPA (`only` that one, when given; else any, or one whose cleaning
    /// was interrupted, or a quarantined one due another try) and frees it; `false` when
    /// there was none. One that cannot be emptied is quarantined, and the error returned.
    async fn clean_one(&self, only: Option<i64>) -> Result<bool> {
        let stale = Utc::now()
            - chrono::Duration::from_std(STALE_CLEANING).unwrap_or(chrono::Duration::MAX);
        let retry = Utc::now()
            - chrono::Duration::from_std(QUARANTINE_RETRY).unwrap_or(chrono::Duration::MAX);
        // Taken in one statement: a PPA another cleaner took meanwhile no longer matches.
        let sql = match self.db.dialect() {
            Dialect::Sqlite => {
                "UPDATE ppa SET state = 'cleaning', updated_at = $1 \
                 WHERE id = (SELECT id FROM ppa WHERE owner = $2 AND ($5 = 0 OR id = $5) \
                   AND (state = 'dirty' OR (state = 'cleaning' AND updated_at < $3) \
                        OR (state = 'quarantined' AND updated_at < $4)) \
                   ORDER BY id LIMIT 1) \
                 AND (state = 'dirty' OR (state = 'cleaning' AND updated_at < $3) \
                      OR (state = 'quarantined' AND updated_at < $4)) \
                 RETURNING *"
            }
            // A PPA another cleaner is taking is skipped, not waited for and then missed.
            Dialect::Postgres => {
                "UPDATE ppa SET state = 'cleaning', updated_at = $1 \
                 WHERE id = (SELECT id FROM ppa WHERE owner = $2 AND ($5 = 0 OR id = $5) \
                   AND (state = 'dirty' OR (state = 'cleaning' AND updated_at < $3) \
                        OR (state = 'quarantined' AND updated_at < $4)) \
                   ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 AND (state = 'dirty' OR (state = 'cleaning' AND updated_at < $3) \
                      OR (state = 'quarantined' AND updated_at < $4)) \
                 RETURNING *"
            }
        };
        let row = self
            .db
            .write_returning(
                sql,
                vec![
                    Arg::Text(now()),
                    Arg::Text(self.options.owner.clone()),
                    Arg::Text(timestamp(stale)),
                    Arg::Text(timestamp(retry)),
                    Arg::Int(only.unwrap_or(0)),
                ],
            )
            .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let id = row.int("id")?;
        let ppa = ppa_from(&row)?;

        let cleaned = self.cleaner.clean(&ppa.name).await;
        let next = if cleaned.is_ok() {
            "free"
        } else {
            "quarantined"
        };
        self.db
            .write_one(
                "UPDATE ppa SET state = $1, updated_at = $2 WHERE id = $3 AND state = 'cleaning'",
                vec![Arg::Text(next.to_owned()), Arg::Text(now()), Arg::Int(id)],
            )
            .await?;
        cleaned.map_err(|e| {
            e.with_operation("clean_ppa")
                .with_resource(ppa.name.to_string())
        })?;
        self.freed.notify_waiters();
        Ok(true)
    }
}

#[async_trait]
impl PpaAssigner for SqlPpaPool {
    async fn get_ppa(&self, ticket: i64) -> Result<Ppa> {
        self.seed().await?;
        let deadline = Instant::now() + self.options.wait;
        loop {
            // Registered before looking, so a PPA freed in between still wakes this call.
            let freed = self.freed.notified();
            if let Some(ppa) = self.try_assign(ticket).await? {
                return Ok(ppa);
            }
            // A PPA that cannot be emptied is quarantined and must not stop the lending of
            // the others: the failure is logged, and it is tried again later.
            match self.clean_one(None).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, "cannot empty a released PPA"),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::unavailable(format!(
                    "every PPA of ppa:{}/… is busy ({} at most); try again later",
                    self.options.owner, self.options.max
                ))
                .with_operation("get_ppa"));
            }
            tokio::select! {
                _ = freed => {}
                _ = tokio::time::sleep(POLL.min(deadline - now)) => {}
            }
        }
    }

    async fn release_ppa(&self, ticket: i64) -> Result<()> {
        self.seed().await?;
        let released = self
            .db
            .write_returning(
                "UPDATE ppa SET state = 'dirty', ticket_id = NULL, lease_expires_at = NULL, \
                 updated_at = $1 WHERE owner = $2 AND ticket_id = $3 RETURNING id",
                vec![
                    Arg::Text(now()),
                    Arg::Text(self.options.owner.clone()),
                    Arg::Int(ticket),
                ],
            )
            .await?;
        // The caller's own PPA first. It is released whatever happens to its cleaning: a
        // PPA that cannot be emptied is quarantined (and said so in the log, `ppa list`
        // and `doctor`), never the failure of a request that already did its work.
        if let Some(row) = released {
            let id = row.int("id")?;
            match self.clean_one(Some(id)).await {
                Ok(true) => {}
                // Another cleaner took it first: it is emptied when this returns, all the
                // same.
                Ok(false) => self.wait_cleaned(id).await?,
                Err(err) => {
                    tracing::warn!(error = %err, "a released PPA cannot be emptied: quarantined");
                }
            }
        }
        // Then the others left dirty, in the background, each on its own.
        let pool = self.clone();
        tokio::spawn(async move {
            loop {
                match pool.clean_one(None).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(err) => {
                        tracing::warn!(error = %err, "a released PPA cannot be emptied: quarantined");
                    }
                }
            }
        });
        Ok(())
    }

    async fn renew(&self, ticket: i64) -> Result<Ppa> {
        self.seed().await?;
        let mut tx = self.begin_locked().await?;
        let held = self.extend_lease(&mut tx, ticket).await?;
        tx.commit().await?;
        match held {
            Some(ppa) => Ok(ppa),
            None => Err(Error::not_found(format!(
                "ticket {ticket} holds no PPA of ppa:{}/…",
                self.options.owner
            ))),
        }
    }

    async fn list(&self) -> Result<Vec<Ppa>> {
        self.seed().await?;
        let rows = sqlx::query("SELECT * FROM ppa WHERE owner = $1 ORDER BY id")
            .bind(self.options.owner.clone())
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)?;
        rows.iter().map(ppa_from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite() -> (tempfile::TempDir, SqlTicketSystem) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/tickets.db", dir.path().display());
        (dir, SqlTicketSystem::connect(&url).await.unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_passes_the_conformance_suite() {
        let (dir, tickets) = sqlite().await;
        let archives = dir.path().join("ppa");
        let db = tickets.clone();
        super::super::conformance::run_all(Arc::new(tickets), archives, move |options, cleaner| {
            let db = db.clone();
            async move {
                Arc::new(SqlPpaPool::new(&db, options, cleaner).await.unwrap())
                    as Arc<dyn PpaAssigner>
            }
        })
        .await;
    }

    #[tokio::test]
    async fn the_pool_survives_a_restart() {
        let (dir, tickets) = sqlite().await;
        let url = format!("sqlite://{}/tickets.db", dir.path().display());
        let cleaner = Arc::new(crate::archive::Archives::new(
            dir.path().join("ppa"),
            crate::archive::ArchiveOptions::default(),
        ));
        let ticket = crate::tickets::TicketSystem::create_ticket(
            &tickets,
            crate::model::NewTicket {
                owner: "dev@example.com".into(),
                title: "restart".into(),
                description: String::new(),
                bug_id: String::new(),
            },
        )
        .await
        .unwrap();
        let pool = SqlPpaPool::new(&tickets, PoolOptions::default(), cleaner.clone())
            .await
            .unwrap();
        let held = pool.get_ppa(ticket.id).await.unwrap();
        tickets.close().await;
        let reopened = SqlTicketSystem::connect(&url).await.unwrap();
        let pool = SqlPpaPool::new(&reopened, PoolOptions::default(), cleaner)
            .await
            .unwrap();
        assert_eq!(pool.get_ppa(ticket.id).await.unwrap().name, held.name);
        assert_eq!(pool.list().await.unwrap().len(), 4, "no PPA made twice");
    }

    /// Archives whose cleaning fails for the PPAs named in `broken` (as a folder that
    /// cannot be removed would), and works for the others.
    #[derive(Debug)]
    struct PartlyBroken {
        archives: crate::archive::Archives,
        broken: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait]
    impl PpaCleaner for PartlyBroken {
        async fn clean(&self, ppa: &PpaName) -> Result<()> {
            if self.broken.lock().unwrap().contains(&ppa.to_string()) {
                return Err(Error::internal(
                    "cannot remove the archive: Operation not permitted",
                ));
            }
            self.archives.clean(ppa).await
        }
    }

    /// A PPA that cannot be emptied does not fail its release, nor stop the others: it is
    /// quarantined, lent to nobody, and taken back once it can be emptied.
    #[tokio::test]
    async fn a_ppa_that_cannot_be_emptied_is_quarantined_and_the_rest_go_on() {
        let (dir, tickets) = sqlite().await;
        let cleaner = Arc::new(PartlyBroken {
            archives: crate::archive::Archives::new(
                dir.path().join("ppa"),
                crate::archive::ArchiveOptions::default(),
            ),
            broken: std::sync::Mutex::new(vec!["ppa:ci-team/ppa_build_1".into()]),
        });
        let options = PoolOptions {
            size: 2,
            max: 2,
            wait: Duration::from_millis(200),
            ..PoolOptions::default()
        };
        let pool = SqlPpaPool::new(&tickets, options, cleaner.clone())
            .await
            .unwrap();
        let mut ids = Vec::new();
        for title in ["a", "b", "c"] {
            let ticket = crate::tickets::TicketSystem::create_ticket(
                &tickets,
                crate::model::NewTicket {
                    owner: "dev@example.com".into(),
                    title: title.into(),
                    description: String::new(),
                    bug_id: String::new(),
                },
            )
            .await
            .unwrap();
            ids.push(ticket.id);
        }
        assert_eq!(
            pool.get_ppa(ids[0]).await.unwrap().name.name(),
            "ppa_build_1"
        );
        // Released without an error, though it cannot be emptied.
        pool.release_ppa(ids[0]).await.unwrap();
        let state = |name: &str| {
            let pool = pool.clone();
            let name = name.to_owned();
            async move {
                pool.list()
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|p| p.name.name() == name)
                    .unwrap()
                    .state
            }
        };
        assert_eq!(
            state("ppa_build_1").await,
            crate::ppa::PpaState::Quarantined
        );
        // The others are lent; the quarantined one to nobody.
        assert_eq!(
            pool.get_ppa(ids[1]).await.unwrap().name.name(),
            "ppa_build_2"
        );
        let err = pool.get_ppa(ids[2]).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Unavailable);
        // Once it can be emptied (and its quarantine is over), it is lent again.
        cleaner.broken.lock().unwrap().clear();
        sqlx::query(
            "UPDATE ppa SET updated_at = '2000-01-01T00:00:00.000000Z' WHERE name = 'ppa_build_1'",
        )
        .execute(tickets.pool())
        .await
        .unwrap();
        assert_eq!(
            pool.get_ppa(ids[2]).await.unwrap().name.name(),
            "ppa_build_1"
        );
    }

    #[cfg(feature = "postgres")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_passes_the_conformance_suite() {
        let Some(db) = crate::tickets::conformance::postgres_test_database().await else {
            return;
        };
        let tickets = SqlTicketSystem::connect(db.url()).await.unwrap();
        let archives = tempfile::tempdir().unwrap();
        let sql = tickets.clone();
        super::super::conformance::run_all(
            Arc::new(tickets.clone()),
            archives.path().to_path_buf(),
            move |options, cleaner| {
                let sql = sql.clone();
                async move {
                    Arc::new(SqlPpaPool::new(&sql, options, cleaner).await.unwrap())
                        as Arc<dyn PpaAssigner>
                }
            },
        )
        .await;
        tickets.close().await;
        db.drop().await;
    }
}
