//! A lander process killed with SIGKILL at every step boundary and in the middle of each
//! step, then started again: the request resumes where it stopped and completes once, with
//! no build, image, test run or copy done twice that had finished, no PPA left held, and
//! the package in the archive PPA once. The lander is the real one, on the embedded
//! services (SQLite, the store, the PPA pool, the archives), in a process of its own
//! (`lander_victim`) with instant workers.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ubuntu_ci_core::config::{Config, Services};
use ubuntu_ci_core::lander::ExecuteRequest;
use ubuntu_ci_core::model::{NewTicket, StepStatus, WorkflowStep};
use ubuntu_ci_core::ppa::PpaState;
use ubuntu_ci_core::queue::QueueName;
use ubuntu_ci_tests::transitions;
use ubuntu_ci_tests::workers::{example_variant, stage_upload};

/// Where a run is killed: a point where the victim stops for good, or the first time the
/// ticket shows a transition.
#[derive(Debug, Clone, Copy)]
enum Kill {
    At(&'static str),
    After(WorkflowStep, StepStatus),
}

fn victim(data: &Path, args: &[&str], hang: Option<&str>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lander_victim"));
    command
        .arg(data)
        .args(args)
        .env("UBUNTU_CI_TEST_CALL_LOG", data.join("calls.log"))
        .env_remove("UBUNTU_CI_TEST_HANG_AT")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(point) = hang {
        command.env("UBUNTU_CI_TEST_HANG_AT", point);
    }
    command.spawn().expect("lander_victim")
}

async fn steps(services: &Services, ticket: i64) -> Vec<(WorkflowStep, StepStatus)> {
    transitions(services, ticket)
        .await
        .into_iter()
        .map(|t| (t.step, t.status))
        .collect()
}

/// One run killed at `kill`, then resumed; checks the end.
async fn killed_and_resumed(changes: &Path, kill: Kill) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = Config {
        data_dir: Some(data.clone()),
        ..Config::default()
    };
    let services = config.connect(None).await.unwrap();
    let urls = stage_upload(&*services.store, changes).await;
    let ticket = services
        .tickets
        .create_ticket(NewTicket {
            owner: "dev@example.com".into(),
            title: format!("killed at {kill:?}"),
            description: String::new(),
            bug_id: String::new(),
        })
        .await
        .unwrap()
        .id;
    let request = ExecuteRequest {
        ticket_id: ticket,
        source_packages: urls,
        binary_packages: Vec::new(),
        series: None,
        base_image: None,
        progress_queue: QueueName::fresh("ticket").unwrap().to_string(),
    };
    let request_file = dir.path().join("request.json");
    std::fs::write(&request_file, serde_json::to_string(&request).unwrap()).unwrap();
    let run = ["run", request_file.to_str().unwrap()];

    let started = Instant::now();
    let mut child = match kill {
        Kill::At(point) => {
            let mut child = victim(&data, &run, Some(point));
            let stdout = BufReader::new(child.stdout.take().unwrap());
            let hanging = stdout
                .lines()
                .map_while(std::result::Result::ok)
                .any(|line| line == format!("HANGING {point}"));
            assert!(hanging, "{kill:?}: the victim reached its point");
            child
        }
        Kill::After(step, status) => {
            let child = victim(&data, &run, None);
            while !steps(&services, ticket).await.contains(&(step, status)) {
                assert!(started.elapsed() < Duration::from_secs(60), "{kill:?}");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            child
        }
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let resumed = victim(&data, &["resume"], None).wait_with_output().unwrap();
    assert!(resumed.status.success(), "{kill:?}: resume");
    let end = services.tickets.get_ticket(ticket).await.unwrap().ticket;
    assert_eq!(
        (end.current_workflow_step, end.status),
        (WorkflowStep::Complete, StepStatus::Succeeded),
        "{kill:?}: {}",
        String::from_utf8_lossy(&resumed.stdout)
    );
    let history = steps(&services, ticket).await;
    assert_eq!(
        history
            .iter()
            .filter(|t| **t == (WorkflowStep::Complete, StepStatus::Succeeded))
            .count(),
        1,
        "{kill:?}: completed once: {history:?}"
    );
    assert!(
        !history
            .iter()
            .any(|(_, s)| matches!(s, StepStatus::Failed | StepStatus::Cancelled)),
        "{kill:?}: {history:?}"
    );
    let held: Vec<_> = services
        .ppas
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.state == PpaState::Reserved)
        .collect();
    assert!(held.is_empty(), "{kill:?}: no PPA left held: {held:?}");
    let store = services.requests.clone().unwrap();
    assert!(store.unfinished().await.unwrap().is_empty(), "{kill:?}");

    // Landed once; nothing that had finished was done again.
    let archive = "ppa:ci-team/ppa_archive".parse().unwrap();
    let mut landed: Vec<String> = services
        .archives
        .packages(&archive, Some("bookworm"))
        .await
        .unwrap()
        .into_iter()
        .map(|p| format!("{} {} {}", p.name, p.version, p.architecture))
        .collect();
    landed.sort();
    assert_eq!(
        landed,
        ["hello-ci 1.0-1 all", "hello-ci 1.0-1 source"],
        "{kill:?}"
    );
    let calls = std::fs::read_to_string(data.join("calls.log")).unwrap_or_default();
    let count = |what: &str| calls.lines().filter(|l| *l == what).count();
    assert_eq!(count("built hello-ci"), 1, "{kill:?}: {calls}");
    assert_eq!(count("image"), 1, "{kill:?}: {calls}");
    assert_eq!(count("tested hello-ci"), 1, "{kill:?}: {calls}");
    // A copy whose end was not saved runs again (identical: nothing changes).
    let copies = count("copied hello-ci");
    assert!(
        copies == 1 || (copies == 2 && matches!(kill, Kill::At("copied"))),
        "{kill:?}: {calls}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lander_killed_anywhere_resumes_and_completes_once() {
    let work = tempfile::tempdir().unwrap();
    let changes = example_variant(work.path(), "upload", |_| {});
    for kill in [
        // In the middle of each step, and where one ends and the next begins.
        Kill::At("prepare"),     // PPA_ASSIGNMENT: the PPA taken, not yet ready
        Kill::At("build-start"), // PPA_ASSIGNMENT → SOURCE_BUILD
        Kill::At("build-published"), // SOURCE_BUILD: in the PPA, not yet reported
        Kill::At("bootstrap"),   // SOURCE_BUILD → IMAGE_BUILD: the base image
        Kill::At("image"),       // IMAGE_BUILD: the image build
        Kill::At("test"),        // IMAGE_BUILD → IMAGE_TEST
        Kill::At("test-ran"),    // IMAGE_TEST: tests ran, not yet reported
        Kill::At("copy"),        // IMAGE_TEST → PUBLISH
        Kill::At("copied"),      // PUBLISH: copied, not yet saved
        Kill::After(WorkflowStep::Publish, StepStatus::Succeeded), // PUBLISH → COMPLETE
    ] {
        killed_and_resumed(&changes, kill).await;
    }
}
