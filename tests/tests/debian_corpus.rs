//! Real Debian uploads (the corpus of `tests/corpus/debian-sources.txt`: `+`, `~` and epochs
//! in versions, native and 1.0 formats, several orig tarballs, upstream signatures, signed
//! `.dsc`s, many binaries), through what reads uploads, names files and builds URLs:
//! `create-ticket`, the lander's reading of each upload (with instant workers), `ppa
//! publish` of the sources, and apt fetching them back over HTTP from the served archive.
//! The real builds, images and tests of three of them are in `debian_corpus_real.rs`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::lander::{ExecuteRequest, Lander, LanderOptions, RequestState, SubmitOptions};
use ubuntu_ci_core::ppa::PpaName;
use ubuntu_ci_core::queue::QueueName;
use ubuntu_ci_core::upload::validate_changes;
use ubuntu_ci_tests::apt::PrivateApt;
use ubuntu_ci_tests::corpus::debian_sources;
use ubuntu_ci_tests::fakes::instant;
use ubuntu_ci_tests::{serve_process, ubuntu_ci};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(output: std::process::Output) -> std::process::Output {
    assert!(
        output.status.success(),
        "ubuntu-ci failed ({:?}):\n{}\n{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    );
    output
}

/// The names of every file an upload stores: the files its .changes lists, the .changes,
/// and what the .dsc needs besides.
async fn stored_names(changes: &Path) -> BTreeSet<String> {
    let upload = validate_changes(changes).await.expect("a valid upload");
    upload
        .files
        .iter()
        .chain(&upload.dsc_only_files)
        .map(|f| f.name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn real_uploads_are_ticketed_read_by_the_lander_published_and_fetched_by_apt() {
    let sources = tokio::task::spawn_blocking(debian_sources).await.unwrap();
    assert!(sources.len() >= 15, "{} uploads", sources.len());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = Config {
        data_dir: Some(data.clone()),
        ..Config::default()
    };

    // create-ticket of each: every file stored under its own name, its URL naming it.
    let mut tickets = Vec::new();
    for source in sources {
        let output = ok(ubuntu_ci(&data)
            .args([
                "--json",
                "create-ticket",
                "-t",
                &source.name,
                "-o",
                "dev@example.com",
                "-s",
            ])
            .arg(&source.changes)
            .output()
            .unwrap());
        let ticket: Value = serde_json::from_slice(&output.stdout).unwrap();
        let artifacts = ticket["artifacts"].as_array().unwrap();
        let names: BTreeSet<String> = artifacts
            .iter()
            .filter(|a| a["type"] == "SPU")
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            stored_names(&source.changes).await,
            "{}",
            source.name
        );
        tickets.push((ticket["id"].as_i64().unwrap(), source, artifacts.clone()));
    }
    let services = config.connect(None).await.unwrap();
    for (_, source, artifacts) in &tickets {
        for artifact in artifacts {
            let url = url::Url::parse(artifact["reference"].as_str().unwrap()).unwrap();
            let (_, name) = services.store.resolve_url(&url).unwrap();
            assert_eq!(name.as_str(), artifact["name"], "{}: {url}", source.name);
        }
    }

    // The lander reads each upload from the store and lands it (instant workers).
    let (services, ..) = instant(
        services,
        dir.path().join("debs"),
        &[],
        &[],
        std::time::Duration::ZERO,
    );
    let lander = Lander::new(services.clone(), LanderOptions::new("bookworm").unwrap());
    for (id, source, _) in &tickets {
        let detail = services.tickets.get_ticket(*id).await.unwrap();
        let queue = QueueName::fresh("ticket").unwrap();
        let request =
            ExecuteRequest::for_ticket_with(&detail, &queue, SubmitOptions::default()).unwrap();
        let outcome = lander
            .execute(request, CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(
            outcome.state,
            RequestState::Completed,
            "{} {}: {:?}",
            source.name,
            source.version,
            outcome.reason
        );
        assert_eq!(
            outcome.published,
            [format!("{} {}", source.name, source.version)]
        );
    }
    let archives = services.archives.local().unwrap().clone();
    let archive: PpaName = "ppa:ci-team/ppa_archive".parse().unwrap();
    let landed: BTreeSet<String> = archives
        .list(&archive, Some("bookworm"))
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.architecture == "source")
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    let expected: BTreeSet<String> = sources
        .iter()
        .map(|s| format!("{} {}", s.name, s.version))
        .collect();
    assert_eq!(landed, expected);
    drop((lander, archives, services));

    // ppa publish of every source at once, then apt fetches each back over HTTP, the
    // .dsc byte for byte.
    let (id, ..) = tickets[0];
    ok(ubuntu_ci(&data)
        .args(["ppa", "get", "--ticket", &id.to_string()])
        .output()
        .unwrap());
    let build = "ppa:ci-team/ppa_build_1";
    let publish = |series: Option<&str>| {
        let mut publish = ubuntu_ci(&data);
        publish.args(["ppa", "publish", build]);
        if let Some(series) = series {
            publish.args(["--series", series]);
        }
        for source in sources {
            publish.arg(&source.changes);
        }
        publish.output().unwrap()
    };
    // Debian's uploads target unstable: into the default series only when asked.
    let refused = publish(None);
    assert_eq!(refused.status.code(), Some(3));
    assert!(
        text(&refused.stderr).contains("targets unstable, and no series was given"),
        "{}",
        text(&refused.stderr)
    );
    let published = text(&ok(publish(Some("bookworm"))).stdout);
    for source in sources {
        let line = format!("{} {} source", source.name, source.version);
        assert!(
            published.lines().any(|l| l
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains(&line)),
            "{line} in\n{published}"
        );
    }
    let server = serve_process(&data, "corpus-token");
    let base = format!("{}ppa/ci-team/ppa_build_1/", server.url);
    let apt = PrivateApt::new("");
    let key = apt.key_path("ppa.asc");
    let printed = ok(ubuntu_ci(&data)
        .args(["ppa", "key", build])
        .output()
        .unwrap());
    std::fs::write(&key, &printed.stdout).unwrap();
    apt.set_sources(&format!(
        "deb-src [signed-by={}] {base} bookworm main\n",
        key.display()
    ));
    apt.apt_get_ok(&["update"]);
    for source in sources {
        apt.apt_get_ok(&[
            "source",
            "--download-only",
            &format!("{}={}", source.name, source.version),
        ]);
        let folder = source.changes.parent().unwrap();
        for name in stored_names(&source.changes).await {
            if name.ends_with(".changes") {
                continue;
            }
            let fetched = apt.work_dir().join(&name);
            assert!(
                fetched.exists(),
                "{}: {name} not fetched by apt",
                source.name
            );
            if name.ends_with(".dsc") {
                assert_eq!(
                    std::fs::read(&fetched).unwrap(),
                    std::fs::read(folder.join(&name)).unwrap(),
                    "{name} byte for byte"
                );
            }
        }
    }
}
