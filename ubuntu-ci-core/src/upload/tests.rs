//! Tests of upload validation: pure parsing, uploads built in temporary directories, the
//! corpus of bad uploads under `tests/corpus/`, and the example package.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;
use crate::ErrorKind;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus")
}

const HELLO_CHANGES: &str = "\
Format: 1.8
Date: Mon, 01 Jan 2024 12:00:00 +0000
SOURCE: hello (2.10-3)
Binary: hello
architecture: source all
Version: 2.10-3+b1
Distribution: unstable
Maintainer: Santiago Vila <sanvila@debian.org>
Changed-By: Jörg Müller <joerg@example.com>
Description:
 hello      - example package based on GNU hello
Changes:
 hello (2.10-3) unstable; urgency=medium
 .
   * Rebuild.
checksums-sha1:
 6d3ddc4bd3d8ab80b4c1d8d1e0b1d3f5c3b2a1f0 1183 hello_2.10-3.dsc
 F7BEBF6F9C62A2295E889F66E05CE9BFAED9ACE3 725946 hello_2.10.orig.tar.gz
Checksums-Sha256:
 aa3d3c1f8ed5e0e4b4ef1b7a2d1a9b0c8e7f6d5c4b3a2918070605040302010f 1183 hello_2.10-3.dsc
 31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b 725946 hello_2.10.orig.tar.gz
Files:
 0c3a3dcfe4d8f29f2bc3b5a3a0e2d4b6 1183 devel optional hello_2.10-3.dsc
 cc0b4c2e3c6d7f1f4b5e2a0d9c8b7a6f 725946 devel optional hello_2.10.orig.tar.gz
";

fn message_of<T: std::fmt::Debug>(result: Result<T>) -> String {
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    err.to_string()
}

fn replace(text: &str, from: &str, to: &str) -> Vec<u8> {
    assert!(text.contains(from), "{from:?} not in the text");
    text.replacen(from, to, 1).into_bytes()
}

#[test]
fn parses_a_changes_file() {
    let changes = Changes::parse(HELLO_CHANGES.as_bytes()).unwrap();
    assert_eq!(changes.source, "hello");
    assert_eq!(changes.version, "2.10-3+b1");
    assert_eq!(
        changes.source_version, "2.10-3",
        "taken from Source: hello (2.10-3)"
    );
    assert_eq!(changes.architecture, ["source", "all"]);
    assert_eq!(changes.distribution.as_deref(), Some("unstable"));
    assert_eq!(
        changes.changed_by.as_deref(),
        Some("Jörg Müller <joerg@example.com>")
    );
    assert_eq!(changes.files.len(), 2);
    let orig = &changes.files[1];
    assert_eq!(orig.name, "hello_2.10.orig.tar.gz");
    assert_eq!(orig.size, 725_946);
    assert_eq!(
        orig.sha1.as_deref(),
        Some("f7bebf6f9c62a2295e889f66e05ce9bfaed9ace3"),
        "digests are normalised to lowercase"
    );
    assert_eq!(
        orig.md5.as_deref(),
        Some("cc0b4c2e3c6d7f1f4b5e2a0d9c8b7a6f")
    );
    assert!(orig.sha256.is_some());
    assert_eq!(changes.dsc().unwrap().name, "hello_2.10-3.dsc");
    assert_eq!(
        changes.fields[2],
        ("SOURCE".into(), "hello (2.10-3)".into())
    );
}

#[test]
fn bugs_fixed_come_from_launchpad_bugs_fixed_then_closes() {
    assert!(Changes::parse(HELLO_CHANGES.as_bytes())
        .unwrap()
        .bugs_fixed()
        .is_empty());
    let text = HELLO_CHANGES.replace(
        "Changes:\n",
        "Closes: 1034001 #1034002\nlaunchpad-bugs-fixed: 2000001 not-a-bug 0\nChanges:\n",
    );
    let changes = Changes::parse(text.as_bytes()).unwrap();
    assert_eq!(
        changes.bugs_fixed(),
        [
            "https://bugs.launchpad.net/bugs/2000001",
            "https://bugs.debian.org/1034001",
            "https://bugs.debian.org/1034002",
        ]
    );
}

