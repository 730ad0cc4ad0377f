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
        Some(9),
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
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("prerequisites are missing"), "{stderr}");
    assert!(ubuntu_ci_binary().exists());
}
