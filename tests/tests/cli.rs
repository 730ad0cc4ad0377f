//! `ubuntu-ci` as a user runs it: create-ticket on the example package, embedded and
//! against `ubuntu-ci serve`; the bad-upload corpus; `store` round trips.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use ubuntu_ci_tests::{build_example_package, repo_root, serve_process, ubuntu_ci, ServedProcess};

fn run(command: &mut Command) -> Output {
    command.output().expect("run ubuntu-ci")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ok(output: Output) -> Output {
    assert!(
        output.status.success(),
        "ubuntu-ci failed ({:?}):\n{}\n{}",
        output.status.code(),
        stdout(&output),
        stderr(&output)
    );
    output
}

fn json(output: Output) -> Value {
    let output = ok(output);
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

fn ticket_count(data_dir: &Path) -> u64 {
    let list = json(run(ubuntu_ci(data_dir).args(["--json", "ticket", "list"])));
    list["meta"]["total_count"].as_u64().expect("total_count")
}

fn stored_containers(data_dir: &Path) -> Vec<Value> {
    let list = json(run(ubuntu_ci(data_dir).args(["--json", "store", "ls"])));
    list.as_array().expect("array").clone()
}

#[test]
fn create_ticket_stores_every_file_and_records_artifacts() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let changes = build_example_package(&work.path().join("pkg"));

    let output = ok(run(ubuntu_ci(&data)
        .args([
            "create_ticket",
            "-t",
            "hello-ci 1.0-1",
            "-d",
            "rebuild",
            "-b",
            "123",
            "-o",
            "dev@example.com",
            "-s",
        ])
        .arg(&changes)));
    assert_eq!(stdout(&output).trim(), "/api/v1/ticket/1/");

    let ticket = json(run(ubuntu_ci(&data).args(["--json", "ticket", "show", "1"])));
    assert_eq!(ticket["title"], "hello-ci 1.0-1");
    assert_eq!(ticket["bug_id"], "https://bugs.launchpad.net/bugs/123");
    assert_eq!(ticket["owner"], "dev@example.com");
    assert_eq!(ticket["subtickets"].as_array().unwrap().len(), 1);
    assert_eq!(ticket["subtickets"][0]["assignee"], "dev@example.com");
    let artifacts = ticket["artifacts"].as_array().unwrap();
    let mut names: Vec<&str> = artifacts
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        vec![
            "hello-ci_1.0-1.debian.tar.xz",
            "hello-ci_1.0-1.dsc",
            "hello-ci_1.0-1_source.changes",
            "hello-ci_1.0.orig.tar.gz",
        ]
    );
    let dir = changes.parent().unwrap();
    for artifact in artifacts {
        assert_eq!(artifact["type"], "SPU");
        let name = artifact["name"].as_str().unwrap();
        let reference = artifact["reference"].as_str().unwrap();
        assert!(
            reference.ends_with(&format!("/ticket.1.sources/{name}")),
            "the URL names container and object: {reference}"
        );
        let path = url::Url::parse(reference).unwrap().to_file_path().unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(dir.join(name)).unwrap(),
            "{name} stored as uploaded"
        );
    }
    // The store lists the public container with the four files.
    let containers = stored_containers(&data);
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["name"], "ticket.1.sources");
    assert_eq!(containers[0]["public"], true);
    assert_eq!(containers[0]["object_count"], 4);

    // The same upload again: a new ticket reusing the upload, with its own copy.
    let again = json(run(ubuntu_ci(&data)
        .args([
            "--json",
            "create-ticket",
            "-t",
            "again",
            "-o",
            "dev@example.com",
            "-s",
        ])
        .arg(&changes)));
    assert_eq!(again["id"], 2);
    assert_eq!(
        again["subtickets"][0]["source_package_upload"],
        ticket["subtickets"][0]["source_package_upload"],
        "identical files reuse the upload"
    );
    assert_eq!(stored_containers(&data).len(), 2);
}

