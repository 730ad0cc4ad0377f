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
//! doing again the one that was under way. Per-step timeouts and retries, and concurrency
//! bounds are not here yet.

pub mod store;

use store::RequestStore;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Deserializer, Serialize};
use tokio_util::sync::CancellationToken;

use crate::builder::fetch::{fetch_sources, source_object};
use crate::builder::order::{build_order, BuildNode};
use crate::builder::BuildSource;
use crate::config::Services;
use crate::error::{Error, Result};
use crate::image::{BaseImage, Bootstrap, BuildImage, ImageType};
use crate::model::{ArtifactType, NewTransition, StepStatus, TicketDetail, Uri, WorkflowStep};
use crate::ppa::PpaName;
use crate::queue::{Done, DoneState, ProgressMessage, QueueName};
use crate::runner::{PackageNames, TestImage};

/// How often a running request looks whether a stop was asked for.
const CANCEL_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a worker told to stop at a step's time limit is given to end.
const WORKER_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// The archive PPA successful requests are published into.
pub const ARCHIVE_PPA: &str = "ppa:ci-team/ppa_archive";

/// The seed's `execute_request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildOutcome {
    /// The source package.
    pub source: String,
    /// Its version.
    pub version: String,
    /// `COMPLETED` or `FAILED`.
    pub state: DoneState,
    /// The builder's final message's results (artifacts, log).
    pub results: serde_json::Map<String, serde_json::Value>,
}

/// One upload's test run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    pub step_timeout: Option<std::time::Duration>,
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
        })
    }
}

/// Runs requests through the services' workers.
pub struct Lander {
    services: Services,
    options: LanderOptions,
}

