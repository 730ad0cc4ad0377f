//! Proof that a PPA archive is a real one: apt, with signature checking on and a private
//! configuration, updates from it and downloads its packages, over `file:` and over HTTP
//! from `ubuntu-ci serve`; and its indices match `dpkg-scanpackages`/`dpkg-scansources`.

use std::path::Path;
use std::process::Command;

use ubuntu_ci_core::archive::{ArchiveOptions, Archives, Publishable};
use ubuntu_ci_core::model::NewTicket;
use ubuntu_ci_core::ppa::PpaName;
use ubuntu_ci_core::upload::validate_changes;
use ubuntu_ci_tests::apt::{build_deb, stanzas, write_minimal_deb, PrivateApt};
use ubuntu_ci_tests::{build_example_package, ubuntu_ci, TestServer, TOKEN};

const ALPHA: &str = "Package: ci-alpha\nVersion: 1.0-1\nArchitecture: all\nMaintainer: T <t@example.com>\nSection: misc\nPriority: optional\nMulti-Arch: foreign\nDescription: alpha test package\n Installed by the ubuntu-ci archive tests.\n .\n Second paragraph.\n";
const BETA: &str = "Package: ci-beta\nSource: hello-ci (1.0-1)\nVersion: 1.0-1+b1\nArchitecture: amd64\nMaintainer: T <t@example.com>\nDepends: ci-alpha (>= 1.0)\nDescription: beta test package\n";
const GAMMA: &str = "Package: ci-gamma\nVersion: 2:0.1~rc1\nArchitecture: amd64\nMaintainer: T <t@example.com>\nDescription: gamma test package\n";

/// An archive holding the example source and three binaries (control.tar compressed with
/// xz, zstd and gzip).
async fn populated_archive(work: &Path, archives: &Archives, ppa: &PpaName) {
    let changes = build_example_package(&work.join("source"));
    let upload = validate_changes(&changes).await.expect("valid upload");
    let debs = work.join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let items = vec![
        Publishable::Source(Box::new(upload)),
        Publishable::Deb(build_deb(&debs, ALPHA, "xz")),
        Publishable::Deb(build_deb(&debs, BETA, "zstd")),
        Publishable::Deb(build_deb(&debs, GAMMA, "gzip")),
    ];
    let report = archives.publish(ppa, None, items).await.expect("publish");
    assert_eq!(report.published.len(), 4, "{report:?}");
}

fn apt_sources(base: &str, key: &Path) -> String {
    format!(
        "deb [signed-by={key}] {base} bookworm main\ndeb-src [signed-by={key}] {base} bookworm main\n",
        key = key.display()
    )
}

/// Runs apt update, a binary download with its dependency, and a source download. apt
/// reads `file:` packages in place; over HTTP they land in its cache.
fn apt_downloads_everything(apt: &PrivateApt, over_http: bool) {
    apt.apt_get_ok(&["update"]);
    let policy = apt.apt_cache(&["policy", "ci-beta"]);
    assert!(
        String::from_utf8_lossy(&policy.stdout).contains("1.0-1+b1"),
        "{}",
        String::from_utf8_lossy(&policy.stdout)
    );
    let out = apt.apt_get_ok(&["install", "--download-only", "-y", "ci-beta"]);
    assert!(out.contains("2 newly installed"), "{out}");
    assert!(
        out.contains("Download complete and in download only mode"),
        "{out}"
    );
    if over_http {
        for deb in ["ci-beta_1.0-1+b1_amd64.deb", "ci-alpha_1.0-1_all.deb"] {
            assert!(apt.cache_dir().join(deb).exists(), "{deb} downloaded");
        }
    }
    apt.apt_get_ok(&["source", "--download-only", "hello-ci"]);
    for file in [
        "hello-ci_1.0-1.dsc",
        "hello-ci_1.0.orig.tar.gz",
        "hello-ci_1.0-1.debian.tar.xz",
    ] {
        assert!(apt.work_dir().join(file).exists(), "{file} downloaded");
    }
    // apt-get download takes one package without its dependencies (and checks its hash).
    apt.apt_get_ok(&["download", "ci-gamma"]);
    // apt names it with the epoch, escaped.
    assert!(apt
        .work_dir()
        .join("ci-gamma_2%3a0.1~rc1_amd64.deb")
        .exists());
}