#[test]
fn a_version_with_other_files_is_a_conflict_and_creates_nothing() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let changes = build_example_package(&work.path().join("pkg"));
    ok(run(ubuntu_ci(&data)
        .args([
            "create-ticket",
            "-t",
            "first",
            "-o",
            "dev@example.com",
            "-s",
        ])
        .arg(&changes)));

    // Same version, different content: rebuild after changing the package.
    let other = work.path().join("other");
    let copy = work.path().join("hello-ci");
    copy_tree(&repo_root().join("examples/packages/hello-ci"), &copy);
    let readme = copy.join("README");
    std::fs::write(&readme, "a different upstream\n").unwrap();
    let status = Command::new("bash")
        .arg(repo_root().join("examples/packages/build-source.sh"))
        .arg(&other)
        .env("HELLO_CI_SOURCE_DIR", &copy)
        .status()
        .unwrap();
    assert!(status.success());
    let other_changes = other.join(changes.file_name().unwrap());
    let output = run(ubuntu_ci(&data)
        .args([
            "create-ticket",
            "-t",
            "second",
            "-o",
            "dev@example.com",
            "-s",
        ])
        .arg(&other_changes));
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("already uploaded"),
        "{}",
        stderr(&output)
    );
    assert_eq!(ticket_count(&data), 1);
    assert_eq!(stored_containers(&data).len(), 1);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every case of `tests/corpus/bad-uploads`: exit 3, a clear message, no ticket, nothing
/// stored.
#[test]
fn the_bad_upload_corpus_is_refused_without_a_trace() {
    let corpus = repo_root().join("tests/corpus/bad-uploads");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 15, "the corpus has {} cases", cases.len());
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    for case in cases {
        let expect = std::fs::read_to_string(case.join("EXPECT")).unwrap();
        let expect = expect.trim();
        let changes = std::fs::read_dir(&case)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".changes"))
            .unwrap_or_else(|| panic!("{}: no .changes", case.display()));
        let output = run(ubuntu_ci(&data)
            .args(["create-ticket", "-t", "bad", "-o", "dev@example.com", "-s"])
            .arg(&changes));
        let message = stderr(&output);
        assert_eq!(
            output.status.code(),
            Some(3),
            "{}: exit code; stderr: {message}",
            case.display()
        );
        assert!(
            message.contains(expect),
            "{}: message {message:?} lacks {expect:?}",
            case.display()
        );
        assert!(!message.contains("panicked"), "{message}");
    }
    assert_eq!(ticket_count(&data), 0, "no ticket from a bad upload");
    assert!(
        stored_containers(&data).is_empty(),
        "nothing stored from a bad upload"
    );
}

#[test]
fn a_10_mb_field_is_refused_with_the_file_named() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let changes = work.path().join("huge_1.0_source.changes");
    let mut text = String::from("Format: 1.8\nSource: huge\nVersion: 1.0\nDescription: ");
    text.push_str(&"x".repeat(10 * 1024 * 1024));
    text.push('\n');
    std::fs::write(&changes, text).unwrap();
    let output = run(ubuntu_ci(&data)
        .args(["create-ticket", "-t", "huge", "-o", "dev@example.com", "-s"])
        .arg(&changes));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("huge_1.0_source.changes"));
    assert_eq!(ticket_count(&data), 0);
}

#[test]
fn missing_owner_and_missing_sources_are_usage_errors() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let changes = build_example_package(&work.path().join("pkg"));
    let output = run(ubuntu_ci(&data)
        .env_remove("DEBEMAIL")
        .args(["create-ticket", "-t", "x", "-s"])
        .arg(&changes));
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("no owner"), "{}", stderr(&output));
    let output = run(ubuntu_ci(&data)
        .env("DEBEMAIL", "Jane Dev <jane@example.com>")
        .args(["--json", "create-ticket", "-t", "x", "-s"])
        .arg(&changes));
    let ticket: Value = serde_json::from_slice(&ok(output).stdout).unwrap();
    assert_eq!(ticket["owner"], "jane@example.com");
    let output = run(ubuntu_ci(&data).args(["create-ticket", "-t", "x", "-o", "a@b"]));
    assert_eq!(output.status.code(), Some(2), "clap's usage error");
}

