//! The lander: one request (the seed's `execute_request`) through every step, reported on
//! its ticket and its progress queue.
//!
//! Steps, each a transition on the ticket (`IN_PROGRESS`, then `SUCCEEDED`, or `FAILED` /
//! `CANCELLED` where it ends):
//!
//! 1. `PPA_ASSIGNMENT`: the ticket's PPA from the pool, ready for the series;
//! 2. `SOURCE_BUILD`: every upload among `source_packages` (grouped by their `.changes`),
//!    in build-dependency order, built into the PPA by the source builder;
//! 3. `IMAGE_BUILD`: an image from the base (made once for the series by the image
//!    builder's bootstrap when the request names none) with the PPA and the archive PPA as
//!    apt sources and `binary_packages` (by default, every binary the uploads built)
//!    installed;
//! 4. `IMAGE_TEST`: each upload's DEP-8 tests in that image, by the test runner; a source
//!    without tests is not a failure, a failing test is;
//! 5. `PUBLISH`: each source with its binaries copied from the PPA into the archive PPA;
//! 6. `COMPLETE`.
//!
//! Whatever the outcome, the PPA is released and the final state is on the ticket. The
//! workers' progress (phases, log batches, heartbeats, test progress) is passed on to the
//! request's queue as it comes, between the lander's own phase messages; the last message
//! is a [`Done`] carrying the [`RequestOutcome`].
//!
//! The request and how far it got are kept in the ticket store ([`store`]) at every step
//! boundary: [`Lander::resume`] carries on with the requests a lander left unfinished (its
//! process killed), skipping the builds, image, test runs and copies already done and
//! doing again the one that was under way; [`Lander::retry`] takes a failed or cancelled
//! request up again at the step it stopped at. A lander claims the requests it runs
//! ([`claim`]), so two landers never run one.
//!
//! Many requests run at once ([`Lander::submit`] returns a [`RequestHandle`]); worker
//! calls are bounded per kind ([`StepLimits`]), first come first served, and a request
//! waiting for a slot or a PPA says so in the store ([`store::RequestStatus`]). A worker
//! silent for [`LanderOptions::heartbeat_misses`] heartbeat periods is declared dead and
//! its call made again, up to [`LanderOptions::step_retries`] times.

pub(crate) mod claim;
pub mod limits;
pub mod remote;
pub mod store;

pub use limits::StepLimits;
use limits::{Gates, Work};
use store::RequestStore;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Deserializer, Serialize};
use tokio_util::sync::CancellationToken;

use crate::builder::fetch::{fetch_sources, source_object};
use crate::builder::order::{build_order, BuildNode};
use crate::builder::BuildSource;
use crate::config::Services;
use crate::error::{Error, ErrorKind, Result};
use crate::image::{BaseImage, Bootstrap, BuildImage, ImageType};
use crate::model::{ArtifactType, NewTransition, StepStatus, TicketDetail, Uri, WorkflowStep};
use crate::ppa::PpaName;
use crate::queue::{Done, DoneState, ProgressMessage, QueueName};
use crate::runner::{PackageNames, TestImage};

/// How often a running request looks whether a stop was asked for.
const CANCEL_POLL: Duration = Duration::from_secs(1);

/// How long a worker told to stop (time limit, declared dead) is given to end.
const WORKER_GRACE: Duration = Duration::from_secs(30);

/// How often a running request renews the lease of its PPA (the pool's lease is hours).
const PPA_RENEWAL: Duration = Duration::from_secs(600);

/// How long `get_ppa` may take before the request is noted as waiting for a PPA.
const PPA_WAIT_NOTICE: Duration = Duration::from_millis(500);

/// The archive PPA successful requests are published into.
pub const ARCHIVE_PPA: &str = "ppa:ci-team/ppa_archive";

/// The seed's `execute_request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// The ticket (the seed writes it as a string, `"1"`; a number is taken too).
    #[serde(deserialize_with = "id_from_text_or_number")]
    pub ticket_id: i64,
    /// URLs of the uploads' files in the data store (`.changes`, `.dsc`, tarballs), one or
    /// more uploads.
    pub source_packages: Vec<String>,
    /// The binary packages to install in the image; empty: every binary the uploads built.
    #[serde(default)]
    pub binary_packages: Vec<String>,
    /// The series (default: the lander's).
    #[serde(default)]
    pub series: Option<String>,
    /// The base image, a URL of the data store; none: the series' base, made once.
    #[serde(default)]
    pub base_image: Option<String>,
    /// Where progress goes (`ticket-1-exchange`).
    pub progress_queue: String,
}

impl ExecuteRequest {
    /// A request for what `ticket` holds: its uploads' stored files (its `SPU` artifacts),
    /// every binary they build, the lander's series and the series' base image, progress
    /// on `progress_queue`.
    pub fn for_ticket(ticket: &TicketDetail, progress_queue: &QueueName) -> ExecuteRequest {
        ExecuteRequest {
            ticket_id: ticket.ticket.id,
            source_packages: ticket
                .artifacts
                .iter()
                .filter(|a| a.artifact_type == ArtifactType::Spu)
                .map(|a| a.reference.clone())
                .collect(),
            binary_packages: Vec::new(),
            series: None,
            base_image: None,
            progress_queue: progress_queue.to_string(),
        }
    }
}

/// What a submission may set beside the ticket (its uploads): the rest comes from the
/// lander's configuration (the series, its base image).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitOptions {
    /// The series to build and test for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[a-z0-9][a-z0-9.+-]*$", min_length = 1, max_length = 64)]
    pub series: Option<String>,
    /// The base image, a URL of the data store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image: Option<String>,
    /// The binary packages to install and test (default: every binary built).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binary_packages: Vec<String>,
}

impl ExecuteRequest {
    /// [`ExecuteRequest::for_ticket`] with `options`.
    ///
    /// # Errors
    /// `InvalidInput` for a ticket without uploads, or a malformed series.
    pub fn for_ticket_with(
        ticket: &TicketDetail,
        progress_queue: &QueueName,
        options: SubmitOptions,
    ) -> Result<ExecuteRequest> {
        let request = ExecuteRequest::for_ticket(ticket, progress_queue);
        if request.source_packages.is_empty() {
            return Err(Error::invalid(format!(
                "ticket {} has no uploads (SPU artifacts): nothing to build",
                ticket.ticket.id
            )));
        }
        if let Some(series) = &options.series {
            crate::archive::check_series(series)?;
        }
        Ok(ExecuteRequest {
            series: options.series,
            base_image: options.base_image,
            binary_packages: options.binary_packages,
            ..request
        })
    }
}

fn id_from_text_or_number<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(i64),
        Text(String),
    }
    match Id::deserialize(d)? {
        Id::Number(n) => Ok(n),
        Id::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("ticket_id {t:?} is not a number"))),
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum RequestState {
    /// Every step succeeded; the binaries are in the archive PPA.
    Completed,
    /// A step failed (see `step` and `reason`).
    Failed,
    /// Stopped on request.
    Cancelled,
}

/// One upload's build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BuildOutcome {
    /// The source package.
    pub source: String,
    /// Its version.
    pub version: String,
    /// `COMPLETED` or `FAILED`.
    #[schema(value_type = String)]
    pub state: DoneState,
    /// The builder's final message's results (artifacts, log).
    pub results: serde_json::Map<String, serde_json::Value>,
}

/// One upload's test run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TestOutcome {
    /// The test request's id (`<ticket>.<n>`).
    pub test_request_id: String,
    /// The source whose tests ran.
    pub source: String,
    /// The binary packages tested.
    pub packages: Vec<String>,
    /// `PASSED`, `FAILED`, `SKIPPED` or `NO_TESTS`.
    pub test_result: String,
    /// The runner's artifacts (log, JUnit report, summary).
    pub artifacts: Vec<serde_json::Value>,
    /// Why the run failed, when the runner says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The result of `execute_request` (left open by the seed): the final message's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestOutcome {
    /// The ticket.
    pub ticket_id: i64,
    /// How it ended.
    pub state: RequestState,
    /// The step it ended at (`COMPLETE` when it completed).
    pub step: WorkflowStep,
    /// Why it failed or was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The PPA it used (released since).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ppa: Option<String>,
    /// The series.
    pub series: String,
    /// Each upload's build, in build order.
    pub builds: Vec<BuildOutcome>,
    /// The base image's URL (the request's, or the series' base).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image: Option<String>,
    /// The image's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Each upload's test run.
    pub tests: Vec<TestOutcome>,
    /// What was copied into the archive PPA (`hello 2.10-3`).
    pub published: Vec<String>,
}

