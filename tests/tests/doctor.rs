//! `ubuntu-ci doctor` names what is missing and how to fix it.

use ubuntu_ci_tests::{ubuntu_ci, ubuntu_ci_binary};

#[test]
fn doctor_names_missing_tools_with_their_fix_and_fails() {
    let work = tempfile::tempdir().unwrap();
    // A PATH without the Debian tools.
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let output = ubuntu_ci(&work.path().join("data"))
        .args(["--json", "doctor"])
        .env("PATH", &bin)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(12),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let checks: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let sbuild = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sbuild")
        .unwrap();
    assert_eq!(sbuild["ok"], false);
    assert_eq!(
        sbuild["fix"],
        "sudo apt-get install --no-install-recommends sbuild"
    );
    let data = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "data dir")
        .unwrap();
    assert_eq!(data["ok"], true);
    // Only what the product needs, unless --tests asks for the test suite's too.
    assert!(checks
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["scope"] == "product"));
    assert!(!checks
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "gpg"));
    // Under --json the error is one JSON object on stderr.
    let error: serde_json::Value = serde_json::from_slice(&output.stderr).unwrap();
    assert_eq!(error["kind"], "prerequisites_missing");
    assert_eq!(error["exit_code"], 12);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("prerequisites are missing"),
        "{error}"
    );
    assert!(ubuntu_ci_binary().exists());

    let with_tests = ubuntu_ci(&work.path().join("data"))
        .args(["--json", "doctor", "--tests"])
        .env("PATH", &bin)
        .output()
        .unwrap();
    let checks: serde_json::Value = serde_json::from_slice(&with_tests.stdout).unwrap();
    let gpg = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "gpg")
        .unwrap();
    assert_eq!(gpg["scope"], "tests");
    assert_eq!(gpg["ok"], false);
}

#[test]
fn doctor_checks_the_versions_the_code_relies_on() {
    let work = tempfile::tempdir().unwrap();
    let output = ubuntu_ci(&work.path().join("data"))
        .args(["--json", "doctor"])
        .output()
        .unwrap();
    let checks: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let autopkgtest = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "autopkgtest")
        .unwrap();
    // Installed by the test set-up from bookworm (5.28 or later).
    assert_eq!(autopkgtest["ok"], true, "{autopkgtest}");
    assert!(
        autopkgtest["detail"]
            .as_str()
            .unwrap()
            .contains("(autopkgtest 5."),
        "{autopkgtest}"
    );
}
