//! The local test runner: `autopkgtest` with its unshare virtualisation server on `ROOTFS`
//! images.
//!
//! One run:
//!
//! 1. `fetch`: the image from the data store (never any other URL) and its description
//!    (`<image>.json`, written by the image builder: series, architecture, PPAs);
//! 2. `source`: the tests' source, from the request's `source_packages` (URLs of the data
//!    store, validated again) or else the source the image's PPAs publish for the package;
//!    unpacked with `dpkg-source -x`; `debian/tests/control` gives the number of tests;
//! 3. `test`: `autopkgtest -B <source tree> -- unshare --tarball <image>` with each PPA's
//!    snapshot bind-mounted where the image's apt sources expect it; each test's start is
//!    reported as the seed's `{"test_request_id", "message": "50%", "current", "total"}`;
//! 4. `store`: the JUnit report, autopkgtest's summary and log into
//!    `ticket.<id>.test-runner`, recorded as artifacts of the ticket.
//!
//! autopkgtest's exit status decides the outcome: 0 and 2 (something skipped, or a flaky
//! test failed) pass; 4 and 6 (a test failed) fail; 8 is `SKIPPED` (every test declared
//! was skipped; a source declaring none is `NO_TESTS` without running autopkgtest); 12 and 14 (an erroneous package), 16 (the test bed failed) and 20
//! (anything else) are infrastructure errors: a `FAILED` message that says so, `retryable`
//! for 12, 14 and 16.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::dep8::{declared_tests, junit, parse_summary, JunitCase, Verdict};
use super::{check_request_id, TestImage, TestRunner};
use crate::archive::Archives;
use crate::artifacts::{keep_file, Owner};
use crate::builder::fetch::fetch_sources;
use crate::builder::process::{run, Ending, Reporter, Supervision};
use crate::error::{Error, Result};
use crate::fsutil::{set_mode, write_readable};
use crate::image::check_package_name;
use crate::image::rootfs::{ImageDescription, PPA_MOUNT_ROOT};
use crate::model::ArtifactType;
use crate::ppa::PpaName;
use crate::queue::{Done, ProgressMessage, ProgressQueues};
use crate::store::{download, ContainerName, DataStore, ObjectName, ObjectStore};
use crate::tickets::TicketSystem;

/// Most bytes of a test's stdout or stderr kept in the JUnit report.
const MAX_CAPTURE: usize = 1 << 20;

/// How the local runner runs.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Where each run's temporary folder goes (reachable from the user namespace).
    pub work_dir: PathBuf,
    /// A run (autopkgtest as a whole) going on longer is ended.
    pub timeout: Duration,
    /// Heartbeats go out after this long without output.
    pub heartbeat: Duration,
}

impl Default for RunnerOptions {
    fn default() -> RunnerOptions {
        RunnerOptions {
            work_dir: std::env::temp_dir(),
            timeout: Duration::from_secs(3 * 3600),
            heartbeat: Duration::from_secs(30),
        }
    }
}

/// Runs DEP-8 tests with autopkgtest on this machine.
pub struct AutopkgtestRunner {
    store: Arc<dyn ObjectStore>,
    tickets: Option<Arc<dyn TicketSystem>>,
    archives: Archives,
    queues: Arc<dyn ProgressQueues>,
    options: RunnerOptions,
}

impl fmt::Debug for AutopkgtestRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutopkgtestRunner")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl AutopkgtestRunner {
    /// A runner taking images and sources from `store`, PPAs from `archives`, reporting
    /// on `queues`, and recording artifacts in `tickets` when given.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        tickets: Option<Arc<dyn TicketSystem>>,
        archives: Archives,
        queues: Arc<dyn ProgressQueues>,
        options: RunnerOptions,
    ) -> AutopkgtestRunner {
        AutopkgtestRunner {
            store,
            tickets,
            archives,
            queues,
            options,
        }
    }
}