impl RequestOutcome {
    /// The request's final message: `state` and `reason` are the [`Done`]'s own
    /// (`COMPLETED` or `FAILED`); how the request ended, cancelled included, is `outcome`;
    /// the rest of the outcome follows.
    pub fn to_done(&self) -> Done {
        let mut results = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        if let Some(state) = results.remove("state") {
            results.insert("outcome".into(), state);
        }
        results.remove("reason");
        let mut done = match self.state {
            RequestState::Completed => Done::completed(serde_json::Map::new()),
            _ => Done::failed(self.reason.clone().unwrap_or_default()),
        };
        done.results.extend(results);
        done
    }
}

/// How the lander works.
#[derive(Debug, Clone)]
pub struct LanderOptions {
    /// The PPA successful requests are published into.
    pub archive_ppa: PpaName,
    /// The series of requests that name none.
    pub series: String,
    /// The architecture builds and images are for (default: the host's).
    pub architecture: Option<String>,
    /// A worker's call running longer is stopped and its step FAILED (none: the workers'
    /// own time limits only).
    pub step_timeout: Option<Duration>,
    /// The workers' heartbeat period (the original design's 60 s): a worker says
    /// something at least this often.
    pub heartbeat: Duration,
    /// A worker silent for this many heartbeat periods is declared dead (default 10).
    pub heartbeat_misses: u32,
    /// How many times a call to a worker declared dead is made again before its step
    /// FAILS (default 2).
    pub step_retries: u32,
    /// Worker calls at once, per kind.
    pub limits: StepLimits,
    /// How long a lander's claim on a request holds without renewal (it renews it every
    /// quarter of this); another host's lander takes over a request only after.
    pub claim_lease: Duration,
}

impl LanderOptions {
    /// The defaults for `series`.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed series.
    pub fn new(series: &str) -> Result<LanderOptions> {
        crate::archive::check_series(series)?;
        Ok(LanderOptions {
            archive_ppa: ARCHIVE_PPA.parse()?,
            series: series.to_owned(),
            architecture: None,
            step_timeout: None,
            heartbeat: Duration::from_secs(60),
            heartbeat_misses: 10,
            step_retries: 2,
            limits: StepLimits::for_machine(),
            claim_lease: Duration::from_secs(60),
        })
    }

    /// How long a worker may stay silent before it is declared dead.
    pub fn silence_limit(&self) -> Duration {
        self.heartbeat.saturating_mul(self.heartbeat_misses.max(1))
    }
}

/// Runs requests through the services' workers; cheap to clone (clones share the
/// bounds and the requests running).
#[derive(Clone)]
pub struct Lander {
    services: Services,
    options: LanderOptions,
    gates: Arc<Gates>,
    /// The requests this lander runs, by ticket, with their cancellation.
    running: Arc<Mutex<HashMap<i64, CancellationToken>>>,
    /// Set once the watcher of the running requests is started.
    watcher: Arc<std::sync::OnceLock<()>>,
}

/// A request running in the background (see [`Lander::submit`]).
#[derive(Debug)]
pub struct RequestHandle {
    ticket_id: i64,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<RequestOutcome>>,
}

impl RequestHandle {
    /// The ticket.
    pub fn ticket_id(&self) -> i64 {
        self.ticket_id
    }

    /// Stops the request: its workers end their processes, the PPA is released, the
    /// ticket is marked CANCELLED.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The request's cancellation: cancelling it is [`RequestHandle::cancel`].
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Waits for the request's end.
    ///
    /// # Errors
    /// As [`Lander::execute`]; `Internal` when the request's task panicked.
    pub async fn outcome(self) -> Result<RequestOutcome> {
        self.task.await.map_err(|e| {
            Error::internal(format!("the lander of ticket {} failed", self.ticket_id))
                .with_source(e)
        })?
    }
}

impl fmt::Debug for Lander {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lander")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A ticket marked as running in a lander's table, until dropped or kept.
struct Reserved<'a> {
    running: &'a Mutex<HashMap<i64, CancellationToken>>,
    ticket: i64,
    kept: bool,
}

impl Reserved<'_> {
    /// Leaves the mark for the run to take over.
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if !self.kept {
            if let Ok(mut running) = self.running.lock() {
                running.remove(&self.ticket);
            }
        }
    }
}

/// A request recorded and claimed, with its ticket's step then.
struct Taken {
    request: ExecuteRequest,
    progress: RequestOutcome,
    floor: WorkflowStep,
}

/// Why a request stopped at a step.
struct Stop {
    step: WorkflowStep,
    reason: String,
    cancelled: bool,
}

impl Stop {
    fn failed(step: WorkflowStep, reason: impl Into<String>) -> Stop {
        Stop {
            step,
            reason: reason.into(),
            cancelled: false,
        }
    }
}

type Stopped<T> = std::result::Result<T, Stop>;

/// One upload among the request's files.
struct Upload {
    urls: Vec<String>,
    source: String,
    version: String,
    binaries: Vec<String>,
}

