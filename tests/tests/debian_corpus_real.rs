//! Three real Debian uploads through the whole pipeline, for real: `hello` (an upstream
//! signature), `libminini` (`+ds` in its version, two binaries) and `libdisorder` (`+git`
//! in its version, three binaries), handed in together with `create-ticket --wait`: sbuild
//! builds each into the ticket's PPA, the image gets every binary, autopkgtest runs each
//! source's DEP-8 tests, and all of it lands in the archive PPA. Their `.changes` target
//! unstable; the request is for bookworm.
//!
//! The build chroot is the one the build tests cache in `target/test-chroots/`.

use std::path::Path;
use std::process::{Command, Output};

use ubuntu_ci_tests::corpus::debian_source;
use ubuntu_ci_tests::workers::{real_workers_command, worker_processes};

/// `ubuntu-ci` on the test's data dir, configuration and workers' folders.
fn command(dir: &Path) -> Command {
    real_workers_command(dir)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(dir: &Path, args: &[&str]) -> Output {
    command(dir).args(args).output().expect("run ubuntu-ci")
}

#[test]
fn three_real_uploads_are_built_imaged_tested_and_published() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = ["hello", "libminini", "libdisorder"].map(debian_source);
    let mut wait = command(dir.path());
    wait.args([
        "create-ticket",
        "-t",
        "three real uploads",
        "-o",
        "Jane Dev <jane@example.com>",
        "--series",
        "bookworm",
    ]);
    for upload in &uploads {
        wait.arg("-s").arg(&upload.changes);
    }
    let output = wait.arg("--wait").output().unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for upload in &uploads {
        let building = format!(
            "==> SOURCE_BUILD: building {} {}",
            upload.name, upload.version
        );
        assert!(stderr.contains(&building), "{building:?} in:\n{stderr}");
    }
    assert!(
        stderr.contains("==> IMAGE_TEST: the tests passed"),
        "{stderr}"
    );

    let show = run(dir.path(), &["--json", "ticket", "show", "1"]);
    let detail: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(detail["current_workflow_step"], "COMPLETE");
    assert_eq!(detail["owner"], "jane@example.com");
    // Who signed what was built is on the ticket, at the build step (here: the embedded
    // default policy, which takes uploads unsigned and says so).
    let said: Vec<&str> = detail["progress"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["step"] == "SOURCE_BUILD")
        .filter_map(|p| p["message"].as_str())
        .collect();
    for upload in &uploads {
        let line = format!(
            "{} {}: signatures not verified",
            upload.name, upload.version
        );
        assert!(
            said.iter().any(|m| m.starts_with(&line)),
            "{line:?} in {said:?}"
        );
    }
    let artifacts = detail["artifacts"].as_array().unwrap();
    let named = |kind: &str| -> Vec<String> {
        artifacts
            .iter()
            .filter(|a| a["type"] == kind)
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let binaries = named("BINARY");
    for deb in [
        "hello_2.10-3_",
        "libminini1_1.4+ds-1_",
        "libminini-dev_1.4+ds-1_",
        "libdisorder0_0.0.2+git20130809.8062ee1-4_",
        "libdisorder-dev_0.0.2+git20130809.8062ee1-4_",
        "libdisorder-tools_0.0.2+git20130809.8062ee1-4_",
    ] {
        assert!(
            binaries.iter().any(|b| b.starts_with(deb)),
            "{deb}* in {binaries:?}"
        );
    }
    // Each upload's tests ran (results on each subticket), and each has its own build log.
    for subticket in detail["subtickets"].as_array().unwrap() {
        let on = |kind: &str| {
            artifacts
                .iter()
                .filter(|a| a["type"] == kind && a["subticket"] == subticket["resource_uri"])
                .count()
        };
        assert!(on("TEST_RESULT") >= 1, "{subticket}: {artifacts:?}");
        assert_eq!(on("BUILD_LOG"), 1, "{subticket}: {artifacts:?}");
    }
    let logs: std::collections::BTreeSet<String> = named("BUILD_LOG").into_iter().collect();
    let arch = ubuntu_ci_core::archive::host_architecture();
    assert_eq!(
        logs,
        [
            format!("hello_2.10-3_{arch}.build"),
            format!("libdisorder_0.0.2+git20130809.8062ee1-4_{arch}.build"),
            format!("libminini_1.4+ds-1_{arch}.build"),
        ]
        .into(),
        "one log per upload, none in another's place"
    );

    // Landed in the archive PPA: sources and binaries at their versions.
    let packages = std::fs::read_to_string(
        dir.path()
            .join("data/ppa/ci-team/ppa_archive/dists/bookworm/main/source/Sources"),
    )
    .unwrap();
    for upload in &uploads {
        assert!(
            packages.contains(&format!("Package: {}\n", upload.name))
                && packages.contains(&format!("Version: {}\n", upload.version)),
            "{} in:\n{packages}",
            upload.name
        );
    }
    assert!(
        worker_processes(dir.path(), &["sbuild", "autopkgtest", "mmdebstrap"]).is_empty(),
        "{:?}",
        worker_processes(dir.path(), &["sbuild", "autopkgtest", "mmdebstrap"])
    );
}