impl fmt::Debug for Lander {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lander")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
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
        Lander { services, options }
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
        QueueName::new(request.progress_queue.clone())?;
        self.services.tickets.get_ticket(request.ticket_id).await?;
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
        if let Some(store) = &self.services.requests {
            store.record(&request, &progress).await?;
        }
        self.run(request, progress, cancel).await
    }

    /// Carries on with every request a lander left unfinished, one after the other, and
    /// returns their outcomes; a request whose ticket is already closed is only marked
    /// finished.
    ///
    /// # Errors
    /// The store's, or what [`Lander::execute`] returns as errors.
    pub async fn resume(&self, cancel: CancellationToken) -> Result<Vec<RequestOutcome>> {
        let Some(store) = self.services.requests.clone() else {
            return Ok(Vec::new());
        };
        let mut outcomes = Vec::new();
        for (request, progress) in store.unfinished().await? {
            let ticket = self.services.tickets.get_ticket(request.ticket_id).await?;
            if ticket.ticket.state == crate::model::TicketState::Closed {
                store.finish(request.ticket_id).await?;
                continue;
            }
            outcomes.push(self.run(request, progress, cancel.clone()).await?);
        }
        Ok(outcomes)
    }

    async fn run(
        &self,
        request: ExecuteRequest,
        progress: RequestOutcome,
        cancel: CancellationToken,
    ) -> Result<RequestOutcome> {
        let queue = QueueName::new(request.progress_queue.clone())?;
        let series = progress.series.clone();
        // A resumed request's ticket is further on already: steps before are not recorded
        // again (a ticket never goes back).
        let floor = self
            .services
            .tickets
            .get_ticket(request.ticket_id)
            .await?
            .ticket
            .current_workflow_step;
        // A stop asked for through the store (`ubuntu-ci cancel`, from any process) cancels
        // this run as `cancel` does.
        let cancel = cancel.child_token();
        let watcher = match self.services.requests.clone() {
            Some(store) => {
                if store.cancel_requested(request.ticket_id).await? {
                    cancel.cancel();
                }
                Some(tokio::spawn(watch_cancel(
                    store,
                    request.ticket_id,
                    cancel.clone(),
                )))
            }
            None => None,
        };
        let mut run = Run {
            lander: self,
            request: &request,
            queue: &queue,
            cancel: &cancel,
            outcome: progress,
            floor,
        };
        let result = match crate::archive::check_series(&series) {
            Ok(()) => run.steps().await,
            Err(err) => Err(Stop::failed(WorkflowStep::Queued, err.to_string())),
        };
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        let mut outcome = run.outcome;
        let released = match &outcome.ppa {
            Some(_) => self.services.ppas.release_ppa(request.ticket_id).await,
            None => Ok(()),
        };
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
            Err(stop) => {
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
            store.finish(request.ticket_id).await?;
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
        if self.cancel.is_cancelled() {
            return Err(Stop {
                step,
                reason: "cancelled".to_owned(),
                cancelled: true,
            });
        }
        self.outcome.step = step;
        self.report(step, StepStatus::InProgress, message).await
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
        let ppa = self
            .services()
            .ready_ppa(self.ticket())
            .await
            .map_err(fail)?;
        self.outcome.ppa = Some(ppa.name.to_string());
        self.save().await?;
        self.services()
            .archives
            .prepare(&ppa.name, Some(&series))
            .await
            .map_err(fail)?;
        self.report(
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
        let total = uploads.len();
        for (n, upload) in uploads.iter().enumerate() {
            let what = format!("{} {}", upload.source, upload.version);
            if self.outcome.builds.iter().any(|b| {
                b.source == upload.source
                    && b.version == upload.version
                    && b.state == DoneState::Completed
            }) {
                continue;
            }
            self.enter(step, format!("building {what} ({}/{total})", n + 1))
                .await?;
            let worker_queue = self.worker_queue("bsbuilder", n)?;
            let request = BuildSource {
                source_packages: upload.urls.clone(),
                ppa: ppa.to_string(),
                progress_queue: worker_queue.to_string(),
                ticket_id: Some(self.ticket()),
                series: Some(series.to_owned()),
                architecture: self.lander.options.architecture.clone(),
            };
            let builder = self.services().builder.clone();
            let done = self
                .relayed(step, &worker_queue, |cancel| async move {
                    builder.build_source(request, cancel).await
                })
                .await?;
            self.outcome.builds.push(BuildOutcome {
                source: upload.source.clone(),
                version: upload.version.clone(),
                state: done.state,
                results: done.results.clone(),
            });
            self.save().await?;
            self.check_done(step, &done, &format!("{what} did not build"))?;
        }
        self.report(step, StepStatus::Succeeded, format!("{total} built"))
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
        self.enter(step, "finding the base image".to_owned())
            .await?;
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
                let worker_queue = self.worker_queue("image-bootstrap", 0)?;
                let request = Bootstrap {
                    series: series.to_owned(),
                    image_type: ImageType::Rootfs,
                    architecture: self.lander.options.architecture.clone(),
                    refresh: false,
                    progress_queue: worker_queue.to_string(),
                };
                let images = self.services().images.clone();
                let done = self
                    .relayed(step, &worker_queue, |cancel| async move {
                        images.bootstrap(request, cancel).await
                    })
                    .await?;
                self.check_done(step, &done, "the base image could not be made")?;
                first_url(&done).ok_or_else(|| {
                    Stop::failed(step, "the image builder's bootstrap gave no URL")
                })?
            }
        };
        self.outcome.base_image = Some(base.clone());
        self.save().await?;
        self.enter(
            step,
            format!("building an image with {}", packages.join(", ")),
        )
        .await?;
        let worker_queue = self.worker_queue("image-builder", 0)?;
        let request = BuildImage {
            base_image: BaseImage {
                image_type: ImageType::Rootfs,
                url_list: vec![base],
                series: series.to_owned(),
            },
            ppa_list: vec![ppa.to_string(), archive_ppa.to_string()],
            package_list: packages.clone(),
            progress_queue: worker_queue.to_string(),
            ticket_id: Some(self.ticket()),
            architecture: self.lander.options.architecture.clone(),
        };
        let images = self.services().images.clone();
        let done = self
            .relayed(step, &worker_queue, |cancel| async move {
                images.build_image(request, cancel).await
            })
            .await?;
        self.check_done(step, &done, "the image could not be built")?;
        let image =
            first_url(&done).ok_or_else(|| Stop::failed(step, "the image builder gave no URL"))?;
        self.outcome.image = Some(image.clone());
        self.save().await?;
        self.report(step, StepStatus::Succeeded, format!("image {image}"))
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
            self.enter(
                step,
                format!(
                    "running the DEP-8 tests of {} {}",
                    upload.source, upload.version
                ),
            )
            .await?;
            let worker_queue = self.worker_queue("test-runner", n)?;
            let test_request_id = format!("{}.{}", self.ticket(), n + 1);
            let request = TestImage {
                test_request_id: test_request_id.clone(),
                image_url: image.clone(),
                package_name: PackageNames::Many(tested.clone()),
                progress_queue: Some(worker_queue.to_string()),
                ticket_id: Some(self.ticket()),
                source_packages: upload.urls.clone(),
            };
            let runner = self.services().tests.clone();
            let done = self
                .relayed(step, &worker_queue, |cancel| async move {
                    runner.test_image(request, cancel).await
                })
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
            self.save().await?;
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
        self.report(step, StepStatus::Succeeded, "the tests passed".to_owned())
            .await
    }

    async fn publish(&mut self, ppa: &PpaName, series: &str, uploads: &[Upload]) -> Stopped<()> {
        let step = WorkflowStep::Publish;
        let archive_ppa = self.lander.options.archive_ppa.clone();
        self.enter(step, format!("copying the packages into {archive_ppa}"))
            .await?;
        for upload in uploads {
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
            self.save().await?;
        }
        self.report(
            step,
            StepStatus::Succeeded,
            format!("published into {archive_ppa}"),
        )
        .await
    }

    /// The request's uploads, each its `.changes` and the files it lists, validated and in
    /// build-dependency order.
    async fn uploads(&self) -> Result<Vec<Upload>> {
        let urls = &self.request.source_packages;
        let name = |url: &str| url.rsplit('/').next().unwrap_or(url).to_owned();
        let changes: Vec<&String> = urls.iter().filter(|u| u.ends_with(".changes")).collect();
        if changes.is_empty() {
            return Err(Error::invalid(
                "source_packages: no .changes among the URLs; give each upload's \
                 _source.changes with its files",
            ));
        }
        let dir = tempfile::tempdir()?;
        let mut uploads = Vec::new();
        let mut claimed = BTreeSet::new();
        for (n, changes_url) in changes.iter().enumerate() {
            // The .changes alone first, to learn which files are its own.
            let sub = dir.path().join(n.to_string());
            std::fs::create_dir_all(&sub)?;
            let listed = listed_files(&*self.services().store, changes_url, &sub).await?;
            let mut own = vec![(*changes_url).clone()];
            for url in urls {
                if listed.contains(&name(url)) && claimed.insert(url.clone()) {
                    own.push(url.clone());
                }
            }
            let all = sub.join("all");
            std::fs::create_dir_all(&all)?;
            let upload = fetch_sources(&*self.services().store, &own, &all).await?;
            uploads.push((
                BuildNode::of(&upload.dsc),
                Upload {
                    urls: own,
                    source: upload.dsc.source.clone(),
                    version: upload.dsc.version.clone(),
                    binaries: upload.dsc.binaries.clone(),
                },
            ));
        }
        let unclaimed: Vec<String> = urls
            .iter()
            .filter(|u| !u.ends_with(".changes") && !claimed.contains(*u))
            .map(|u| name(u))
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

    /// Runs a worker's `work`, given a child of the run's cancellation, passing its progress
    /// (all but its final message) on to the request's queue as it comes.
    async fn relayed<W, F>(
        &self,
        step: WorkflowStep,
        worker_queue: &QueueName,
        work: W,
    ) -> Stopped<Done>
    where
        W: FnOnce(CancellationToken) -> F,
        F: std::future::Future<Output = Result<Done>> + Send + 'static,
    {
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
        let relay = tokio::spawn(async move {
            while let Some(Ok(message)) = messages.next().await {
                if crate::queue::is_final(&message.body) {
                    break;
                }
                if queues.publish(&queue, message.body).await.is_err() {
                    break;
                }
            }
        });
        let mut handle = tokio::spawn(work(worker.clone()));
        let done = match self.lander.options.step_timeout {
            Some(limit) => match tokio::time::timeout(limit, &mut handle).await {
                Ok(joined) => joined,
                Err(_) => {
                    // The worker is told to stop (ending its processes) and given a while.
                    worker.cancel();
                    if tokio::time::timeout(WORKER_GRACE, &mut handle)
                        .await
                        .is_err()
                    {
                        handle.abort();
                    }
                    relay.abort();
                    return Err(Stop::failed(
                        step,
                        format!(
                            "{step} ran past the lander's time limit for a step ({} s) and \
                             was ended",
                            limit.as_secs()
                        ),
                    ));
                }
            },
            None => handle.await,
        };
        // The relay ends at the worker's final message; it is not waited for longer.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), relay).await;
        let done = done
            .map_err(|e| Stop::failed(step, format!("a worker failed: {e}")))?
            .map_err(fail)?;
        self.check_cancelled(step)?;
        Ok(done)
    }

    fn check_cancelled(&self, step: WorkflowStep) -> Stopped<()> {
        if self.cancel.is_cancelled() {
            Err(Stop {
                step,
                reason: "cancelled".to_owned(),
                cancelled: true,
            })
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

/// Cancels `cancel` when the store says a stop of `ticket`'s request was asked for;
/// looks every [`CANCEL_POLL`] until `cancel` is cancelled.
async fn watch_cancel(store: Arc<dyn RequestStore>, ticket: i64, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(CANCEL_POLL) => {}
        }
        if store.cancel_requested(ticket).await.unwrap_or(false) {
            cancel.cancel();
            return;
        }
    }
}

/// The names of the files the `.changes` at `url` (an object of `store`) lists, read from
/// a copy in `dir`.
async fn listed_files(
    store: &dyn crate::store::ObjectStore,
    url: &str,
    dir: &std::path::Path,
) -> Result<BTreeSet<String>> {
    let (container, object) = source_object(store, url)?;
    let path = dir.join(object.as_str());
    crate::store::download(store, &container, &object, &path).await?;
    let bytes = crate::upload::deb822::read_bounded(std::fs::File::open(&path)?, 1 << 20)?;
    let changes = crate::upload::Changes::parse(&bytes)?;
    Ok(changes.files.into_iter().map(|f| f.name).collect())
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