impl Lander {
    /// A lander on `services`.
    pub fn new(services: Services, options: LanderOptions) -> Lander {
        Lander {
            gates: Arc::new(Gates::new(options.limits)),
            services,
            options,
            running: Arc::new(Mutex::new(HashMap::new())),
            watcher: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// The services it runs on.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Records `request` (durably, when the services keep requests) and runs it in the
    /// background; the handle gives its outcome. The request is taken once recorded: a
    /// lander killed after this resumes it ([`Lander::resume`]).
    ///
    /// # Errors
    /// As [`Lander::execute`]'s, before anything runs; `Conflict` when the ticket has a
    /// request under way.
    pub async fn submit(&self, request: ExecuteRequest) -> Result<RequestHandle> {
        let cancel = CancellationToken::new();
        let taken = self.take(request, &cancel).await?;
        Ok(self.spawn(taken.request, taken.progress, cancel, Some(taken.floor)))
    }

    /// Checks `request`, and records and claims it; from then on it is known as running
    /// here (with `cancel`), so that nothing else here takes it too.
    async fn take(&self, request: ExecuteRequest, cancel: &CancellationToken) -> Result<Taken> {
        QueueName::new(request.progress_queue.clone())?;
        let ticket = self.services.tickets.ticket(request.ticket_id).await?;
        if ticket.state == crate::model::TicketState::Closed {
            return Err(Error::conflict(format!(
                "ticket {} is closed ({} {}); `ubuntu-ci retry {}` takes a failed or \
                 cancelled request up again",
                ticket.id, ticket.current_workflow_step, ticket.status, ticket.id
            )));
        }
        let series = request
            .series
            .clone()
            .unwrap_or_else(|| self.options.series.clone());
        let progress = RequestOutcome {
            ticket_id: request.ticket_id,
            state: RequestState::Failed,
            step: WorkflowStep::Queued,
            reason: None,
            ppa: None,
            series,
            builds: Vec::new(),
            base_image: None,
            image: None,
            tests: Vec::new(),
            published: Vec::new(),
        };
        let reserved = self.reserve(request.ticket_id, cancel)?;
        if let Some(store) = &self.services.requests {
            let until = claim::until(self.options.claim_lease);
            if !store
                .record(&request, &progress, Some((claim::runner(), &until)))
                .await?
            {
                return Err(under_way(request.ticket_id));
            }
        }
        reserved.keep();
        Ok(Taken {
            request,
            progress,
            floor: ticket.current_workflow_step,
        })
    }

    /// Marks the ticket's request as running here, at once (before any task starts), so
    /// that a resume or a second submission meanwhile leaves it; `Conflict` when it is
    /// already. Undone when the guard is dropped without [`Reserved::keep`].
    fn reserve(&self, ticket: i64, cancel: &CancellationToken) -> Result<Reserved<'_>> {
        let mut running = self
            .running
            .lock()
            .map_err(|_| Error::internal("the lander's table of running requests is poisoned"))?;
        if running.contains_key(&ticket) {
            return Err(under_way(ticket));
        }
        running.insert(ticket, cancel.clone());
        Ok(Reserved {
            running: &self.running,
            ticket,
            kept: false,
        })
    }

    /// Runs a recorded (and claimed) request in the background.
    fn spawn(
        &self,
        request: ExecuteRequest,
        progress: RequestOutcome,
        cancel: CancellationToken,
        floor: Option<WorkflowStep>,
    ) -> RequestHandle {
        let ticket_id = request.ticket_id;
        let lander = self.clone();
        let token = cancel.clone();
        let task =
            tokio::spawn(async move { lander.run_here(request, progress, token, floor).await });
        RequestHandle {
            ticket_id,
            cancel,
            task,
        }
    }

    /// Runs a recorded (and claimed) request in this task, known as running meanwhile.
    async fn run_here(
        &self,
        request: ExecuteRequest,
        progress: RequestOutcome,
        cancel: CancellationToken,
        floor: Option<WorkflowStep>,
    ) -> Result<RequestOutcome> {
        let ticket = request.ticket_id;
        if let Ok(mut running) = self.running.lock() {
            running.insert(ticket, cancel.clone());
        }
        if let Some(store) = &self.services.requests {
            self.watcher.get_or_init(|| {
                tokio::spawn(watch_requests(
                    Arc::downgrade(&self.running),
                    Arc::clone(store),
                    self.services.ppas.clone(),
                    self.options.claim_lease,
                ));
            });
        }
        // Forgotten however the run ends, a dropped (aborted) task included.
        let _running = scopeguard(|| {
            if let Ok(mut running) = self.running.lock() {
                running.remove(&ticket);
            }
        });
        self.run(request, progress, cancel, floor).await
    }

    /// Asks the ticket's request to stop, wherever it runs: at once when this lander runs
    /// it, within a second or two when another does (through the store). `false` when
    /// the ticket has no request under way.
    ///
    /// # Errors
    /// The store's.
    pub async fn cancel(&self, ticket: i64) -> Result<bool> {
        let here = self
            .running
            .lock()
            .ok()
            .and_then(|running| running.get(&ticket).cloned());
        let asked = match &self.services.requests {
            Some(store) => store.request_cancel(ticket).await?,
            None => false,
        };
        if let Some(token) = &here {
            token.cancel();
        }
        Ok(asked || here.is_some())
    }

    /// Takes the ticket's failed or cancelled request up again, at the step it stopped at:
    /// what was done before (builds, which are put back into the new PPA from the data
    /// store, the image, the tests that ran) is not done again. Its progress goes to
    /// `progress_queue` (a queue takes one request's messages: default, a new
    /// `ticket-<id>-<8 hex digits>-exchange`).
    ///
    /// # Errors
    /// `Unsupported` without a request store; `NotFound` when the ticket never had a
    /// request; `Conflict` when it is under way or completed; `InvalidInput` for a bad
    /// queue name.
    pub async fn retry(
        &self,
        ticket: i64,
        progress_queue: Option<QueueName>,
    ) -> Result<RequestHandle> {
        let Some(store) = self.services.requests.clone() else {
            return Err(Error::unsupported(
                "retry needs the lander's request store (local state)",
            ));
        };
        self.services.tickets.ticket(ticket).await?;
        let Some(status) = store.status(ticket).await? else {
            return Err(Error::not_found(format!(
                "ticket {ticket} never had a request to retry (create-ticket --wait, or the \
                 API's request call, starts one)"
            )));
        };
        if !status.finished {
            return Err(under_way(ticket));
        }
        let cancel = CancellationToken::new();
        let reserved = self.reserve(ticket, &cancel)?;
        if status.progress.state == RequestState::Completed {
            return Err(Error::conflict(format!(
                "ticket {ticket} completed: there is nothing to retry"
            )));
        }
        let queue = match progress_queue {
            Some(queue) => queue,
            None => QueueName::fresh(&format!("ticket-{ticket}"))?,
        };
        let mut request = status.request;
        request.progress_queue = queue.to_string();
        let stopped_at = status.progress.step;
        let mut progress = status.progress;
        progress.reason = None;
        progress.state = RequestState::Failed;
        progress.ppa = None;
        progress.builds.retain(|b| b.state == DoneState::Completed);
        progress
            .tests
            .retain(|t| t.reason.is_none() && t.test_result != "FAILED");
        // The ticket is taken up again at that step (it is open again) before the request
        // is: a request that cannot record that is not retried.
        self.transition(
            ticket,
            stopped_at,
            StepStatus::InProgress,
            format!("retrying from {stopped_at}"),
        )
        .await?;
        let until = claim::until(self.options.claim_lease);
        if !store
            .record(&request, &progress, Some((claim::runner(), &until)))
            .await?
        {
            return Err(under_way(ticket));
        }
        reserved.keep();
        Ok(self.spawn(request, progress, cancel, None))
    }

    /// Runs `request` to its end (or `cancel`): every step recorded on the ticket, the
    /// workers' progress and the lander's phases on the request's queue, the PPA released
    /// whatever happens. A failed step is a `FAILED` outcome, not an error.
    ///
    /// # Errors
    /// Only when nothing can be reported: a malformed queue name, an unknown ticket, a
    /// broken ticket system or queue.
    pub async fn execute(
        &self,
        request: ExecuteRequest,
        cancel: CancellationToken,
    ) -> Result<RequestOutcome> {
        let taken = self.take(request, &cancel).await?;
        self.run_here(taken.request, taken.progress, cancel, Some(taken.floor))
            .await
    }

    /// Carries on with every request a lander left unfinished (and no other lander runs),
    /// all at once within the bounds, and returns their outcomes in the order they were
    /// submitted.
    ///
    /// # Errors
    /// The store's, or what [`Lander::execute`] returns as errors.
    pub async fn resume(&self, cancel: CancellationToken) -> Result<Vec<RequestOutcome>> {
        let mut outcomes = Vec::new();
        for handle in self.resume_in_background(cancel).await? {
            outcomes.push(handle.outcome().await?);
        }
        Ok(outcomes)
    }

    /// As [`Lander::resume`], returning at once with the requests' handles; a request
    /// whose ticket is already closed is only marked finished.
    ///
    /// # Errors
    /// The store's.
    pub async fn resume_in_background(
        &self,
        cancel: CancellationToken,
    ) -> Result<Vec<RequestHandle>> {
        let Some(store) = self.services.requests.clone() else {
            return Ok(Vec::new());
        };
        let mut handles = Vec::new();
        for (request, progress) in store.unfinished().await? {
            let ticket = request.ticket_id;
            // Taken here first: a request running here (or being submitted) is left.
            let token = cancel.child_token();
            let Ok(reserved) = self.reserve(ticket, &token) else {
                continue;
            };
            let was = store.claimant(ticket).await?;
            if let Some((by, until)) = &was {
                if by != claim::runner() && claim::holds(by, until) {
                    continue;
                }
            }
            let until = claim::until(self.options.claim_lease);
            let was = was.map(|(by, _)| by);
            if !store
                .claim(ticket, claim::runner(), was.as_deref(), &until)
                .await?
            {
                continue;
            }
            let detail = self.services.tickets.ticket(ticket).await?;
            if detail.state == crate::model::TicketState::Closed {
                // Its end is on the ticket; the lander that recorded it stopped before
                // marking the request finished.
                let mut ended = progress;
                ended.step = detail.current_workflow_step;
                ended.state = match detail.status {
                    StepStatus::Succeeded => RequestState::Completed,
                    StepStatus::Cancelled => RequestState::Cancelled,
                    _ => RequestState::Failed,
                };
                if ended.state != RequestState::Completed && ended.reason.is_none() {
                    ended.reason = Some(format!(
                        "ended {} at {} (as its ticket records)",
                        detail.status, detail.current_workflow_step
                    ));
                }
                store.finish(ticket, &ended).await?;
                continue;
            }
            reserved.keep();
            handles.push(self.spawn(request, progress, token, None));
        }
        Ok(handles)
    }

    async fn run(
        &self,
        request: ExecuteRequest,
        progress: RequestOutcome,
        cancel: CancellationToken,
        floor: Option<WorkflowStep>,
    ) -> Result<RequestOutcome> {
        let queue = QueueName::new(request.progress_queue.clone())?;
        let series = progress.series.clone();
        // A stop asked for through the store (`ubuntu-ci cancel`, from any process) cancels
        // this run as `cancel` does: the lander's watcher looks for them all at once (see
        // `watch_requests`); a resumed request looks once first.
        let cancel_here = cancel.clone();
        let cancel = cancel.child_token();
        // A stop asked for here (Ctrl-C, `RequestHandle::cancel`) is kept in the store at
        // once, so that a process that leaves before the run ended does not leave a
        // request a later lander would carry on.
        let keeper = self.services.requests.clone().map(|store| {
            let ticket = request.ticket_id;
            let task = tokio::spawn(async move {
                cancel_here.cancelled().await;
                if let Err(err) = store.request_cancel(ticket).await {
                    tracing::warn!(ticket, error = %err, "cannot keep the stop in the store");
                }
            });
            // Ended with the run, however the run ends (a dropped run included).
            scopeguard(move || task.abort())
        });
        // A resumed request's ticket is further on already: steps before are not recorded
        // again (a ticket never goes back). A new request's ticket was just read.
        let floor = match floor {
            Some(floor) => floor,
            None => {
                if let Some(store) = &self.services.requests {
                    if store.cancel_requested(request.ticket_id).await? {
                        cancel.cancel();
                    }
                }
                self.services
                    .tickets
                    .ticket(request.ticket_id)
                    .await?
                    .current_workflow_step
            }
        };
        let mut run = Run {
            lander: self,
            request: &request,
            queue: &queue,
            cancel: &cancel,
            outcome: progress,
            floor,
            ppa_permit: None,
            ppa_asked: false,
        };
        let result = match crate::archive::check_series(&series) {
            Ok(()) => run.steps().await,
            Err(err) => Err(Stop::failed(WorkflowStep::Queued, err.to_string())),
        };
        drop(keeper);
        let mut outcome = run.outcome;
        // Released whenever the pool may have given one out, even when the assignment
        // then failed or was cancelled (for a ticket holding none, releasing does nothing).
        let released = if outcome.ppa.is_some() || run.ppa_asked {
            self.services.ppas.release_ppa(request.ticket_id).await
        } else {
            Ok(())
        };
        // The next request in line may take a PPA now.
        drop(run.ppa_permit);
        let result = match (result, released) {
            (Ok(()), Err(err)) => Err(Stop::failed(
                WorkflowStep::Publish,
                format!("the PPA could not be released: {err}"),
            )),
            (result, _) => result,
        };
        match result {
            Ok(()) => {
                outcome.state = RequestState::Completed;
                outcome.step = WorkflowStep::Complete;
                self.transition(
                    request.ticket_id,
                    WorkflowStep::Complete,
                    StepStatus::Succeeded,
                    "completed: tests passed, binaries published".to_owned(),
                )
                .await?;
            }
            Err(mut stop) => {
                // A resumed or retried request never takes its ticket back.
                stop.step = stop.step.max(floor);
                outcome.state = if stop.cancelled {
                    RequestState::Cancelled
                } else {
                    RequestState::Failed
                };
                outcome.step = stop.step;
                outcome.reason = Some(stop.reason.clone());
                let status = if stop.cancelled {
                    StepStatus::Cancelled
                } else {
                    StepStatus::Failed
                };
                self.transition(request.ticket_id, stop.step, status, stop.reason)
                    .await?;
            }
        }
        self.services
            .queues
            .publish(&queue, ProgressMessage::Done(outcome.to_done()).to_json())
            .await?;
        if let Some(store) = &self.services.requests {
            store.finish(request.ticket_id, &outcome).await?;
        }
        Ok(outcome)
    }

    async fn transition(
        &self,
        ticket: i64,
        step: WorkflowStep,
        status: StepStatus,
        message: String,
    ) -> Result<()> {
        self.services
            .tickets
            .record_transition(NewTransition {
                ticket: Uri::new(ticket),
                step,
                status,
                message: truncate(&message, 4000),
            })
            .await?;
        Ok(())
    }
}

/// One request under way.
struct Run<'a> {
    lander: &'a Lander,
    request: &'a ExecuteRequest,
    queue: &'a QueueName,
    cancel: &'a CancellationToken,
    outcome: RequestOutcome,
    /// The ticket's step when this run started.
    floor: WorkflowStep,
    /// Its share of the PPA pool, once it has one (released with the run).
    ppa_permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Whether the pool was asked for a PPA (it may have given one out).
    ppa_asked: bool,
}

