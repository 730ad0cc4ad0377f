//! The archive's own tests: layout, atomic changes, conflicts, remove, copy, concurrency.
//! `tests/tests/archive.rs` proves apt accepts the result.

use std::path::{Path, PathBuf};

use super::deb::tests::{ar, control_tar, gzip};
use super::*;
use crate::ErrorKind;

fn archives() -> (tempfile::TempDir, Archives) {
    let dir = tempfile::tempdir().unwrap();
    let options = ArchiveOptions {
        architectures: vec!["amd64".into()],
        ..ArchiveOptions::default()
    };
    let archives = Archives::new(dir.path().join("ppa"), options);
    (dir, archives)
}

fn ppa(name: &str) -> PpaName {
    PpaName::new("ci-team", name).unwrap()
}

/// Writes a `.deb` of `package` into `dir`; `extra` changes its bytes but not its name.
pub(crate) fn write_deb(
    dir: &Path,
    package: &str,
    version: &str,
    arch: &str,
    extra: &str,
) -> PathBuf {
    let control = format!(
        "Package: {package}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: T <t@example.com>\nDescription: test package {package}\n {extra}\n"
    );
    let deb = ar(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", &gzip(&control_tar(&control))),
        ("data.tar.gz", &gzip(&[0u8; 1024])),
    ]);
    let path = dir.join(format!("{package}_{version}_{arch}.deb"));
    std::fs::write(&path, deb).unwrap();
    path
}

/// The live generation of `series`, after checking that its Release matches every file.
fn verified_release(archives: &Archives, ppa: &PpaName, series: &str) -> (PathBuf, String) {
    let dir = archives.path(ppa).join("dists").join(series);
    let release = std::fs::read_to_string(dir.join("Release")).unwrap();
    let entries = parse_release_entries(&release);
    assert!(!entries.is_empty());
    for (path, entry) in &entries {
        let bytes = std::fs::read(dir.join(path)).unwrap();
        let digests = checksums::digest_bytes(&bytes);
        assert_eq!(
            (digests.size, &digests.sha256),
            (entry.size, &entry.sha256),
            "{path}"
        );
        assert_eq!(digests.md5, entry.md5, "{path}");
        let parent = Path::new(path).parent().unwrap();
        assert!(
            dir.join(parent)
                .join("by-hash/SHA256")
                .join(&entry.sha256)
                .exists(),
            "{path} by hash"
        );
    }
    let inrelease = std::fs::read_to_string(dir.join("InRelease")).unwrap();
    assert!(inrelease.starts_with("-----BEGIN PGP SIGNED MESSAGE-----"));
    (dir, release)
}

fn packages(archives: &Archives, ppa: &PpaName, series: &str, arch: &str) -> String {
    std::fs::read_to_string(
        archives
            .path(ppa)
            .join(format!("dists/{series}/main/binary-{arch}/Packages")),
    )
    .unwrap()
}

fn generation(archives: &Archives, ppa: &PpaName, series: &str) -> PathBuf {
    std::fs::read_link(archives.path(ppa).join("dists").join(series)).unwrap()
}

#[tokio::test]
async fn an_empty_archive_is_valid_and_signed() {
    let (_dir, archives) = archives();
    let ppa = ppa("ppa_build_1");
    archives.ensure(&ppa, None).await.unwrap();
    let (dir, release) = verified_release(&archives, &ppa, "bookworm");
    assert!(release.contains("Suite: bookworm\nCodename: bookworm\n"));
    assert!(release.contains("Architectures: amd64\n"));
    assert!(release.contains("Acquire-By-Hash: yes\n"));
    for file in [
        "main/source/Sources",
        "main/source/Sources.gz",
        "main/source/Sources.xz",
        "main/binary-amd64/Packages.xz",
        "Release.gpg",
    ] {
        assert!(dir.join(file).exists(), "{file}");
    }
    assert_eq!(
        std::fs::read_to_string(archives.path(&ppa).join("key.asc")).unwrap(),
        archives.public_key("ci-team").await.unwrap()
    );
    let first = generation(&archives, &ppa, "bookworm");
    archives.ensure(&ppa, None).await.unwrap();
    assert_eq!(
        generation(&archives, &ppa, "bookworm"),
        first,
        "ensure is idempotent"
    );
}

