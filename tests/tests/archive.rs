//! Proof that a PPA archive is a real one: apt, with signature checking on and a private
//! configuration, updates from it and downloads its packages, over `file:` and over HTTP
//! from `ubuntu-ci serve`; and its indices match `dpkg-scanpackages`/`dpkg-scansources`.

use std::path::Path;
use std::process::Command;

use ubuntu_ci_core::archive::{ArchiveOptions, Archives, Publishable};
use ubuntu_ci_core::ppa::PpaName;
use ubuntu_ci_core::upload::validate_changes;
use ubuntu_ci_tests::apt::{build_deb, stanzas, PrivateApt};
use ubuntu_ci_tests::build_example_package;

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
