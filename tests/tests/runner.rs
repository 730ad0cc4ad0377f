//! Real DEP-8 runs (autopkgtest's unshare server) in a real image: the example package's
//! tests found through the PPA and passing; a source with a failing, a skippable, a
//! flaky, a machine-only test and a test command; a source with no tests; all tests
//! skipped; bad requests; a cancel.
//!
//! The example package is built once by sbuild (chroot cached in `target/test-chroots/`)
//! into a PPA, and an image made with it; variants of its source (same name and version,
//! other tests) are given to the runner as source uploads.

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use ubuntu_ci_core::builder::sbuild::{SbuildBuilder, SbuildOptions};
use ubuntu_ci_core::builder::{BuildSource, SourceBuilder};
use ubuntu_ci_core::config::{Config, Services};
use ubuntu_ci_core::image::rootfs::{ImageOptions, RootfsImageBuilder};
use ubuntu_ci_core::image::{BaseImage, Bootstrap, BuildImage, ImageBuilder, ImageType};
use ubuntu_ci_core::model::{ArtifactFilter, ArtifactType, NewTicket, PageRequest, Uri};
use ubuntu_ci_core::queue::memory::MemoryQueues;
use ubuntu_ci_core::queue::{Done, DoneState, ProgressMessage, ProgressQueues, QueueName};
use ubuntu_ci_core::runner::autopkgtest::{AutopkgtestRunner, RunnerOptions};
use ubuntu_ci_core::runner::{PackageNames, TestImage, TestRunner};
use ubuntu_ci_core::store::ObjectStore;
use ubuntu_ci_tests::repo_root;
use ubuntu_ci_tests::workers::{assert_empty_dir, example_variant, stage_upload, worker_processes};

struct Rig {
    dir: tempfile::TempDir,
    services: Services,
    store: Arc<dyn ObjectStore>,
    queues: Arc<MemoryQueues>,
    runner: Arc<AutopkgtestRunner>,
    image: String,
}

const PPA: &str = "ppa:ci-team/ppa_build_1";

