//! Where the lander keeps each request and how far it got: one row per ticket in the
//! ticket store's database (table `lander_request`), written at every step boundary, so a
//! lander started again resumes what an earlier one left unfinished.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{ExecuteRequest, RequestOutcome};
use crate::error::{Error, Result};
use crate::tickets::sql::{db_error, now, Arg, SqlTicketSystem};

/// The lander's durable state.
#[async_trait]
pub trait RequestStore: Send + Sync + fmt::Debug {
    /// Records `request` with `progress`, claimed by `claim` (a runner, until when) when
    /// given; `false` when the ticket's request is unfinished already (the first is kept
    /// with its progress). A finished one is replaced (and a stop asked for it is
    /// forgotten).
    async fn record(
        &self,
        request: &ExecuteRequest,
        progress: &RequestOutcome,
        claim: Option<(&str, &str)>,
    ) -> Result<bool>;

    /// Saves how far the ticket's request got; it waits for nothing from then on.
    async fn save(&self, ticket: i64, progress: &RequestOutcome) -> Result<()>;

    /// Marks the ticket's request finished with its `outcome`: it is not resumed.
    async fn finish(&self, ticket: i64, outcome: &RequestOutcome) -> Result<()>;

    /// Every request not finished, oldest first, with how far it got.
    async fn unfinished(&self) -> Result<Vec<(ExecuteRequest, RequestOutcome)>>;

    /// Asks whoever runs the ticket's request to stop it; `false` when the ticket has no
    /// request under way.
    async fn request_cancel(&self, ticket: i64) -> Result<bool>;

    /// Whether a stop of the ticket's request was asked for.
    async fn cancel_requested(&self, ticket: i64) -> Result<bool>;

    /// The tickets whose unfinished requests a stop was asked for (one query for all the
    /// requests a lander runs).
    async fn cancels_requested(&self) -> Result<Vec<i64>>;

    /// Renews until `until` every claim `runner` holds on unfinished requests; how many.
    async fn renew_claims(&self, runner: &str, until: &str) -> Result<u64>;

    /// Says what the ticket's request waits for (`a build slot`, `a PPA`), from now on;
    /// `None`: it waits no more.
    async fn set_waiting(&self, ticket: i64, waiting_for: Option<&str>) -> Result<()>;

    /// The ticket's request as it stands; `None` when it never had one.
    async fn status(&self, ticket: i64) -> Result<Option<RequestStatus>>;

    /// Who runs the ticket's unfinished request, and until when their claim holds:
    /// `None` when nobody claimed it (or it is finished).
    async fn claimant(&self, ticket: i64) -> Result<Option<(String, String)>>;

    /// Claims the ticket's unfinished request for `runner` until `until` (RFC 3339) when
    /// its claimant is still `was` (`None`: unclaimed) or `runner` itself; `false` when
    /// another lander took it first or it is finished.
    async fn claim(
        &self,
        ticket: i64,
        runner: &str,
        was: Option<&str>,
        until: &str,
    ) -> Result<bool>;
}

/// A ticket's request as it stands: what `ticket show`, `status` and the API report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestStatus {
    /// The request.
    pub request: ExecuteRequest,
    /// How far it got; once `finished`, how it ended.
    pub progress: RequestOutcome,
    /// Whether it ended (its outcome is `progress`).
    pub finished: bool,
    /// Whether a stop was asked for.
    pub cancel_requested: bool,
    /// What it waits for, when it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    /// The step it is in now and what it does there, from its ticket: `progress` is saved
    /// at the end of each step, this as each step starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<CurrentStep>,
    /// When it was submitted (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

impl RequestStatus {
    /// The step the request is in: under way, its ticket's (the saved progress is a step
    /// behind until that step ends); finished, the step it ended at.
    pub fn step(&self) -> crate::model::WorkflowStep {
        match (&self.current, self.finished) {
            (Some(current), false) => current.step,
            _ => self.progress.step,
        }
    }
}

/// The step a request is in and what it does there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CurrentStep {
    /// The step (`SOURCE_BUILD`), as its ticket shows it.
    pub step: crate::model::WorkflowStep,
    /// Its status (`IN_PROGRESS`).
    pub status: crate::model::StepStatus,
    /// What it does: waiting for a slot and its place in line, or the step's last message
    /// (`building hello-ci 1.0-1`).
    pub activity: String,
}

