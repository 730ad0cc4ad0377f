//! What a Debian developer expects of a command line, tried on the `ubuntu-ci` binary:
//! every `ppa` subcommand doing its work, tickets given by id or URI, one rule for list
//! limits, newest tickets first, owners as `Name <address>`, bugs from the `.changes`,
//! errors as JSON under `--json` with their cause, `--quiet`, `--color`, completions, man
//! pages, the system-wide configuration, and `status --follow --json` as JSON lines.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use ubuntu_ci_tests::workers::example_variant;
use ubuntu_ci_tests::{build_example_package, ubuntu_ci};

fn run(command: &mut Command) -> Output {
    command.output().expect("run ubuntu-ci")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `text` with every run of blanks made one space (the report's columns).
fn squeezed(bytes: &[u8]) -> String {
    text(bytes)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ok(output: Output) -> Output {
    assert!(
        output.status.success(),
        "ubuntu-ci failed ({:?}):\n{}\n{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    );
    output
}

fn json(output: Output) -> Value {
    serde_json::from_slice(&ok(output).stdout).expect("JSON on stdout")
}

fn create_ticket(data: &Path, changes: &Path, extra: &[&str]) -> Output {
    run(ubuntu_ci(data)
        .args(["create-ticket", "-t", "example"])
        .args(extra)
        .arg("-s")
        .arg(changes))
}

#[test]
fn every_ppa_subcommand_does_its_work() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let changes = build_example_package(&work.path().join("pkg"));
    ok(create_ticket(&data, &changes, &["-o", "dev@example.com"]));
    let ppa = |args: &[&str]| {
        let mut command = ubuntu_ci(&data);
        command.arg("ppa").args(args);
        command
    };
    // --help of the two that used to panic (an option clashing with --version).
    for sub in ["remove", "copy"] {
        let help = ok(run(&mut ppa(&[sub, "--help"])));
        assert!(
            text(&help.stdout).contains("[VERSION]"),
            "{}",
            text(&help.stdout)
        );
    }

    let got = json(run(
        ppa(&["get", "--ticket", "/api/v1/ticket/1/"]).arg("--json")
    ));
    let build = got["name"].as_str().unwrap().to_owned();
    assert_eq!(build, "ppa:ci-team/ppa_build_1");
    let renewed = json(run(ppa(&["renew", "--ticket", "1"]).arg("--json")));
    assert_eq!(renewed["ticket"], 1);
    let listed = text(&ok(run(&mut ppa(&["list"]))).stdout);
    assert!(listed.contains("ppa:ci-team/ppa_build_1"), "{listed}");
    let key = text(&ok(run(&mut ppa(&["key", &build]))).stdout);
    assert!(key.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));

    let published = squeezed(&ok(run(ppa(&["publish", &build]).arg(&changes))).stdout);
    assert!(
        published.contains("published hello-ci 1.0-1 source"),
        "{published}"
    );
    let packages = text(&ok(run(&mut ppa(&["packages", &build]))).stdout);
    assert!(
        packages.contains("hello-ci") && packages.contains("1.0-1"),
        "{packages}"
    );

    // copy (with a version), then remove (with a wrong version: nothing; the right one).
    let target = "ppa:ci-team/ppa_build_2";
    let copied = squeezed(
        &ok(run(&mut ppa(&[
            "copy", &build, target, "hello-ci", "1.0-1",
        ])))
        .stdout,
    );
    assert!(
        copied.contains("published hello-ci 1.0-1 source"),
        "{copied}"
    );
    let there = text(&ok(run(&mut ppa(&["packages", target]))).stdout);
    assert!(there.contains("hello-ci"), "{there}");
    let none = run(&mut ppa(&["remove", target, "hello-ci", "9.9-9"]));
    assert!(
        !text(&none.stdout).contains("removed"),
        "{}",
        text(&none.stdout)
    );
    let removed = squeezed(&ok(run(&mut ppa(&["remove", target, "hello-ci", "1.0-1"]))).stdout);
    assert!(
        removed.contains("removed hello-ci 1.0-1 source"),
        "{removed}"
    );
    let empty = text(&ok(run(&mut ppa(&["packages", target]))).stdout);
    assert!(!empty.contains("hello-ci"), "{empty}");

    let released = json(run(ppa(&["release", "--ticket", "1"]).arg("--json")));
    assert_eq!(released["released"], true);
}

#[test]
fn tickets_are_listed_newest_first_under_one_limit_rule() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let changes = build_example_package(&work.path().join("pkg"));
    for _ in 0..3 {
        ok(create_ticket(&data, &changes, &["-o", "dev@example.com"]));
    }
    let list = json(run(ubuntu_ci(&data).args(["--json", "ticket", "list"])));
    let ids: Vec<i64> = list["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [3, 2, 1]);
    let first = json(run(
        ubuntu_ci(&data).args(["--json", "ticket", "list", "--limit", "1"])
    ));
    assert_eq!(first["objects"][0]["id"], 3);
    for limit in ["0", "5000"] {
        let refused = run(ubuntu_ci(&data).args(["ticket", "list", "--limit", limit]));
        assert_eq!(refused.status.code(), Some(3), "--limit {limit}");
        assert!(
            text(&refused.stderr).contains("limit: must be 1 to 1000"),
            "{}",
            text(&refused.stderr)
        );
    }
    // Every command that takes a ticket takes its URI as well as its id.
    let shown = json(run(ubuntu_ci(&data).args([
        "--json",
        "ticket",
        "show",
        "/api/v1/ticket/2/",
    ])));
    assert_eq!(shown["id"], 2);
    let cancel = run(ubuntu_ci(&data).args(["cancel", "/api/v1/ticket/1/"]));
    assert_eq!(cancel.status.code(), Some(5), "{}", text(&cancel.stderr));
    assert!(
        text(&cancel.stderr).contains("has no request under way"),
        "{}",
        text(&cancel.stderr)
    );
}

#[test]
fn owners_take_the_name_and_address_form_and_bugs_come_from_the_changes() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let changes = example_variant(work.path(), "closes", |tree| {
        let path = tree.join("debian/changelog");
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replacen(
            "  * Initial release",
            "  * Fix the greeting (Closes: #1034001)\n  * Initial release",
            1,
        );
        std::fs::write(&path, text).unwrap();
    });
    ok(create_ticket(
        &data,
        &changes,
        &[
            "-o",
            "Jane Dev <jane@example.com>",
            "--assignee",
            "Joe <joe@example.com>",
        ],
    ));
    let ticket = json(run(ubuntu_ci(&data).args(["--json", "ticket", "show", "1"])));
    assert_eq!(ticket["owner"], "jane@example.com");
    assert_eq!(ticket["subtickets"][0]["assignee"], "joe@example.com");
    assert_eq!(ticket["bug_id"], "https://bugs.debian.org/1034001");
    // The owner filter takes the same form.
    let mine = json(run(ubuntu_ci(&data).args([
        "--json",
        "ticket",
        "list",
        "--owner",
        "Jane Dev <jane@example.com>",
    ])));
    assert_eq!(mine["meta"]["total_count"], 1);
    // -b wins over the .changes; a malformed owner is refused.
    ok(create_ticket(
        &data,
        &changes,
        &["-o", "jane@example.com", "-b", "77"],
    ));
    let second = json(run(ubuntu_ci(&data).args(["--json", "ticket", "show", "2"])));
    assert_eq!(second["bug_id"], "https://bugs.launchpad.net/bugs/77");
    let bad = create_ticket(&data, &changes, &["-o", "Jane Dev <jane@example.com"]);
    assert_eq!(bad.status.code(), Some(3), "{}", text(&bad.stderr));
}

#[test]
fn errors_under_json_are_one_object_with_their_cause() {
    let work = tempfile::tempdir().unwrap();
    // A port that was just free, and is no more listened on: the connection is refused.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", listener.local_addr().unwrap())
    };
    let output =
        run(ubuntu_ci(work.path()).args(["--json", "--server", closed.as_str(), "ticket", "list"]));
    assert_eq!(output.status.code(), Some(7));
    let error: Value = serde_json::from_slice(&output.stderr).expect("one JSON object");
    assert_eq!(error["kind"], "unavailable");
    assert_eq!(error["retryable"], true);
    assert_eq!(error["exit_code"], 7);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.to_lowercase().contains("connection refused"),
        "{message}"
    );
    // Without --json: the same cause, for people.
    let plain =
        run(ubuntu_ci(work.path()).args(["--server", "http://127.0.0.1:9/", "ticket", "list"]));
    assert!(
        text(&plain.stderr)
            .to_lowercase()
            .contains("connection refused"),
        "{}",
        text(&plain.stderr)
    );
    // A bad command line under --json.
    let usage = run(ubuntu_ci(work.path()).args(["--json", "ticket", "list", "--limit", "x"]));
    assert_eq!(usage.status.code(), Some(2));
    let error: Value = serde_json::from_slice(&usage.stderr).expect("one JSON object");
    assert_eq!(error["kind"], "usage");
    assert_eq!(error["exit_code"], 2);
    // Not found.
    let missing = run(ubuntu_ci(work.path()).args(["--json", "ticket", "show", "42"]));
    assert_eq!(missing.status.code(), Some(4));
    let error: Value = serde_json::from_slice(&missing.stderr).expect("one JSON object");
    assert_eq!(error["kind"], "not_found");
    assert_eq!(error["retryable"], false);
}

