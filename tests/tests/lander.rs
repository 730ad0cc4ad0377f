//! The lander on the embedded services (tickets, store, PPA pool, archives, queues: all
//! real) with instant in-memory workers: a request that completes, one whose tests fail,
//! one whose build fails, bad requests. Each checks the ticket's transitions, the PPA's
//! release and what reached the archive PPA.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use ubuntu_ci_core::archive::Archives;
use ubuntu_ci_core::config::{Config, Services};
use ubuntu_ci_core::lander::{ExecuteRequest, Lander, LanderOptions, RequestState};
use ubuntu_ci_core::model::{NewTicket, StepStatus, WorkflowStep};
use ubuntu_ci_core::ppa::{PpaName, PpaState};
use ubuntu_ci_core::queue::{ProgressMessage, QueueName};
use ubuntu_ci_tests::fakes::{instant, InstantBuilder, InstantImages, InstantTests};
use ubuntu_ci_tests::transitions;
use ubuntu_ci_tests::workers::{example_variant, stage_upload};

struct Rig {
    _dir: tempfile::TempDir,
    work: PathBuf,
    services: Services,
    archives: Archives,
    builder: Arc<InstantBuilder>,
    images: Arc<InstantImages>,
    tests: Arc<InstantTests>,
    lander: Lander,
}

async fn rig(failing_builds: &[&str], failing_tests: &[&str]) -> Rig {
    let options = LanderOptions::new("bookworm").unwrap();
    rig_with(
        failing_builds,
        failing_tests,
        options,
        std::time::Duration::ZERO,
    )
    .await
}

/// As [`rig`], the lander with `options`, each build taking `pause`.
async fn rig_with(
    failing_builds: &[&str],
    failing_tests: &[&str],
    options: LanderOptions,
    pause: std::time::Duration,
) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: Some(dir.path().join("data")),
        ..Config::default()
    };
    let services = config.connect(None).await.unwrap();
    let debs = dir.path().join("debs");
    let (services, builder, images, tests) =
        instant(services, debs, failing_builds, failing_tests, pause);
    let archives = services.archives.local().unwrap().clone();
    let lander = Lander::new(services.clone(), options);
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    Rig {
        _dir: dir,
        work,
        services,
        archives,
        builder,
        images,
        tests,
        lander,
    }
}

/// The example renamed to `name` (source and binary), as an upload.
fn upload_named(work: &Path, name: &str) -> PathBuf {
    example_variant(work, name, |tree| {
        for file in ["debian/control", "debian/changelog"] {
            let path = tree.join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, text.replace("hello-ci", name)).unwrap();
        }
    })
}

async fn ticket(services: &Services) -> i64 {
    services
        .tickets
        .create_ticket(NewTicket {
            owner: "dev@example.com".into(),
            title: "lander".into(),
            description: String::new(),
            bug_id: String::new(),
        })
        .await
        .unwrap()
        .id
}

async fn steps(services: &Services, ticket: i64) -> Vec<(WorkflowStep, StepStatus)> {
    transitions(services, ticket)
        .await
        .into_iter()
        .map(|t| (t.step, t.status))
        .collect()
}

/// The steps each transition names, each once, in order.
fn step_order(transitions: &[(WorkflowStep, StepStatus)]) -> Vec<WorkflowStep> {
    let mut order = Vec::new();
    for (step, _) in transitions {
        if order.last() != Some(step) {
            order.push(*step);
        }
    }
    order
}

async fn assert_released(services: &Services, ticket: i64) {
    let held: Vec<_> = services
        .ppas
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.ticket == Some(ticket) && p.state != PpaState::Free)
        .collect();
    assert!(held.is_empty(), "the PPA is released: {held:?}");
}

/// A ticket for the example as `hello-ci`, and its request.
async fn hello_request(rig: &Rig) -> (i64, ExecuteRequest) {
    let upload = upload_named(&rig.work, "hello-ci");
    let urls = stage_upload(&*rig.services.store, &upload).await;
    let id = ticket(&rig.services).await;
    let queue = QueueName::fresh("ticket").unwrap();
    (id, request(id, urls, &queue))
}