#[test]
fn changes_errors_name_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("SOURCE: hello (2.10-3)", "SOURCE: hello [2.10-3]", "Source: expected \"name\" or \"name (version)\""),
        ("SOURCE: hello (2.10-3)", "SOURCE: hello (2.10_3)", "Source: invalid Debian version \"2.10_3\""),
        ("SOURCE: hello (2.10-3)", "SOURCE:", "Source: required field is empty"),
        ("Version: 2.10-3+b1", "Version: x2.10", "Version: invalid Debian version \"x2.10\": the upstream version must start with a digit"),
        ("1183 devel optional hello_2.10-3.dsc", "1183 devel optional hello_2.10-4.dsc", "Checksums-Sha1: hello_2.10-3.dsc: not listed in Files"),
        ("725946 devel optional", "725946 devel", "Files: line 24: expected \"md5 size section priority name\", found 4 words"),
        ("1183 hello_2.10-3.dsc\n F7", "1183 hello_2.10-3.dsc extra\n F7", "Checksums-Sha1: line 17: expected \"sha-1 size name\", found 4 words"),
        ("6d3ddc4bd3d8ab80b4c1d8d1e0b1d3f5c3b2a1f0", "6d3ddc4bd3d8ab80b4c1d8d1e0b1d3f5c3b2a1", "Checksums-Sha1: hello_2.10-3.dsc: invalid SHA-1 checksum"),
    ];
    for (from, to, expected) in cases {
        let message = message_of(Changes::parse(&replace(HELLO_CHANGES, from, to)));
        assert!(message.contains(expected), "{to:?}: {message}");
    }
    let without_dsc = HELLO_CHANGES.replace("hello_2.10-3.dsc", "hello_2.10-3.txt");
    let message = message_of(Changes::parse(without_dsc.as_bytes()));
    assert!(message.contains("Files: lists no .dsc file"), "{message}");
}

const HELLO_DSC: &str = "\
Format: 3.0 (quilt)
Source: hello
Binary: hello, hello-doc
Architecture: any all
Version: 1:2.10-3
Maintainer: Santiago Vila <sanvila@debian.org>
Files:
 cc0b4c2e3c6d7f1f4b5e2a0d9c8b7a6f 725946 hello_2.10.orig.tar.gz
 1c0b4c2e3c6d7f1f4b5e2a0d9c8b7a6f 6132 hello_2.10-3.debian.tar.xz
";

#[test]
fn parses_a_dsc_file() {
    let dsc = Dsc::parse(HELLO_DSC.as_bytes()).unwrap();
    assert_eq!(dsc.source, "hello");
    assert_eq!(dsc.version, "1:2.10-3");
    assert_eq!(dsc.binaries, ["hello", "hello-doc"]);
    assert_eq!(dsc.format.as_deref(), Some("3.0 (quilt)"));
    assert_eq!(dsc.architecture, ["any", "all"]);
    assert_eq!(dsc.files.len(), 2);
    assert_eq!(dsc.files[1].size, 6132);
    assert_eq!(dsc.files[1].sha256, None);

    let message = message_of(Dsc::parse(&replace(HELLO_DSC, "hello-doc", "Hello_Doc")));
    assert!(
        message.contains("Binary: invalid package name \"Hello_Doc\""),
        "{message}"
    );
    let message = message_of(Dsc::parse(&replace(
        HELLO_DSC,
        "Source: hello",
        "Source: hello (2.10-3)",
    )));
    assert!(
        message.contains("Source: invalid package name"),
        "{message}"
    );
    let message = message_of(Dsc::parse(&replace(
        HELLO_DSC,
        " 6132 ",
        " 6132 devel optional ",
    )));
    assert!(message.contains("expected \"md5 size name\""), "{message}");
}