#[test]
fn quiet_and_color_do_what_they_say() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let changes = build_example_package(&work.path().join("pkg"));
    ok(create_ticket(&data, &changes, &["-o", "dev@example.com"]));
    let loud = ok(run(ubuntu_ci(&data).args(["ppa", "get", "--ticket", "1"])));
    assert!(
        text(&loud.stderr).contains("Getting a PPA"),
        "{}",
        text(&loud.stderr)
    );
    let quiet = ok(run(
        ubuntu_ci(&data).args(["-q", "ppa", "get", "--ticket", "1"])
    ));
    assert!(quiet.stderr.is_empty(), "{}", text(&quiet.stderr));
    assert_eq!(
        quiet.stdout, loud.stdout,
        "the result is printed all the same"
    );
    let conflicting = run(ubuntu_ci(&data).args(["-q", "-v", "ticket", "list"]));
    assert_eq!(conflicting.status.code(), Some(2));

    // The error line: red only when asked (not a terminal here, so auto is plain).
    for (color, coloured) in [("always", true), ("never", false), ("auto", false)] {
        let output = run(ubuntu_ci(&data).args(["--color", color, "ticket", "show", "42"]));
        assert_eq!(output.status.code(), Some(4));
        assert_eq!(
            text(&output.stderr).contains("\x1b["),
            coloured,
            "--color {color}: {:?}",
            text(&output.stderr)
        );
    }
    // -v logs into a file carry no escape codes unless asked.
    let logged = run(ubuntu_ci(&data).args(["-vv", "ticket", "list"]));
    assert!(
        !text(&logged.stderr).contains("\x1b["),
        "{}",
        text(&logged.stderr)
    );
}

