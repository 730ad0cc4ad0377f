//! Where the lander keeps each request and how far it got: one row per ticket in the
//! ticket store's database (table `lander_request`), written at every step boundary, so a
//! lander started again resumes what an earlier one left unfinished.

use std::fmt;

use async_trait::async_trait;
use sqlx::Row;

use super::{ExecuteRequest, RequestOutcome};
use crate::error::{Error, Result};
use crate::tickets::sql::{db_error, now, SqlTicketSystem};

/// The lander's durable state.
#[async_trait]
pub trait RequestStore: Send + Sync + fmt::Debug {
    /// Records `request` with `progress`. Recording a ticket's request again while the
    /// first is unfinished keeps the first and its progress; once it is finished, the new
    /// one replaces it (and a stop asked for the old one is forgotten).
    async fn record(&self, request: &ExecuteRequest, progress: &RequestOutcome) -> Result<()>;

    /// Saves how far the ticket's request got.
    async fn save(&self, ticket: i64, progress: &RequestOutcome) -> Result<()>;

    /// Marks the ticket's request finished: it is not resumed.
    async fn finish(&self, ticket: i64) -> Result<()>;

    /// Every request not finished, oldest first, with how far it got.
    async fn unfinished(&self) -> Result<Vec<(ExecuteRequest, RequestOutcome)>>;

    /// Asks whoever runs the ticket's request to stop it; `false` when the ticket has no
    /// request under way.
    async fn request_cancel(&self, ticket: i64) -> Result<bool>;

    /// Whether a stop of the ticket's request was asked for.
    async fn cancel_requested(&self, ticket: i64) -> Result<bool>;
}

/// The requests in the ticket store's SQL database (SQLite or PostgreSQL).
#[derive(Debug, Clone)]
pub struct SqlRequestStore {
    db: SqlTicketSystem,
}

impl SqlRequestStore {
    /// The requests kept beside `tickets`.
    pub fn new(tickets: &SqlTicketSystem) -> SqlRequestStore {
        SqlRequestStore {
            db: tickets.clone(),
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::internal("a lander request could not be written").with_source(e))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        Error::internal("a lander request in the database is unreadable").with_source(e)
    })
}

#[async_trait]
impl RequestStore for SqlRequestStore {
    async fn record(&self, request: &ExecuteRequest, progress: &RequestOutcome) -> Result<()> {
        let at = now();
        let mut tx = self.db.begin().await?;
        sqlx::query(
            "INSERT INTO lander_request \
             (ticket_id, request, progress, finished, created_at, updated_at) \
             VALUES ($1, $2, $3, 0, $4, $4) ON CONFLICT (ticket_id) DO UPDATE SET \
             request = excluded.request, progress = excluded.progress, finished = 0, \
             cancel_requested = 0, created_at = excluded.created_at, \
             updated_at = excluded.updated_at WHERE lander_request.finished = 1",
        )
        .bind(request.ticket_id)
        .bind(to_json(request)?)
        .bind(to_json(progress)?)
        .bind(at)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        tx.commit().await
    }

    async fn save(&self, ticket: i64, progress: &RequestOutcome) -> Result<()> {
        let mut tx = self.db.begin().await?;
        sqlx::query(
            "UPDATE lander_request SET progress = $1, updated_at = $2 WHERE ticket_id = $3",
        )
        .bind(to_json(progress)?)
        .bind(now())
        .bind(ticket)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        tx.commit().await
    }

    async fn finish(&self, ticket: i64) -> Result<()> {
        let mut tx = self.db.begin().await?;
        sqlx::query("UPDATE lander_request SET finished = 1, updated_at = $1 WHERE ticket_id = $2")
            .bind(now())
            .bind(ticket)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        tx.commit().await
    }