#[test]
fn file_names() {
    for good in [
        "hello_2.10-3.dsc",
        "foo_1.0~rc1+dfsg.orig.tar.xz",
        "hello_2.10-3_source.changes",
        "Foo_1.0-1ubuntu0.1_source.buildinfo",
        "x",
    ] {
        validate_file_name(good).unwrap();
    }
    let too_long = "a".repeat(256);
    for (bad, why) in [
        ("", "empty"),
        ("../x", "path separator"),
        ("/etc/passwd", "path separator"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        (".", "refers to a directory"),
        ("..", "refers to a directory"),
        ("a\0b", "U+0000"),
        ("a\nb", "U+000A"),
        ("a\u{9b}b", "U+009B"),
        ("-rf", "starts with '-'"),
        (".hidden", "starts with '.'"),
        ("a b", "U+0020"),
        ("a:b", "':'"),
        ("é.dsc", "'é'"),
        (too_long.as_str(), "longer than 255 bytes"),
    ] {
        let message = message_of(validate_file_name(bad));
        assert!(message.starts_with("invalid file name "), "{message}");
        assert!(message.contains(why), "{bad:?}: {message}");
    }
    validate_file_name(&"a".repeat(255)).unwrap();
}

/// Copies the good corpus upload into a fresh directory.
fn copy_good_upload() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let source = corpus_dir().join("good-upload");
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let changes = dir.path().join("tiny_1.0-1_source.changes");
    (dir, changes)
}

fn snapshot(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let metadata = std::fs::symlink_metadata(entry.path()).unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                metadata.len(),
                metadata.modified().unwrap(),
            )
        })
        .collect();
    entries.sort();
    entries
}

#[tokio::test]
async fn the_good_corpus_upload_validates() {
    let changes_path = corpus_dir().join("good-upload/tiny_1.0-1_source.changes");
    let before = snapshot(changes_path.parent().unwrap());
    let upload = validate_changes(&changes_path).await.unwrap();
    assert_eq!(
        before,
        snapshot(changes_path.parent().unwrap()),
        "validation only reads"
    );

    assert_eq!(upload.changes.source, "tiny");
    assert_eq!(upload.changes.version, "1.0-1");
    assert_eq!(upload.dsc.source, "tiny");
    assert_eq!(upload.dsc.binaries, ["tiny"]);
    let names: Vec<&str> = upload.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "tiny_1.0-1.dsc",
            "tiny_1.0.orig.tar.gz",
            "tiny_1.0-1.debian.tar.xz",
            "tiny_1.0-1_source.changes"
        ],
        "listed files in .changes order, then the .changes"
    );
    for file in &upload.files {
        let bytes = std::fs::read(&file.path).unwrap();
        assert_eq!(file.size, bytes.len() as u64);
        assert_eq!(file.sha256, checksums::digest_bytes(&bytes).sha256);
    }
    assert!(upload.dsc_only_files.is_empty());

    // The fingerprint is documented as sha256 over sorted "name size sha256" lines.
    let mut lines: Vec<String> = upload.files[..3]
        .iter()
        .map(|f| format!("{} {} {}\n", f.name, f.size, f.sha256))
        .collect();
    lines.sort();
    assert_eq!(
        upload.fingerprint,
        checksums::digest_bytes(lines.concat().as_bytes()).sha256
    );
}

#[tokio::test]
async fn fingerprint_depends_on_the_listed_files_only() {
    let (_a, first) = copy_good_upload();
    let (_b, second) = copy_good_upload();
    // Strip the signature of the second copy: a different .changes, the same files.
    let signed = std::fs::read_to_string(&second).unwrap();
    let body: String = signed
        .lines()
        .skip_while(|l| !l.is_empty())
        .skip(1)
        .take_while(|l| !l.starts_with("-----BEGIN PGP SIGNATURE"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&second, body).unwrap();

    let one = validate_changes(&first).await.unwrap();
    let two = validate_changes(&second).await.unwrap();
    assert_ne!(
        one.files.last().unwrap().sha256,
        two.files.last().unwrap().sha256
    );
    assert_eq!(one.fingerprint, two.fingerprint);
    assert_eq!(one.changes, two.changes);
}

#[cfg(unix)]
#[tokio::test]
async fn symbolic_links_must_stay_in_the_directory() {
    let (dir, changes) = copy_good_upload();
    let orig = dir.path().join("tiny_1.0.orig.tar.gz");
    let real = dir.path().join("downloaded-tiny-1.0.tar.gz");
    std::fs::rename(&orig, &real).unwrap();
    std::os::unix::fs::symlink("downloaded-tiny-1.0.tar.gz", &orig).unwrap();
    let upload = validate_changes(&changes).await.unwrap();
    let file = &upload.files[1];
    assert_eq!(file.name, "tiny_1.0.orig.tar.gz");
    assert_eq!(
        file.path,
        std::fs::canonicalize(&real).unwrap(),
        "read the target"
    );

    let outside = tempfile::tempdir().unwrap();
    let elsewhere = outside.path().join("tiny_1.0.orig.tar.gz");
    std::fs::rename(&real, &elsewhere).unwrap();
    std::fs::remove_file(&orig).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &orig).unwrap();
    let message = message_of(validate_changes(&changes).await);
    assert!(
        message.contains(
            "Files: tiny_1.0.orig.tar.gz: symbolic link pointing outside the upload directory"
        ),
        "{message}"
    );

    std::fs::remove_file(&orig).unwrap();
    std::os::unix::fs::symlink("no-such-file", &orig).unwrap();
    let message = message_of(validate_changes(&changes).await);
    assert!(
        message.contains("symbolic link that cannot be resolved"),
        "{message}"
    );
}

