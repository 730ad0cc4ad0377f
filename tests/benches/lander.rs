//! 1,000 tickets through the lander at once, with instant in-memory workers and archives:
//! the lander itself, the SQLite ticket store, the request store and the PPA pool are the
//! real ones. Beside it, in the same run, the same worker calls and archive copies made
//! directly, without a lander (the baseline).
//!
//! Run: `cargo bench -p ubuntu-ci-tests --bench lander` (UBUNTU_CI_BENCH_TICKETS sets the
//! number of tickets, default 1000).
//! Targets: under 10 s in all on 2 cores, under 2 ms of CPU per ticket, under 100 KiB of
//! memory per ticket in flight.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use ubuntu_ci_core::archive::{ArchiveService, PublishReport, PublishedPackage};
use ubuntu_ci_core::builder::{BuildSource, SourceBuilder};
use ubuntu_ci_core::config::{Config, Services};
use ubuntu_ci_core::image::{BaseImage, Bootstrap, BuildImage, ImageBuilder, ImageType};
use ubuntu_ci_core::lander::{ExecuteRequest, Lander, LanderOptions, RequestState};
use ubuntu_ci_core::model::NewTicket;
use ubuntu_ci_core::ppa::PpaName;
use ubuntu_ci_core::queue::{Done, ProgressMessage, ProgressQueues, QueueName};
use ubuntu_ci_core::runner::{PackageNames, TestImage, TestRunner};
use ubuntu_ci_core::Result;
use ubuntu_ci_tests::build_example_package;
use ubuntu_ci_tests::workers::stage_upload;

/// Archives as a map: what the lander reads and copies, nothing on disk.
#[derive(Debug, Default)]
struct MemoryArchives {
    packages: Mutex<HashMap<String, Vec<PublishedPackage>>>,
}

impl MemoryArchives {
    fn add(&self, ppa: &str, package: PublishedPackage) {
        self.packages
            .lock()
            .unwrap()
            .entry(ppa.to_owned())
            .or_default()
            .push(package);
    }

    fn report(ppa: &PpaName, published: Vec<PublishedPackage>) -> PublishReport {
        PublishReport {
            ppa: ppa.clone(),
            series: "bookworm".into(),
            published,
            unchanged: Vec::new(),
            removed: Vec::new(),
        }
    }
}

#[async_trait]
impl ArchiveService for MemoryArchives {
    async fn publish_files(
        &self,
        ppa: &PpaName,
        _: Option<&str>,
        _: &[PathBuf],
    ) -> Result<PublishReport> {
        Ok(MemoryArchives::report(ppa, Vec::new()))
    }

    async fn packages(&self, ppa: &PpaName, _: Option<&str>) -> Result<Vec<PublishedPackage>> {
        let packages = self.packages.lock().unwrap();
        Ok(packages.get(&ppa.to_string()).cloned().unwrap_or_default())
    }

    async fn remove_package(
        &self,
        ppa: &PpaName,
        _: Option<&str>,
        name: &str,
        _: Option<&str>,
    ) -> Result<PublishReport> {
        if let Some(list) = self.packages.lock().unwrap().get_mut(&ppa.to_string()) {
            list.retain(|p| p.name != name);
        }
        Ok(MemoryArchives::report(ppa, Vec::new()))
    }

    async fn copy_package(
        &self,
        from: &PpaName,
        to: &PpaName,
        _: Option<&str>,
        name: &str,
        _: Option<&str>,
    ) -> Result<PublishReport> {
        let copied: Vec<PublishedPackage> = self
            .packages
            .lock()
            .unwrap()
            .get(&from.to_string())
            .map(|list| list.iter().filter(|p| p.name == name).cloned().collect())
            .unwrap_or_default();
        for package in &copied {
            self.add(&to.to_string(), package.clone());
        }
        Ok(MemoryArchives::report(to, copied))
    }

    async fn prepare(&self, _: &PpaName, _: Option<&str>) -> Result<()> {
        Ok(())
    }

    async fn signing_key(&self, _: &PpaName) -> Result<String> {
        Ok(String::new())
    }

    fn location(&self, ppa: &PpaName) -> String {
        format!("memory://{ppa}")
    }
}

/// Instant workers: a build "publishes" the source's one binary into the memory archive;
/// images and test runs answer at once.
#[derive(Debug)]
struct InstantWorkers {
    queues: Arc<dyn ProgressQueues>,
    archives: Arc<MemoryArchives>,
    calls: AtomicU64,
}