impl Run<'_> {
    fn services(&self) -> &Services {
        &self.lander.services
    }

    fn ticket(&self) -> i64 {
        self.request.ticket_id
    }

    /// Keeps how far the request got, for a lander that resumes it.
    async fn save(&self) -> Stopped<()> {
        if let Some(store) = &self.services().requests {
            store
                .save(self.ticket(), &self.outcome)
                .await
                .map_err(|e| Stop::failed(self.outcome.step, e.to_string()))?;
        }
        Ok(())
    }

    /// Records `step` in progress with `message`, and says so on the queue.
    async fn enter(&mut self, step: WorkflowStep, message: String) -> Stopped<()> {
        self.begin(step)?;
        self.report(step, StepStatus::InProgress, message).await
    }

    /// Moves the request to `step` (not yet recorded); cancelled, it stops there.
    fn begin(&mut self, step: WorkflowStep) -> Stopped<()> {
        self.check_cancelled(step)?;
        self.outcome.step = step;
        Ok(())
    }

    /// Saves how far the request got and records `status` of `step` with `message`, at
    /// once: the two writes are committed together.
    async fn save_and_report(
        &self,
        step: WorkflowStep,
        status: StepStatus,
        message: String,
    ) -> Stopped<()> {
        let (saved, reported) = tokio::join!(self.save(), self.report(step, status, message));
        saved.and(reported)
    }

    async fn report(&self, step: WorkflowStep, status: StepStatus, message: String) -> Stopped<()> {
        let fail = |err: Error| Stop::failed(step, err.to_string());
        if step >= self.floor {
            self.lander
                .transition(self.ticket(), step, status, message.clone())
                .await
                .map_err(fail)?;
        }
        self.services()
            .queues
            .publish(
                self.queue,
                ProgressMessage::Phase {
                    phase: step.as_str().to_owned(),
                    message,
                }
                .to_json(),
            )
            .await
            .map_err(fail)?;
        Ok(())
    }

    async fn steps(&mut self) -> Stopped<()> {
        let series = self.outcome.series.clone();
        let step = WorkflowStep::PpaAssignment;
        let fail = |err: Error| Stop::failed(step, err.to_string());
        self.enter(step, "assigning a PPA".to_owned()).await?;
        let ppa = self.assign_ppa().await?;
        self.outcome.ppa = Some(ppa.name.to_string());
        self.services()
            .archives
            .prepare(&ppa.name, Some(&series))
            .await
            .map_err(fail)?;
        // The save ends the wait for a PPA (a PPA the ticket holds but a killed lander did
        // not save is found again: the pool gives a ticket its own).
        self.save_and_report(
            step,
            StepStatus::Succeeded,
            format!("{} assigned", ppa.name),
        )
        .await?;

        let uploads = self.build(&ppa.name, &series).await?;
        let packages = self.image(&ppa.name, &series, &uploads).await?;
        self.test(&uploads, &packages).await?;
        self.publish(&ppa.name, &series, &uploads).await
    }

    async fn build(&mut self, ppa: &PpaName, series: &str) -> Stopped<Vec<Upload>> {
        let step = WorkflowStep::SourceBuild;
        self.enter(step, "reading the uploads".to_owned()).await?;
        let uploads = self
            .uploads()
            .await
            .map_err(|e| Stop::failed(step, e.to_string()))?;
        self.restore(ppa, series, &uploads).await?;
        let present = self
            .present_binaries(ppa, series)
            .await
            .map_err(|e| Stop::failed(step, e.to_string()))?;
        let total = uploads.len();
        for (n, upload) in uploads.iter().enumerate() {
            let what = format!("{} {}", upload.source, upload.version);
            if self.built(upload).is_some() {
                continue;
            }
            if upload.binaries.iter().any(|b| present.contains(b)) {
                // A build whose end was not recorded (its lander killed) may have published
                // some of its binaries: a build is not reproducible byte for byte, so they
                // go before it runs again.
                self.enter(
                    step,
                    format!("removing what an interrupted build of {what} left in {ppa}"),
                )
                .await?;
                match self
                    .services()
                    .archives
                    .remove_package(ppa, Some(series), &upload.source, Some(&upload.version))
                    .await
                {
                    Err(err) if err.kind() != ErrorKind::NotFound => {
                        return Err(Stop::failed(step, err.to_string()));
                    }
                    _ => {}
                }
            }
            let entering = format!("building {what} ({}/{total})", n + 1);
            let request = BuildSource {
                source_packages: upload.urls.clone(),
                ppa: ppa.to_string(),
                progress_queue: String::new(),
                ticket_id: Some(self.ticket()),
                series: Some(series.to_owned()),
                architecture: self.lander.options.architecture.clone(),
            };
            let builder = self.services().builder.clone();
            let done = self
                .relayed(
                    step,
                    Work::Build,
                    entering,
                    "bsbuilder",
                    n,
                    move |queue, cancel| {
                        let builder = builder.clone();
                        let request = BuildSource {
                            progress_queue: queue.to_string(),
                            ..request.clone()
                        };
                        async move { builder.build_source(request, cancel).await }
                    },
                )
                .await?;
            self.outcome.builds.push(BuildOutcome {
                source: upload.source.clone(),
                version: upload.version.clone(),
                state: done.state,
                results: done.results.clone(),
            });
            // Who signed what was built, on the ticket.
            if let Some(signature) = done.results.get("signature").and_then(|s| s.as_str()) {
                self.report(step, StepStatus::InProgress, signature.to_owned())
                    .await?;
            }
            // A failed build is kept with the request's end; the last is saved with the
            // step's end.
            self.check_done(step, &done, &format!("{what} did not build"))?;
            if n + 1 < total {
                self.save().await?;
            }
        }
        self.save_and_report(step, StepStatus::Succeeded, format!("{total} built"))
            .await?;
        Ok(uploads)
    }

    async fn image(
        &mut self,
        ppa: &PpaName,
        series: &str,
        uploads: &[Upload],
    ) -> Stopped<Vec<String>> {
        let step = WorkflowStep::ImageBuild;
        let fail = |err: Error| Stop::failed(step, err.to_string());
        let packages = if self.request.binary_packages.is_empty() {
            self.built_binaries(ppa, series, uploads)
                .await
                .map_err(fail)?
        } else {
            self.request.binary_packages.clone()
        };
        if self.outcome.image.is_some() {
            return Ok(packages);
        }
        self.begin(step)?;
        let archive_ppa = self.lander.options.archive_ppa.clone();
        self.services()
            .archives
            .prepare(&archive_ppa, Some(series))
            .await
            .map_err(fail)?;
        let base = match self
            .request
            .base_image
            .clone()
            .or_else(|| self.outcome.base_image.clone())
        {
            Some(url) => url,
            None => {
                let request = Bootstrap {
                    series: series.to_owned(),
                    image_type: ImageType::Rootfs,
                    architecture: self.lander.options.architecture.clone(),
                    refresh: false,
                    progress_queue: String::new(),
                };
                let images = self.services().images.clone();
                let done = self
                    .relayed(
                        step,
                        Work::Image,
                        format!("making a base image of {series} (kept for later requests)"),
                        "image-bootstrap",
                        0,
                        move |queue, cancel| {
                            let images = images.clone();
                            let request = Bootstrap {
                                progress_queue: queue.to_string(),
                                ..request.clone()
                            };
                            async move { images.bootstrap(request, cancel).await }
                        },
                    )
                    .await?;
                self.check_done(step, &done, "the base image could not be made")?;
                let base = first_url(&done).ok_or_else(|| {
                    Stop::failed(step, "the image builder's bootstrap gave no URL")
                })?;
                // Kept, so that a resumed request does not make it again.
                self.outcome.base_image = Some(base.clone());
                self.save().await?;
                base
            }
        };
        self.outcome.base_image = Some(base.clone());
        let request = BuildImage {
            base_image: BaseImage {
                image_type: ImageType::Rootfs,
                url_list: vec![base],
                series: series.to_owned(),
            },
            ppa_list: vec![ppa.to_string(), archive_ppa.to_string()],
            package_list: packages.clone(),
            progress_queue: String::new(),
            ticket_id: Some(self.ticket()),
            architecture: self.lander.options.architecture.clone(),
        };
        let images = self.services().images.clone();
        let done = self
            .relayed(
                step,
                Work::Image,
                format!("building an image with {}", packages.join(", ")),
                "image-builder",
                0,
                move |queue, cancel| {
                    let images = images.clone();
                    let request = BuildImage {
                        progress_queue: queue.to_string(),
                        ..request.clone()
                    };
                    async move { images.build_image(request, cancel).await }
                },
            )
            .await?;
        self.check_done(step, &done, "the image could not be built")?;
        let image =
            first_url(&done).ok_or_else(|| Stop::failed(step, "the image builder gave no URL"))?;
        self.outcome.image = Some(image.clone());
        self.save_and_report(step, StepStatus::Succeeded, format!("image {image}"))
            .await?;
        Ok(packages)
    }

    async fn test(&mut self, uploads: &[Upload], packages: &[String]) -> Stopped<()> {
        let step = WorkflowStep::ImageTest;
        let image = self.outcome.image.clone().unwrap_or_default();
        for (n, upload) in uploads.iter().enumerate() {
            if self.outcome.tests.iter().any(|t| t.source == upload.source) {
                continue;
            }
            let tested: Vec<String> = upload
                .binaries
                .iter()
                .filter(|b| packages.contains(b))
                .cloned()
                .collect();
            if tested.is_empty() {
                continue;
            }
            self.begin(step)?;
            let entering = format!(
                "running the DEP-8 tests of {} {}",
                upload.source, upload.version
            );
            let test_request_id = format!("{}.{}", self.ticket(), n + 1);
            let request = TestImage {
                test_request_id: test_request_id.clone(),
                image_url: image.clone(),
                package_name: PackageNames::Many(tested.clone()),
                progress_queue: None,
                ticket_id: Some(self.ticket()),
                source_packages: upload.urls.clone(),
            };
            let runner = self.services().tests.clone();
            let done = self
                .relayed(
                    step,
                    Work::Test,
                    entering,
                    "test-runner",
                    n,
                    move |queue, cancel| {
                        let runner = runner.clone();
                        let request = TestImage {
                            progress_queue: Some(queue.to_string()),
                            ..request.clone()
                        };
                        async move { runner.test_image(request, cancel).await }
                    },
                )
                .await?;
            self.check_cancelled(step)?;
            let test_result = done
                .results
                .get("test_result")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("FAILED")
                .to_owned();
            self.outcome.tests.push(TestOutcome {
                test_request_id,
                source: upload.source.clone(),
                packages: tested,
                test_result: test_result.clone(),
                artifacts: done
                    .results
                    .get("artifacts")
                    .and_then(serde_json::Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                reason: match done.state {
                    DoneState::Failed => done.reason.clone(),
                    DoneState::Completed => None,
                },
            });
            // The last is saved with the step's end (or the request's, when tests failed).
            if n + 1 < uploads.len() {
                self.save().await?;
            }
        }
        // A source without tests, or whose tests were all skipped, is not a failure.
        let failed: Vec<String> = self
            .outcome
            .tests
            .iter()
            .filter(|t| t.reason.is_some() || t.test_result == "FAILED")
            .map(|t| match &t.reason {
                Some(reason) => format!("{}: {reason}", t.source),
                None => format!("{}: the tests failed", t.source),
            })
            .collect();
        if !failed.is_empty() {
            return Err(Stop::failed(step, failed.join("; ")));
        }
        self.save_and_report(step, StepStatus::Succeeded, "the tests passed".to_owned())
            .await
    }

    async fn publish(&mut self, ppa: &PpaName, series: &str, uploads: &[Upload]) -> Stopped<()> {
        let step = WorkflowStep::Publish;
        let archive_ppa = self.lander.options.archive_ppa.clone();
        self.enter(step, format!("copying the packages into {archive_ppa}"))
            .await?;
        for (n, upload) in uploads.iter().enumerate() {
            let label = format!("{} {}", upload.source, upload.version);
            if self.outcome.published.contains(&label) {
                continue;
            }
            self.services()
                .archives
                .copy_package(
                    ppa,
                    &archive_ppa,
                    Some(series),
                    &upload.source,
                    Some(&upload.version),
                )
                .await
                .map_err(|e| Stop::failed(step, e.to_string()))?;
            self.outcome.published.push(label);
            // The last is saved with the step's end.
            if n + 1 < uploads.len() {
                self.save().await?;
            }
        }
        self.save_and_report(
            step,
            StepStatus::Succeeded,
            format!("published into {archive_ppa}"),
        )
        .await
    }

    /// The request's uploads, each its `.changes` and the files it lists, in
    /// build-dependency order. Read from the store without copies on disk: each `.changes`
    /// and its `.dsc` (checked against each other, checksums included), and the size of
    /// every other file it lists; the builder checks the other files' checksums when it
    /// fetches them.
    async fn uploads(&self) -> Result<Vec<Upload>> {
        let store = &*self.services().store;
        // Each URL with the object name it stands for, as the store decodes it: the names
        // a .changes lists are compared with these, never with a URL's encoded segment.
        let named: Vec<(&String, String)> = self
            .request
            .source_packages
            .iter()
            .map(|url| Ok((url, source_object(store, url)?.1.as_str().to_owned())))
            .collect::<Result<_>>()?;
        let changes: Vec<(&String, &String)> = named
            .iter()
            .filter(|(_, name)| name.ends_with(".changes"))
            .map(|(url, name)| (*url, name))
            .collect();
        if changes.is_empty() {
            return Err(Error::invalid(
                "source_packages: no .changes among the URLs; give each upload's \
                 _source.changes with its files",
            ));
        }
        let mut uploads = Vec::new();
        let mut claimed = BTreeSet::new();
        for (changes_url, changes_name) in changes {
            let bytes = read_control_file(store, changes_url).await?;
            let changes = crate::upload::Changes::parse(&bytes)
                .map_err(|e| e.with_resource(changes_name.clone()))?;
            let mut own: Vec<String> = vec![changes_url.to_string()];
            let mut dsc = None;
            if changes.files.len() >= crate::builder::fetch::MAX_SOURCE_FILES {
                return Err(Error::invalid(format!(
                    "{changes_name} lists {} files; an upload has at most {}",
                    changes.files.len(),
                    crate::builder::fetch::MAX_SOURCE_FILES - 1
                )));
            }
            for entry in &changes.files {
                if entry.name.ends_with(".changes") {
                    return Err(Error::invalid(format!(
                        "{changes_name} lists {}: a .changes cannot list a .changes",
                        entry.name
                    )));
                }
                let Some(url) = named
                    .iter()
                    .find(|(_, name)| *name == entry.name)
                    .map(|(url, _)| *url)
                else {
                    return Err(Error::invalid(format!(
                        "source_packages: {changes_name} lists {}, which is not among the URLs",
                        entry.name
                    )));
                };
                if !claimed.insert(url.to_string()) {
                    return Err(Error::invalid(format!(
                        "source_packages: {} is listed twice (by one .changes or by two)",
                        entry.name
                    )));
                }
                own.push(url.to_string());
                if changes.dsc().is_some_and(|d| d.name == entry.name) {
                    let bytes = read_control_file(store, url).await?;
                    dsc = Some(crate::upload::check_dsc_bytes(&changes, entry, &bytes)?);
                } else {
                    let (container, object) = source_object(store, url)?;
                    let info = store.head(&container, &object).await?;
                    if info.size != entry.size {
                        return Err(Error::invalid(format!(
                            "{}: {} bytes in the store, {} listed by {changes_name}",
                            entry.name, info.size, entry.size
                        ))
                        .with_resource(url.clone()));
                    }
                }
            }
            let Some(dsc) = dsc else {
                return Err(Error::invalid(format!(
                    "{changes_name} lists no .dsc: not a source upload"
                )));
            };
            uploads.push((
                BuildNode::of(&dsc),
                Upload {
                    urls: own,
                    source: dsc.source.clone(),
                    version: dsc.version.clone(),
                    binaries: dsc.binaries.clone(),
                },
            ));
        }
        let unclaimed: Vec<&str> = named
            .iter()
            .filter(|(url, name)| !name.ends_with(".changes") && !claimed.contains(*url))
            .map(|(_, name)| name.as_str())
            .collect();
        if !unclaimed.is_empty() {
            return Err(Error::invalid(format!(
                "source_packages: no .changes lists {}",
                unclaimed.join(", ")
            )));
        }
        let nodes: Vec<BuildNode> = uploads.iter().map(|(node, _)| node.clone()).collect();
        let order = build_order(&nodes)?;
        let mut uploads: Vec<Option<Upload>> = uploads.into_iter().map(|(_, u)| Some(u)).collect();
        Ok(order
            .into_iter()
            .filter_map(|i| uploads.get_mut(i).and_then(Option::take))
            .collect())
    }

    /// The upload's completed build, when there is one.
    fn built(&self, upload: &Upload) -> Option<&BuildOutcome> {
        self.outcome.builds.iter().find(|b| {
            b.source == upload.source
                && b.version == upload.version
                && b.state == DoneState::Completed
        })
    }

    /// Puts the builds done earlier (by the run a resumed or retried request was) back into
    /// `ppa` when it no longer carries them (it was released, or another PPA was
    /// assigned): the `.deb`s and the source, as the builder stored them. A build whose
    /// files were not stored is forgotten, to be made again, and with it the image and the
    /// tests, which were of binaries that are gone.
    async fn restore(&mut self, ppa: &PpaName, series: &str, uploads: &[Upload]) -> Stopped<()> {
        let step = WorkflowStep::SourceBuild;
        let fail = |err: Error| Stop::failed(step, err.to_string());
        if self.outcome.builds.is_empty() {
            return Ok(());
        }
        let present = self.present_binaries(ppa, series).await.map_err(fail)?;
        let mut lost = false;
        for upload in uploads {
            let Some(build) = self.built(upload) else {
                continue;
            };
            if upload.binaries.iter().any(|b| present.contains(b)) {
                continue;
            }
            let debs: Vec<String> = build
                .results
                .get("binaries")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_str)
                .filter(|url| url.ends_with(".deb"))
                .map(str::to_owned)
                .collect();
            let what = format!("{} {}", upload.source, upload.version);
            if debs.is_empty() {
                lost = true;
                self.outcome
                    .builds
                    .retain(|b| !(b.source == upload.source && b.version == upload.version));
                continue;
            }
            self.enter(step, format!("putting the build of {what} back into {ppa}"))
                .await?;
            self.republish(ppa, series, upload, &debs)
                .await
                .map_err(|e| Stop::failed(step, format!("{what} could not be put back: {e}")))?;
        }
        if lost {
            self.outcome.image = None;
            self.outcome.tests.clear();
        }
        self.save().await
    }

    /// The names of the binary packages `ppa` carries for `series`.
    async fn present_binaries(&self, ppa: &PpaName, series: &str) -> Result<BTreeSet<String>> {
        Ok(self
            .services()
            .archives
            .packages(ppa, Some(series))
            .await?
            .into_iter()
            .filter(|p| p.architecture != "source")
            .map(|p| p.name)
            .collect())
    }

    /// Publishes the stored `.deb`s of `upload` and its source into `ppa`, as the builder
    /// did: into `series`, whatever the upload's `Distribution` says.
    async fn republish(
        &self,
        ppa: &PpaName,
        series: &str,
        upload: &Upload,
        debs: &[String],
    ) -> Result<()> {
        let store = &*self.services().store;
        let dir = tempfile::tempdir()?;
        let sources = dir.path().join("source");
        std::fs::create_dir_all(&sources)?;
        let validated = fetch_sources(store, &upload.urls, &sources).await?;
        let mut files = vec![validated.changes_path.clone()];
        for url in debs {
            let (container, object) = source_object(store, url)?;
            let path = dir.path().join(object.as_str());
            crate::store::download(store, &container, &object, &path).await?;
            files.push(path);
        }
        self.services()
            .archives
            .publish_files(ppa, Some(series), &files)
            .await?;
        Ok(())
    }

    /// The binaries of `uploads` the PPA carries for the series.
    async fn built_binaries(
        &self,
        ppa: &PpaName,
        series: &str,
        uploads: &[Upload],
    ) -> Result<Vec<String>> {
        let published: BTreeSet<String> = self
            .services()
            .archives
            .packages(ppa, Some(series))
            .await?
            .into_iter()
            .filter(|p| p.architecture != "source")
            .map(|p| p.name)
            .collect();
        let mut binaries = Vec::new();
        for upload in uploads {
            for binary in &upload.binaries {
                if published.contains(binary) && !binaries.contains(binary) {
                    binaries.push(binary.clone());
                }
            }
        }
        if binaries.is_empty() {
            return Err(Error::invalid(
                "the uploads' binaries are not in the PPA: nothing to install and test",
            ));
        }
        Ok(binaries)
    }

    /// A new queue for a worker's `n`th request of this ticket:
    /// `<kind>-<ticket>.<n>-<8 hex digits>-exchange` (new each time, so that a resumed
    /// request's workers never meet a queue an earlier attempt finished).
    fn worker_queue(&self, kind: &str, n: usize) -> Stopped<QueueName> {
        QueueName::fresh(&format!("{kind}-{}.{}", self.ticket(), n + 1))
            .map_err(|e| Stop::failed(self.outcome.step, e.to_string()))
    }

    /// Calls a worker (`call`, given its own new progress queue and a child of the run's
    /// cancellation) once a slot for `work` is free, recording `step` in progress with
    /// `entering` then, and passing the worker's progress (all but its final message) on
    /// to the request's queue as it comes. A call that outlives the step's time limit is
    /// ended and the step FAILS; a worker silent for the heartbeat limit is ended and
    /// called again, up to the retries, then the step FAILS.
    async fn relayed<W, F>(
        &self,
        step: WorkflowStep,
        work: Work,
        entering: String,
        kind: &str,
        n: usize,
        call: W,
    ) -> Stopped<Done>
    where
        W: Fn(QueueName, CancellationToken) -> F,
        F: std::future::Future<Output = Result<Done>> + Send + 'static,
    {
        let (_slot, waited) = self.slot(step, work).await?;
        self.check_cancelled(step)?;
        if waited {
            // Under way, and in line no more: the two writes are committed together.
            let (entered, noted) = tokio::join!(
                self.report(step, StepStatus::InProgress, entering),
                self.note_waiting(step, None)
            );
            entered.and(noted)?;
        } else {
            self.report(step, StepStatus::InProgress, entering).await?;
        }
        let options = &self.lander.options;
        let attempts = options.step_retries.saturating_add(1);
        let mut attempt = 1;
        loop {
            let queue = self.worker_queue(kind, n)?;
            match self.call_once(step, &queue, &call).await? {
                Some(done) => return Ok(done),
                None => {
                    let silence = options.silence_limit();
                    let dead = format!(
                        "the worker was silent for {} heartbeat periods ({} s) and was \
                         declared dead",
                        options.heartbeat_misses,
                        silence.as_secs()
                    );
                    if attempt >= attempts {
                        return Err(Stop::failed(
                            step,
                            format!("{dead}, {attempts} times: giving up"),
                        ));
                    }
                    attempt += 1;
                    self.report(
                        step,
                        StepStatus::InProgress,
                        format!("{dead}; calling it again (attempt {attempt} of {attempts})"),
                    )
                    .await?;
                }
            }
        }
    }

    /// A free slot for `work`, waited for in line when none is (the wait kept in the
    /// store, for `ticket show` and the API), and whether it was waited for: the caller
    /// takes the note back.
    async fn slot(
        &self,
        step: WorkflowStep,
        work: Work,
    ) -> Stopped<(tokio::sync::SemaphorePermit<'_>, bool)> {
        if let Some(permit) = self.lander.gates.try_enter(work) {
            return Ok((permit, false));
        }
        self.note_waiting(step, Some(work.slot())).await?;
        let permit = tokio::select! {
            permit = self.lander.gates.gate(work).acquire() => permit
                .map_err(|e| Stop::failed(step, format!("the lander is shutting down: {e}"))),
            () = self.cancel.cancelled() => Err(self.cancelled(step)),
        };
        Ok((permit?, true))
    }

    /// The ticket's PPA, waited for (noted as such) while every PPA is busy. The note
    /// ends with the save that keeps the PPA (or with the request).
    async fn assign_ppa(&mut self) -> Stopped<crate::ppa::Ppa> {
        let step = WorkflowStep::PpaAssignment;
        // First in line for this lander's share of the pool (held to the end of the run);
        // then, when every PPA of the pool is busy, still waiting for one.
        let mut noted = false;
        let permit = match self.lander.gates.try_enter_ppas() {
            Some(permit) => permit,
            None => {
                self.note_waiting(step, Some("a PPA")).await?;
                noted = true;
                tokio::select! {
                    permit = self.lander.gates.ppas().acquire_owned() => permit.map_err(|e| {
                        Stop::failed(step, format!("the lander is shutting down: {e}"))
                    }),
                    () = self.cancel.cancelled() => Err(self.cancelled(step)),
                }?
            }
        };
        self.ppa_permit = Some(permit);
        self.ppa_asked = true;
        let attempt = async {
            loop {
                match self.services().ready_ppa(self.ticket()).await {
                    // Every PPA stayed busy for the pool's whole wait: still in line.
                    Err(err) if err.kind() == ErrorKind::Unavailable => {
                        tokio::time::sleep(CANCEL_POLL).await;
                    }
                    other => return other,
                }
            }
        };
        // The note is written while the attempt goes on (it may hold the store's writer
        // meanwhile: awaiting the note alone would wait for it forever).
        let noting = async {
            tokio::time::sleep(PPA_WAIT_NOTICE).await;
            self.note_waiting(step, Some("a PPA")).await
        };
        let result = {
            tokio::pin!(attempt, noting);
            loop {
                tokio::select! {
                    result = &mut attempt => {
                        break result.map_err(|e| Stop::failed(step, e.to_string()));
                    }
                    note = &mut noting, if !noted => {
                        noted = true;
                        if let Err(stop) = note {
                            break Err(stop);
                        }
                    }
                    () = self.cancel.cancelled() => break Err(self.cancelled(step)),
                }
            }
        };
        result
    }

    /// Keeps what the request waits for (none: no more) in the store, and says so on the
    /// queue.
    async fn note_waiting(&self, step: WorkflowStep, what: Option<&str>) -> Stopped<()> {
        if let Some(store) = &self.services().requests {
            store
                .set_waiting(self.ticket(), what)
                .await
                .map_err(|e| Stop::failed(step, e.to_string()))?;
        }
        if let Some(what) = what {
            self.services()
                .queues
                .publish(
                    self.queue,
                    ProgressMessage::Phase {
                        phase: step.as_str().to_owned(),
                        message: format!("waiting for {what}"),
                    }
                    .to_json(),
                )
                .await
                .map_err(|e| Stop::failed(step, e.to_string()))?;
        }
        Ok(())
    }

    /// One call of a worker on `worker_queue`: its final message, or `None` when it was
    /// silent too long (and was ended).
    async fn call_once<W, F>(
        &self,
        step: WorkflowStep,
        worker_queue: &QueueName,
        call: &W,
    ) -> Stopped<Option<Done>>
    where
        W: Fn(QueueName, CancellationToken) -> F,
        F: std::future::Future<Output = Result<Done>> + Send + 'static,
    {
        let options = &self.lander.options;
        let worker = self.cancel.child_token();
        let fail = |err: Error| Stop::failed(step, err.to_string());
        let mut messages = self
            .services()
            .queues
            .subscribe(worker_queue, None)
            .await
            .map_err(fail)?;
        let queues = self.services().queues.clone();
        let queue = self.queue.clone();
        let started = Instant::now();
        // Milliseconds from `started` to the worker's last message.
        let heard = Arc::new(AtomicU64::new(0));
        let relay = {
            let heard = Arc::clone(&heard);
            tokio::spawn(async move {
                while let Some(Ok(message)) = messages.next().await {
                    let at = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    heard.store(at, Ordering::Relaxed);
                    if crate::queue::is_final(&message.body) {
                        break;
                    }
                    // A message the request's queue refused is lost, but the worker is
                    // still heard from.
                    if let Err(err) = queues.publish(&queue, message.body).await {
                        tracing::warn!(error = %err, "a worker's message was not passed on");
                    }
                }
            })
        };
        let mut handle = tokio::spawn(call(worker_queue.clone(), worker.clone()));
        // Far-off limits (huge configured times) are never reached rather than overflowing.
        let later = |at: Instant, by: Duration| at.checked_add(by);
        let deadline = options.step_timeout.and_then(|limit| later(started, limit));
        let silence = options.silence_limit();
        let joined = loop {
            let now = Instant::now();
            let last = started + Duration::from_millis(heard.load(Ordering::Relaxed));
            let quiet_until = later(last, silence);
            let wake = match (quiet_until, deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let nap = wake.map_or(Duration::from_secs(3600), |w| {
                w.saturating_duration_since(now)
            });
            tokio::select! {
                joined = &mut handle => break joined,
                () = tokio::time::sleep(nap) => {}
                () = self.cancel.cancelled() => {
                    // The worker's token is a child: it is told to stop; it is given a
                    // while, then dropped.
                    if tokio::time::timeout(WORKER_GRACE, &mut handle).await.is_err() {
                        handle.abort();
                    }
                    relay.abort();
                    return Err(self.cancelled(step));
                }
            }
            let now = Instant::now();
            let last = started + Duration::from_millis(heard.load(Ordering::Relaxed));
            let over_time = deadline.is_some_and(|d| now >= d);
            if !over_time && later(last, silence).is_none_or(|quiet| now < quiet) {
                continue;
            }
            // The worker is told to stop (ending its processes) and given a while.
            worker.cancel();
            let grace = if over_time {
                WORKER_GRACE.min(options.step_timeout.unwrap_or(WORKER_GRACE))
            } else {
                WORKER_GRACE.min(silence)
            };
            if tokio::time::timeout(grace, &mut handle).await.is_err() {
                handle.abort();
            }
            relay.abort();
            self.check_cancelled(step)?;
            if over_time {
                return Err(Stop::failed(
                    step,
                    format!(
                        "{step} ran past the lander's time limit for a step ({} s) and was \
                         ended",
                        options.step_timeout.unwrap_or_default().as_secs()
                    ),
                ));
            }
            return Ok(None);
        };
        // The relay ends at the worker's final message; it is not waited for longer.
        let _ = tokio::time::timeout(Duration::from_secs(5), relay).await;
        let done = joined
            .map_err(|e| Stop::failed(step, format!("a worker failed: {e}")))?
            .map_err(fail)?;
        self.check_cancelled(step)?;
        Ok(Some(done))
    }

    fn cancelled(&self, step: WorkflowStep) -> Stop {
        Stop {
            step,
            reason: "cancelled".to_owned(),
            cancelled: true,
        }
    }

    fn check_cancelled(&self, step: WorkflowStep) -> Stopped<()> {
        if self.cancel.is_cancelled() {
            Err(self.cancelled(step))
        } else {
            Ok(())
        }
    }

    fn check_done(&self, step: WorkflowStep, done: &Done, what: &str) -> Stopped<()> {
        self.check_cancelled(step)?;
        match done.state {
            DoneState::Completed => Ok(()),
            DoneState::Failed => Err(Stop::failed(
                step,
                format!(
                    "{what}: {}",
                    done.reason.as_deref().unwrap_or("no reason given")
                ),
            )),
        }
    }
}