/// Why a run could not give a verdict.
struct Failure {
    reason: String,
    /// The error's kind when the work was refused or broke (bad input, a missing
    /// object), rather than ran and failed.
    kind: Option<crate::ErrorKind>,
    retryable: bool,
    artifacts: Vec<String>,
}

impl From<Error> for Failure {
    fn from(err: Error) -> Failure {
        Failure {
            kind: Some(err.kind()),
            retryable: matches!(
                err.kind(),
                crate::ErrorKind::Unavailable | crate::ErrorKind::Internal
            ),
            reason: err.to_string(),
            artifacts: Vec::new(),
        }
    }
}

type Results = serde_json::Map<String, serde_json::Value>;

#[async_trait]
impl TestRunner for AutopkgtestRunner {
    async fn test_image(&self, request: TestImage, cancel: CancellationToken) -> Result<Done> {
        let queue = request.queue()?;
        let reporter = Reporter {
            queues: &*self.queues,
            queue: &queue,
        };
        let result = self.run_tests(&request, &reporter, &cancel).await;
        let mut done = match result {
            Ok(results) => Done::completed(results),
            Err(failure) => {
                let mut done = Done::failed(failure.reason).with_error_kind(failure.kind);
                done.results
                    .insert("retryable".into(), failure.retryable.into());
                done.results
                    .insert("artifacts".into(), failure.artifacts.into());
                done
            }
        };
        done.results.insert(
            "test_request_id".into(),
            request.test_request_id.clone().into(),
        );
        reporter.finish(done).await
    }
}