#[tokio::test]
async fn publishing_debs_adds_stanzas_and_identical_republishing_is_a_no_op() {
    let (dir, archives) = archives();
    let ppa = ppa("ppa_build_1");
    let debs = vec![
        Publishable::Deb(write_deb(dir.path(), "alpha", "1.0-1", "amd64", "a")),
        Publishable::Deb(write_deb(dir.path(), "libbeta1", "2:1.0", "all", "b")),
    ];
    let report = archives.publish(&ppa, None, debs.clone()).await.unwrap();
    assert_eq!(report.published.len(), 2);
    let (_, release) = verified_release(&archives, &ppa, "bookworm");
    assert!(release.contains("main/binary-amd64/Packages.gz"));
    let text = packages(&archives, &ppa, "bookworm", "amd64");
    assert!(text.contains("Filename: pool/main/a/alpha/alpha_1.0-1_amd64.deb\n"));
    assert!(text.contains("Filename: pool/main/libb/libbeta1/libbeta1_1.0_all.deb\n"));
    assert!(archives
        .path(&ppa)
        .join("pool/main/a/alpha/alpha_1.0-1_amd64.deb")
        .exists());

    let before = generation(&archives, &ppa, "bookworm");
    let again = archives.publish(&ppa, None, debs).await.unwrap();
    assert_eq!((again.published.len(), again.unchanged.len()), (0, 2));
    assert_eq!(generation(&archives, &ppa, "bookworm"), before);

    let listed = archives.list(&ppa, None).await.unwrap();
    assert_eq!(
        listed.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["alpha", "libbeta1"]
    );
}

#[tokio::test]
async fn other_content_under_a_published_name_is_a_conflict_and_changes_nothing() {
    let (dir, archives) = archives();
    let ppa = ppa("ppa_build_1");
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    let deb = write_deb(&first, "alpha", "1.0-1", "amd64", "a");
    archives
        .publish(&ppa, None, vec![Publishable::Deb(deb)])
        .await
        .unwrap();
    let before = generation(&archives, &ppa, "bookworm");
    let text = packages(&archives, &ppa, "bookworm", "amd64");

    let other = write_deb(&second, "alpha", "1.0-1", "amd64", "changed");
    let fresh = write_deb(&second, "gamma", "1", "amd64", "g");
    let err = archives
        .publish(
            &ppa,
            None,
            vec![Publishable::Deb(fresh), Publishable::Deb(other)],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.message().contains("alpha_1.0-1_amd64.deb"), "{err}");
    assert_eq!(generation(&archives, &ppa, "bookworm"), before);
    assert_eq!(packages(&archives, &ppa, "bookworm", "amd64"), text);
    assert!(
        !archives.path(&ppa).join("pool/main/g").exists(),
        "gamma was not placed"
    );
    verified_release(&archives, &ppa, "bookworm");
}

#[tokio::test]
async fn a_broken_deb_refuses_the_whole_publish() {
    let (dir, archives) = archives();
    let ppa = ppa("ppa_build_1");
    archives.ensure(&ppa, None).await.unwrap();
    let before = generation(&archives, &ppa, "bookworm");
    let good = write_deb(dir.path(), "alpha", "1.0-1", "amd64", "a");
    let bad = dir.path().join("bad.deb");
    std::fs::write(&bad, b"not a deb").unwrap();
    let err = archives
        .publish(
            &ppa,
            None,
            vec![Publishable::Deb(good), Publishable::Deb(bad.clone())],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.resource(), Some(bad.display().to_string().as_str()));
    assert_eq!(generation(&archives, &ppa, "bookworm"), before);
    assert!(!archives.path(&ppa).join("pool").exists());
    verified_release(&archives, &ppa, "bookworm");
}

fn good_upload() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/good-upload");
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let changes = dir.path().join("tiny_1.0-1_source.changes");
    (dir, changes)
}

#[tokio::test]
async fn sources_are_published_for_the_series_given_else_their_changes_must_name_the_default() {
    let (_dir, archives) = archives();
    let ppa = ppa("ppa_build_2");
    let (_upload_dir, changes) = good_upload();
    let upload = crate::upload::validate_changes(&changes).await.unwrap();
    // No series given: the default (bookworm), which this upload (for unstable) does not
    // name.
    let err = archives
        .publish(
            &ppa,
            None,
            vec![Publishable::Source(Box::new(upload.clone()))],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("targets unstable"), "{err}");
    assert!(err.message().contains("--series bookworm"), "{err}");
    assert!(!archives.path(&ppa).exists());
    // A series given is the caller's choice: a Debian upload for unstable tested on
    // bookworm.
    let other = PpaName::new("ci-team", "ppa_build_3").unwrap();
    archives
        .publish(
            &other,
            Some("bookworm"),
            vec![Publishable::Source(Box::new(upload.clone()))],
        )
        .await
        .unwrap();
    verified_release(&archives, &other, "bookworm");

    let report = archives
        .publish(
            &ppa,
            Some("unstable"),
            vec![Publishable::Source(Box::new(upload))],
        )
        .await
        .unwrap();
    assert_eq!(report.published[0].architecture, "source");
    let (dir, _) = verified_release(&archives, &ppa, "unstable");
    let sources = std::fs::read_to_string(dir.join("main/source/Sources")).unwrap();
    assert!(sources.starts_with("Package: tiny\n"), "{sources}");
    assert!(sources.contains("Directory: pool/main/t/tiny\n"));
    for file in [
        "tiny_1.0-1.dsc",
        "tiny_1.0.orig.tar.gz",
        "tiny_1.0-1.debian.tar.xz",
    ] {
        assert!(archives
            .path(&ppa)
            .join("pool/main/t/tiny")
            .join(file)
            .exists());
    }
}