impl InstantWorkers {
    async fn done(&self, queue: &str, done: Done) -> Result<Done> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let queue = QueueName::new(queue)?;
        self.queues
            .publish(&queue, ProgressMessage::Done(done.clone()).to_json())
            .await?;
        Ok(done)
    }

    fn image() -> Done {
        let mut results = serde_json::Map::new();
        results.insert(
            "url_list".into(),
            vec!["file:///images/bench.tar.zst".to_owned()].into(),
        );
        Done::completed(results)
    }
}

#[async_trait]
impl SourceBuilder for InstantWorkers {
    async fn build_source(&self, request: BuildSource, _: CancellationToken) -> Result<Done> {
        for architecture in ["source", "all"] {
            self.archives.add(
                &request.ppa,
                PublishedPackage {
                    name: "hello-ci".into(),
                    version: "1.0-1".into(),
                    architecture: architecture.into(),
                },
            );
        }
        self.done(
            &request.progress_queue,
            Done::completed(serde_json::Map::new()),
        )
        .await
    }
}

#[async_trait]
impl ImageBuilder for InstantWorkers {
    async fn bootstrap(&self, request: Bootstrap, _: CancellationToken) -> Result<Done> {
        self.done(&request.progress_queue, InstantWorkers::image())
            .await
    }

    async fn build_image(&self, request: BuildImage, _: CancellationToken) -> Result<Done> {
        self.done(&request.progress_queue, InstantWorkers::image())
            .await
    }
}

#[async_trait]
impl TestRunner for InstantWorkers {
    async fn test_image(&self, request: TestImage, _: CancellationToken) -> Result<Done> {
        let mut results = serde_json::Map::new();
        results.insert("test_request_id".into(), request.test_request_id.into());
        results.insert("test_result".into(), "PASSED".into());
        results.insert("artifacts".into(), serde_json::Value::Array(Vec::new()));
        let queue = request.progress_queue.unwrap_or_default();
        self.done(&queue, Done::completed(results)).await
    }
}

/// This process's CPU time so far (user and system).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 (11 and 12 after the command name), in ticks
    // of 1/100 s.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// This process's resident memory, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

struct Figures {
    wall: Duration,
    cpu: Duration,
    peak_rss: u64,
}