impl AutopkgtestRunner {
    #[allow(clippy::too_many_lines)]
    async fn run_tests(
        &self,
        request: &TestImage,
        reporter: &Reporter<'_>,
        cancel: &CancellationToken,
    ) -> std::result::Result<Results, Failure> {
        // Everything in the request is checked before anything is done.
        check_request_id(&request.test_request_id)?;
        let packages = request.package_name.names();
        if packages.is_empty() {
            return Err(Error::invalid("package_name: name at least one binary package").into());
        }
        for name in &packages {
            check_package_name(name)
                .map_err(|e| Error::invalid(e.message().replace("package_list", "package_name")))?;
        }
        let (container, object) = self.resolve(&request.image_url, "image_url")?;
        if !object.as_str().contains(".tar") {
            return Err(Error::unsupported(format!(
                "image_url: {object} is not a ROOTFS image (a root filesystem tarball); \
                 CLOUD images (qemu) are not supported here"
            ))
            .into());
        }

        let work = tempfile::Builder::new()
            .prefix("ubuntu-ci-test-")
            .tempdir_in(&self.options.work_dir)
            .map_err(Error::from)?;
        let w = work.path();
        set_mode(w, 0o755)?;

        // What the image is and where the tests come from are settled before the image is
        // fetched.
        self.store.head(&container, &object).await.map_err(|e| {
            if e.kind() == crate::ErrorKind::NotFound {
                Error::not_found(format!(
                    "image_url: {container}/{object} not found in the data store"
                ))
            } else {
                e
            }
        })?;
        let description = self.description(&container, &object).await?;
        if let Some(description) = &description {
            crate::archive::check_series(&description.series)?;
            crate::archive::deb::check_architecture(&description.architecture)?;
        }
        let arch = description.as_ref().map_or_else(
            || crate::archive::host_architecture().to_owned(),
            |d| d.architecture.clone(),
        );
        let mut ppas = Vec::new();
        for text in description.iter().flat_map(|d| d.ppa_list.iter()) {
            ppas.push(text.parse::<PpaName>()?);
        }
        reporter
            .phase(
                "source",
                format!("finding the tests of {}", packages.join(", ")),
            )
            .await?;
        let (dsc, fingerprint) = self
            .find_source(request, &packages, &ppas, description.as_ref(), &arch, w)
            .await?;
        // The results belong to the upload's subticket when the upload is the request's,
        // else to the ticket.
        let owner = match (&self.tickets, request.ticket_id, &fingerprint) {
            (Some(tickets), Some(ticket), Some(fingerprint)) => {
                match crate::artifacts::subticket_of(&**tickets, ticket, fingerprint).await {
                    Some(subticket) => Some(Owner::Subticket(subticket)),
                    None => Some(Owner::Ticket(ticket)),
                }
            }
            (_, ticket, _) => ticket.map(Owner::Ticket),
        };

        reporter
            .phase("fetch", format!("fetching the image {}", request.image_url))
            .await?;
        let image = w.join(object.as_str());
        download(&*self.store, &container, &object, &image).await?;
        set_mode(&image, 0o644)?;

        let tree = w.join("source");
        let output = Command::new("dpkg-source")
            .arg("--no-check")
            .arg("-x")
            .arg(&dsc)
            .arg(&tree)
            .current_dir(w)
            .output()
            .await
            .map_err(|e| Error::from(e).with_resource("dpkg-source"))?;
        if !output.status.success() {
            return Err(Error::invalid(format!(
                "dpkg-source could not unpack {}: {}",
                dsc.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ))
            .into());
        }
        let control = match std::fs::read_to_string(tree.join("debian/tests/control")) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::from(e).into()),
        };
        let declared = declared_tests(&control)?;
        let store = self.results_store(request, reporter).await?;
        if control.is_empty() {
            // autodep8 would make tests for `Testsuite: autopkgtest-pkg-*` sources.
            let dsc_text = std::fs::read_to_string(&dsc).unwrap_or_default();
            if let Some(kind) = dsc_text
                .lines()
                .find_map(|l| l.strip_prefix("Testsuite:"))
                .and_then(|v| {
                    v.split([',', ' '])
                        .find(|t| t.starts_with("autopkgtest-pkg-"))
                })
            {
                return Err(Error::unsupported(format!(
                    "the source declares generated tests ({kind}), which need autodep8; \
                     generated tests are not supported here yet"
                ))
                .into());
            }
        }
        if declared.is_empty() {
            let mut results = Results::new();
            results.insert("status".into(), "SUCCESS".into());
            results.insert("test_result".into(), "NO_TESTS".into());
            results.insert(
                "message".into(),
                "no tests to run: the source declares no DEP-8 tests (debian/tests/control)".into(),
            );
            results.insert("artifacts".into(), Vec::<String>::new().into());
            return Ok(results);
        }
        let total = declared.len();

        reporter
            .phase(
                "test",
                format!("running {total} tests with autopkgtest in the image"),
            )
            .await?;
        let out = w.join("out");
        let summary = w.join("summary");
        let log = w.join("autopkgtest.log");
        let mut command = Command::new("autopkgtest");
        command
            .env("TMPDIR", w)
            .arg("--no-built-binaries")
            .arg(format!("--output-dir={}", out.display()))
            .arg(format!("--summary-file={}", summary.display()))
            .arg(format!("{}/", tree.display()))
            .arg("--")
            .arg("unshare")
            .arg(format!("--arch={arch}"))
            .arg(format!("--tarball={}", image.display()))
            .arg(format!("--prefix={}/", w.display()));
        for ppa in &ppas {
            let snapshot = w.join("ppa").join(ppa.owner()).join(ppa.name());
            crate::archive::snapshot(&self.archives.path(ppa), &snapshot)?;
            command.arg("--bind").arg(&snapshot).arg(format!(
                "{PPA_MOUNT_ROOT}/{}/{}",
                ppa.owner(),
                ppa.name()
            ));
        }
        let (lines_tx, lines_rx) = tokio::sync::mpsc::unbounded_channel();
        let supervision = Supervision {
            phase: "test".to_owned(),
            timeout: self.options.timeout,
            heartbeat: self.options.heartbeat,
            grace: Duration::from_secs(15),
            lines: Some(lines_tx),
        };
        let watcher = tokio::spawn(watch_tests(
            lines_rx,
            self.queues.clone(),
            reporter.queue.clone(),
            request.test_request_id.clone(),
            total,
        ));
        let outcome = run(command, &log, reporter, &supervision, cancel).await;
        drop(supervision);
        let timings = watcher.await.unwrap_or_default();
        let outcome = outcome?;

        reporter
            .phase("store", "storing the results".to_owned())
            .await?;
        let stem = format!(
            "{}-{}",
            request.test_request_id,
            packages.first().map_or("tests", String::as_str)
        );
        let mut artifacts = Vec::new();
        let log_url = self
            .keep(
                &store,
                owner,
                &format!("{stem}.log"),
                &log,
                ArtifactType::TestLog,
            )
            .await?;
        artifacts.push(log_url);
        let code = match outcome.ending {
            Ending::Exited(Some(code)) => code,
            Ending::Exited(None) => {
                return Err(Failure {
                    kind: None,
                    reason: "autopkgtest was killed by a signal".to_owned(),
                    retryable: true,
                    artifacts,
                })
            }
            Ending::TimedOut => {
                return Err(Failure {
                    kind: None,
                    reason: "the tests ran past their time limit and were ended".to_owned(),
                    retryable: false,
                    artifacts,
                })
            }
            Ending::Cancelled => {
                return Err(Failure {
                    kind: None,
                    reason: "the test run was cancelled".to_owned(),
                    retryable: false,
                    artifacts,
                })
            }
        };
        let summary_text = std::fs::read_to_string(&summary).unwrap_or_default();
        let results = parse_summary(&summary_text);
        let cases: Vec<JunitCase> = results
            .iter()
            .map(|result| JunitCase {
                seconds: timings.get(&result.name).copied().unwrap_or(0.0),
                stdout: capture(&out.join(format!("{}-stdout", result.name))),
                stderr: capture(&out.join(format!("{}-stderr", result.name))),
                result: result.clone(),
            })
            .collect();
        let suite = dsc
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('_').next())
            .unwrap_or("autopkgtest")
            .to_owned();
        let junit_path = w.join("junit.xml");
        write_readable(&junit_path, &junit(&suite, &cases))?;
        let junit_url = self
            .keep(
                &store,
                owner,
                &format!("{stem}.xml"),
                &junit_path,
                ArtifactType::TestResult,
            )
            .await?;
        artifacts.push(junit_url);
        if summary.exists() {
            artifacts.push(
                self.keep(
                    &store,
                    owner,
                    &format!("{stem}.summary"),
                    &summary,
                    ArtifactType::TestResult,
                )
                .await?,
            );
        }
        let (status, test_result) = match code {
            0 | 2 => ("SUCCESS", "PASSED"),
            4 | 6 => ("FAILURE", "FAILED"),
            // Tests were declared, but no meaningful one ran: every test was skipped
            // (restrictions, exit 77), or only superficial tests passed or flaky ones failed.
            8 if results.iter().all(|r| r.verdict == Verdict::Skip) => ("SUCCESS", "SKIPPED"),
            8 => ("SUCCESS", "SUPERFICIAL"),
            12 | 14 | 16 => {
                return Err(Failure {
                    kind: None,
                    reason: format!(
                        "autopkgtest could not run the tests ({}, exit status {code}): {}",
                        if code == 16 {
                            "the test bed failed"
                        } else {
                            "erroneous package: its test dependencies could not be installed \
                             or its tests could not be set up"
                        },
                        outcome.last_lines(10)
                    ),
                    retryable: true,
                    artifacts,
                })
            }
            _ => {
                return Err(Failure {
                    kind: None,
                    reason: format!(
                        "autopkgtest failed unexpectedly (exit status {code}): {}",
                        outcome.last_lines(10)
                    ),
                    retryable: false,
                    artifacts,
                })
            }
        };
        let count = |verdict: Verdict| results.iter().filter(|r| r.verdict == verdict).count();
        let mut done = Results::new();
        done.insert("status".into(), status.into());
        done.insert("test_result".into(), test_result.into());
        done.insert("artifacts".into(), artifacts.into());
        done.insert(
            "tests".into(),
            serde_json::json!({
                "total": total,
                "passed": count(Verdict::Pass),
                "failed": count(Verdict::Fail),
                "skipped": count(Verdict::Skip),
                "flaky": count(Verdict::Flaky),
            }),
        );
        Ok(done)
    }

    fn resolve(&self, text: &str, field: &str) -> Result<(ContainerName, ObjectName)> {
        let url = url::Url::parse(text)
            .map_err(|e| Error::invalid(format!("{field}: bad URL {text:?}: {e}")))?;
        self.store.resolve_url(&url).map_err(|e| {
            Error::invalid(format!(
                "{field}: {text} is not in the configured data store: {}",
                e.message()
            ))
        })
    }

    /// The image builder's description of an image, when there is one.
    async fn description(
        &self,
        container: &ContainerName,
        object: &ObjectName,
    ) -> Result<Option<ImageDescription>> {
        let name = ObjectName::new(format!("{object}.json"))?;
        let mut reader = match self.store.get(container, &name).await {
            Ok((_, reader)) => reader,
            Err(e) if e.kind() == crate::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // A description is a few hundred bytes; a larger object is not one.
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(
            &mut tokio::io::AsyncReadExt::take(&mut reader, 1 << 20),
            &mut bytes,
        )
        .await?;
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::invalid(format!(
                "{container}/{name} is not an image description: {e}"
            ))
        })
    }

    /// The `.dsc` of the tests: from the request's source upload, else from the PPAs.
    async fn find_source(
        &self,
        request: &TestImage,
        packages: &[String],
        ppas: &[PpaName],
        description: Option<&ImageDescription>,
        arch: &str,
        work: &Path,
    ) -> Result<(PathBuf, Option<String>)> {
        let series = description.map(|d| d.series.as_str());
        if !request.source_packages.is_empty() {
            let dir = work.join("upload");
            std::fs::create_dir_all(&dir)?;
            let upload = fetch_sources(&*self.store, &request.source_packages, &dir).await?;
            let dsc = upload
                .files
                .iter()
                .find(|f| f.name.ends_with(".dsc"))
                .map(|f| f.path.clone())
                .ok_or_else(|| Error::internal("a validated upload without a .dsc"))?;
            return Ok((dsc, Some(upload.fingerprint)));
        }
        let mut found: Option<(String, PathBuf)> = None;
        for package in packages {
            let mut this = None;
            for ppa in ppas {
                // The source of the version installed in the image, when the image says.
                let version = description
                    .and_then(|d| d.packages.get(package))
                    .map(String::as_str);
                if let Some((source, _, dsc)) = self
                    .archives
                    .source_of(ppa, series, package, arch, version)
                    .await?
                {
                    this = Some((source, dsc));
                    break;
                }
            }
            let Some((source, dsc)) = this else {
                return Err(Error::not_found(format!(
                    "no source for {package}: none of the image's PPAs ({}) publishes the \
                     source that built it; give the source upload (source_packages, or \
                     --source)",
                    if ppas.is_empty() {
                        "none".to_owned()
                    } else {
                        ppas.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )));
            };
            match &found {
                Some((first, _)) if *first != source => {
                    return Err(Error::invalid(format!(
                        "package_name: the packages come from several sources ({first}, \
                         {source}); send one request per source"
                    )))
                }
                Some(_) => {}
                None => found = Some((source, dsc)),
            }
        }
        found
            .map(|(_, dsc)| (dsc, None))
            .ok_or_else(|| Error::invalid("package_name: name at least one binary package"))
    }

    async fn results_store(
        &self,
        request: &TestImage,
        reporter: &Reporter<'_>,
    ) -> Result<DataStore> {
        let container = match request.ticket_id {
            Some(id) => format!("ticket.{id}"),
            None => format!("test.{}", reporter.queue),
        };
        DataStore::open(self.store.clone(), &container, "test-runner", true).await
    }

    async fn keep(
        &self,
        store: &DataStore,
        owner: Option<Owner>,
        name: &str,
        path: &Path,
        kind: ArtifactType,
    ) -> Result<String> {
        keep_file(store, self.tickets.as_ref(), owner, name, path, kind).await
    }
}

