//! Real sbuild builds (unshare mode, a bookworm chroot made by mmdebstrap): the example
//! package, a package whose build fails, one with a build-dependency that does not exist,
//! and two sources of one ticket where the second build-depends on the first.
//!
//! The chroot tarball is made once, into `target/test-chroots/`, and shared by the runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use ubuntu_ci_core::archive::Archives;
use ubuntu_ci_core::builder::order::{build_order, BuildNode};
use ubuntu_ci_core::builder::sbuild::{SbuildBuilder, SbuildOptions};
use ubuntu_ci_core::builder::{BuildSource, SourceBuilder};
use ubuntu_ci_core::config::{Config, Services};
use ubuntu_ci_core::model::ArtifactType;
use ubuntu_ci_core::ppa::PpaName;
use ubuntu_ci_core::queue::memory::MemoryQueues;
use ubuntu_ci_core::queue::{
    Done, DoneState, MessageStream, ProgressMessage, ProgressQueues, QueueName,
};
use ubuntu_ci_core::store::ObjectStore;
use ubuntu_ci_core::submit::{CreateTicket, NoProgress};
use ubuntu_ci_core::upload::validate_changes;
use ubuntu_ci_tests::workers::{assert_empty_dir, example_variant, stage_upload, worker_processes};
use ubuntu_ci_tests::{build_example_package, repo_root};

/// One real build test at a time: they are heavy, and the cancel test looks for stray build
/// processes, which another test's build would be.
static BUILDS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Rig {
    dir: tempfile::TempDir,
    work: PathBuf,
    services: Services,
    store: Arc<dyn ObjectStore>,
    archives: Archives,
    queues: Arc<MemoryQueues>,
    builder: SbuildBuilder,
}

async fn rig() -> Rig {
    rig_with(|_| {}).await
}

/// A rig whose builder's options are edited by `edit`.
async fn rig_with(edit: impl FnOnce(&mut SbuildOptions)) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    // A private data dir, as under a home of mode 0700: the builds must not need to reach
    // into it.
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let config = Config {
        data_dir: Some(data.clone()),
        ..Config::default()
    };
    let services = config.connect(None).await.unwrap();
    let archives = services.archives.local().unwrap().clone();
    let queues = Arc::new(MemoryQueues::default());
    let mut options = SbuildOptions::new(&data);
    options.chroot_dir = repo_root().join("target/test-chroots");
    // Builds work in a folder of this test's, so what they leave is theirs to see; the
    // build's user namespace must be able to reach it.
    options.work_dir = dir.path().join("builds");
    std::fs::create_dir_all(&options.work_dir).unwrap();
    for path in [dir.path(), options.work_dir.as_path()] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    edit(&mut options);
    let builder = SbuildBuilder::new(
        services.store.clone(),
        Some(services.tickets.clone()),
        archives.clone(),
        queues.clone(),
        options,
    );
    Rig {
        work: dir.path().join("work"),
        dir,
        store: services.store.clone(),
        services,
        archives,
        queues,
        builder,
    }
}

fn replace_in(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} in {}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// Builds `changes` into `ppa`; returns the final message and every message.
async fn build(rig: &Rig, changes: &Path, ppa: &PpaName) -> (Done, Vec<ProgressMessage>) {
    let urls = stage_upload(&*rig.store, changes).await;
    build_urls(rig, urls, None, ppa).await
}

/// Builds the sources at `urls` (of ticket `ticket`) into `ppa`.
async fn build_urls(
    rig: &Rig,
    urls: Vec<String>,
    ticket: Option<i64>,
    ppa: &PpaName,
) -> (Done, Vec<ProgressMessage>) {
    let queue =
        QueueName::new(format!("bsbuilder-{:08x}-exchange", rand::random::<u32>())).unwrap();
    let request = BuildSource {
        source_packages: urls,
        ppa: ppa.to_string(),
        progress_queue: queue.to_string(),
        ticket_id: ticket,
        series: None,
        architecture: None,
    };
    let done = rig
        .builder
        .build_source(request, CancellationToken::new())
        .await
        .unwrap();
    let messages = rig
        .queues
        .subscribe(&queue, None)
        .await
        .unwrap()
        .map(|m| ProgressMessage::from_json(&m.unwrap().body).unwrap())
        .collect()
        .await;
    (done, messages)
}