/// Runs `work`, sampling the resident memory every 5 ms.
async fn measure<F: std::future::Future<Output = ()>>(work: F) -> Figures {
    let peak = Arc::new(AtomicU64::new(rss()));
    let stop = CancellationToken::new();
    let sampler = {
        let peak = Arc::clone(&peak);
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                peak.fetch_max(rss(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let (cpu, started) = (cpu_time(), Instant::now());
    work.await;
    let figures = Figures {
        wall: started.elapsed(),
        cpu: cpu_time().saturating_sub(cpu),
        peak_rss: peak.load(Ordering::Relaxed).max(rss()),
    };
    stop.cancel();
    let _ = sampler.await;
    figures
}

fn main() {
    let tickets: usize = std::env::var("UBUNTU_CI_BENCH_TICKETS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench(tickets));
}

async fn bench(tickets: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        data_dir: Some(dir.path().join("data")),
        ..Config::default()
    };
    let mut services: Services = config.connect(None).await.expect("services");
    let archives = Arc::new(MemoryArchives::default());
    let workers = Arc::new(InstantWorkers {
        queues: services.queues.clone(),
        archives: Arc::clone(&archives),
        calls: AtomicU64::new(0),
    });
    services.archives = archives.clone();
    services.builder = workers.clone();
    services.images = workers.clone();
    services.tests = workers.clone();
    let packages = build_example_package(dir.path());
    let changes = packages
        .join("hello-ci_1.0-1_source.changes")
        .canonicalize()
        .unwrap_or(packages.clone());
    let changes = if changes.is_file() {
        changes
    } else {
        std::fs::read_dir(&packages)
            .expect("packages")
            .map(|e| e.expect("entry").path())
            .find(|p| p.to_string_lossy().ends_with("_source.changes"))
            .expect("a _source.changes")
    };
    let urls = stage_upload(&*services.store, &changes).await;

    // The baseline: the same calls, straight to the workers and archives.
    let baseline = {
        let workers = Arc::clone(&workers);
        let archives = Arc::clone(&archives);
        measure(async move {
            let mut tasks = Vec::new();
            for n in 0..tickets {
                let workers = Arc::clone(&workers);
                let archives = Arc::clone(&archives);
                tasks.push(tokio::spawn(async move {
                    direct(&workers, &archives, n).await;
                }));
            }
            for task in tasks {
                task.await.expect("baseline task");
            }
        })
        .await
    };

    let mut ids = Vec::new();
    for n in 0..tickets {
        let ticket = services
            .tickets
            .create_ticket(NewTicket {
                owner: "bench@example.com".into(),
                title: format!("bench {n}"),
                description: String::new(),
                bug_id: String::new(),
            })
            .await
            .expect("ticket");
        ids.push(ticket.id);
    }
    let mut options = LanderOptions::new("bookworm").expect("options");
    options.limits.builds = 2;
    options.limits.images = 1;
    options.limits.tests = 2;
    let lander = Lander::new(services.clone(), options);
    let before = rss();
    let completed = Arc::new(AtomicU64::new(0));
    let run = {
        let completed = Arc::clone(&completed);
        measure(async move {
            let mut handles = Vec::new();
            for id in ids {
                let queue = QueueName::fresh(&format!("ticket-{id}")).expect("queue");
                let request = ExecuteRequest {
                    ticket_id: id,
                    source_packages: urls.clone(),
                    binary_packages: Vec::new(),
                    series: None,
                    base_image: Some("file:///images/base.tar.zst".into()),
                    progress_queue: queue.to_string(),
                };
                handles.push(lander.submit(request).await.expect("submit"));
            }
            for handle in handles {
                let outcome = handle.outcome().await.expect("outcome");
                if outcome.state == RequestState::Completed {
                    completed.fetch_add(1, Ordering::Relaxed);
                } else {
                    eprintln!("ticket {}: {:?}", outcome.ticket_id, outcome.reason);
                }
            }
        })
        .await
    };
    let completed = completed.load(Ordering::Relaxed);
    assert_eq!(completed as usize, tickets, "every request completed");

    let per = |d: Duration| d.as_secs_f64() * 1000.0 / tickets as f64;
    let memory = run.peak_rss.saturating_sub(before) as f64 / 1024.0 / tickets as f64;
    println!("{tickets} tickets, all submitted at once, instant workers (2 builds, 1 image, 2 tests at once, 16 PPAs)");
    println!(
        "{:<28} {:>10} {:>14} {:>16}",
        "", "wall (s)", "CPU/ticket (ms)", "memory/ticket"
    );
    println!(
        "{:<28} {:>10.2} {:>14.3} {:>16}",
        "direct calls (baseline)",
        baseline.wall.as_secs_f64(),
        per(baseline.cpu),
        "-"
    );
    println!(
        "{:<28} {:>10.2} {:>14.3} {:>12.1} KiB",
        "through the lander",
        run.wall.as_secs_f64(),
        per(run.cpu),
        memory
    );
    println!(
        "lander / baseline: wall {:.0}x (the baseline is the workers' own cost: the rest is \
         the lander's); targets: < 10 s, < 2 ms CPU, < 100 KiB: {}",
        run.wall.as_secs_f64() / baseline.wall.as_secs_f64().max(1e-3),
        if run.wall < Duration::from_secs(10) && per(run.cpu) < 2.0 && memory < 100.0 {
            "met"
        } else {
            "NOT met"
        }
    );
}

/// One ticket's worker calls and copy, made directly.
async fn direct(workers: &InstantWorkers, archives: &MemoryArchives, n: usize) {
    let queue = |kind: &str| QueueName::fresh(&format!("{kind}-{n}")).expect("queue");
    let ppa: PpaName = format!("ppa:ci-team/ppa_direct_{n}").parse().expect("ppa");
    let archive: PpaName = "ppa:ci-team/ppa_direct_archive".parse().expect("ppa");
    let build = BuildSource {
        source_packages: Vec::new(),
        ppa: ppa.to_string(),
        progress_queue: queue("build").to_string(),
        ticket_id: None,
        series: None,
        architecture: None,
    };
    workers
        .build_source(build, CancellationToken::new())
        .await
        .expect("build");
    let image = BuildImage {
        base_image: BaseImage {
            image_type: ImageType::Rootfs,
            url_list: vec!["file:///images/base.tar.zst".into()],
            series: "bookworm".into(),
        },
        ppa_list: vec![ppa.to_string()],
        package_list: vec!["hello-ci".into()],
        progress_queue: queue("image").to_string(),
        ticket_id: None,
        architecture: None,
    };
    workers
        .build_image(image, CancellationToken::new())
        .await
        .expect("image");
    let test = TestImage {
        test_request_id: n.to_string(),
        image_url: "file:///images/bench.tar.zst".into(),
        package_name: PackageNames::One("hello-ci".into()),
        progress_queue: Some(queue("test").to_string()),
        ticket_id: None,
        source_packages: Vec::new(),
    };
    workers
        .test_image(test, CancellationToken::new())
        .await
        .expect("test");
    archives
        .copy_package(&ppa, &archive, None, "hello-ci", Some("1.0-1"))
        .await
        .expect("copy");
}