#[test]
fn store_put_get_ls_rm_round_trip() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let file = work.path().join("notes.txt");
    std::fs::write(&file, "hello store\n").unwrap();
    let put = ok(run(ubuntu_ci(&data)
        .args(["store", "put", "--public", "ticket.9.logs"])
        .arg(&file)));
    assert!(
        stdout(&put).trim().ends_with("/ticket.9.logs/notes.txt"),
        "{}",
        stdout(&put)
    );
    let target = work.path().join("copy.txt");
    ok(run(ubuntu_ci(&data)
        .args(["store", "get", "ticket.9.logs", "notes.txt", "-o"])
        .arg(&target)));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "hello store\n");
    let cat = ok(run(ubuntu_ci(&data).args([
        "store",
        "get",
        "ticket.9.logs",
        "notes.txt",
        "-o",
        "-",
    ])));
    assert_eq!(stdout(&cat), "hello store\n");
    let listed = json(run(ubuntu_ci(&data).args([
        "--json",
        "store",
        "ls",
        "ticket.9.logs",
    ])));
    assert_eq!(listed[0]["name"], "notes.txt");
    assert_eq!(listed[0]["size"], 12);

    let refused = run(ubuntu_ci(&data).args(["store", "rm", "ticket.9.logs"]));
    assert_eq!(
        refused.status.code(),
        Some(5),
        "a non-empty container needs -r"
    );
    let hostile = run(ubuntu_ci(&data)
        .args(["store", "put", "ticket.9.logs", "--name", "../escape"])
        .arg(&file));
    assert_eq!(hostile.status.code(), Some(3));
    ok(run(ubuntu_ci(&data).args([
        "store",
        "rm",
        "ticket.9.logs",
        "notes.txt",
    ])));
    let missing = run(ubuntu_ci(&data).args(["store", "get", "ticket.9.logs", "notes.txt"]));
    assert_eq!(missing.status.code(), Some(4));
    ok(run(ubuntu_ci(&data).args([
        "store",
        "rm",
        "-r",
        "ticket.9.logs",
    ])));
    assert!(stored_containers(&data).is_empty());
}

fn serve(data_dir: &Path, token: &str) -> ServedProcess {
    serve_process(data_dir, token)
}

#[test]
fn create_ticket_against_a_server() {
    let work = tempfile::tempdir().unwrap();
    let server_data = work.path().join("server");
    let client_data = work.path().join("client");
    let changes = build_example_package(&work.path().join("pkg"));
    let served = serve(&server_data, "s3cret");

    let output = ok(run(ubuntu_ci(&client_data)
        .args(["--server", &served.url, "--token", "s3cret"])
        .args([
            "create-ticket",
            "-t",
            "remote",
            "-b",
            "7",
            "-o",
            "dev@example.com",
            "-s",
        ])
        .arg(&changes)));
    assert_eq!(
        stdout(&output).trim(),
        format!("{}api/v1/ticket/1/", served.url)
    );

    let ticket = json(run(ubuntu_ci(&client_data).args([
        "--server",
        &served.url,
        "--json",
        "ticket",
        "show",
        "1",
    ])));
    let artifacts = ticket["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 4);
    let dir = changes.parent().unwrap();
    for artifact in artifacts {
        let reference = artifact["reference"].as_str().unwrap();
        let name = artifact["name"].as_str().unwrap();
        assert_eq!(
            reference,
            format!("{}store/ticket.1.sources/{name}", served.url),
            "served objects live at the server's URLs"
        );
        // Public: readable without a token, byte for byte.
        let body = reqwest::blocking_get(reference);
        assert_eq!(body, std::fs::read(dir.join(name)).unwrap(), "{name}");
    }
    assert!(
        !client_data.join("tickets.db").exists(),
        "the client kept no local state"
    );

    let no_token = run(ubuntu_ci(&client_data)
        .args(["--server", &served.url])
        .args(["create-ticket", "-t", "anon", "-o", "dev@example.com", "-s"])
        .arg(&changes));
    assert_eq!(no_token.status.code(), Some(6), "{}", stderr(&no_token));
    let list = json(run(ubuntu_ci(&client_data).args([
        "--server",
        &served.url,
        "--json",
        "ticket",
        "list",
    ])));
    assert_eq!(list["meta"]["total_count"], 1);
}

#[test]
fn an_unreachable_server_is_a_retryable_error() {
    let work = tempfile::tempdir().unwrap();
    let output =
        run(ubuntu_ci(work.path()).args(["--server", "http://127.0.0.1:9/", "ticket", "list"]));
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    assert!(stderr(&output).contains("try again"), "{}", stderr(&output));
}

mod reqwest {
    /// GETs a URL without credentials and returns the body (blocking, for plain tests).
    pub fn blocking_get(url: &str) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let response = ::reqwest::get(url).await.unwrap();
            assert_eq!(response.status(), ::reqwest::StatusCode::OK, "{url}");
            response.bytes().await.unwrap().to_vec()
        })
    }
}

