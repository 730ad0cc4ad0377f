//! The whole seed flow for real, from the command line: `ubuntu-ci create-ticket --wait` on
//! the example package runs the lander with the real workers (sbuild, the image builder,
//! autopkgtest) on the embedded defaults. Then a version whose tests fail: exit 10,
//! nothing published, the PPA released.
//!
//! The build chroot is the one the build tests cache in `target/test-chroots/`.

use std::path::Path;
use std::process::Output;

use ubuntu_ci_tests::workers::example_variant;
use ubuntu_ci_tests::{build_example_package, repo_root, ubuntu_ci};

fn run(dir: &Path, args: &[&str]) -> Output {
    ubuntu_ci(&dir.join("data"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .args(args)
        .output()
        .expect("run ubuntu-ci")
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
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[build]\nchroot_dir = {:?}\n",
            repo_root()
                .join("target/test-chroots")
                .display()
                .to_string()
        ),
    )
    .unwrap();
    let changes = build_example_package(&dir.path().join("src"));

    let output = run(
        dir.path(),
        &[
            "create-ticket",
            "-t",
            "hello-ci",
            "-o",
            "dev@example.com",
            "-s",
            changes.to_str().unwrap(),
            "--wait",
        ],
    );
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
    let output = run(
        dir.path(),
        &[
            "create-ticket",
            "-t",
            "failing",
            "-o",
            "dev@example.com",
            "-s",
            failing.to_str().unwrap(),
            "--wait",
        ],
    );
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
}