/// Follows autopkgtest's output: each `test NAME: [-----` line is the start of a test,
/// reported as the seed's progress; returns each test's duration in seconds (from its start
/// to its `-----]` line).
async fn watch_tests(
    mut lines: tokio::sync::mpsc::UnboundedReceiver<(Instant, String)>,
    queues: Arc<dyn ProgressQueues>,
    queue: crate::queue::QueueName,
    test_request_id: String,
    total: usize,
) -> HashMap<String, f64> {
    let mut started: HashMap<String, Instant> = HashMap::new();
    let mut durations = HashMap::new();
    let mut current = 0;
    while let Some((at, line)) = lines.recv().await {
        let Some((name, mark)) = test_marker(&line) else {
            continue;
        };
        match mark {
            Marker::Start => {
                if started.insert(name.to_owned(), at).is_none() {
                    current += 1;
                    let percent = current * 100 / total.max(current);
                    let message = ProgressMessage::Tests {
                        test_request_id: test_request_id.clone(),
                        message: format!("{percent}%"),
                        current: current.to_string(),
                        total: total.max(current).to_string(),
                    };
                    let _ = queues.publish(&queue, message.to_json()).await;
                }
            }
            Marker::End => {
                if let Some(start) = started.get(name) {
                    durations.insert(name.to_owned(), at.duration_since(*start).as_secs_f64());
                }
            }
        }
    }
    durations
}

