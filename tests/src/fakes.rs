//! Instant in-memory workers for the lander's tests and benchmarks: a source builder that
//! publishes a one-`.deb` build into the PPA (kept in the data store as a real build's
//! are), an image builder and a test runner that answer at once; each counts its calls
//! and can be told to fail, or to hang at a point (for kill tests).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use ubuntu_ci_core::archive::{Archives, Publishable};
use ubuntu_ci_core::builder::fetch::fetch_sources;
use ubuntu_ci_core::builder::{BuildSource, SourceBuilder};
use ubuntu_ci_core::config::Services;
use ubuntu_ci_core::image::{Bootstrap, BuildImage, ImageBuilder};
use ubuntu_ci_core::ppa::PpaName;
use ubuntu_ci_core::queue::{Done, ProgressMessage, ProgressQueues, QueueName};
use ubuntu_ci_core::runner::{TestImage, TestRunner};
use ubuntu_ci_core::store::{Body, ContainerName, ObjectName, ObjectStore};
use ubuntu_ci_core::Result;

use crate::apt::build_deb;

/// A point where a fake stops for good (after printing `HANGING <point>` on standard
/// output), for kill tests: the one named by `UBUNTU_CI_TEST_HANG_AT`, if any.
#[derive(Debug, Default, Clone)]
pub struct Hang(Option<String>);

impl Hang {
    /// The point `UBUNTU_CI_TEST_HANG_AT` names.
    pub fn from_env() -> Hang {
        Hang(std::env::var("UBUNTU_CI_TEST_HANG_AT").ok())
    }

    /// Appends `line` to the file `UBUNTU_CI_TEST_CALL_LOG` names, if any: the calls a
    /// fake completed, across the processes of a kill test.
    pub fn record(&self, line: &str) {
        use std::io::Write;
        if let Some(path) = std::env::var_os("UBUNTU_CI_TEST_CALL_LOG") {
            if let Ok(mut file) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(file, "{line}");
            }
        }
    }

    /// Never returns when `name` is the point.
    pub async fn point(&self, name: &str) {
        if self.0.as_deref() == Some(name) {
            use std::io::Write;
            println!("HANGING {name}");
            let _ = std::io::stdout().flush();
            std::future::pending::<()>().await;
        }
    }
}

/// Sends a phase and `done` on `queue`, as a worker does.
pub async fn finish(
    queues: &dyn ProgressQueues,
    queue: &str,
    phase: &str,
    done: Done,
) -> Result<Done> {
    let queue = QueueName::new(queue)?;
    queues
        .publish(
            &queue,
            ProgressMessage::Phase {
                phase: phase.to_owned(),
                message: format!("fake {phase}"),
            }
            .to_json(),
        )
        .await?;
    queues
        .publish(&queue, ProgressMessage::Done(done.clone()).to_json())
        .await?;
    Ok(done)
}

/// How many calls of a fake are under way, and the most there were at once.
#[derive(Debug, Default)]
pub struct Concurrency {
    pub now: AtomicUsize,
    pub peak: AtomicUsize,
}

impl Concurrency {
    /// Counts a call for as long as the returned guard lives.
    pub fn enter(&self) -> impl Drop + '_ {
        struct Leave<'a>(&'a Concurrency);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.now.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Leave(self)
    }

    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// Publishes the upload's source and one `all` binary of its name into the PPA (the same
/// `.deb` for each source version, kept in the data store as a real build's are), or fails
/// for sources named in `failing`.
#[derive(Debug)]
pub struct InstantBuilder {
    pub store: Arc<dyn ObjectStore>,
    pub archives: Archives,
    pub queues: Arc<dyn ProgressQueues>,
    pub debs: PathBuf,
    pub failing: BTreeSet<String>,
    pub built: Mutex<Vec<String>>,
    pub made: tokio::sync::Mutex<HashMap<String, (PathBuf, String)>>,
    pub calls: Concurrency,
    /// How long each build takes.
    pub pause: std::time::Duration,
    pub hang: Hang,
}

#[async_trait]
impl SourceBuilder for InstantBuilder {
    async fn build_source(&self, request: BuildSource, _: CancellationToken) -> Result<Done> {
        self.hang.point("build-start").await;
        let _call = self.calls.enter();
        tokio::time::sleep(self.pause).await;
        let dir = tempfile::tempdir()?;
        let upload = fetch_sources(&*self.store, &request.source_packages, dir.path()).await?;
        let source = upload.dsc.source.clone();
        self.built.lock().unwrap().push(source.clone());
        if self.failing.contains(&source) {
            let done = Done::failed(format!("{source}: deliberate build failure"));
            return finish(&*self.queues, &request.progress_queue, "build", done).await;
        }
        // One .deb per binary the .dsc names (made once per version, then reused).
        let mut debs = Vec::new();
        let mut urls = Vec::new();
        {
            let mut made = self.made.lock().await;
            for binary in &upload.dsc.binaries {
                let key = format!("{binary}_{}", upload.dsc.version);
                let (deb, url) = if let Some(made) = made.get(&key) {
                    made.clone()
                } else {
                    let control = format!(
                        "Package: {binary}\nSource: {source}\nVersion: {}\nArchitecture: all\n\
                         Maintainer: Tests <tests@example.com>\n\
                         Description: built by a fake in process {}\n",
                        upload.dsc.version,
                        std::process::id()
                    );
                    let deb = build_deb(&self.debs, &control, "xz");
                    let container = ContainerName::new("instant.builds")?;
                    self.store.ensure_container(&container, true).await?;
                    let without_epoch =
                        ubuntu_ci_core::upload::version::DebianVersion::parse(&upload.dsc.version)?
                            .without_epoch();
                    let name = ObjectName::new(format!("{binary}_{without_epoch}_all.deb"))?;
                    self.store
                        .put(&container, &name, Body::File(std::fs::File::open(&deb)?))
                        .await?;
                    let url = self.store.object_url(&container, &name).to_string();
                    made.insert(key, (deb.clone(), url.clone()));
                    (deb, url)
                };
                debs.push(deb);
                urls.push(url);
            }
        }
        let ppa: PpaName = request.ppa.parse()?;
        let mut items = vec![Publishable::Source(Box::new(upload))];
        items.extend(debs.into_iter().map(Publishable::Deb));
        self.archives
            .publish(&ppa, request.series.as_deref(), items)
            .await?;
        let mut results = serde_json::Map::new();
        results.insert("binaries".into(), urls.into());
        let done = Done::completed(results);
        self.hang.point("build-published").await;
        self.hang.record(&format!("built {source}"));
        finish(&*self.queues, &request.progress_queue, "build", done).await
    }
}