    async fn request_cancel(&self, ticket: i64) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let changed = sqlx::query(
            "UPDATE lander_request SET cancel_requested = 1, updated_at = $1 \
             WHERE ticket_id = $2 AND finished = 0",
        )
        .bind(now())
        .bind(ticket)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        tx.commit().await?;
        Ok(changed > 0)
    }

    async fn cancel_requested(&self, ticket: i64) -> Result<bool> {
        let row = sqlx::query("SELECT cancel_requested FROM lander_request WHERE ticket_id = $1")
            .bind(ticket)
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_error)?;
        match row {
            Some(row) => Ok(row
                .try_get::<i64, _>("cancel_requested")
                .map_err(db_error)?
                != 0),
            None => Ok(false),
        }
    }

    async fn unfinished(&self) -> Result<Vec<(ExecuteRequest, RequestOutcome)>> {
        let rows = sqlx::query(
            "SELECT request, progress FROM lander_request WHERE finished = 0 \
             ORDER BY created_at, ticket_id",
        )
        .fetch_all(self.db.pool())
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let request: String = row.try_get("request").map_err(db_error)?;
                let progress: String = row.try_get("progress").map_err(db_error)?;
                Ok((from_json(&request)?, from_json(&progress)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lander::RequestState;
    use crate::model::{NewTicket, WorkflowStep};
    use crate::tickets::TicketSystem;

    async fn ticket(db: &SqlTicketSystem) -> i64 {
        db.create_ticket(NewTicket {
            owner: "dev@example.com".into(),
            title: "lander".into(),
            description: String::new(),
            bug_id: String::new(),
        })
        .await
        .unwrap()
        .id
    }

    fn request(ticket: i64) -> ExecuteRequest {
        ExecuteRequest {
            ticket_id: ticket,
            source_packages: vec![format!("file:///store/ticket.{ticket}.sources/a.changes")],
            binary_packages: Vec::new(),
            series: None,
            base_image: None,
            progress_queue: format!("ticket-{ticket}-exchange"),
        }
    }

    fn progress(ticket: i64) -> RequestOutcome {
        RequestOutcome {
            ticket_id: ticket,
            state: RequestState::Failed,
            step: WorkflowStep::Queued,
            reason: None,
            ppa: None,
            series: "bookworm".into(),
            builds: Vec::new(),
            base_image: None,
            image: None,
            tests: Vec::new(),
            published: Vec::new(),
        }
    }

    /// Requests are kept with their progress, in order, until finished; recording one
    /// again keeps the first; an unknown ticket is refused.
    async fn keeps_requests(db: SqlTicketSystem) {
        let store = SqlRequestStore::new(&db);
        let (a, b) = (ticket(&db).await, ticket(&db).await);
        store.record(&request(a), &progress(a)).await.unwrap();
        store.record(&request(b), &progress(b)).await.unwrap();
        let mut further = progress(a);
        further.ppa = Some("ppa:ci-team/ppa_build_1".into());
        further.image = Some("file:///store/image.tar.zst".into());
        store.save(a, &further).await.unwrap();
        store.record(&request(a), &progress(a)).await.unwrap();

        let unfinished = store.unfinished().await.unwrap();
        assert_eq!(unfinished.len(), 2);
        assert_eq!(unfinished[0], (request(a), further));
        assert_eq!(unfinished[1], (request(b), progress(b)));

        store.finish(a).await.unwrap();
        let left: Vec<i64> = store
            .unfinished()
            .await
            .unwrap()
            .iter()
            .map(|(r, _)| r.ticket_id)
            .collect();
        assert_eq!(left, [b]);
        assert!(!store.cancel_requested(b).await.unwrap());
        assert!(store.request_cancel(b).await.unwrap());
        assert!(store.cancel_requested(b).await.unwrap());
        assert!(!store.request_cancel(a).await.unwrap(), "finished already");
        assert!(!store.request_cancel(9999).await.unwrap());

        // A finished request is replaced by a new one for its ticket, its stop forgotten.
        store.finish(b).await.unwrap();
        let mut second = request(b);
        second.series = Some("trixie".into());
        store.record(&second, &progress(b)).await.unwrap();
        let unfinished = store.unfinished().await.unwrap();
        assert_eq!(unfinished, [(second, progress(b))]);
        assert!(!store.cancel_requested(b).await.unwrap());
        let err = store.record(&request(9999), &progress(9999)).await;
        assert!(err.is_err(), "no such ticket");
    }

    #[tokio::test]
    async fn sqlite_keeps_requests() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("tickets.db").display());
        keeps_requests(SqlTicketSystem::connect(&url).await.unwrap()).await;
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_keeps_requests() {
        let Some(db) = crate::tickets::conformance::postgres_test_database().await else {
            return;
        };
        let system = SqlTicketSystem::connect(db.url()).await.unwrap();
        keeps_requests(system.clone()).await;
        system.close().await;
        db.drop().await;
    }
}