/// Watches the requests a lander runs (`running`, until the lander is gone), all at once:
/// every [`CANCEL_POLL`] it cancels those a stop was asked for through the store (from any
/// process); every quarter of `lease` it renews the lander's claims on its requests; every
/// [`PPA_RENEWAL`] the leases of their PPAs (so a long request keeps its PPA).
async fn watch_requests(
    running: std::sync::Weak<Mutex<HashMap<i64, CancellationToken>>>,
    store: Arc<dyn RequestStore>,
    ppas: Arc<dyn crate::ppa::PpaAssigner>,
    lease: Duration,
) {
    let mut renewed = Instant::now();
    let mut ppa_renewed = Instant::now();
    loop {
        tokio::time::sleep(CANCEL_POLL.min(lease / 4)).await;
        let Some(running) = running.upgrade() else {
            return;
        };
        let tokens: HashMap<i64, CancellationToken> = match running.lock() {
            Ok(running) => running.clone(),
            Err(_) => return,
        };
        drop(running);
        if tokens.is_empty() {
            continue;
        }
        match store.cancels_requested().await {
            Ok(tickets) => {
                for ticket in tickets {
                    if let Some(token) = tokens.get(&ticket) {
                        token.cancel();
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot look for stops asked for"),
        }
        if renewed.elapsed() >= lease / 4 {
            let until = claim::until(lease);
            if let Err(err) = store.renew_claims(claim::runner(), &until).await {
                tracing::warn!(error = %err, "cannot renew the lander's claims");
            }
            renewed = Instant::now();
        }
        if ppa_renewed.elapsed() >= PPA_RENEWAL {
            for &ticket in tokens.keys() {
                // None held yet (or any more) is not a problem.
                match ppas.renew(ticket).await {
                    Err(err) if err.kind() != ErrorKind::NotFound => {
                        tracing::warn!(ticket, error = %err, "cannot renew the PPA's lease");
                    }
                    _ => {}
                }
            }
            ppa_renewed = Instant::now();
        }
    }
}

/// Runs `f` when dropped.
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

fn under_way(ticket: i64) -> Error {
    Error::conflict(format!(
        "ticket {ticket} has a request under way (`ubuntu-ci status {ticket} --follow` \
         follows it, `ubuntu-ci cancel {ticket}` stops it)"
    ))
}

/// The control file (`.changes`, `.dsc`) at `url`, an object of `store`, read into memory
/// (at most [`crate::upload::deb822::MAX_CONTROL_FILE_BYTES`]).
async fn read_control_file(store: &dyn crate::store::ObjectStore, url: &str) -> Result<Vec<u8>> {
    let limit = crate::upload::deb822::MAX_CONTROL_FILE_BYTES;
    let (container, object) = source_object(store, url)?;
    let (info, bytes) = store.get_bytes(&container, &object, limit).await?;
    if info.size > limit || bytes.len() as u64 > limit {
        return Err(Error::invalid(format!(
            "larger than the limit of {limit} bytes for a control file"
        ))
        .with_resource(url.to_owned()));
    }
    Ok(bytes)
}

fn first_url(done: &Done) -> Option<String> {
    done.results
        .get("url_list")?
        .as_array()?
        .first()?
        .as_str()
        .map(str::to_owned)
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_request_reads_with_its_ticket_id_as_text() {
        let request: ExecuteRequest = serde_json::from_str(
            r#"{"ticket_id": "1",
                "source_packages": ["https://example.com/ticket.1/a_1.dsc"],
                "binary_packages": ["python-autopilot", "python3-autopilot"],
                "series": "saucy",
                "base_image": "https://example.com/images/saucy.tar.zst",
                "progress_queue": "ticket-1-exchange"}"#,
        )
        .unwrap();
        assert_eq!(request.ticket_id, 1);
        assert_eq!(request.series.as_deref(), Some("saucy"));
        let numeric: ExecuteRequest = serde_json::from_str(
            r#"{"ticket_id": 7, "source_packages": [], "progress_queue": "q"}"#,
        )
        .unwrap();
        assert_eq!(numeric.ticket_id, 7);
        assert!(numeric.binary_packages.is_empty());
        for bad in [
            r#"{"ticket_id": "one", "source_packages": [], "progress_queue": "q"}"#,
            r#"{"ticket_id": 1, "source_packages": [], "progress_queue": "q", "x": 1}"#,
        ] {
            assert!(
                serde_json::from_str::<ExecuteRequest>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn long_messages_are_cut_on_a_character() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("hello", 10), "hello");
    }
}