/// Writes `files`, a `.dsc` listing them and a `.changes` listing the `.dsc` and those of
/// `files` whose names are in `in_changes`; returns the `.changes` path.
fn build_upload(
    dir: &Path,
    changes_version: &str,
    dsc_version: &str,
    files: &[(&str, &[u8])],
    in_changes: &[&str],
) -> PathBuf {
    let line = |name: &str, bytes: &[u8], md5_extra: &str| {
        let d = checksums::digest_bytes(bytes);
        (
            format!(" {} {}{md5_extra} {name}\n", d.md5, d.size),
            format!(" {} {} {name}\n", d.sha256, d.size),
        )
    };
    let mut dsc =
        format!("Format: 3.0 (quilt)\nSource: tiny\nBinary: tiny\nVersion: {dsc_version}\n");
    let (mut md5s, mut sha256s) = (String::new(), String::new());
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
        let (md5, sha256) = line(name, bytes, "");
        md5s.push_str(&md5);
        sha256s.push_str(&sha256);
    }
    dsc.push_str(&format!("Checksums-Sha256:\n{sha256s}Files:\n{md5s}"));
    let dsc_name = "tiny_1.0-1.dsc";
    std::fs::write(dir.join(dsc_name), &dsc).unwrap();

    let (mut md5s, mut sha256s) = line(dsc_name, dsc.as_bytes(), " misc optional");
    for (name, bytes) in files.iter().filter(|(name, _)| in_changes.contains(name)) {
        let (md5, sha256) = line(name, bytes, " misc optional");
        md5s.push_str(&md5);
        sha256s.push_str(&sha256);
    }
    let changes = format!(
        "Source: tiny\nVersion: {changes_version}\nChecksums-Sha256:\n{sha256s}Files:\n{md5s}"
    );
    let path = dir.join("tiny_1.0-1_source.changes");
    std::fs::write(&path, changes).unwrap();
    path
}

const ORIG: (&str, &[u8]) = ("tiny_1.0.orig.tar.gz", b"pretend upstream tarball");
const DEBIAN: (&str, &[u8]) = ("tiny_1.0-1.debian.tar.xz", b"pretend debian tarball");

#[tokio::test]
async fn files_only_the_dsc_lists_are_verified_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let changes = build_upload(dir.path(), "1.0-1", "1.0-1", &[ORIG, DEBIAN], &[DEBIAN.0]);
    let upload = validate_changes(&changes).await.unwrap();
    let stored: Vec<&str> = upload.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        stored,
        ["tiny_1.0-1.dsc", DEBIAN.0, "tiny_1.0-1_source.changes"]
    );
    assert_eq!(upload.dsc_only_files.len(), 1);
    assert_eq!(upload.dsc_only_files[0].name, ORIG.0);
    assert_eq!(upload.dsc_only_files[0].size, ORIG.1.len() as u64);
}