#[test]
fn completions_and_man_pages_come_from_the_command_line() {
    let work = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F _ubuntu__ci"),
        ("zsh", "#compdef ubuntu-ci"),
        ("fish", "complete -c ubuntu-ci"),
    ] {
        let script = text(&ok(run(ubuntu_ci(work.path()).args(["completions", shell]))).stdout);
        assert!(
            script.contains(marker),
            "{shell}: {}",
            &script[..script.len().min(200)]
        );
        assert!(script.contains("create-ticket"), "{shell}");
    }
    let pages = work.path().join("man1");
    let written = text(
        &ok(run(ubuntu_ci(work.path())
            .args(["man", "--out-dir"])
            .arg(&pages)))
        .stdout,
    );
    for page in [
        "ubuntu-ci.1",
        "ubuntu-ci-create-ticket.1",
        "ubuntu-ci-ppa-remove.1",
    ] {
        let path = pages.join(page);
        assert!(written.contains(&path.display().to_string()), "{written}");
        let roff = std::fs::read_to_string(&path).unwrap();
        assert!(
            roff.starts_with(".ie") || roff.contains(".TH"),
            "{page}: {roff}"
        );
    }
    let remove = std::fs::read_to_string(pages.join("ubuntu-ci-ppa-remove.1")).unwrap();
    assert!(remove.contains("VERSION"), "{remove}");
    // The synopsis names the command as it is typed.
    assert!(
        remove.contains("\\fBubuntu\\-ci ppa remove\\fR"),
        "{remove}"
    );
}