/// What a waiting request waits for, and its place in that queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Waiting {
    /// `a build slot`, `an image slot`, `a test slot`, `a PPA`.
    pub waiting_for: String,
    /// Since when (RFC 3339).
    pub since: String,
    /// 1 for the first in line: the requests waiting for the same thing for longer, plus one.
    pub position: u64,
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

    /// Runs the one statement `sql` with `binds` (text, then the ticket last); the rows
    /// changed.
    async fn update(
        &self,
        sql: &'static str,
        binds: &[Option<String>],
        ticket: i64,
    ) -> Result<u64> {
        let mut args: Vec<Arg> = binds.iter().map(|b| text(b.clone())).collect();
        args.push(Arg::Int(ticket));
        self.db.write_one(sql, args).await
    }
}

/// A text argument, NULL when absent.
fn text(value: Option<String>) -> Arg {
    value.map_or(Arg::Null, Arg::Text)
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
    async fn record(
        &self,
        request: &ExecuteRequest,
        progress: &RequestOutcome,
        claim: Option<(&str, &str)>,
    ) -> Result<bool> {
        let at = now();
        let sql = "INSERT INTO lander_request \
             (ticket_id, request, progress, finished, created_at, updated_at, claimed_by, \
              claimed_until) \
             VALUES ($1, $2, $3, 0, $4, $4, $5, $6) ON CONFLICT (ticket_id) DO UPDATE SET \
             request = excluded.request, progress = excluded.progress, finished = 0, \
             cancel_requested = 0, waiting_for = NULL, waiting_since = NULL, \
             claimed_by = excluded.claimed_by, claimed_until = excluded.claimed_until, \
             created_at = excluded.created_at, updated_at = excluded.updated_at \
             WHERE lander_request.finished = 1";
        let args = vec![
            Arg::Int(request.ticket_id),
            Arg::Text(to_json(request)?),
            Arg::Text(to_json(progress)?),
            Arg::Text(at),
            text(claim.map(|(runner, _)| runner.to_owned())),
            text(claim.map(|(_, until)| until.to_owned())),
        ];
        Ok(self.db.write_one(sql, args).await? > 0)
    }

    async fn save(&self, ticket: i64, progress: &RequestOutcome) -> Result<()> {
        self.update(
            "UPDATE lander_request SET progress = $1, waiting_for = NULL, waiting_since = NULL, \
             updated_at = $2 WHERE ticket_id = $3",
            &[Some(to_json(progress)?), Some(now())],
            ticket,
        )
        .await?;
        Ok(())
    }

    async fn finish(&self, ticket: i64, outcome: &RequestOutcome) -> Result<()> {
        self.update(
            "UPDATE lander_request SET progress = $1, finished = 1, waiting_for = NULL, \
             waiting_since = NULL, claimed_by = NULL, claimed_until = NULL, updated_at = $2 \
             WHERE ticket_id = $3",
            &[Some(to_json(outcome)?), Some(now())],
            ticket,
        )
        .await?;
        Ok(())
    }

    async fn request_cancel(&self, ticket: i64) -> Result<bool> {
        let changed = self
            .update(
                "UPDATE lander_request SET cancel_requested = 1, updated_at = $1 \
                 WHERE ticket_id = $2 AND finished = 0",
                &[Some(now())],
                ticket,
            )
            .await?;
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

    async fn cancels_requested(&self) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT ticket_id FROM lander_request WHERE finished = 0 AND cancel_requested = 1",
        )
        .fetch_all(self.db.pool())
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| row.try_get::<i64, _>("ticket_id").map_err(db_error))
            .collect()
    }

    async fn renew_claims(&self, runner: &str, until: &str) -> Result<u64> {
        self.db
            .write_one(
                "UPDATE lander_request SET claimed_until = $1 \
                 WHERE finished = 0 AND claimed_by = $2",
                vec![Arg::Text(until.to_owned()), Arg::Text(runner.to_owned())],
            )
            .await
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

    async fn claimant(&self, ticket: i64) -> Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT claimed_by, claimed_until FROM lander_request \
             WHERE ticket_id = $1 AND finished = 0",
        )
        .bind(ticket)
        .fetch_optional(self.db.pool())
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let by: Option<String> = row.try_get("claimed_by").map_err(db_error)?;
        let until: Option<String> = row.try_get("claimed_until").map_err(db_error)?;
        Ok(by.map(|by| (by, until.unwrap_or_default())))
    }

    async fn claim(
        &self,
        ticket: i64,
        runner: &str,
        was: Option<&str>,
        until: &str,
    ) -> Result<bool> {
        let changed = self
            .update(
                "UPDATE lander_request SET claimed_by = $1, claimed_until = $2 \
                 WHERE finished = 0 AND (COALESCE(claimed_by, '') = $3 OR claimed_by = $4) \
                 AND ticket_id = $5",
                &[
                    Some(runner.to_owned()),
                    Some(until.to_owned()),
                    Some(was.unwrap_or_default().to_owned()),
                    Some(runner.to_owned()),
                ],
                ticket,
            )
            .await?;
        Ok(changed > 0)
    }

    async fn set_waiting(&self, ticket: i64, waiting_for: Option<&str>) -> Result<()> {
        let at = now();
        let since = waiting_for.map(|_| at.clone());
        self.update(
            "UPDATE lander_request SET waiting_for = $1, waiting_since = $2, updated_at = $3 \
             WHERE ticket_id = $4 AND finished = 0",
            &[waiting_for.map(str::to_owned), since, Some(at)],
            ticket,
        )
        .await?;
        Ok(())
    }

    async fn status(&self, ticket: i64) -> Result<Option<RequestStatus>> {
        let row = sqlx::query(
            "SELECT r.request, r.progress, r.finished, r.cancel_requested, r.waiting_for, \
             r.waiting_since, r.created_at, r.updated_at, \
             (SELECT COUNT(*) FROM lander_request o WHERE o.finished = 0 \
              AND o.waiting_for = r.waiting_for AND (o.waiting_since < r.waiting_since \
              OR (o.waiting_since = r.waiting_since AND o.ticket_id < r.ticket_id))) AS ahead, \
             t.step AS ticket_step, t.status AS ticket_status, \
             (SELECT p.message FROM transition p WHERE p.ticket_id = r.ticket_id \
              ORDER BY p.id DESC LIMIT 1) AS last_message \
             FROM lander_request r JOIN ticket t ON t.id = r.ticket_id WHERE r.ticket_id = $1",
        )
        .bind(ticket)
        .fetch_optional(self.db.pool())
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let text = |column: &str| -> Result<String> { row.try_get(column).map_err(db_error) };
        let flag = |column: &str| -> Result<bool> {
            Ok(row.try_get::<i64, _>(column).map_err(db_error)? != 0)
        };
        let waiting_for: Option<String> = row.try_get("waiting_for").map_err(db_error)?;
        let waiting = match waiting_for {
            Some(waiting_for) => Some(Waiting {
                waiting_for,
                since: row
                    .try_get::<Option<String>, _>("waiting_since")
                    .map_err(db_error)?
                    .unwrap_or_default(),
                position: u64::try_from(row.try_get::<i64, _>("ahead").map_err(db_error)?)
                    .unwrap_or(0)
                    + 1,
            }),
            None => None,
        };
        let activity = match &waiting {
            Some(w) => format!(
                "waiting for {}, number {} in line",
                w.waiting_for, w.position
            ),
            None => row
                .try_get::<Option<String>, _>("last_message")
                .map_err(db_error)?
                .unwrap_or_default(),
        };
        let current = CurrentStep {
            step: text("ticket_step")?.parse()?,
            status: text("ticket_status")?.parse()?,
            activity,
        };
        Ok(Some(RequestStatus {
            request: from_json(&text("request")?)?,
            progress: from_json(&text("progress")?)?,
            finished: flag("finished")?,
            cancel_requested: flag("cancel_requested")?,
            waiting,
            current: Some(current),
            created_at: text("created_at")?,
            updated_at: text("updated_at")?,
        }))
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
        assert!(store.record(&request(a), &progress(a), None).await.unwrap());
        assert!(store.record(&request(b), &progress(b), None).await.unwrap());
        let mut further = progress(a);
        further.ppa = Some("ppa:ci-team/ppa_build_1".into());
        further.image = Some("file:///store/image.tar.zst".into());
        store.save(a, &further).await.unwrap();
        assert!(
            !store.record(&request(a), &progress(a), None).await.unwrap(),
            "unfinished: kept"
        );

        let unfinished = store.unfinished().await.unwrap();
        assert_eq!(unfinished.len(), 2);
        assert_eq!(unfinished[0], (request(a), further.clone()));
        assert_eq!(unfinished[1], (request(b), progress(b)));

        let mut ended = further.clone();
        ended.reason = Some("the tests failed".into());
        // Under way, the status says the step the ticket is in, and what it does there,
        // though the saved progress is still at the step before.
        db.record_transition(crate::model::NewTransition {
            ticket: crate::model::Uri::new(a),
            step: WorkflowStep::SourceBuild,
            status: crate::model::StepStatus::InProgress,
            message: "building hello 2.10-3+ci1".into(),
        })
        .await
        .unwrap();
        let status = store.status(a).await.unwrap().unwrap();
        assert_eq!(status.progress.step, WorkflowStep::Queued);
        assert_eq!(
            status.current,
            Some(CurrentStep {
                step: WorkflowStep::SourceBuild,
                status: crate::model::StepStatus::InProgress,
                activity: "building hello 2.10-3+ci1".into(),
            })
        );
        store.set_waiting(a, Some("a build slot")).await.unwrap();
        let waiting = store.status(a).await.unwrap().unwrap().current.unwrap();
        assert_eq!(
            waiting.activity,
            "waiting for a build slot, number 1 in line"
        );
        store.set_waiting(a, None).await.unwrap();

        store.finish(a, &ended).await.unwrap();
        let status = store.status(a).await.unwrap().unwrap();
        assert!(status.finished);
        assert_eq!(status.progress, ended);
        assert!(store.status(9999).await.unwrap().is_none());
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
        store.finish(b, &progress(b)).await.unwrap();
        let mut second = request(b);
        second.series = Some("trixie".into());
        assert!(store.record(&second, &progress(b), None).await.unwrap());
        let unfinished = store.unfinished().await.unwrap();
        assert_eq!(unfinished, [(second, progress(b))]);
        assert!(!store.cancel_requested(b).await.unwrap());
        let err = store.record(&request(9999), &progress(9999), None).await;
        assert!(err.is_err(), "no such ticket");
    }

    /// Waiting requests have their place in line per thing waited for; a request that
    /// stops waiting, or finishes, leaves the line.
    async fn keeps_queue_places(db: SqlTicketSystem) {
        let store = SqlRequestStore::new(&db);
        let mut tickets = Vec::new();
        for _ in 0..4 {
            let t = ticket(&db).await;
            assert!(store.record(&request(t), &progress(t), None).await.unwrap());
            tickets.push(t);
        }
        let place = |status: Option<RequestStatus>| {
            status.unwrap().waiting.map(|w| (w.waiting_for, w.position))
        };
        for &t in &tickets[..3] {
            store.set_waiting(t, Some("a build slot")).await.unwrap();
        }
        store.set_waiting(tickets[3], Some("a PPA")).await.unwrap();
        // Claims: taken when unclaimed or from the claimant seen, renewed by the claimant.
        let t = tickets[3];
        assert_eq!(store.claimant(t).await.unwrap(), None);
        assert!(store
            .claim(t, "a", None, "2030-01-01T00:00:00Z")
            .await
            .unwrap());
        assert!(!store
            .claim(t, "b", None, "2030-01-01T00:00:00Z")
            .await
            .unwrap());
        assert!(store
            .claim(t, "a", Some("a"), "2031-01-01T00:00:00Z")
            .await
            .unwrap());
        assert_eq!(
            store.claimant(t).await.unwrap(),
            Some(("a".to_owned(), "2031-01-01T00:00:00Z".to_owned()))
        );
        assert!(store
            .claim(t, "b", Some("a"), "2030-01-01T00:00:00Z")
            .await
            .unwrap());
        assert!(!store
            .claim(t, "c", Some("a"), "2030-01-01T00:00:00Z")
            .await
            .unwrap());
        assert_eq!(
            store
                .renew_claims("b", "2032-01-01T00:00:00Z")
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store.claimant(t).await.unwrap(),
            Some(("b".to_owned(), "2032-01-01T00:00:00Z".to_owned()))
        );
        assert_eq!(store.cancels_requested().await.unwrap(), Vec::<i64>::new());
        assert!(store.request_cancel(t).await.unwrap());
        assert_eq!(store.cancels_requested().await.unwrap(), [t]);
        for (n, &t) in tickets[..3].iter().enumerate() {
            assert_eq!(
                place(store.status(t).await.unwrap()),
                Some(("a build slot".to_owned(), n as u64 + 1))
            );
        }
        assert_eq!(
            place(store.status(tickets[3]).await.unwrap()),
            Some(("a PPA".to_owned(), 1))
        );
        store.set_waiting(tickets[0], None).await.unwrap();
        store
            .finish(tickets[1], &progress(tickets[1]))
            .await
            .unwrap();
        assert_eq!(place(store.status(tickets[0]).await.unwrap()), None);
        assert_eq!(place(store.status(tickets[1]).await.unwrap()), None);
        assert_eq!(
            place(store.status(tickets[2]).await.unwrap()),
            Some(("a build slot".to_owned(), 1))
        );
        // Progress saved: the request got what it waited for.
        store.save(tickets[2], &progress(tickets[2])).await.unwrap();
        assert_eq!(place(store.status(tickets[2]).await.unwrap()), None);
    }

    #[tokio::test]
    async fn sqlite_keeps_requests() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("tickets.db").display());
        let db = SqlTicketSystem::connect(&url).await.unwrap();
        keeps_requests(db.clone()).await;
        keeps_queue_places(db).await;
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_keeps_requests() {
        let Some(db) = crate::tickets::conformance::postgres_test_database().await else {
            return;
        };
        let system = SqlTicketSystem::connect(db.url()).await.unwrap();
        keeps_requests(system.clone()).await;
        keeps_queue_places(system.clone()).await;
        system.close().await;
        db.drop().await;
    }
}