/// The lander's check of an upload from memory: the `.dsc` against the `.changes`, and
/// every file the `.dsc` lists listed by the `.changes` too, alike.
#[test]
fn a_dsc_read_into_memory_is_checked_against_its_changes() {
    let check = |in_changes: &[&str], tamper: bool| {
        let dir = tempfile::tempdir().unwrap();
        let path = build_upload(dir.path(), "1.0-1", "1.0-1", &[ORIG, DEBIAN], in_changes);
        let mut changes_text = std::fs::read_to_string(&path).unwrap();
        if tamper {
            // The .changes claims another size for the Debian tarball than the .dsc does.
            let size = DEBIAN.1.len();
            changes_text = changes_text.replace(
                &format!(" {size} misc optional {}", DEBIAN.0),
                &format!(" {} misc optional {}", size + 1, DEBIAN.0),
            );
            changes_text = changes_text.replace(
                &format!(" {size} {}", DEBIAN.0),
                &format!(" {} {}", size + 1, DEBIAN.0),
            );
        }
        let changes = Changes::parse(changes_text.as_bytes()).unwrap();
        let dsc_bytes = std::fs::read(dir.path().join("tiny_1.0-1.dsc")).unwrap();
        let entry = changes.dsc().unwrap().clone();
        check_dsc_bytes(&changes, &entry, &dsc_bytes).map(|dsc| dsc.source)
    };
    assert_eq!(check(&[ORIG.0, DEBIAN.0], false).unwrap(), "tiny");
    let message = message_of(check(&[DEBIAN.0], false));
    assert!(
        message.contains(ORIG.0) && message.contains("the .changes does not"),
        "{message}"
    );
    let message = message_of(check(&[ORIG.0, DEBIAN.0], true));
    assert!(
        message.contains(DEBIAN.0) && message.contains("different sizes or checksums"),
        "{message}"
    );
}

#[tokio::test]
async fn versions_compare_as_dpkg_does() {
    for (changes_version, dsc_version, ok) in [
        ("1:1.0-1", "1:1.0-1", true),
        ("1:1.0-1", "1.0-1", true), // the .dsc may leave the epoch out
        ("1.0-1", "0:1.0-1", true),
        ("1.0-1", "1.0-01", true),
        ("1:1.0-1", "2:1.0-1", false),
        ("1.0-1", "1:1.0-1", false),
        ("1.0-1", "1.0-2", false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let changes = build_upload(
            dir.path(),
            changes_version,
            dsc_version,
            &[ORIG, DEBIAN],
            &[ORIG.0, DEBIAN.0],
        );
        let result = validate_changes(&changes).await;
        if ok {
            assert!(
                result.is_ok(),
                "{changes_version} vs {dsc_version}: {result:?}"
            );
        } else {
            let message = message_of(result);
            assert!(
                message.starts_with("tiny_1.0-1.dsc: Version: ")
                    && message.contains("does not match"),
                "{message}"
            );
        }
    }
}

#[tokio::test]
async fn unusable_changes_paths() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing_1.0_source.changes");
    let message = message_of(validate_changes(&missing).await);
    assert!(
        message.starts_with("nothing_1.0_source.changes: file not found"),
        "{message}"
    );

    let directory = dir.path().join("dir_1.0_source.changes");
    std::fs::create_dir(&directory).unwrap();
    let message = message_of(validate_changes(&directory).await);
    assert!(message.contains("not a regular file"), "{message}");

    let message = message_of(validate_changes(Path::new("/")).await);
    assert!(
        message.contains("does not end in a UTF-8 file name"),
        "{message}"
    );
}

/// Writes a `.changes` with a 10 MB field, without keeping 10 MB in the repository.
fn write_huge_field_case(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("huge_1.0-1_source.changes");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    file.write_all(b"Source: huge\nVersion: 1.0-1\nDescription: ")
        .unwrap();
    let chunk = [b'a'; 64 * 1024];
    for _ in 0..160 {
        file.write_all(&chunk).unwrap();
    }
    file.write_all(
        b"\nFiles:\n 78d6534150661d268da861538578580b 184 misc optional huge_1.0-1.dsc\n",
    )
    .unwrap();
    file.flush().unwrap();
    path
}

#[test]
fn a_huge_field_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_huge_field_case(dir.path());
    // Reading stops one byte past the limit, whatever the file claims.
    let file = std::fs::File::open(&path).unwrap();
    let message = message_of(deb822::read_bounded(file, MAX_CONTROL_FILE_BYTES));
    assert!(
        message.contains("larger than the limit of 1048576 bytes"),
        "{message}"
    );
}

