//! Signed uploads end to end: the policy in the configuration, keys made by real gpg, the
//! CLI creating tickets and `ubuntu-ci serve` publishing sources.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ubuntu_ci_tests::gpg::TestGpg;
use ubuntu_ci_tests::{
    build_example_package, serve_process, serve_process_with_lander, ubuntu_ci, ServedProcess,
};

fn write_config(data_dir: &Path, text: &str) {
    let dir = data_dir.join("config/ubuntu-ci");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), text).unwrap();
}

fn require_config(keyring: &Path) -> String {
    format!(
        "[uploads]\nsignatures = \"require\"\nkeyring = [\"{}\"]\n",
        keyring.display()
    )
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run ubuntu-ci")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ticket_count(data: &Path) -> usize {
    let output = run(ubuntu_ci(data).args(["--json", "ticket", "list"]));
    assert!(output.status.success(), "{}", text(&output));
    let page: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    page["objects"].as_array().unwrap().len()
}

/// A fresh build of the example package in `dir`.
fn upload(dir: &Path) -> PathBuf {
    build_example_package(dir)
}

#[test]
fn create_ticket_requires_a_known_signature_when_configured() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let allowed = TestGpg::new("Allowed Uploader <allowed@example.com>");
    let stranger = TestGpg::new("Stranger <stranger@example.com>");
    let keyring = work.path().join("uploaders.gpg");
    allowed.export(&keyring);
    write_config(&data, &require_config(&keyring));

    let create = |changes: &Path| {
        run(ubuntu_ci(&data)
            .args([
                "create-ticket",
                "--owner",
                "dev@example.com",
                "--title",
                "signed",
            ])
            .arg("--source")
            .arg(changes))
    };

    let unsigned = upload(&work.path().join("unsigned"));
    let output = create(&unsigned);
    assert_eq!(output.status.code(), Some(6), "{}", text(&output));
    assert!(text(&output).contains("not signed"), "{}", text(&output));

    let foreign = upload(&work.path().join("foreign"));
    stranger.sign_upload(&foreign);
    let output = create(&foreign);
    assert_eq!(output.status.code(), Some(6), "{}", text(&output));
    assert!(
        text(&output).contains("not in the keyring of allowed uploaders"),
        "{}",
        text(&output)
    );

    let tampered = upload(&work.path().join("tampered"));
    allowed.sign_upload(&tampered);
    let changed = std::fs::read_to_string(&tampered)
        .unwrap()
        .replace("Initial release", "Initial relaese");
    std::fs::write(&tampered, changed).unwrap();
    let output = create(&tampered);
    assert_eq!(output.status.code(), Some(6), "{}", text(&output));
    assert!(text(&output).contains("bad signature"), "{}", text(&output));
    assert_eq!(
        ticket_count(&data),
        0,
        "nothing was created for refused uploads"
    );

    let signed = upload(&work.path().join("signed"));
    allowed.sign_upload(&signed);
    let output = create(&signed);
    assert!(output.status.success(), "{}", text(&output));
    let shown = run(ubuntu_ci(&data).args(["--json", "ticket", "show", "1"]));
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains(&format!(
            "hello-ci 1.0-1: signed by Allowed Uploader <allowed@example.com> ({})",
            allowed.fingerprint
        )),
        "{shown}"
    );
}

#[test]
fn unsigned_uploads_pass_by_default_and_the_ticket_says_so() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let changes = upload(&work.path().join("pkg"));
    let output = run(ubuntu_ci(&data)
        .args([
            "create-ticket",
            "--owner",
            "dev@example.com",
            "--title",
            "unsigned",
        ])
        .arg("--source")
        .arg(&changes));
    assert!(output.status.success(), "{}", text(&output));
    let shown = run(ubuntu_ci(&data).args(["--json", "ticket", "show", "1"]));
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("signatures not verified (signature policy allow-unsigned)"),
        "{shown}"
    );
}

fn serve(data: &Path) -> (ServedProcess, String) {
    let served = serve_process(data, "s3cret");
    let warnings = served.warnings.clone();
    (served, warnings)
}

#[test]
fn a_server_requires_signed_sources_by_default() {
    let work = tempfile::tempdir().unwrap();
    let server_data = work.path().join("server");
    let (served, warning) = serve(&server_data);
    assert!(warning.contains("no keyring of allowed"), "{warning}");
    let client = work.path().join("client");
    let publish = |url: &str, changes: &Path| {
        run(ubuntu_ci(&client)
            .args(["--server", url, "--token", "s3cret"])
            .args(["ppa", "publish", "ppa:ci-team/ppa_build_1"])
            .arg(changes))
    };
    let unsigned = upload(&work.path().join("unsigned"));
    let output = publish(&served.url, &unsigned);
    assert_eq!(output.status.code(), Some(6), "{}", text(&output));
    assert!(
        text(&output).contains("uploads must be signed"),
        "{}",
        text(&output)
    );
    drop(served);

    // With a keyring of allowed uploaders, a signed source is published.
    let allowed = TestGpg::new("Allowed Uploader <allowed@example.com>");
    let keyring = work.path().join("uploaders.gpg");
    allowed.export(&keyring);
    write_config(&server_data, &require_config(&keyring));
    let (served, warning) = serve(&server_data);
    assert!(!warning.contains("warning"), "{warning}");
    let signed = upload(&work.path().join("signed"));
    allowed.sign_upload(&signed);
    let output = publish(&served.url, &signed);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("published  hello-ci 1.0-1 source"),
        "{}",
        text(&output)
    );
    let output = publish(&served.url, &unsigned);
    assert_eq!(output.status.code(), Some(6), "{}", text(&output));
    assert!(text(&output).contains("not signed"), "{}", text(&output));
}

/// A server that requires signed uploads does not build an unsigned one, however it came:
/// here a client whose own policy lets it through makes the ticket and hands it to the
/// server's lander, which refuses it at its build step (before sbuild runs) and publishes
/// nothing.
#[test]
fn a_server_builds_only_what_its_own_policy_accepts() {
    let work = tempfile::tempdir().unwrap();
    let server_data = work.path().join("server");
    let allowed = TestGpg::new("Allowed Uploader <allowed@example.com>");
    let keyring = work.path().join("uploaders.gpg");
    allowed.export(&keyring);
    write_config(&server_data, &require_config(&keyring));
    let served = serve_process_with_lander(&server_data, "s3cret");
    let client = work.path().join("client");
    let unsigned = upload(&work.path().join("unsigned"));
    let output = run(ubuntu_ci(&client)
        .args(["--server", &served.url, "--token", "s3cret"])
        .args([
            "create-ticket",
            "-t",
            "unsigned",
            "-o",
            "dev@example.com",
            "--wait",
            "-s",
        ])
        .arg(&unsigned));
    assert_eq!(output.status.code(), Some(11), "{}", text(&output));
    let shown =
        run(ubuntu_ci(&client).args(["--server", &served.url, "--json", "ticket", "show", "1"]));
    let detail: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(detail["current_workflow_step"], "SOURCE_BUILD");
    assert_eq!(detail["status"], "FAILED");
    let last = detail["progress"].as_array().unwrap().last().unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(last.contains("refused by the signature policy"), "{last}");
    assert!(last.contains("not signed"), "{last}");
    let archive = server_data.join("ppa/ci-team/ppa_archive/dists");
    assert!(
        !archive.join("bookworm/main/source/Sources").exists()
            || !std::fs::read_to_string(archive.join("bookworm/main/source/Sources"))
                .unwrap()
                .contains("hello-ci"),
        "nothing published"
    );
}