#[tokio::test]
async fn apt_reads_a_file_archive_with_signature_checking() {
    let work = tempfile::tempdir().unwrap();
    let archives = Archives::new(work.path().join("ppa"), ArchiveOptions::default());
    let ppa: PpaName = "ppa:ci-team/ppa_build_1".parse().unwrap();
    populated_archive(work.path(), &archives, &ppa).await;

    let base = format!("file:{}", archives.path(&ppa).display());
    let apt = PrivateApt::new("");
    let key = apt.key_path("ppa.asc");
    std::fs::write(&key, archives.public_key("ci-team").await.unwrap()).unwrap();
    apt.set_sources(&apt_sources(&base, &key));
    apt_downloads_everything(&apt, false);

    // Signature checking is really on: another key is refused.
    let other = Archives::new(work.path().join("other"), ArchiveOptions::default());
    std::fs::write(&key, other.public_key("ci-team").await.unwrap()).unwrap();
    let stale = PrivateApt::new(&apt_sources(&base, &key));
    let output = stale.apt_get(&["update"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("NO_PUBKEY") || stderr.contains("not signed"),
        "apt accepted an archive signed by another key: {stderr}"
    );
}

fn scan(tool: &str, archive: &Path) -> String {
    let output = Command::new(tool)
        .arg("pool")
        .current_dir(archive)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e} (install dpkg-dev)"));
    assert!(output.status.success(), "{tool} failed");
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn indices_match_dpkg_scanpackages_and_dpkg_scansources_field_by_field() {
    let work = tempfile::tempdir().unwrap();
    let archives = Archives::new(work.path().join("ppa"), ArchiveOptions::default());
    let ppa: PpaName = "ppa:ci-team/ppa_build_1".parse().unwrap();
    populated_archive(work.path(), &archives, &ppa).await;
    let root = archives.path(&ppa);
    let live = root.join("dists/bookworm/main");

    let ours = stanzas(&std::fs::read_to_string(live.join("binary-amd64/Packages")).unwrap());
    let theirs = stanzas(&scan("dpkg-scanpackages", &root));
    assert_eq!(ours.len(), 3);
    assert_eq!(ours, theirs, "Packages");

    let ours = stanzas(&std::fs::read_to_string(live.join("source/Sources")).unwrap());
    let theirs = stanzas(&scan("dpkg-scansources", &root));
    assert_eq!(ours.len(), 1);
    assert_eq!(ours, theirs, "Sources");
}

fn run_ok(command: &mut Command) -> String {
    let output = command.output().expect("run ubuntu-ci");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The whole cycle through the CLI against `ubuntu-ci serve`: a ticket gets a PPA, the CLI
/// publishes into it over HTTP, apt installs from the served archive with the key the CLI
/// prints, and the release empties it.
#[tokio::test(flavor = "multi_thread")]
async fn apt_reads_an_archive_served_over_http_and_the_cli_drives_the_pool() {
    let server = TestServer::start().await;
    let ticket = server
        .services
        .tickets
        .create_ticket(NewTicket {
            owner: "dev@example.com".into(),
            title: "ppa over http".into(),
            description: String::new(),
            bug_id: String::new(),
        })
        .await
        .unwrap()
        .id;
    let work = tempfile::tempdir().unwrap();
    let client = |args: &[&str]| {
        let mut command = ubuntu_ci(&work.path().join("client"));
        command.args(["--server", server.url.as_str(), "--token", TOKEN]);
        command.args(args);
        command
    };
    let got: serde_json::Value = serde_json::from_str(&run_ok(&mut client(&[
        "--json",
        "ppa",
        "get",
        "--ticket",
        &ticket.to_string(),
    ])))
    .unwrap();
    assert_eq!(got["name"], "ppa:ci-team/ppa_build_1");
    assert_eq!(got["state"], "reserved");
    let archive_url = got["archive_url"].as_str().unwrap().to_owned();
    assert_eq!(archive_url, server.at("/ppa/ci-team/ppa_build_1/"));

    let changes = build_example_package(&work.path().join("source"));
    let debs = work.path().join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let alpha = build_deb(&debs, ALPHA, "xz");
    let beta = build_deb(&debs, BETA, "zstd");
    let gamma = build_deb(&debs, GAMMA, "gzip");
    let mut publish = client(&["ppa", "publish", "ppa:ci-team/ppa_build_1"]);
    publish.args([&changes, &alpha, &beta, &gamma]);
    let out = run_ok(&mut publish);
    assert_eq!(out.matches("published").count(), 4, "{out}");
    let listed = run_ok(&mut client(&["ppa", "packages", "ppa:ci-team/ppa_build_1"]));
    assert!(
        listed.contains("hello-ci") && listed.contains("ci-gamma"),
        "{listed}"
    );

    let apt = PrivateApt::new("");
    let key = apt.key_path("ppa.asc");
    let printed = run_ok(&mut client(&["ppa", "key", "ppa:ci-team/ppa_build_1"]));
    assert!(printed.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    std::fs::write(&key, printed).unwrap();
    apt.set_sources(&apt_sources(&archive_url, &key));
    tokio::task::spawn_blocking(move || apt_downloads_everything(&apt, true))
        .await
        .unwrap();

    let pool: serde_json::Value = reqwest::get(server.at("/api/v1/ppa/"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = &pool["objects"][0];
    assert_eq!(first["ticket"], ticket);
    assert!(first["sources_line"]
        .as_str()
        .unwrap()
        .starts_with("deb [signed-by=/etc/apt/keyrings/"));

    run_ok(&mut client(&[
        "ppa",
        "release",
        "--ticket",
        &ticket.to_string(),
    ]));
    let listed = run_ok(&mut client(&["ppa", "list"]));
    assert!(listed.contains("ppa:ci-team/ppa_build_1"), "{listed}");
    let response = reqwest::get(format!("{archive_url}dists/bookworm/InRelease"))
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "a released PPA is emptied");
}

#[tokio::test]
async fn the_archive_server_refuses_hidden_and_escaping_paths() {
    let server = TestServer::start().await;
    let archives = server.services.archives.local().unwrap();
    let ppa: PpaName = "ppa:ci-team/ppa_build_1".parse().unwrap();
    archives.ensure(&ppa, None).await.unwrap();
    std::fs::write(server.data_dir.path().join("secret"), "x").unwrap();
    let ok = reqwest::get(server.at("/ppa/ci-team/ppa_build_1/dists/bookworm/Release"))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "text/plain; charset=utf-8");
    for path in [
        "/ppa/ci-team/ppa_build_1/dists/.bookworm.g1/Release",
        "/ppa/ci-team/ppa_build_1/../../../secret",
        "/ppa/ci-team/ppa_build_1/%2e%2e/%2e%2e/%2e%2e/secret",
        "/ppa/ci-team/.locks/ppa_build_1.lock",
        "/ppa/ci-team/ppa_build_1/dists",
        "/ppa/ci-team/ppa_build_9/key.asc",
        "/ppa/Bad/x/key.asc",
    ] {
        let status = reqwest::get(server.at(path)).await.unwrap().status();
        assert_eq!(status, 404, "{path}");
    }
    // Writes need the token.
    let response = reqwest::Client::new()
        .post(server.at("/api/v1/ppa/assign/"))
        .json(&serde_json::json!({"ticket": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

/// Embedded mode: bad input to `ppa publish` is refused with the right exit code and
/// leaves the archive as it was.
#[test]
fn ppa_publish_refuses_bad_input_and_changes_nothing() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let debs = work.path().join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let alpha = build_deb(&debs, ALPHA, "xz");
    run_ok(
        ubuntu_ci(&data)
            .args(["ppa", "publish", "ppa:ci-team/ppa_build_1"])
            .arg(&alpha),
    );
    let inrelease = data.join("ppa/ci-team/ppa_build_1/dists/bookworm/InRelease");
    let before = std::fs::read(&inrelease).unwrap();

    let not_a_deb = debs.join("broken.deb");
    std::fs::write(&not_a_deb, "this is a text file, not a package").unwrap();
    let other = work.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let changed = build_deb(
        &other,
        &ALPHA.replace("Second paragraph.", "Changed."),
        "gzip",
    );
    let text = debs.join("notes.txt");
    std::fs::write(&text, "x").unwrap();
    // An upload for trixie, published with no series given: the default, bookworm, is not
    // what it names.
    let trixie = ubuntu_ci_tests::workers::example_variant(work.path(), "for-trixie", |tree| {
        let path = tree.join("debian/changelog");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen(") bookworm;", ") trixie;", 1)).unwrap();
    });
    for (file, series, code, expected) in [
        (&not_a_deb, Some("bookworm"), 3, "not an ar archive"),
        (&changed, Some("bookworm"), 5, "already holds other content"),
        (&text, Some("bookworm"), 3, "only .changes"),
        (&trixie, None, 3, "targets trixie, and no series was given"),
    ] {
        let mut command = ubuntu_ci(&data);
        command.args(["ppa", "publish", "ppa:ci-team/ppa_build_1"]);
        if let Some(series) = series {
            command.args(["--series", series]);
        }
        let output = command.arg(file).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{file:?}: {stderr}");
        assert!(stderr.contains(expected), "{file:?}: {stderr}");
    }
    assert_eq!(
        std::fs::read(&inrelease).unwrap(),
        before,
        "the archive is unchanged"
    );
    assert!(!data.join("ppa/ci-team/ppa_build_1/dists/trixie").exists());
}

/// Indices large enough to be compressed in many chunks read whole, through xz and gzip.
#[tokio::test]
async fn apt_reads_chunked_indices_whole_in_every_compression() {
    let work = tempfile::tempdir().unwrap();
    let archives = Archives::new(work.path().join("ppa"), ArchiveOptions::default());
    let ppa: PpaName = "ppa:ci-team/ppa_build_1".parse().unwrap();
    let debs = work.path().join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let items: Vec<Publishable> = (0..1500)
        .map(|i| Publishable::Deb(write_minimal_deb(&debs, &format!("many{i:04}"), "1", "all")))
        .collect();
    archives.publish(&ppa, None, items).await.unwrap();
    // One more, so the indices are rebuilt from cached chunks.
    let last = write_minimal_deb(&debs, "many9999", "1", "amd64");
    archives
        .publish(&ppa, None, vec![Publishable::Deb(last)])
        .await
        .unwrap();
    let chunks = std::fs::read_dir(
        archives
            .path(&ppa)
            .join(".cache/bookworm/main_binary-amd64_Packages"),
    )
    .unwrap()
    .count();
    assert!(chunks > 10, "{chunks} cached chunk files");

    let base = format!("file:{}", archives.path(&ppa).display());
    for compression in ["xz", "gz"] {
        let apt = PrivateApt::new("");
        let key = apt.key_path("ppa.asc");
        std::fs::write(&key, archives.public_key("ci-team").await.unwrap()).unwrap();
        apt.set_sources(&apt_sources(&base, &key));
        let order = format!("Acquire::CompressionTypes::Order::={compression}");
        let out = apt.apt_get_ok(&["-o", &order, "update"]);
        assert!(out.contains("Packages"), "{out}");
        let names = apt.apt_cache(&["pkgnames", "many"]);
        let count = String::from_utf8_lossy(&names.stdout).lines().count();
        assert_eq!(count, 1501, "{compression}");
    }
}

/// Publishes from several processes at once into one PPA: they take turns on the PPA's lock
/// and every package lands.
#[test]
fn publishes_from_many_processes_serialise_per_ppa() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let debs = work.path().join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let children: Vec<_> = (0..6)
        .map(|i| {
            let deb = write_minimal_deb(&debs, &format!("proc{i}"), "1", "amd64");
            ubuntu_ci(&data)
                .args(["ppa", "publish", "ppa:ci-team/ppa_build_1"])
                .arg(deb)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let listed = run_ok(ubuntu_ci(&data).args(["ppa", "packages", "ppa:ci-team/ppa_build_1"]));
    assert_eq!(listed.lines().count(), 6, "{listed}");
}