#[tokio::test]
async fn every_bad_upload_of_the_corpus_is_refused() {
    let root = corpus_dir().join("bad-uploads");
    let mut cases: Vec<(String, PathBuf, String)> = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let case = entry.unwrap().path();
        if !case.is_dir() {
            continue;
        }
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let expect = std::fs::read_to_string(case.join("EXPECT"))
            .unwrap_or_else(|err| panic!("{name}: EXPECT: {err}"));
        let expect = expect.trim_end_matches('\n').to_owned();
        assert!(
            !expect.is_empty() && !expect.contains('\n'),
            "{name}: EXPECT must be one line"
        );
        let changes: Vec<PathBuf> = std::fs::read_dir(&case)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with("_source.changes"))
            .collect();
        assert_eq!(changes.len(), 1, "{name}: expected one *_source.changes");
        cases.push((name, changes[0].clone(), expect));
    }
    cases.sort();
    assert!(
        cases.len() >= 16,
        "only {} cases in {}",
        cases.len(),
        root.display()
    );

    // The 10 MB field case is generated rather than kept in the repository.
    let generated = tempfile::tempdir().unwrap();
    cases.push((
        "generated: 10 MB field".to_owned(),
        write_huge_field_case(generated.path()),
        "huge_1.0-1_source.changes: file is larger than the limit of 1048576 bytes".to_owned(),
    ));

    let mut failures = Vec::new();
    for (name, changes, expect) in &cases {
        match validate_changes(changes).await {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(err) if err.kind() != ErrorKind::InvalidInput => {
                failures.push(format!("{name}: kind {:?}: {err}", err.kind()))
            }
            Err(err) if !err.to_string().contains(expect.as_str()) => {
                failures.push(format!("{name}: {err:?}\n    does not contain {expect:?}"))
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "corpus failures:\n{}",
        failures.join("\n")
    );
}

/// Runs `examples/packages/build-source.sh` when dpkg-dev is installed and validates what it
/// builds. A failing script fails the test; only a missing dpkg-source skips it.
#[tokio::test]
async fn the_example_package_builds_into_a_valid_upload() {
    let has_dpkg_source = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("dpkg-source").is_file())
    });
    if !has_dpkg_source {
        eprintln!(
            "SKIPPED the_example_package_builds_into_a_valid_upload: dpkg-source not on PATH"
        );
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/packages/build-source.sh");
    let out = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new("bash")
        .arg(&script)
        .arg(out.path())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{} failed ({}):\n{}{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let changes = out.path().join("hello-ci_1.0-1_source.changes");
    let upload = validate_changes(&changes).await.unwrap();
    assert_eq!(upload.changes.source, "hello-ci");
    assert_eq!(upload.changes.version, "1.0-1");
    assert_eq!(upload.changes.architecture, ["source"]);
    assert_eq!(upload.dsc.format.as_deref(), Some("3.0 (quilt)"));
    assert_eq!(upload.dsc.binaries, ["hello-ci"]);
    assert_eq!(upload.dsc.architecture, ["any"]);
    let mut names: Vec<&str> = upload.files.iter().map(|f| f.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "hello-ci_1.0-1.debian.tar.xz",
            "hello-ci_1.0-1.dsc",
            "hello-ci_1.0-1_source.changes",
            "hello-ci_1.0.orig.tar.gz",
        ]
    );
    let testsuite = upload
        .dsc
        .fields
        .iter()
        .find(|(name, _)| name == "Testsuite");
    assert_eq!(testsuite.map(|(_, v)| v.as_str()), Some("autopkgtest"));
}

/// A `.changes` text that parses, to mutate in property tests.
fn valid_changes_text() -> String {
    let dsc = "tiny_1.0-1.dsc";
    format!(
        "Source: tiny\nVersion: 1.0-1\nArchitecture: source\n\
         Checksums-Sha256:\n {} 734 {dsc}\n {} 184 tiny_1.0.orig.tar.gz\n\
         Files:\n {} 734 misc optional {dsc}\n {} 184 misc optional tiny_1.0.orig.tar.gz\n",
        "a".repeat(64),
        "b".repeat(64),
        "c".repeat(32),
        "d".repeat(32),
    )
}

#[test]
fn the_mutation_base_is_valid() {
    let changes = Changes::parse(valid_changes_text().as_bytes()).unwrap();
    assert_eq!(changes.files.len(), 2);
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    DuplicateLine(usize),
    Byte(usize, u8),
}