/// A server killed with SIGKILL in the middle of a PUT leaves the old object, whole, and no
/// trace of the new one under its name; the store works after a restart.
#[tokio::test]
async fn a_server_killed_mid_put_keeps_the_old_object_whole() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let old = work.path().join("image.bin");
    std::fs::write(&old, b"the old image").unwrap();
    ok(run(ubuntu_ci(&data)
        .args(["store", "put", "ticket.5.images"])
        .arg(&old)));

    let mut served = serve(&data, "s3cret");
    let (chunks, body) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let stream = futures::stream::unfold(body, |mut body| async move {
        body.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), body))
    });
    let put = ::reqwest::Client::new()
        .put(format!("{}store/ticket.5.images/image.bin", served.url))
        .bearer_auth("s3cret")
        .body(::reqwest::Body::wrap_stream(stream))
        .send();
    let upload = tokio::spawn(put);
    // Half an upload reaches the server; then the server dies.
    for _ in 0..8 {
        chunks.send(vec![7u8; 1024 * 1024]).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    drop(chunks);
    assert!(
        upload.await.unwrap().is_err(),
        "the upload cannot have succeeded"
    );

    let object = data.join("store/ticket.5.images/image.bin");
    assert_eq!(std::fs::read(&object).unwrap(), b"the old image");
    let got = ok(run(ubuntu_ci(&data).args([
        "store",
        "get",
        "ticket.5.images",
        "image.bin",
        "-o",
        "-",
    ])))
    .stdout;
    assert_eq!(got, b"the old image");
    let listed = json(run(ubuntu_ci(&data).args([
        "--json",
        "store",
        "ls",
        "ticket.5.images",
    ])));
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "no stray object: {listed}"
    );
    // A new server on the same state serves and stores as before.
    let served = serve(&data, "s3cret");
    let response = ::reqwest::Client::new()
        .put(format!("{}store/ticket.5.images/image.bin", served.url))
        .bearer_auth("s3cret")
        .body("the new image")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), ::reqwest::StatusCode::CREATED);
    assert_eq!(std::fs::read(&object).unwrap(), b"the new image");
}

/// Runs `command`, failing the test if it takes longer than a minute (a hang).
fn run_within_a_minute(command: &mut Command) -> Output {
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ubuntu-ci");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(output) => output.expect("ubuntu-ci output"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("ubuntu-ci hung");
        }
    }
}