#[tokio::test]
async fn remove_drops_a_source_with_its_binaries_and_their_pool_files() {
    let (dir, archives) = archives();
    let ppa = ppa("ppa_build_1");
    let (_upload_dir, changes) = good_upload();
    let upload = crate::upload::validate_changes(&changes).await.unwrap();
    let control = "Package: tiny-bin\nSource: tiny (1.0-1)\nVersion: 1.0-1+b1\nArchitecture: amd64\nDescription: x\n";
    let deb = dir.path().join("tiny-bin.deb");
    std::fs::write(
        &deb,
        ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", &gzip(&control_tar(control))),
        ]),
    )
    .unwrap();
    let other = write_deb(dir.path(), "other", "1", "amd64", "o");
    archives
        .publish(
            &ppa,
            Some("unstable"),
            vec![
                Publishable::Source(Box::new(upload)),
                Publishable::Deb(deb),
                Publishable::Deb(other),
            ],
        )
        .await
        .unwrap();
    let report = archives
        .remove(&ppa, Some("unstable"), "tiny", Some("1.0-1"))
        .await
        .unwrap();
    assert_eq!(report.removed.len(), 2, "{report:?}");
    let left = archives.list(&ppa, Some("unstable")).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].name, "other");
    assert!(!archives.path(&ppa).join("pool/main/t").exists());
    verified_release(&archives, &ppa, "unstable");
    let err = archives
        .remove(&ppa, Some("unstable"), "tiny", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn copy_brings_packages_into_another_ppa() {
    let (dir, archives) = archives();
    let (build, target) = (ppa("ppa_build_1"), ppa("ppa_archive"));
    let alpha = write_deb(dir.path(), "alpha", "1.0-1", "amd64", "a");
    archives
        .publish(&build, None, vec![Publishable::Deb(alpha)])
        .await
        .unwrap();
    let report = archives
        .copy(&build, &target, None, "alpha", None)
        .await
        .unwrap();
    assert_eq!(report.published.len(), 1);
    assert_eq!(
        packages(&archives, &build, "bookworm", "amd64"),
        packages(&archives, &target, "bookworm", "amd64")
    );
    verified_release(&archives, &target, "bookworm");
    let again = archives
        .copy(&build, &target, None, "alpha", None)
        .await
        .unwrap();
    assert_eq!(again.unchanged.len(), 1);

    // The build PPA is cleaned and reused: a rebuilt alpha with other bytes conflicts.
    archives.clean(&build).await.unwrap();
    let other_dir = dir.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let rebuilt = write_deb(&other_dir, "alpha", "1.0-1", "amd64", "rebuilt");
    archives
        .publish(&build, None, vec![Publishable::Deb(rebuilt)])
        .await
        .unwrap();
    let err = archives
        .copy(&build, &target, None, "alpha", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(
        archives
            .copy(&build, &build, None, "alpha", None)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        archives
            .copy(&build, &target, None, "missing", None)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn concurrent_publishes_to_one_ppa_all_land() {
    let (dir, archives) = archives();
    let ppa = ppa("ppa_build_1");
    let mut tasks = Vec::new();
    for i in 0..12 {
        let deb = write_deb(dir.path(), &format!("pkg{i}"), "1", "amd64", "x");
        let archives = archives.clone();
        let ppa = ppa.clone();
        let other = PpaName::new("ci-team", &format!("ppa_build_{}", 2 + i % 2)).unwrap();
        tasks.push(tokio::spawn(async move {
            archives
                .publish(&ppa, None, vec![Publishable::Deb(deb.clone())])
                .await
                .unwrap();
            archives
                .publish(&other, None, vec![Publishable::Deb(deb)])
                .await
                .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(archives.list(&ppa, None).await.unwrap().len(), 12);
    for name in ["ppa_build_2", "ppa_build_3"] {
        assert_eq!(
            archives.list(&self::ppa(name), None).await.unwrap().len(),
            6
        );
    }
    verified_release(&archives, &ppa, "bookworm");
    // Only the live generation and the one before it are kept.
    let generations = std::fs::read_dir(archives.path(&ppa).join("dists"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".bookworm.g")
        })
        .count();
    assert_eq!(generations, 2);
}

#[tokio::test]
async fn by_hash_keeps_recent_indices_for_readers_mid_update() {
    let (dir, archives) = archives();
    let ppa = ppa("ppa_build_1");
    archives.ensure(&ppa, None).await.unwrap();
    let (_, first_release) = verified_release(&archives, &ppa, "bookworm");
    let old = parse_release_entries(&first_release);
    let deb = write_deb(dir.path(), "alpha", "1", "amd64", "a");
    archives
        .publish(&ppa, None, vec![Publishable::Deb(deb)])
        .await
        .unwrap();
    let live = archives.path(&ppa).join("dists/bookworm");
    let entry = &old["main/binary-amd64/Packages.xz"];
    assert!(live
        .join("main/binary-amd64/by-hash/SHA256")
        .join(&entry.sha256)
        .exists());
}

#[tokio::test]
async fn cleaning_empties_the_archive() {
    let (dir, archives) = archives();
    let ppa = ppa("ppa_build_1");
    let deb = write_deb(dir.path(), "alpha", "1", "amd64", "a");
    archives
        .publish(&ppa, None, vec![Publishable::Deb(deb)])
        .await
        .unwrap();
    archives.clean(&ppa).await.unwrap();
    assert!(!archives.path(&ppa).exists());
    assert!(archives.list(&ppa, None).await.unwrap().is_empty());
    // The key survives cleaning: apt users keep trusting the pool.
    assert!(archives.root().join("ci-team/.key").exists());
}

#[tokio::test]
async fn leftovers_of_a_crashed_change_or_cleaning_are_cleared() {
    let (dir, archives) = archives();
    let ppa = ppa("ppa_build_1");
    archives.ensure(&ppa, None).await.unwrap();
    let root = archives.path(&ppa);
    // A change that died while building its generation, and a cleaning that died between
    // its rename and its delete.
    let staging = root.join("dists/.bookworm.g2.tmp-0badf00d");
    std::fs::create_dir_all(staging.join("main")).unwrap();
    let next = root.join("dists/.bookworm.g2");
    std::fs::create_dir_all(&next).unwrap();
    std::fs::write(next.join("Release"), "half-written").unwrap();
    let dead_cleaning = archives
        .root()
        .join("ci-team/.cleaning-0badf00d-ppa_build_1");
    std::fs::create_dir_all(dead_cleaning.join("pool")).unwrap();
    // PPAs whose names start with this one's, or look like a cleaning folder: not touched.
    let mut neighbours = Vec::new();
    for name in ["ppa_build_1.cleaning-0", "ppa_build_10", "ppa_build_1-x"] {
        let other = PpaName::new("ci-team", name).unwrap();
        archives.ensure(&other, None).await.unwrap();
        neighbours.push(other);
    }
    let neighbours_cleaning = archives
        .root()
        .join("ci-team/.cleaning-0badf00d-ppa_build_10");
    std::fs::create_dir_all(&neighbours_cleaning).unwrap();

    let deb = write_deb(dir.path(), "alpha", "1", "amd64", "a");
    archives
        .publish(&ppa, None, vec![Publishable::Deb(deb)])
        .await
        .unwrap();
    assert!(!staging.exists(), "the dead staging folder is gone");
    assert_eq!(
        generation(&archives, &ppa, "bookworm"),
        PathBuf::from(".bookworm.g2")
    );
    verified_release(&archives, &ppa, "bookworm");
    archives.clean(&ppa).await.unwrap();
    assert!(!dead_cleaning.exists(), "the dead cleaning is finished");
    for other in &neighbours {
        assert!(archives.path(other).exists(), "{other} untouched");
    }
    assert!(
        neighbours_cleaning.exists(),
        "another PPA's cleaning is its own"
    );
    // Cleaning a PPA whose name holds a dot renames it out of the way whole.
    archives.clean(&neighbours[0]).await.unwrap();
    assert!(!archives.path(&neighbours[0]).exists());
    assert!(archives.path(&neighbours[1]).exists());
}