fn apply(text: &str, edits: &[Edit]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for edit in edits {
        let len = bytes.len().max(1);
        match edit {
            Edit::Delete(at, n) => {
                let start = at % len;
                let end = (start + n).min(bytes.len());
                bytes.drain(start.min(end)..end);
            }
            Edit::Insert(at, s) => {
                let at = (at % len).min(bytes.len());
                bytes.splice(at..at, s.bytes());
            }
            Edit::DuplicateLine(n) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let lines: Vec<&str> = text.split_inclusive('\n').collect();
                if !lines.is_empty() {
                    let i = n % lines.len();
                    let mut out = lines.clone();
                    out.insert(i, lines[i]);
                    bytes = out.concat().into_bytes();
                }
            }
            Edit::Byte(at, b) => {
                if !bytes.is_empty() {
                    let i = at % bytes.len();
                    bytes[i] = *b;
                }
            }
        }
    }
    bytes
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(a, n)| Edit::Delete(a, n)),
        (
            any::<usize>(),
            prop_oneof![
                Just("\n".to_owned()),
                Just(" ".to_owned()),
                Just(":".to_owned()),
                Just("../".to_owned()),
                Just(".dsc".to_owned()),
                Just("-----BEGIN PGP SIGNATURE-----\n".to_owned()),
                "\\PC{0,8}",
            ]
        )
            .prop_map(|(a, s)| Edit::Insert(a, s)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::Byte(a, b)),
    ]
}

fn check_parsed_changes(changes: &Changes) -> std::result::Result<(), TestCaseError> {
    prop_assert_eq!(
        changes
            .files
            .iter()
            .filter(|f| f.name.ends_with(".dsc"))
            .count(),
        1
    );
    let mut names = HashSet::new();
    for file in &changes.files {
        prop_assert!(validate_file_name(&file.name).is_ok(), "{:?}", file.name);
        prop_assert!(names.insert(file.name.clone()), "duplicate {:?}", file.name);
        prop_assert!(file.size > 0);
    }
    prop_assert!(validate_package_name(&changes.source).is_ok());
    prop_assert!(DebianVersion::parse(&changes.version).is_ok());
    Ok(())
}

proptest! {
    #[test]
    fn changes_parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        match Changes::parse(&bytes) {
            Ok(changes) => check_parsed_changes(&changes)?,
            Err(err) => prop_assert_eq!(err.kind(), ErrorKind::InvalidInput),
        }
        if let Err(err) = Dsc::parse(&bytes) {
            prop_assert_eq!(err.kind(), ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn changes_parse_never_panics_on_near_valid_text(edits in prop::collection::vec(edit(), 1..6)) {
        let bytes = apply(&valid_changes_text(), &edits);
        match Changes::parse(&bytes) {
            Ok(changes) => check_parsed_changes(&changes)?,
            Err(err) => prop_assert_eq!(err.kind(), ErrorKind::InvalidInput),
        }
        if let Err(err) = Dsc::parse(&bytes) {
            prop_assert_eq!(err.kind(), ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn accepted_file_names_are_plain(name in "\\PC{0,20}|[a-z0-9._+~/-]{0,12}") {
        if validate_file_name(&name).is_ok() {
            prop_assert!(!name.contains('/') && name != "." && name != "..");
            prop_assert!(!name.starts_with('-') && !name.is_empty());
            prop_assert!(Path::new(&name).components().count() == 1);
        }
    }
}

#[tokio::test]
async fn sa_and_sd_uploads_of_one_source_have_one_fingerprint() {
    let (_a, full) = copy_good_upload();
    let (_b, partial) = copy_good_upload();
    // An `-sd` upload: the .changes leaves out the orig tarball, which sits beside it.
    let signed = std::fs::read_to_string(&partial).unwrap();
    let body: String = signed
        .lines()
        .skip_while(|l| !l.is_empty())
        .skip(1)
        .take_while(|l| !l.starts_with("-----BEGIN PGP SIGNATURE"))
        .filter(|l| !l.contains("tiny_1.0.orig.tar.gz"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&partial, body).unwrap();

    let full = validate_changes(&full).await.unwrap();
    let partial = validate_changes(&partial).await.unwrap();
    assert_eq!(
        partial.dsc_only_files.len(),
        1,
        "the orig tarball comes from the .dsc"
    );
    assert_eq!(full.fingerprint, partial.fingerprint);
}