/// A data dir with the example package built into [`PPA`] and an image with it installed.
async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let work = dir.path().join("work");
    for path in [&data, &work] {
        std::fs::create_dir_all(path).unwrap();
    }
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        for path in [dir.path(), work.as_path()] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let config = Config {
        data_dir: Some(data.clone()),
        ..Config::default()
    };
    let services = config.connect(None).await.unwrap();
    let archives = services.archives.local().unwrap().clone();
    let queues = Arc::new(MemoryQueues::default());
    let store = services.store.clone();

    let mut build_options = SbuildOptions::new(&data);
    build_options.chroot_dir = repo_root().join("target/test-chroots");
    build_options.work_dir = work.clone();
    let builder = SbuildBuilder::new(
        store.clone(),
        None,
        archives.clone(),
        queues.clone(),
        build_options,
    );
    let example = example_variant(dir.path(), "example", |_| {});
    let built = builder
        .build_source(
            BuildSource {
                source_packages: stage_upload(&*store, &example).await,
                ppa: PPA.into(),
                progress_queue: QueueName::fresh("bsbuilder").unwrap().to_string(),
                ticket_id: None,
                series: None,
                architecture: None,
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(built.state, DoneState::Completed, "{:?}", built.reason);

    let mut image_options = ImageOptions::new(&data);
    image_options.work_dir = work.clone();
    let images = RootfsImageBuilder::new(
        store.clone(),
        None,
        archives.clone(),
        queues.clone(),
        image_options,
    );
    let base = images
        .bootstrap(
            Bootstrap {
                series: "bookworm".into(),
                image_type: ImageType::Rootfs,
                architecture: None,
                refresh: false,
                progress_queue: QueueName::fresh("image-builder").unwrap().to_string(),
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(base.state, DoneState::Completed, "{:?}", base.reason);
    let image = images
        .build_image(
            BuildImage {
                base_image: BaseImage {
                    image_type: ImageType::Rootfs,
                    url_list: vec![url_of(&base)],
                    series: "bookworm".into(),
                },
                ppa_list: vec![PPA.into()],
                package_list: vec!["hello-ci".into()],
                progress_queue: QueueName::fresh("image-builder").unwrap().to_string(),
                ticket_id: None,
                architecture: None,
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(image.state, DoneState::Completed, "{:?}", image.reason);

    let runner = Arc::new(AutopkgtestRunner::new(
        store.clone(),
        Some(services.tickets.clone()),
        archives,
        queues.clone(),
        RunnerOptions {
            work_dir: work,
            ..RunnerOptions::default()
        },
    ));
    Rig {
        dir,
        services,
        store,
        queues,
        runner,
        image: url_of(&image),
    }
}

fn url_of(done: &Done) -> String {
    done.results["url_list"][0].as_str().unwrap().to_owned()
}

/// A variant of the example whose `debian/tests` holds `control` and executable `scripts`.
fn with_tests(rig: &Rig, name: &str, control: Option<&str>, scripts: &[(&str, &str)]) -> PathBuf {
    example_variant(rig.dir.path(), name, |tree| {
        let tests = tree.join("debian/tests");
        std::fs::remove_dir_all(&tests).unwrap();
        if let Some(control) = control {
            std::fs::create_dir_all(&tests).unwrap();
            std::fs::write(tests.join("control"), control).unwrap();
            for (script, body) in scripts {
                let path = tests.join(script);
                std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
    })
}

fn request(rig: &Rig, id: &str, source: Vec<String>, ticket: Option<i64>) -> TestImage {
    TestImage {
        test_request_id: id.into(),
        image_url: rig.image.clone(),
        package_name: PackageNames::One("hello-ci".into()),
        progress_queue: None,
        ticket_id: ticket,
        source_packages: source,
    }
}

async fn run(rig: &Rig, request: TestImage) -> (Done, Vec<ProgressMessage>) {
    let queue = request.queue().unwrap();
    let done = rig
        .runner
        .test_image(request, CancellationToken::new())
        .await
        .unwrap();
    (done, messages(rig, &queue).await)
}

async fn messages(rig: &Rig, queue: &QueueName) -> Vec<ProgressMessage> {
    rig.queues
        .subscribe(queue, None)
        .await
        .unwrap()
        .map(|m| ProgressMessage::from_json(&m.unwrap().body).unwrap())
        .collect()
        .await
}

fn local(url: &str) -> PathBuf {
    url::Url::parse(url).unwrap().to_file_path().unwrap()
}

/// The JUnit report among a completion's artifacts.
fn junit_of(done: &Done) -> String {
    let url = done.results["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .find(|a| a.ends_with(".xml"))
        .expect("a JUnit report");
    std::fs::read_to_string(local(url)).unwrap()
}

/// The `<testcase …>…</testcase>` element of `name`.
fn testcase<'a>(junit: &'a str, name: &str) -> &'a str {
    let start = junit
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("{name} in {junit}"));
    let end = start + junit[start..].find("</testcase>").unwrap();
    &junit[start..end]
}

#[tokio::test(flavor = "multi_thread")]
async fn real_dep8_runs() {
    let rig = rig().await;
    let ticket = rig
        .services
        .tickets
        .create_ticket(NewTicket {
            owner: "dev@example.com".into(),
            title: "tests".into(),
            description: String::new(),
            bug_id: String::new(),
        })
        .await
        .unwrap();

    // The example's own tests, their source found in the image's PPA.
    let (done, messages) = run(&rig, request(&rig, "1", vec![], Some(ticket.id))).await;
    assert_eq!(done.state, DoneState::Completed, "{:?}", done.reason);
    assert_eq!(done.results["test_request_id"], "1");
    assert_eq!(done.results["status"], "SUCCESS");
    assert_eq!(done.results["test_result"], "PASSED");
    let progress: Vec<serde_json::Value> = messages
        .iter()
        .filter(|m| matches!(m, ProgressMessage::Tests { .. }))
        .map(ProgressMessage::to_json)
        .collect();
    assert_eq!(
        progress,
        [
            serde_json::json!({"test_request_id": "1", "message": "50%", "current": "1", "total": "2"}),
            serde_json::json!({"test_request_id": "1", "message": "100%", "current": "2", "total": "2"}),
        ]
    );
    let junit = junit_of(&done);
    assert!(junit.contains("tests=\"2\" failures=\"0\""), "{junit}");
    assert!(testcase(&junit, "greeting").contains("ok: hello-ci --name Ada"));
    assert!(testcase(&junit, "smoke").contains("hello-ci 1.0"));
    let artifacts = rig
        .services
        .tickets
        .list_artifacts(
            ArtifactFilter {
                ticket: Some(Uri::new(ticket.id)),
                subticket: None,
                artifact_type: None,
            },
            PageRequest {
                limit: 100,
                offset: 0,
            },
        )
        .await
        .unwrap()
        .objects;
    let mut kinds: Vec<ArtifactType> = artifacts.iter().map(|a| a.artifact_type).collect();
    kinds.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(
        kinds,
        [
            ArtifactType::TestLog,
            ArtifactType::TestResult,
            ArtifactType::TestResult
        ]
    );
    assert!(artifacts.iter().all(|a| a
        .reference
        .contains(&format!("/ticket.{}.test-runner/", ticket.id))));

    // Every verdict: a pass, a failure, exit 77 of a skippable test, a restriction the
    // test bed cannot meet, a flaky failure, and a test command.
    let mixed = with_tests(
        &rig,
        "mixed",
        Some(
            "Tests: passes\nDepends: @\n\n\
             Tests: fails\nDepends: @\n\n\
             Tests: skipme\nDepends: @\nRestrictions: skippable\n\n\
             Tests: machine\nDepends: @\nRestrictions: isolation-machine\n\n\
             Tests: wobbly\nDepends: @\nRestrictions: flaky\n\n\
             Test-Command: hello-ci --name Command\nDepends: @\n",
        ),
        &[
            ("passes", "hello-ci"),
            ("fails", "echo about to fail >&2; exit 1"),
            ("skipme", "echo not here; exit 77"),
            ("machine", "exit 0"),
            ("wobbly", "exit 1"),
        ],
    );
    let source = stage_upload(&*rig.store, &mixed).await;
    let (done, messages) = run(&rig, request(&rig, "2", source, None)).await;
    assert_eq!(done.state, DoneState::Completed, "{:?}", done.reason);
    assert_eq!(done.results["status"], "FAILURE");
    assert_eq!(done.results["test_result"], "FAILED");
    assert_eq!(
        done.results["tests"],
        serde_json::json!({"total": 6, "passed": 2, "failed": 1, "skipped": 2, "flaky": 1})
    );
    let junit = junit_of(&done);
    assert!(
        junit.contains("tests=\"6\" failures=\"1\" errors=\"0\" skipped=\"2\""),
        "{junit}"
    );
    assert!(testcase(&junit, "fails").contains("<failure message="));
    assert!(testcase(&junit, "fails").contains("about to fail"));
    assert!(testcase(&junit, "skipme").contains("<skipped"));
    assert!(testcase(&junit, "machine").contains("<skipped"));
    assert!(!testcase(&junit, "wobbly").contains("<failure"));
    assert!(testcase(&junit, "wobbly").contains("flaky test failed"));
    assert!(testcase(&junit, "command1").contains("Hello, Command"));
    let last = messages.iter().rev().find_map(|m| match m {
        ProgressMessage::Tests { current, total, .. } => Some((current.clone(), total.clone())),
        _ => None,
    });
    assert_eq!(
        last,
        Some(("5".to_owned(), "6".to_owned())),
        "isolation-machine never starts"
    );

    // Every test skipped: SKIPPED, not a pass.
    let skipped = with_tests(
        &rig,
        "skipped",
        Some("Tests: skipme\nDepends: @\nRestrictions: skippable\n"),
        &[("skipme", "exit 77")],
    );
    let source = stage_upload(&*rig.store, &skipped).await;
    let (done, _) = run(&rig, request(&rig, "3", source, None)).await;
    assert_eq!(done.results["test_result"], "SKIPPED", "{done:?}");

    // No tests at all: a clear result, not a pass.
    let none = with_tests(&rig, "none", None, &[]);
    let source = stage_upload(&*rig.store, &none).await;
    let (done, _) = run(&rig, request(&rig, "4", source, None)).await;
    assert_eq!(done.state, DoneState::Completed);
    assert_eq!(done.results["test_result"], "NO_TESTS");
    assert!(done.results["message"]
        .as_str()
        .unwrap()
        .contains("no tests to run"));

    // A test dependency that cannot be installed: the package is erroneous, which is an
    // infrastructure error (retryable), not a test failure.
    let broken = with_tests(
        &rig,
        "broken",
        Some("Tests: needs\nDepends: @, no-such-package-xyz\n"),
        &[("needs", "exit 0")],
    );
    let source = stage_upload(&*rig.store, &broken).await;
    let (done, _) = run(&rig, request(&rig, "11", source, None)).await;
    assert_eq!(done.state, DoneState::Failed, "{done:?}");
    assert_eq!(done.results["retryable"], true);
    assert_eq!(done.results["test_request_id"], "11");
    let reason = done.reason.unwrap();
    assert!(reason.contains("erroneous package"), "{reason}");
    assert!(
        done.results["artifacts"][0]
            .as_str()
            .unwrap()
            .ends_with(".log"),
        "the log is kept"
    );

    // Bad requests: clear reasons, nothing started.
    let store_url = |name: &str| {
        url::Url::from_file_path(rig.dir.path().join("data/store/images").join(name))
            .unwrap()
            .to_string()
    };
    for (mut bad, expected) in [
        (
            request(&rig, "5", vec![], None),
            "not in the configured data store",
        ),
        (
            request(&rig, "6", vec![], None),
            "not found in the data store",
        ),
        (request(&rig, "7", vec![], None), "no source for hello"),
        (
            request(&rig, "8", vec![], None),
            "not a binary package name",
        ),
    ] {
        match bad.test_request_id.as_str() {
            "5" => bad.image_url = "http://glance_url/image-1.iso".into(),
            "6" => bad.image_url = store_url("missing.tar.zst"),
            "7" => bad.package_name = PackageNames::One("hello".into()),
            _ => bad.package_name = PackageNames::Many(vec!["-o".into()]),
        }
        let (done, _) = run(&rig, bad).await;
        assert_eq!(done.state, DoneState::Failed);
        let reason = done.reason.unwrap();
        assert!(
            reason.contains(expected),
            "{reason:?} should say {expected:?}"
        );
    }
    let mut bad_id = request(&rig, "9", vec![], None);
    bad_id.test_request_id = "../9".into();
    assert!(rig
        .runner
        .test_image(bad_id, CancellationToken::new())
        .await
        .is_err());

    // A cancel while a test runs ends everything.
    let slow = with_tests(
        &rig,
        "slow",
        Some("Tests: slow\nDepends: @\n"),
        &[("slow", "echo SLOW-TEST-STARTED; sleep 600 & sleep 600")],
    );
    let source = stage_upload(&*rig.store, &slow).await;
    let slow_request = request(&rig, "10", source, None);
    let queue = slow_request.queue().unwrap();
    let mut progress = rig.queues.subscribe(&queue, None).await.unwrap();
    let cancel = CancellationToken::new();
    let task = {
        let (runner, cancel) = (rig.runner.clone(), cancel.clone());
        tokio::spawn(async move { runner.test_image(slow_request, cancel).await })
    };
    'wait: while let Some(message) = progress.next().await {
        if let ProgressMessage::Log { log } =
            ProgressMessage::from_json(&message.unwrap().body).unwrap()
        {
            if log.iter().any(|l| l == "SLOW-TEST-STARTED") {
                break 'wait;
            }
        }
    }
    cancel.cancel();
    let done = tokio::time::timeout(std::time::Duration::from_secs(60), task)
        .await
        .expect("the cancel ends the run in time")
        .unwrap()
        .unwrap();
    assert_eq!(done.state, DoneState::Failed);
    assert!(done.reason.unwrap().contains("cancelled"));
    assert!(
        worker_processes(rig.dir.path(), &["autopkgtest", "mmdebstrap"]).is_empty(),
        "left: {:?}",
        worker_processes(rig.dir.path(), &["autopkgtest", "mmdebstrap"])
    );
    assert_empty_dir(&rig.dir.path().join("work"));
}