#[derive(Debug, PartialEq, Eq)]
enum Marker {
    Start,
    End,
}

/// `autopkgtest [12:00:00]: test smoke: [-----------------------` (start) or
/// `… test smoke: -----------------------]` (end).
fn test_marker(line: &str) -> Option<(&str, Marker)> {
    let rest = line.strip_prefix("autopkgtest [")?;
    let rest = &rest[rest.find("]: test ")? + "]: test ".len()..];
    let (name, tail) = rest.split_once(": ")?;
    if tail.starts_with("[-") {
        Some((name, Marker::Start))
    } else if tail.starts_with('-') && tail.trim_end().ends_with("-]") {
        Some((name, Marker::End))
    } else {
        None
    }
}

/// A test's captured output, at most [`MAX_CAPTURE`] bytes of it (never more is read).
fn capture(path: &Path) -> String {
    use std::io::Read;
    let Ok(file) = std::fs::File::open(path) else {
        return String::new();
    };
    let mut bytes = Vec::new();
    if file
        .take(MAX_CAPTURE as u64 + 1)
        .read_to_end(&mut bytes)
        .is_err()
    {
        return String::new();
    }
    let cut = bytes.len() > MAX_CAPTURE;
    bytes.truncate(MAX_CAPTURE);
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if cut {
        text.push_str("\n[… cut: the whole output is in the log]\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_starts_and_ends_are_read_from_autopkgtest_lines() {
        assert_eq!(
            test_marker("autopkgtest [16:40:01]: test smoke: [-----------------------"),
            Some(("smoke", Marker::Start))
        );
        assert_eq!(
            test_marker("autopkgtest [16:40:02]: test smoke: -----------------------]"),
            Some(("smoke", Marker::End))
        );
        assert_eq!(
            test_marker("autopkgtest [16:40:02]: test smoke:  - - - - - - - - - - results - - - - - - - - - -"),
            None
        );
        assert_eq!(test_marker("smoke                PASS"), None);
        assert_eq!(
            test_marker("autopkgtest [16:40:00]: testbed dpkg architecture: amd64"),
            None
        );
    }
}