#[test]
fn the_system_configuration_is_read_under_the_users() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let changes = build_example_package(&work.path().join("pkg"));
    let system = work.path().join("system.toml");
    std::fs::write(&system, "owner = \"ci-team@example.com\"\n").unwrap();
    let made = |user: Option<&str>| {
        let mut command = ubuntu_ci(&data);
        command
            .env("UBUNTU_CI_SYSTEM_CONFIG", &system)
            .env_remove("DEBEMAIL");
        if let Some(owner) = user {
            let dir = data.join("config/ubuntu-ci");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("config.toml"), format!("owner = \"{owner}\"\n")).unwrap();
        }
        ok(run(command
            .args(["--json", "create-ticket", "-t", "t", "-s"])
            .arg(&changes)));
    };
    made(None);
    made(Some("jane@example.com"));
    let list = json(run(ubuntu_ci(&data).args(["--json", "ticket", "list"])));
    let owners: Vec<&str> = list["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["owner"].as_str().unwrap())
        .collect();
    assert_eq!(owners, ["jane@example.com", "ci-team@example.com"]);
    // A bad system file is named.
    std::fs::write(&system, "colour = 1\n").unwrap();
    let bad = run(ubuntu_ci(&data)
        .env("UBUNTU_CI_SYSTEM_CONFIG", &system)
        .args(["ticket", "list"]));
    assert_eq!(bad.status.code(), Some(3));
    assert!(
        text(&bad.stderr).contains("system.toml"),
        "{}",
        text(&bad.stderr)
    );
}

#[tokio::test]
async fn status_follow_json_is_one_object_per_line() {
    use ubuntu_ci_core::config::Config;
    use ubuntu_ci_core::model::{NewTransition, StepStatus, Uri, WorkflowStep};
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let changes = build_example_package(&work.path().join("pkg"));
    ok(create_ticket(&data, &changes, &["-o", "dev@example.com"]));
    // Closed, so that following it ends.
    let services = Config {
        data_dir: Some(data.clone()),
        ..Config::default()
    }
    .connect(None)
    .await
    .unwrap();
    services
        .tickets
        .record_transition(NewTransition {
            ticket: Uri::new(1),
            step: WorkflowStep::SourceBuild,
            status: StepStatus::Failed,
            message: "the build failed".into(),
        })
        .await
        .unwrap();
    drop(services);
    let output = tokio::task::spawn_blocking(move || {
        run(ubuntu_ci(&data).args(["--json", "status", "1", "--follow"]))
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(11), "{}", text(&output.stderr));
    let lines: Vec<Value> = text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line one JSON object"))
        .collect();
    assert!(lines.len() >= 3, "{lines:?}");
    assert_eq!(lines[0]["ticket"]["id"], 1);
    assert!(
        lines.iter().any(|e| e["message"] == "the build failed"),
        "{lines:?}"
    );
    let error: Value = serde_json::from_slice(&output.stderr).expect("one JSON object");
    assert_eq!(error["kind"], "did_not_complete");
}