#[test]
fn workers_through_a_server_are_unsupported_at_once() {
    let work = tempfile::tempdir().unwrap();
    let server = serve(&work.path().join("server"), "cli-token");
    let client = work.path().join("client");
    for args in [
        vec!["image", "bootstrap"],
        vec![
            "image",
            "build",
            "--base",
            "http://x/base.tar.zst",
            "--package",
            "hello",
        ],
        vec!["test", "http://x/image.tar.zst", "hello"],
    ] {
        let output = run_within_a_minute(
            ubuntu_ci(&client)
                .args(["--server", &server.url, "--token", "cli-token"])
                .args(&args),
        );
        assert_eq!(
            output.status.code(),
            Some(9),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("needs workers"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn requests_through_a_server_without_a_lander_say_so() {
    let work = tempfile::tempdir().unwrap();
    let server = serve(&work.path().join("server"), "cli-token");
    let client = work.path().join("client");
    let changes = build_example_package(&work.path().join("pkg"));
    let uci = |args: &[&str]| {
        let mut command = ubuntu_ci(&client);
        command
            .args(["--server", &server.url, "--token", "cli-token"])
            .args(args);
        command
    };
    // The ticket is made; handing it to a lander is not possible there, and said.
    let made = run_within_a_minute(
        uci(&["create-ticket", "-t", "t", "-o", "dev@example.com", "-s"]).arg(&changes),
    );
    assert!(made.status.success(), "{}", stderr(&made));
    assert!(
        stderr(&made).contains("runs no lander"),
        "{}",
        stderr(&made)
    );
    let waited = run_within_a_minute(
        uci(&[
            "create-ticket",
            "-t",
            "t",
            "-o",
            "dev@example.com",
            "--wait",
            "-s",
        ])
        .arg(&changes),
    );
    assert_eq!(waited.status.code(), Some(9), "{}", stderr(&waited));
    for args in [vec!["cancel", "1"], vec!["retry", "1"]] {
        let output = run_within_a_minute(&mut uci(&args));
        assert_eq!(
            output.status.code(),
            Some(9),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("runs no lander"),
            "{}",
            stderr(&output)
        );
    }
    let status = run_within_a_minute(&mut uci(&["status", "1"]));
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(
        stdout(&status).contains("no request"),
        "{}",
        stdout(&status)
    );
    let unknown = run_within_a_minute(&mut uci(&["status", "99"]));
    assert_eq!(unknown.status.code(), Some(4), "{}", stderr(&unknown));
}

#[test]
fn status_retry_and_cancel_name_what_is_missing_locally() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let changes = build_example_package(&work.path().join("pkg"));
    ok(run(ubuntu_ci(&data)
        .args(["create-ticket", "-t", "t", "-o", "dev@example.com", "-s"])
        .arg(&changes)));
    let status = ok(run(ubuntu_ci(&data).args(["status", "1"])));
    assert!(stdout(&status).contains("ticket 1: t — NEW PENDING (open)"));
    assert!(
        stdout(&status).contains("no request"),
        "{}",
        stdout(&status)
    );
    let retry = run(ubuntu_ci(&data).args(["retry", "1"]));
    assert_eq!(retry.status.code(), Some(4), "{}", stderr(&retry));
    assert!(stderr(&retry).contains("never had a request"));
    let cancel = run(ubuntu_ci(&data).args(["cancel", "1"]));
    assert_eq!(cancel.status.code(), Some(5), "{}", stderr(&cancel));
    for args in [["status", "7"], ["retry", "7"], ["cancel", "7"]] {
        let output = run(ubuntu_ci(&data).args(args));
        assert_eq!(
            output.status.code(),
            Some(4),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn image_and_test_requests_outside_the_store_fail_clearly() {
    let work = tempfile::tempdir().unwrap();
    let output = run_within_a_minute(ubuntu_ci(work.path()).args([
        "image",
        "build",
        "--base",
        "http://example.com/base.tar.zst",
        "--package",
        "hello",
    ]));
    // A request the image builder refuses is invalid input (exit 3), not a failed build.
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("not in the configured data store"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).is_empty(), "no URL printed");
    let output = run_within_a_minute(ubuntu_ci(work.path()).args([
        "test",
        "http://example.com/image.tar.zst",
        "hello",
    ]));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("not in the configured data store"),
        "{}",
        stderr(&output)
    );
}

/// `serve` ignores SIGPIPE (a log reader or a client that went away is a write error, not
/// the server's death), while the other commands end quietly on a closed pipe.
#[test]
fn serve_ignores_sigpipe() {
    let work = tempfile::tempdir().unwrap();
    let served = serve(&work.path().join("data"), "s3cret");
    let status = std::fs::read_to_string(format!("/proc/{}/status", served.child.id())).unwrap();
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|mask| u64::from_str_radix(mask.trim(), 16).unwrap())
        .unwrap();
    const SIGPIPE: u32 = 13;
    assert_ne!(ignored & (1 << (SIGPIPE - 1)), 0, "SigIgn {ignored:x}");
}