#[tokio::test(flavor = "multi_thread")]
async fn real_sbuild_builds() {
    let _one_at_a_time = BUILDS.lock().await;
    let rig = rig().await;
    std::fs::create_dir_all(&rig.work).unwrap();
    let ppa: PpaName = "ppa:ci-team/ppa_build_1".parse().unwrap();

    // The seed's flow: a ticket stores the upload; the builder gets its stored files' URLs
    // and the ticket. The example builds, its log streams, its .deb holds the program, the
    // results are artifacts of the subticket, and the PPA serves the binaries.
    let changes = build_example_package(&rig.work.join("hello"));
    let ticket = CreateTicket::new("dev@example.com", "build hello-ci")
        .with_upload(&changes)
        .run(&rig.services, Arc::new(NoProgress))
        .await
        .unwrap();
    let urls: Vec<String> = ticket
        .artifacts
        .iter()
        .filter(|a| a.artifact_type == ArtifactType::Spu)
        .map(|a| a.reference.clone())
        .collect();
    let (done, messages) = build_urls(&rig, urls, Some(ticket.ticket.id), &ppa).await;
    assert_eq!(done.state, DoneState::Completed, "{:?}", done.reason);
    let detail = rig
        .services
        .tickets
        .get_ticket(ticket.ticket.id)
        .await
        .unwrap();
    let subticket = detail.subtickets[0].resource_uri;
    let built: Vec<(ArtifactType, &str)> = detail
        .artifacts
        .iter()
        .filter(|a| a.subticket == Some(subticket) && a.artifact_type != ArtifactType::Spu)
        .map(|a| (a.artifact_type, a.name.as_str()))
        .collect();
    for expected in [
        (ArtifactType::Binary, "hello-ci_1.0-1_amd64.deb"),
        (ArtifactType::Log, "hello-ci_1.0-1_amd64.buildinfo"),
        (ArtifactType::Log, "hello-ci_1.0-1_amd64.changes"),
    ] {
        assert!(built.contains(&expected), "{expected:?} in {built:?}");
    }
    assert!(
        built
            .iter()
            .any(|(kind, _)| *kind == ArtifactType::BuildLog),
        "{built:?}"
    );
    let binaries = done.results["binaries"].as_array().unwrap();
    assert!(binaries.iter().all(|b| b
        .as_str()
        .unwrap()
        .contains(&format!("ticket.{}.builds/", ticket.ticket.id))));
    let phases: Vec<String> = messages
        .iter()
        .filter_map(|m| match m {
            ProgressMessage::Phase { phase, .. } => Some(phase.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        phases,
        ["fetch", "signature", "chroot", "build", "store", "publish"]
    );
    let log: Vec<&String> = messages
        .iter()
        .filter_map(|m| match m {
            ProgressMessage::Log { log } => Some(log),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        log.iter().any(|l| l.starts_with("Status: successful")),
        "the log streamed"
    );
    let packages = rig.archives.list(&ppa, None).await.unwrap();
    assert!(packages
        .iter()
        .any(|p| p.name == "hello-ci" && p.architecture == "amd64"));
    let deb = rig
        .archives
        .path(&ppa)
        .join("pool/main/h/hello-ci/hello-ci_1.0-1_amd64.deb");
    let listing = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("./usr/bin/hello-ci"), "{listing}");
    assert!(
        listing.contains("./usr/share/man/man1/hello-ci.1.gz"),
        "{listing}"
    );
    assert_empty_dir(&rig.dir.path().join("builds"));

    // A build that fails: FAILED, with the end of the log in the reason and the log kept.
    let failing = example_variant(&rig.work, "failing", |tree| {
        let rules = tree.join("debian/rules");
        let mut text = std::fs::read_to_string(&rules).unwrap();
        text.push_str("\noverride_dh_auto_build:\n\techo 'deliberate build failure'; exit 1\n");
        std::fs::write(rules, text).unwrap();
        replace_in(&tree.join("debian/changelog"), "(1.0-1)", "(1.0-2)");
    });
    let (done, _) = build(&rig, &failing, &ppa).await;
    assert_eq!(done.state, DoneState::Failed);
    let reason = done.reason.unwrap();
    assert!(reason.contains("deliberate build failure"), "{reason}");
    assert!(done.results.contains_key("build_log"));
    assert_empty_dir(&rig.dir.path().join("builds"));

    // A build-dependency that does not exist is named.
    let missing = example_variant(&rig.work, "missing", |tree| {
        replace_in(
            &tree.join("debian/control"),
            "Build-Depends: debhelper-compat (= 13)",
            "Build-Depends: debhelper-compat (= 13), no-such-package-xyz",
        );
        replace_in(&tree.join("debian/changelog"), "(1.0-1)", "(1.0-3)");
    });
    let (done, _) = build(&rig, &missing, &ppa).await;
    assert_eq!(done.state, DoneState::Failed);
    let reason = done.reason.unwrap();
    assert!(
        reason.contains("build-dependency not satisfiable")
            && reason.contains("no-such-package-xyz"),
        "{reason}"
    );

    // Two sources of one ticket: the second build-depends on the first, which is not in
    // Debian; ordered by their build-dependencies, the second finds it in the PPA.
    let user = example_variant(&rig.work, "user", |tree| {
        replace_in(
            &tree.join("debian/control"),
            "Source: hello-ci",
            "Source: hello-ci-user",
        );
        replace_in(
            &tree.join("debian/control"),
            "Package: hello-ci",
            "Package: hello-ci-user",
        );
        replace_in(
            &tree.join("debian/control"),
            "Build-Depends: debhelper-compat (= 13)",
            "Build-Depends: debhelper-compat (= 13), hello-ci",
        );
        replace_in(
            &tree.join("debian/changelog"),
            "hello-ci (1.0-1)",
            "hello-ci-user (1.0-1)",
        );
    });
    let first = build_example_package(&rig.work.join("hello-again"));
    let uploads = [user.clone(), first.clone()];
    let mut nodes = Vec::new();
    for changes in &uploads {
        nodes.push(BuildNode::of(&validate_changes(changes).await.unwrap().dsc));
    }
    let order = build_order(&nodes).unwrap();
    assert_eq!(order, [1, 0], "hello-ci builds before what needs it");
    let second_ppa: PpaName = "ppa:ci-team/ppa_build_2".parse().unwrap();
    for i in order {
        let (done, _) = build(&rig, &uploads[i], &second_ppa).await;
        assert_eq!(done.state, DoneState::Completed, "{:?}", done.reason);
    }
    let names: Vec<String> = rig
        .archives
        .list(&second_ppa, None)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert!(names.contains(&"hello-ci-user".to_owned()), "{names:?}");
    assert_empty_dir(&rig.dir.path().join("builds"));
}

/// The example package with a build step that sleeps for ten minutes (in two processes,
/// one in the background), staged; returns the request of its build into `ppa` and the
/// stream of its queue.
async fn slow_build(rig: &Rig, ppa: &str) -> (BuildSource, MessageStream) {
    std::fs::create_dir_all(&rig.work).unwrap();
    let slow = example_variant(&rig.work, "slow", |tree| {
        let rules = tree.join("debian/rules");
        let mut text = std::fs::read_to_string(&rules).unwrap();
        text.push_str(
            "\noverride_dh_auto_build:\n\techo SLOW-BUILD-STARTED; sleep 600 & sleep 600\n",
        );
        std::fs::write(rules, text).unwrap();
    });
    let queue =
        QueueName::new(format!("bsbuilder-{:08x}-exchange", rand::random::<u32>())).unwrap();
    let request = BuildSource {
        source_packages: stage_upload(&*rig.store, &slow).await,
        ppa: ppa.into(),
        progress_queue: queue.to_string(),
        ticket_id: None,
        series: None,
        architecture: None,
    };
    let messages = rig.queues.subscribe(&queue, None).await.unwrap();
    (request, messages)
}

/// Reads `messages` until the slow build's compile step has started; returns when the
/// `build` phase (sbuild) began, or None when the build ended first.
async fn until_compiling(messages: &mut MessageStream) -> Option<std::time::Instant> {
    let mut sbuild_started = None;
    while let Some(message) = messages.next().await {
        let message = ProgressMessage::from_json(&message.unwrap().body).unwrap();
        match &message {
            ProgressMessage::Phase { phase, .. } if phase == "build" => {
                sbuild_started = Some(std::time::Instant::now());
            }
            ProgressMessage::Log { log } if log.iter().any(|l| l == "SLOW-BUILD-STARTED") => {
                return sbuild_started;
            }
            ProgressMessage::Done(_) => return None,
            _ => {}
        }
    }
    None
}

/// A build cancelled while it compiles ends as FAILED (cancelled) and leaves no process and
/// no folder behind.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_build_leaves_nothing_behind() {
    let _one_at_a_time = BUILDS.lock().await;
    let rig = rig().await;
    let (request, mut messages) = slow_build(&rig, "ppa:ci-team/ppa_build_9").await;
    let cancel = CancellationToken::new();
    let builder = Arc::new(rig.builder);
    let build = {
        let (builder, cancel) = (builder.clone(), cancel.clone());
        tokio::spawn(async move { builder.build_source(request, cancel).await })
    };
    assert!(
        until_compiling(&mut messages).await.is_some(),
        "the build reached its compile step"
    );
    assert!(
        !build_processes(rig.dir.path()).is_empty(),
        "the build is running"
    );
    cancel.cancel();
    let done = tokio::time::timeout(std::time::Duration::from_secs(120), build)
        .await
        .expect("the cancel ends the build in time")
        .unwrap()
        .unwrap();
    assert_eq!(done.state, DoneState::Failed);
    assert!(done.reason.unwrap().contains("cancelled"));
    assert!(
        build_processes(rig.dir.path()).is_empty(),
        "left running: {:?}",
        build_processes(rig.dir.path())
    );
    assert_empty_dir(&rig.dir.path().join("builds"));
}

/// A build running past the configured time limit is ended with its whole process tree: it
/// ends as FAILED (time limit) with its log kept, and leaves no process and no folder.
#[tokio::test(flavor = "multi_thread")]
async fn a_build_past_its_time_limit_is_ended() {
    let _one_at_a_time = BUILDS.lock().await;
    // Long enough to reach the compile step (unpacking the chroot and installing the
    // build-dependencies take about 40 s here), far shorter than the ten-minute sleep.
    let limit = std::time::Duration::from_secs(150);
    let rig = rig_with(|options| options.timeout = limit).await;
    let (request, mut messages) = slow_build(&rig, "ppa:ci-team/ppa_build_10").await;
    let builder = Arc::new(rig.builder);
    let build = {
        let builder = builder.clone();
        tokio::spawn(async move {
            builder
                .build_source(request, CancellationToken::new())
                .await
        })
    };
    let started = until_compiling(&mut messages)
        .await
        .expect("the build reached its compile step");
    let done = tokio::time::timeout(limit + std::time::Duration::from_secs(120), build)
        .await
        .expect("the time limit ends the build")
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(done.state, DoneState::Failed);
    let reason = done.reason.clone().unwrap();
    assert!(reason.contains("time limit"), "{reason}");
    assert!(
        took < limit + std::time::Duration::from_secs(60),
        "took {took:?}"
    );
    let log = done.results["build_log"].as_str().unwrap();
    assert!(log.contains(".builds/"), "{log}");
    assert!(
        build_processes(rig.dir.path()).is_empty(),
        "left running: {:?}",
        build_processes(rig.dir.path())
    );
    assert_empty_dir(&rig.dir.path().join("builds"));
}

/// Processes of this test's builds (in `scope`): sbuild, or anything in their user
/// namespaces.
fn build_processes(scope: &std::path::Path) -> Vec<String> {
    worker_processes(scope, &["/usr/bin/sbuild"])
}

/// A builder whose archives require signatures refuses an unsigned upload, or one signed by
/// a key outside the keyring, before anything is built or published, whatever path the
/// upload came by (here: straight from the store, as the lander hands it over).
#[tokio::test(flavor = "multi_thread")]
async fn the_signature_policy_is_applied_where_the_build_happens() {
    use ubuntu_ci_core::upload::signature::{Keyring, SignaturePolicy, UploadPolicy};
    let rig = rig().await;
    let allowed = ubuntu_ci_tests::gpg::TestGpg::new("Allowed Uploader <allowed@example.com>");
    let stranger = ubuntu_ci_tests::gpg::TestGpg::new("Stranger <stranger@example.com>");
    let keyring = rig.dir.path().join("uploaders.gpg");
    allowed.export(&keyring);
    let policy = UploadPolicy {
        policy: SignaturePolicy::Require,
        keyring: Some(Keyring::load_all(&[keyring]).unwrap()),
    };
    let mut options = SbuildOptions::new(&rig.dir.path().join("data"));
    options.chroot_dir = rig.dir.path().join("no-chroots-needed");
    options.work_dir = rig.dir.path().join("builds");
    let strict = SbuildBuilder::new(
        rig.services.store.clone(),
        Some(rig.services.tickets.clone()),
        rig.archives.clone().with_upload_policy(policy),
        rig.queues.clone(),
        options,
    );
    let unsigned = build_example_package(&rig.work.join("unsigned"));
    let foreign = build_example_package(&rig.work.join("foreign"));
    stranger.sign_upload(&foreign);
    let ppa: PpaName = "ppa:ci-team/ppa_build_7".parse().unwrap();
    for (changes, says) in [
        (&unsigned, "not signed"),
        (&foreign, "not in the keyring of allowed uploaders"),
    ] {
        let urls = stage_upload(&*rig.store, changes).await;
        let queue = QueueName::fresh("bsbuilder").unwrap();
        let done = strict
            .build_source(
                BuildSource {
                    source_packages: urls,
                    ppa: ppa.to_string(),
                    progress_queue: queue.to_string(),
                    ticket_id: None,
                    series: None,
                    architecture: None,
                },
                CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(done.state, DoneState::Failed);
        let reason = done.reason.clone().unwrap();
        assert!(
            reason.contains("refused by the signature policy"),
            "{reason}"
        );
        assert!(reason.contains(says), "{reason}");
        assert_eq!(
            done.error_kind(),
            Some(ubuntu_ci_core::ErrorKind::Unauthorized)
        );
    }
    // Nothing built, nothing published, no chroot made.
    assert!(!rig.dir.path().join("no-chroots-needed").exists());
    assert!(rig
        .archives
        .list(&ppa, None)
        .await
        .unwrap_or_default()
        .is_empty());
    assert_empty_dir(&rig.dir.path().join("builds"));
}