/// Records its requests and answers at once with made-up image URLs.
#[derive(Debug, Default)]
pub struct InstantImages {
    pub queues: Option<Arc<dyn ProgressQueues>>,
    pub bootstraps: Mutex<Vec<Bootstrap>>,
    pub builds: Mutex<Vec<BuildImage>>,
    /// The next this many image builds say nothing and do not end until cancelled.
    pub hangs: AtomicU32,
    pub calls: Concurrency,
    pub hang: Hang,
}

#[async_trait]
impl ImageBuilder for InstantImages {
    async fn bootstrap(&self, request: Bootstrap, _: CancellationToken) -> Result<Done> {
        self.hang.point("bootstrap").await;
        self.bootstraps.lock().unwrap().push(request.clone());
        self.made(&request.progress_queue, "bootstrap", "base")
            .await
    }

    async fn build_image(&self, request: BuildImage, cancel: CancellationToken) -> Result<Done> {
        self.hang.point("image").await;
        self.hang.record("image");
        let _call = self.calls.enter();
        self.builds.lock().unwrap().push(request.clone());
        let hang = self
            .hangs
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if hang {
            // Until told to stop, as a real worker ends its processes.
            cancel.cancelled().await;
            let queues = self.queues.as_ref().unwrap();
            let done = Done::failed("the image build was cancelled");
            return finish(&**queues, &request.progress_queue, "install", done).await;
        }
        self.made(&request.progress_queue, "install", "image").await
    }
}

impl InstantImages {
    /// Reports `file:///images/<name>.tar.zst` made.
    async fn made(&self, queue: &str, phase: &str, name: &str) -> Result<Done> {
        let mut results = serde_json::Map::new();
        results.insert(
            "url_list".into(),
            vec![format!("file:///images/{name}.tar.zst")].into(),
        );
        let queues = self.queues.as_ref().unwrap();
        finish(&**queues, queue, phase, Done::completed(results)).await
    }
}

/// Passes every test, but those of sources named in `failing`.
#[derive(Debug)]
pub struct InstantTests {
    pub queues: Arc<dyn ProgressQueues>,
    pub failing: Mutex<BTreeSet<String>>,
    pub runs: Mutex<Vec<TestImage>>,
    pub calls: Concurrency,
    pub hang: Hang,
}

#[async_trait]
impl TestRunner for InstantTests {
    async fn test_image(&self, request: TestImage, _: CancellationToken) -> Result<Done> {
        self.hang.point("test").await;
        let _call = self.calls.enter();
        self.runs.lock().unwrap().push(request.clone());
        let names = request.package_name.names();
        let failing = {
            let failing = self.failing.lock().unwrap();
            names.iter().any(|n| failing.contains(n))
        };
        let mut results = serde_json::Map::new();
        results.insert(
            "test_request_id".into(),
            request.test_request_id.clone().into(),
        );
        results.insert(
            "test_result".into(),
            if failing { "FAILED" } else { "PASSED" }.into(),
        );
        results.insert("artifacts".into(), serde_json::Value::Array(Vec::new()));
        self.hang.point("test-ran").await;
        self.hang.record(&format!("tested {}", names.join(" ")));
        let queue = request.progress_queue.clone().unwrap();
        finish(&*self.queues, &queue, "test", Done::completed(results)).await
    }
}

pub type Fakes = (
    Services,
    Arc<InstantBuilder>,
    Arc<InstantImages>,
    Arc<InstantTests>,
);

/// `services` with instant workers (each build taking `pause`), `.deb`s made in `debs`.
pub fn instant(
    mut services: Services,
    debs: PathBuf,
    failing_builds: &[&str],
    failing_tests: &[&str],
    pause: std::time::Duration,
) -> Fakes {
    let archives = services.archives.local().unwrap().clone();
    std::fs::create_dir_all(&debs).unwrap();
    let builder = Arc::new(InstantBuilder {
        store: services.store.clone(),
        archives,
        queues: services.queues.clone(),
        debs,
        failing: failing_builds.iter().map(|s| (*s).to_owned()).collect(),
        built: Mutex::new(Vec::new()),
        made: tokio::sync::Mutex::new(HashMap::new()),
        calls: Concurrency::default(),
        pause,
        hang: Hang::from_env(),
    });
    services.builder = builder.clone();
    let images = Arc::new(InstantImages {
        queues: Some(services.queues.clone()),
        hang: Hang::from_env(),
        ..InstantImages::default()
    });
    services.images = images.clone();
    let tests = Arc::new(InstantTests {
        queues: services.queues.clone(),
        failing: Mutex::new(failing_tests.iter().map(|s| (*s).to_owned()).collect()),
        runs: Mutex::new(Vec::new()),
        calls: Concurrency::default(),
        hang: Hang::from_env(),
    });
    services.tests = tests.clone();
    (services, builder, images, tests)
}
