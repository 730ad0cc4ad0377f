//! The whole seed flow for real, from the command line: `ubuntu-ci create-ticket --wait` on
//! the example package runs the lander with the real workers (sbuild, the image builder,
//! autopkgtest) on the embedded defaults. Then a version whose tests fail: exit 10,
//! nothing published, the PPA released; and one stopped by `ubuntu-ci cancel` while it
//! builds: exit 11, CANCELLED, no process left.
//!
//! The build chroot is the one the build tests cache in `target/test-chroots/`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ubuntu_ci_tests::build_example_package;
use ubuntu_ci_tests::workers::{example_variant, real_workers_command, worker_processes};

/// `ubuntu-ci` on the test's data dir, configuration and workers' folders.
fn command(dir: &Path) -> Command {
    real_workers_command(dir)
}

fn run(dir: &Path, args: &[&str]) -> Output {
    command(dir).args(args).output().expect("run ubuntu-ci")
}

/// `create-ticket --wait` of the upload `changes`.
fn wait(dir: &Path, title: &str, changes: &Path) -> Command {
    let mut wait = command(dir);
    wait.args(["create-ticket", "-t", title, "-o", "dev@example.com", "-s"])
        .arg(changes)
        .arg("--wait");
    wait
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn archive_packages(dir: &Path) -> String {
    let path = dir
        .join("data/ppa/ci-team/ppa_archive/dists/bookworm/main")
        .join(format!(
            "binary-{}/Packages",
            ubuntu_ci_core::archive::host_architecture()
        ));
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn create_ticket_wait_runs_the_whole_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let changes = build_example_package(&dir.path().join("src"));

    let output = wait(dir.path(), "hello-ci", &changes).output().unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for shown in [
        "==> PPA_ASSIGNMENT: ppa:ci-team/ppa_build_1 assigned",
        "==> SOURCE_BUILD: building hello-ci 1.0-1 (1/1)",
        "==> bootstrap: making a bookworm",
        "==> IMAGE_BUILD: building an image with hello-ci",
        "==> test 2/2 (100%)",
        "==> IMAGE_TEST: the tests passed",
        "==> PUBLISH: published into ppa:ci-team/ppa_archive",
    ] {
        assert!(stderr.contains(shown), "{shown:?} in:\n{stderr}");
    }
    assert_eq!(text(&output.stdout).trim(), "/api/v1/ticket/1/");
    assert!(archive_packages(dir.path()).contains("Package: hello-ci\n"));

    let show = run(dir.path(), &["--json", "ticket", "show", "1"]);
    assert!(show.status.success(), "{}", text(&show.stderr));
    let detail: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(detail["current_workflow_step"], "COMPLETE");
    assert_eq!(detail["status"], "SUCCEEDED");
    assert_eq!(detail["state"], "closed");
    let kinds: Vec<&str> = detail["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["type"].as_str())
        .collect();
    for kind in ["BINARY", "BUILD_LOG", "IMAGE", "TEST_RESULT", "TEST_LOG"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    // The upload's own results are on its subticket; the image is the ticket's.
    for artifact in detail["artifacts"].as_array().unwrap() {
        let on_subticket = !artifact["subticket"].is_null();
        match artifact["type"].as_str().unwrap() {
            "BINARY" | "BUILD_LOG" | "TEST_RESULT" | "TEST_LOG" => {
                assert!(on_subticket, "{artifact}");
            }
            "IMAGE" => assert!(!on_subticket, "{artifact}"),
            _ => {}
        }
    }

    // A version with a failing test: exit 10, the failure named, nothing more published,
    // and the PPA free again. The base image made above is reused.
    let failing = example_variant(dir.path(), "failing", |tree| {
        let control = tree.join("debian/tests/control");
        let mut tests = std::fs::read_to_string(&control).unwrap();
        tests.push_str("\nTest-Command: echo 'failing on purpose'; false\n");
        std::fs::write(&control, tests).unwrap();
        let changelog = tree.join("debian/changelog");
        let text = std::fs::read_to_string(&changelog).unwrap();
        std::fs::write(&changelog, text.replacen("(1.0-1)", "(1.0-2)", 1)).unwrap();
    });
    let output = wait(dir.path(), "failing", &failing).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(10), "{stderr}");
    assert!(stderr.contains("==> test 3/3 (100%)"), "{stderr}");
    assert!(
        !stderr.contains("==> bootstrap"),
        "the base is reused: {stderr}"
    );
    assert!(!stderr.contains("==> PUBLISH"), "{stderr}");
    assert!(!archive_packages(dir.path()).contains("1.0-2"));
    let ppas = run(dir.path(), &["--json", "ppa", "list"]);
    let ppas: serde_json::Value = serde_json::from_slice(&ppas.stdout).unwrap();
    assert!(
        ppas.as_array()
            .unwrap()
            .iter()
            .all(|p| p["state"] == "free" && p["ticket"].is_null()),
        "every PPA released: {ppas}"
    );
    let show = run(dir.path(), &["--json", "ticket", "show", "2"]);
    let detail: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(detail["current_workflow_step"], "IMAGE_TEST");
    assert_eq!(detail["status"], "FAILED");
    assert_eq!(detail["state"], "closed");

    // `ubuntu-ci retry`: from IMAGE_TEST, with the build put back into a PPA from the data
    // store (no sbuild), the image kept; the test still fails (exit 10), and `status`
    // says so.
    let retried = run(dir.path(), &["retry", "2"]);
    let stderr = text(&retried.stderr);
    assert_eq!(retried.status.code(), Some(10), "{stderr}");
    assert!(stderr.contains("retrying from IMAGE_TEST"), "{stderr}");
    assert!(
        stderr.contains("putting the build of hello-ci 1.0-2 back"),
        "{stderr}"
    );
    assert!(!stderr.contains("==> build:"), "not built again: {stderr}");
    assert!(
        !stderr.contains("building an image"),
        "image kept: {stderr}"
    );
    assert!(stderr.contains("==> test 3/3 (100%)"), "{stderr}");
    let status = run(dir.path(), &["status", "2"]);
    let shown = text(&status.stdout);
    assert!(shown.contains("request: FAILED at IMAGE_TEST"), "{shown}");
    let followed = run(dir.path(), &["status", "2", "--follow"]);
    assert_eq!(followed.status.code(), Some(10), "a closed ticket's end");
    assert_eq!(
        run(dir.path(), &["retry", "1"]).status.code(),
        Some(5),
        "completed"
    );

    // `ubuntu-ci cancel` from another process while sbuild compiles: the waiting command
    // ends with exit 11, the ticket CANCELLED, no build process left, the PPA free.
    let again = example_variant(dir.path(), "cancelled", |tree| {
        let changelog = tree.join("debian/changelog");
        let text = std::fs::read_to_string(&changelog).unwrap();
        std::fs::write(&changelog, text.replacen("(1.0-1)", "(1.0-3)", 1)).unwrap();
    });
    let mut waiting = wait(dir.path(), "cancelled", &again)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = waiting.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(300))
            .expect("the build starts");
        let started = line.starts_with("==> build: building hello-ci 1.0-3");
        seen.push(line);
        if started {
            break;
        }
    }
    let cancel = run(dir.path(), &["cancel", "3"]);
    assert!(cancel.status.success(), "{}", text(&cancel.stderr));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = waiting.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the request stops in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    reader.join().unwrap();
    seen.extend(lines.try_iter());
    assert_eq!(status.code(), Some(11), "{}", seen.join("\n"));
    assert!(
        worker_processes(dir.path(), &["sbuild"]).is_empty(),
        "{:?}",
        worker_processes(dir.path(), &["sbuild"])
    );
    let show = run(dir.path(), &["--json", "ticket", "show", "3"]);
    let detail: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(detail["current_workflow_step"], "SOURCE_BUILD");
    assert_eq!(detail["status"], "CANCELLED");
    let ppas = run(dir.path(), &["--json", "ppa", "list"]);
    let ppas: serde_json::Value = serde_json::from_slice(&ppas.stdout).unwrap();
    assert!(
        ppas.as_array()
            .unwrap()
            .iter()
            .all(|p| p["ticket"].is_null()),
        "every PPA released: {ppas}"
    );
    let again = run(dir.path(), &["cancel", "3"]);
    assert_eq!(again.status.code(), Some(5), "nothing left to stop");
}