fn request(ticket: i64, urls: Vec<String>, queue: &QueueName) -> ExecuteRequest {
    ExecuteRequest {
        ticket_id: ticket,
        source_packages: urls,
        binary_packages: Vec::new(),
        series: None,
        base_image: None,
        progress_queue: queue.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_goes_through_every_step_and_lands_in_the_archive() {
    let rig = rig(&[], &[]).await;
    // Two uploads, the second given first: the order comes from their build-dependencies
    // (none here), each built, tested and published.
    let first = upload_named(&rig.work, "hello-ci");
    let second = upload_named(&rig.work, "hello-two");
    let mut urls = stage_upload(&*rig.services.store, &second).await;
    urls.extend(stage_upload(&*rig.services.store, &first).await);
    let id = ticket(&rig.services).await;
    let queue = QueueName::fresh("ticket").unwrap();
    let mut progress = rig.services.queues.subscribe(&queue, None).await.unwrap();

    let outcome = rig
        .lander
        .execute(request(id, urls, &queue), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        outcome.state,
        RequestState::Completed,
        "{:?}",
        outcome.reason
    );
    assert_eq!(outcome.step, WorkflowStep::Complete);
    assert_eq!(outcome.builds.len(), 2);
    assert_eq!(outcome.tests.len(), 2);
    assert!(outcome.tests.iter().all(|t| t.test_result == "PASSED"));
    let mut published = outcome.published.clone();
    published.sort();
    assert_eq!(published, ["hello-ci 1.0-1", "hello-two 1.0-1"]);

    let transitions = steps(&rig.services, id).await;
    assert_eq!(
        step_order(&transitions),
        [
            WorkflowStep::PpaAssignment,
            WorkflowStep::SourceBuild,
            WorkflowStep::ImageBuild,
            WorkflowStep::ImageTest,
            WorkflowStep::Publish,
            WorkflowStep::Complete,
        ]
    );
    assert_eq!(
        transitions.last(),
        Some(&(WorkflowStep::Complete, StepStatus::Succeeded))
    );
    let detail = rig.services.tickets.get_ticket(id).await.unwrap();
    assert_eq!(detail.ticket.current_workflow_step, WorkflowStep::Complete);

    // The image: made from the series' base, bootstrapped once, with the build PPA and the
    // archive PPA, and every binary built.
    assert_eq!(rig.images.bootstraps.lock().unwrap().len(), 1);
    let builds = rig.images.builds.lock().unwrap().clone();
    let [image] = builds.as_slice() else {
        panic!("one image build: {builds:?}")
    };
    let ppa = outcome.ppa.clone().unwrap();
    assert_eq!(
        image.ppa_list,
        [ppa.clone(), "ppa:ci-team/ppa_archive".into()]
    );
    let mut packages = image.package_list.clone();
    packages.sort();
    assert_eq!(packages, ["hello-ci", "hello-two"]);
    assert_eq!(image.base_image.url_list, ["file:///images/base.tar.zst"]);
    assert_eq!(rig.tests.runs.lock().unwrap().len(), 2);

    // Landed in the archive PPA, source and binary; the build PPA is released (and so
    // emptied).
    let archive: PpaName = "ppa:ci-team/ppa_archive".parse().unwrap();
    let landed: Vec<String> = rig
        .archives
        .list(&archive, Some("bookworm"))
        .await
        .unwrap()
        .into_iter()
        .map(|p| format!("{} {} {}", p.name, p.version, p.architecture))
        .collect();
    for expected in [
        "hello-ci 1.0-1 source",
        "hello-ci 1.0-1 all",
        "hello-two 1.0-1 source",
        "hello-two 1.0-1 all",
    ] {
        assert!(
            landed.contains(&expected.to_owned()),
            "{expected} in {landed:?}"
        );
    }
    assert_released(&rig.services, id).await;

    // The request's queue: the lander's phases, the workers' own messages, and the
    // outcome last.
    let mut messages = Vec::new();
    while let Some(message) = progress.next().await {
        messages.push(ProgressMessage::from_json(&message.unwrap().body).unwrap());
    }
    let phases: Vec<String> = messages
        .iter()
        .filter_map(|m| match m {
            ProgressMessage::Phase { phase, .. } => Some(phase.clone()),
            _ => None,
        })
        .collect();
    for phase in [
        "PPA_ASSIGNMENT",
        "SOURCE_BUILD",
        "build",
        "IMAGE_BUILD",
        "install",
    ] {
        assert!(phases.contains(&phase.to_owned()), "{phase} in {phases:?}");
    }
    let Some(ProgressMessage::Done(done)) = messages.last() else {
        panic!("the outcome comes last: {messages:?}")
    };
    assert_eq!(done.state, ubuntu_ci_core::queue::DoneState::Completed);
    assert_eq!(done.results["outcome"], "COMPLETED");
    assert_eq!(done.results["ppa"], ppa);
    assert_eq!(done.results["ticket_id"], id);
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_tests_fail_the_request_and_publish_nothing() {
    let rig = rig(&[], &["hello-ci"]).await;
    let (id, hello) = hello_request(&rig).await;
    let outcome = rig
        .lander
        .execute(hello, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome.state, RequestState::Failed);
    assert_eq!(outcome.step, WorkflowStep::ImageTest);
    assert!(outcome.reason.unwrap().contains("hello-ci"));
    assert!(outcome.published.is_empty());
    let transitions = steps(&rig.services, id).await;
    assert_eq!(
        transitions.last(),
        Some(&(WorkflowStep::ImageTest, StepStatus::Failed))
    );
    let archive: PpaName = "ppa:ci-team/ppa_archive".parse().unwrap();
    assert!(rig
        .archives
        .list(&archive, Some("bookworm"))
        .await
        .unwrap()
        .is_empty());
    assert_released(&rig.services, id).await;
}

/// Versions as real archives have them: an epoch, `+` and `~`. Their file names are
/// percent-encoded in the store's URLs (`%2B`); the lander matches the names a .changes
/// lists with the names the URLs stand for, not with their encoded form.
#[tokio::test(flavor = "multi_thread")]
async fn versions_with_an_epoch_plus_and_tilde_go_through_every_step() {
    let rig = rig(&[], &[]).await;
    let version = "1:2.0+dfsg~rc1-1+ci1";
    let upload = example_variant(&rig.work, "hello-plus", |tree| {
        let path = tree.join("debian/changelog");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("(1.0-1)", &format!("({version})"), 1)).unwrap();
    });
    assert!(upload
        .to_string_lossy()
        .ends_with("hello-ci_2.0+dfsg~rc1-1+ci1_source.changes"));
    let urls = stage_upload(&*rig.services.store, &upload).await;
    assert!(urls.iter().any(|u| u.contains("%2B")), "{urls:?}");
    let id = ticket(&rig.services).await;
    let queue = QueueName::fresh("ticket").unwrap();
    let outcome = rig
        .lander
        .execute(request(id, urls, &queue), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        outcome.state,
        RequestState::Completed,
        "{:?}",
        outcome.reason
    );
    assert_eq!(outcome.published, [format!("hello-ci {version}")]);
    let archive: PpaName = "ppa:ci-team/ppa_archive".parse().unwrap();
    let landed: Vec<String> = rig
        .archives
        .list(&archive, Some("bookworm"))
        .await
        .unwrap()
        .into_iter()
        .map(|p| format!("{} {} {}", p.name, p.version, p.architecture))
        .collect();
    assert!(
        landed.contains(&format!("hello-ci {version} source")),
        "{landed:?}"
    );
    assert_released(&rig.services, id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_build_builds_no_image() {
    let rig = rig(&["hello-ci"], &[]).await;
    let (id, hello) = hello_request(&rig).await;
    let outcome = rig
        .lander
        .execute(hello, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome.state, RequestState::Failed);
    assert_eq!(outcome.step, WorkflowStep::SourceBuild);
    let reason = outcome.reason.unwrap();
    assert!(reason.contains("deliberate build failure"), "{reason}");
    assert!(rig.images.builds.lock().unwrap().is_empty());
    assert!(rig.images.bootstraps.lock().unwrap().is_empty());
    assert_released(&rig.services, id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_fail_clearly() {
    let rig = rig(&[], &[]).await;
    let upload = upload_named(&rig.work, "hello-ci");
    let urls = stage_upload(&*rig.services.store, &upload).await;
    let queue = QueueName::fresh("ticket").unwrap();

    // An unknown ticket: nothing to report on.
    let err = rig
        .lander
        .execute(
            request(9999, urls.clone(), &queue),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ubuntu_ci_core::ErrorKind::NotFound);

    // No .changes among the files; a file no .changes lists; a .changes outside the
    // store. Each fails at the build step, with its reason, the PPA released.
    let without_changes: Vec<String> = urls
        .iter()
        .filter(|u| !u.ends_with(".changes"))
        .cloned()
        .collect();
    // The stray file is in the store, beside the upload: a foreign URL is `outside`'s case.
    let stray_dsc = ubuntu_ci_core::store::ObjectName::new("evil_1.0.dsc".to_owned()).unwrap();
    let stray_container =
        ubuntu_ci_core::store::ContainerName::new(urls[0].rsplit('/').nth(1).unwrap().to_owned())
            .unwrap();
    rig.services
        .store
        .put(
            &stray_container,
            &stray_dsc,
            ubuntu_ci_core::store::Body::Bytes(b"stray".to_vec().into()),
        )
        .await
        .unwrap();
    let mut stray = urls.clone();
    stray.push(
        rig.services
            .store
            .object_url(&stray_container, &stray_dsc)
            .to_string(),
    );
    let mut outside = without_changes.clone();
    outside.push("https://example.com/evil_1.0_source.changes".to_owned());
    // A .changes in the store past the size of a control file.
    let changes_url = urls.iter().find(|u| u.ends_with(".changes")).unwrap();
    let container = ubuntu_ci_core::store::ContainerName::new(
        changes_url.rsplit('/').nth(1).unwrap().to_owned(),
    )
    .unwrap();
    let big = ubuntu_ci_core::store::ObjectName::new("big_1.0_source.changes".to_owned()).unwrap();
    let limit = ubuntu_ci_core::upload::deb822::MAX_CONTROL_FILE_BYTES;
    let content = vec![b'a'; usize::try_from(limit).unwrap() + 1];
    rig.services
        .store
        .put(
            &container,
            &big,
            ubuntu_ci_core::store::Body::Bytes(content.into()),
        )
        .await
        .unwrap();
    let mut oversized = without_changes.clone();
    oversized.push(rig.services.store.object_url(&container, &big).to_string());
    for (urls, expected) in [
        (without_changes, "no .changes among the URLs"),
        (stray, "no .changes lists evil_1.0.dsc"),
        (outside, "not in the configured data store"),
        (oversized, "larger than the limit"),
    ] {
        let id = ticket(&rig.services).await;
        let queue = QueueName::fresh("ticket").unwrap();
        let outcome = rig
            .lander
            .execute(request(id, urls, &queue), CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(outcome.state, RequestState::Failed);
        assert_eq!(outcome.step, WorkflowStep::SourceBuild);
        let reason = outcome.reason.unwrap();
        assert!(reason.contains(expected), "{reason}");
        assert_released(&rig.services, id).await;
    }
    assert!(rig.images.builds.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_request_is_cancelled_on_its_ticket() {
    let rig = rig(&[], &[]).await;
    let (id, hello) = hello_request(&rig).await;
    let cancel = CancellationToken::new();
    cancel.cancel();
    let outcome = rig.lander.execute(hello, cancel).await.unwrap();
    assert_eq!(outcome.state, RequestState::Cancelled);
    let transitions = steps(&rig.services, id).await;
    assert_eq!(
        transitions.last(),
        Some(&(WorkflowStep::PpaAssignment, StepStatus::Cancelled))
    );
    let detail = rig.services.tickets.get_ticket(id).await.unwrap();
    assert_eq!(
        detail.ticket.state,
        ubuntu_ci_core::model::TicketState::Closed
    );
    assert_released(&rig.services, id).await;
    assert!(rig.images.builds.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_left_unfinished_is_resumed_where_it_stopped() {
    let rig = rig(&[], &[]).await;
    let first = upload_named(&rig.work, "hello-ci");
    let second = upload_named(&rig.work, "hello-two");
    let mut urls = stage_upload(&*rig.services.store, &first).await;
    urls.extend(stage_upload(&*rig.services.store, &second).await);
    let id = ticket(&rig.services).await;
    let queue = QueueName::fresh("ticket").unwrap();

    // A lander stopped while the image builds, as a killed process would be.
    rig.images.hangs.store(1, Ordering::SeqCst);
    let doomed = Lander::new(
        rig.services.clone(),
        LanderOptions::new("bookworm").unwrap(),
    );
    let request = request(id, urls, &queue);
    let task = tokio::spawn(async move { doomed.execute(request, CancellationToken::new()).await });
    let started = std::time::Instant::now();
    while rig.images.builds.lock().unwrap().is_empty() {
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());

    // What it left: both builds done, no image yet, the PPA still held.
    let store = rig.services.requests.clone().unwrap();
    let unfinished = store.unfinished().await.unwrap();
    let [(left, progress)] = unfinished.as_slice() else {
        panic!("one unfinished request: {unfinished:?}")
    };
    assert_eq!(left.ticket_id, id);
    assert_eq!(progress.builds.len(), 2);
    assert!(progress.image.is_none());
    assert!(rig
        .services
        .ppas
        .list()
        .await
        .unwrap()
        .iter()
        .any(|p| p.ticket == Some(id)));

    // The next lander carries on: no build again, the image again, then the rest.
    let outcomes = rig.lander.resume(CancellationToken::new()).await.unwrap();
    let [outcome] = outcomes.as_slice() else {
        panic!("one resumed request: {outcomes:?}")
    };
    assert_eq!(
        outcome.state,
        RequestState::Completed,
        "{:?}",
        outcome.reason
    );
    assert_eq!(outcome.builds.len(), 2);
    let mut built = rig.builder.built.lock().unwrap().clone();
    built.sort();
    assert_eq!(built, ["hello-ci", "hello-two"], "each upload built once");
    assert_eq!(rig.images.builds.lock().unwrap().len(), 2);
    assert_eq!(
        rig.images.bootstraps.lock().unwrap().len(),
        1,
        "the base is not made again"
    );
    assert_eq!(rig.tests.runs.lock().unwrap().len(), 2);
    let transitions = steps(&rig.services, id).await;
    assert_eq!(
        transitions
            .iter()
            .filter(|t| t.0 == WorkflowStep::Complete)
            .count(),
        1
    );
    assert_released(&rig.services, id).await;
    assert!(store.unfinished().await.unwrap().is_empty());
    assert!(rig
        .lander
        .resume(CancellationToken::new())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_past_its_time_limit_fails_and_its_worker_is_stopped() {
    let rig = rig(&[], &[]).await;
    let (id, hello) = hello_request(&rig).await;
    rig.images.hangs.store(1, Ordering::SeqCst);
    let mut options = LanderOptions::new("bookworm").unwrap();
    options.step_timeout = Some(std::time::Duration::from_secs(1));
    let lander = Lander::new(rig.services.clone(), options);
    let started = std::time::Instant::now();
    let outcome = lander
        .execute(hello, CancellationToken::new())
        .await
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(outcome.state, RequestState::Failed);
    assert_eq!(outcome.step, WorkflowStep::ImageBuild);
    let reason = outcome.reason.unwrap();
    assert!(reason.contains("time limit"), "{reason}");
    assert_eq!(
        steps(&rig.services, id).await.last(),
        Some(&(WorkflowStep::ImageBuild, StepStatus::Failed))
    );
    assert!(rig.tests.runs.lock().unwrap().is_empty());
    assert_released(&rig.services, id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_asked_through_the_store_cancels_the_request() {
    let rig = rig(&[], &[]).await;
    let (id, hello) = hello_request(&rig).await;
    rig.images.hangs.store(1, Ordering::SeqCst);
    let lander = Lander::new(
        rig.services.clone(),
        LanderOptions::new("bookworm").unwrap(),
    );
    let request = hello;
    let task = tokio::spawn(async move { lander.execute(request, CancellationToken::new()).await });
    let started = std::time::Instant::now();
    while rig.images.builds.lock().unwrap().is_empty() {
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // As `ubuntu-ci cancel` asks, from any process.
    let store = rig.services.requests.clone().unwrap();
    assert!(store.request_cancel(id).await.unwrap());
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(20), task)
        .await
        .expect("the request stops within seconds")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.state, RequestState::Cancelled);
    assert_eq!(outcome.step, WorkflowStep::ImageBuild);
    assert_eq!(
        steps(&rig.services, id).await.last(),
        Some(&(WorkflowStep::ImageBuild, StepStatus::Cancelled))
    );
    assert!(rig.tests.runs.lock().unwrap().is_empty());
    assert_released(&rig.services, id).await;
    assert!(store.unfinished().await.unwrap().is_empty());
    assert!(
        !store.request_cancel(id).await.unwrap(),
        "nothing left to stop"
    );
}

/// Options whose heartbeat limit is a fraction of a second, with `retries`.
fn impatient(retries: u32) -> LanderOptions {
    let mut options = LanderOptions::new("bookworm").unwrap();
    options.heartbeat = std::time::Duration::from_millis(100);
    options.heartbeat_misses = 3;
    options.step_retries = retries;
    options
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_worker_is_declared_dead_and_called_again() {
    let rig = rig_with(&[], &[], impatient(1), std::time::Duration::ZERO).await;
    let (id, hello) = hello_request(&rig).await;
    rig.images.hangs.store(1, Ordering::SeqCst);
    let outcome = rig
        .lander
        .execute(hello, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        outcome.state,
        RequestState::Completed,
        "{:?}",
        outcome.reason
    );
    assert_eq!(rig.images.builds.lock().unwrap().len(), 2, "called again");
    let messages: Vec<String> = transitions(&rig.services, id)
        .await
        .into_iter()
        .map(|t| t.message)
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("declared dead") && m.contains("attempt 2 of 2")),
        "{messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_silent_at_every_call_fails_its_step_with_that_reason() {
    let rig = rig_with(&[], &[], impatient(1), std::time::Duration::ZERO).await;
    let (id, hello) = hello_request(&rig).await;
    rig.images.hangs.store(2, Ordering::SeqCst);
    let outcome = rig
        .lander
        .execute(hello, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome.state, RequestState::Failed);
    assert_eq!(outcome.step, WorkflowStep::ImageBuild);
    let reason = outcome.reason.unwrap();
    assert!(
        reason.contains("silent for 3 heartbeat periods") && reason.contains("2 times"),
        "{reason}"
    );
    assert_eq!(rig.images.builds.lock().unwrap().len(), 2);
    assert!(rig.tests.runs.lock().unwrap().is_empty());
    assert_released(&rig.services, id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_request_is_retried_from_the_step_it_failed_at() {
    let rig = rig(&[], &["hello-ci"]).await;
    let (id, hello) = hello_request(&rig).await;
    let first = rig
        .lander
        .execute(hello, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(first.state, RequestState::Failed);
    assert_eq!(first.step, WorkflowStep::ImageTest);
    assert_released(&rig.services, id).await;
    let store = rig.services.requests.clone().unwrap();
    let status = store.status(id).await.unwrap().unwrap();
    assert!(status.finished);
    assert_eq!(status.progress.step, WorkflowStep::ImageTest);

    // The test is fixed (a flaky one passes): the retry builds nothing again (the build
    // is put back into the PPA from the data store), keeps the image, runs the tests
    // again, publishes.
    rig.tests.failing.lock().unwrap().clear();
    let outcome = rig
        .lander
        .retry(id, None)
        .await
        .unwrap()
        .outcome()
        .await
        .unwrap();
    assert_eq!(
        outcome.state,
        RequestState::Completed,
        "{:?}",
        outcome.reason
    );
    assert_eq!(
        rig.builder.built.lock().unwrap().len(),
        1,
        "not built again"
    );
    assert_eq!(rig.images.builds.lock().unwrap().len(), 1, "image kept");
    assert_eq!(rig.tests.runs.lock().unwrap().len(), 2);
    assert_eq!(outcome.published, ["hello-ci 1.0-1"]);
    let transitions = steps(&rig.services, id).await;
    let failed_at = transitions
        .iter()
        .position(|t| *t == (WorkflowStep::ImageTest, StepStatus::Failed))
        .expect("the failure stays in the history");
    assert_eq!(
        transitions[failed_at + 1],
        (WorkflowStep::ImageTest, StepStatus::InProgress),
        "taken up again where it stopped"
    );
    assert_eq!(
        transitions.last(),
        Some(&(WorkflowStep::Complete, StepStatus::Succeeded))
    );
    assert_released(&rig.services, id).await;

    // Nothing to retry once completed, nor for a ticket without a request.
    let err = rig.lander.retry(id, None).await.unwrap_err();
    assert_eq!(err.kind(), ubuntu_ci_core::ErrorKind::Conflict);
    let other = ticket(&rig.services).await;
    let err = rig.lander.retry(other, None).await.unwrap_err();
    assert_eq!(err.kind(), ubuntu_ci_core::ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_requests_run_at_once_within_the_bounds_per_kind() {
    let mut options = LanderOptions::new("bookworm").unwrap();
    options.limits = ubuntu_ci_core::lander::StepLimits {
        builds: 2,
        images: 2,
        tests: 4,
        ppas: 16,
    };
    // Builds slow enough for requests to queue up for them.
    let pause = std::time::Duration::from_millis(100);
    let rig = rig_with(&[], &[], options, pause).await;
    let upload = upload_named(&rig.work, "hello-ci");
    let urls = stage_upload(&*rig.services.store, &upload).await;
    let store = rig.services.requests.clone().unwrap();

    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.push(ticket(&rig.services).await);
    }
    // While they run, waiting tickets have their place in line.
    let done = CancellationToken::new();
    let watcher = {
        let store = store.clone();
        let done = done.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            while !done.is_cancelled() {
                for &id in &ids {
                    let status = store.status(id).await.unwrap();
                    if let Some(waiting) = status.and_then(|s| s.waiting) {
                        seen.insert((waiting.waiting_for, waiting.position.min(3)));
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            seen
        })
    };
    let mut handles = Vec::new();
    for (n, &id) in ids.iter().enumerate() {
        let queue = QueueName::fresh("ticket").unwrap();
        let handle = rig
            .lander
            .submit(request(id, urls.clone(), &queue))
            .await
            .unwrap();
        handles.push(handle);
        if n == 0 {
            // A second request for a ticket under way is refused.
            let queue = QueueName::fresh("ticket").unwrap();
            let err = rig
                .lander
                .submit(request(id, urls.clone(), &queue))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ubuntu_ci_core::ErrorKind::Conflict);
        }
    }
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(handle.outcome().await.unwrap());
    }
    done.cancel();
    let seen = watcher.await.unwrap();
    for outcome in &outcomes {
        assert_eq!(
            outcome.state,
            RequestState::Completed,
            "ticket {}: {:?}",
            outcome.ticket_id,
            outcome.reason
        );
        assert_released(&rig.services, outcome.ticket_id).await;
    }
    let peaks = (
        rig.builder.calls.peak(),
        rig.images.calls.peak(),
        rig.tests.calls.peak(),
    );
    assert!(
        seen.iter().any(|(_, position)| *position > 1),
        "some waited behind others: {seen:?} (peaks {peaks:?})"
    );
    assert!(peaks.0 <= 2 && peaks.1 <= 2 && peaks.2 <= 4, "{peaks:?}");
    assert_eq!(peaks.0, 2, "builds overlapped: {peaks:?}");
    assert_eq!(rig.builder.built.lock().unwrap().len(), 100);
    assert!(store.unfinished().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_runs_the_requests_handed_to_it_through_the_api() {
    use ubuntu_ci_core::lander::remote::HttpLanders;
    use ubuntu_ci_core::server::lander_api::SubmitOptions;
    use ubuntu_ci_core::submit::{CreateTicket, NoProgress};
    use ubuntu_ci_tests::{TestServer, TOKEN};

    let work = tempfile::tempdir().unwrap();
    let debs = work.path().join("debs");
    let server = TestServer::start_with(move |state| {
        let (services, ..) = instant(state.services.clone(), debs, &[], &["hello-ci"], {
            std::time::Duration::ZERO
        });
        let lander = Lander::new(services, LanderOptions::new("bookworm").unwrap());
        state.with_lander(lander)
    })
    .await;
    let client = server.client(Some(TOKEN)).await;
    let upload = upload_named(work.path(), "hello-ci");
    let ticket = CreateTicket::new("dev@example.com", "through the API")
        .with_upload(upload)
        .run(&client, Arc::new(NoProgress))
        .await
        .unwrap();
    let id = ticket.ticket.id;
    let landers = HttpLanders::new(server.url.as_str(), Some(TOKEN.into())).unwrap();
    assert!(landers.status(id).await.unwrap().is_none(), "none yet");

    // Without the token, nothing starts; bad options are refused.
    let anonymous = HttpLanders::new(server.url.as_str(), None).unwrap();
    let err = anonymous
        .submit(id, &SubmitOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ubuntu_ci_core::ErrorKind::Unauthorized);
    let bad = SubmitOptions {
        series: Some("../etc".into()),
        ..SubmitOptions::default()
    };
    let err = landers.submit(id, &bad).await.unwrap_err();
    assert_eq!(err.kind(), ubuntu_ci_core::ErrorKind::InvalidInput);
    assert!(landers.status(id).await.unwrap().is_none());

    // Submitted: it runs on the server (its tests fail), as the client sees on the ticket.
    let status = landers.submit(id, &SubmitOptions::default()).await.unwrap();
    assert_eq!(status.request.ticket_id, id);
    let mut events = client.tickets.events(id, None).await.unwrap();
    while events.next().await.is_some() {}
    let status = landers.status(id).await.unwrap().unwrap();
    assert!(status.finished);
    assert_eq!(status.progress.state, RequestState::Failed);
    assert_eq!(status.progress.step, WorkflowStep::ImageTest);
    let err = landers.cancel(id).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ubuntu_ci_core::ErrorKind::Conflict,
        "nothing under way"
    );

    // Retried through the API: it fails the same way (the fake's tests still fail), from
    // the step it stopped at.
    let retried = landers.retry(id).await.unwrap();
    assert_eq!(retried.request.ticket_id, id);
    let started = std::time::Instant::now();
    let status = loop {
        let status = landers.status(id).await.unwrap().unwrap();
        if status.finished {
            break status;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status.progress.step, WorkflowStep::ImageTest);
    let transitions = steps(&server.services, id).await;
    assert_eq!(
        transitions
            .iter()
            .filter(|t| **t == (WorkflowStep::ImageTest, StepStatus::Failed))
            .count(),
        2
    );
    assert_released(&server.services, id).await;

    // A server without a lander says so.
    let bare = TestServer::start().await;
    let err = HttpLanders::new(bare.url.as_str(), Some(TOKEN.into()))
        .unwrap()
        .cancel(1)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ubuntu_ci_core::ErrorKind::Unsupported | ubuntu_ci_core::ErrorKind::NotFound
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_just_submitted_is_not_resumed_beside_itself() {
    let rig = rig(&[], &[]).await;
    let upload = upload_named(&rig.work, "hello-ci");
    let urls = stage_upload(&*rig.services.store, &upload).await;
    for _ in 0..20 {
        let id = ticket(&rig.services).await;
        let queue = QueueName::fresh("ticket").unwrap();
        let handle = rig
            .lander
            .submit(request(id, urls.clone(), &queue))
            .await
            .unwrap();
        // As `serve`'s adoption may, at once: the request runs here already.
        let again = rig
            .lander
            .resume_in_background(CancellationToken::new())
            .await
            .unwrap();
        assert!(
            again.iter().all(|h| h.ticket_id() != id),
            "ticket {id} run twice"
        );
        let outcome = handle.outcome().await.unwrap();
        assert_eq!(
            outcome.state,
            RequestState::Completed,
            "{:?}",
            outcome.reason
        );
        for other in again {
            other.outcome().await.unwrap();
        }
        let completes = steps(&rig.services, id)
            .await
            .into_iter()
            .filter(|t| *t == (WorkflowStep::Complete, StepStatus::Succeeded))
            .count();
        assert_eq!(completes, 1);
    }
}
