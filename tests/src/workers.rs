//! Helpers of the real-worker tests (builds, images, test runs): variants of the example
//! package, uploads staged in a store, and the checks that nothing is left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use ubuntu_ci_core::store::{Body, ContainerName, ObjectName, ObjectStore};
use ubuntu_ci_core::upload::validate_changes;

use crate::repo_root;

/// A copy of the example package with `edit` applied to its tree, built into a source
/// upload in `dir/name`; returns its `_source.changes`.
pub fn example_variant(dir: &Path, name: &str, edit: impl Fn(&Path)) -> PathBuf {
    let tree = dir.join(format!("{name}-tree"));
    let status = Command::new("cp")
        .arg("-a")
        .arg(repo_root().join("examples/packages/hello-ci"))
        .arg(&tree)
        .status()
        .expect("cp");
    assert!(status.success());
    edit(&tree);
    let out = dir.join(name);
    let status = Command::new("bash")
        .arg(repo_root().join("examples/packages/build-source.sh"))
        .arg(&out)
        .env("HELLO_CI_SOURCE_DIR", &tree)
        .stdout(Stdio::null())
        .status()
        .expect("build-source.sh");
    assert!(status.success());
    std::fs::read_dir(&out)
        .expect("the upload's folder")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().ends_with("_source.changes"))
        .expect("a _source.changes")
}

/// Stores the files of the upload `changes` in a new public container of `store`, as a
/// ticket's sources are; returns their URLs.
pub async fn stage_upload(store: &dyn ObjectStore, changes: &Path) -> Vec<String> {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let upload = validate_changes(changes).await.expect("a valid upload");
    let container = ContainerName::new(format!(
        "ticket.{}{}.sources",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
    .expect("container name");
    store
        .ensure_container(&container, true)
        .await
        .expect("container");
    let mut urls = Vec::new();
    for file in upload.files.iter().chain(&upload.dsc_only_files) {
        let name = ObjectName::new(file.name.clone()).expect("object name");
        let body = Body::File(std::fs::File::open(&file.path).expect("upload file"));
        store.put(&container, &name, body).await.expect("put");
        urls.push(store.object_url(&container, &name).to_string());
    }
    urls
}

/// Running processes of the workers of one test: those whose command line, working
/// folder or environment names `scope` (the test's own folder, where its builds, images and
/// test beds work and their tools' TMPDIR points), with their descendants, and of those
/// the ones of the user namespaces' root (host uid 100000) or whose command line holds one
/// of `markers`. Other builds on the machine are not counted. Zombies (ended, waiting for
/// their parent to collect them) are not running and not counted.
pub fn worker_processes(scope: &Path, markers: &[&str]) -> Vec<String> {
    struct Process {
        pid: u32,
        ppid: u32,
        uid: u32,
        zombie: bool,
        cmdline: String,
        tied: bool,
    }
    let scope = scope.to_string_lossy().into_owned();
    let mut processes = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        let Ok(status) = std::fs::read_to_string(dir.join("status")) else {
            continue; // gone meanwhile
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .unwrap_or_default()
                .to_owned()
        };
        let ppid = field("PPid:").parse().unwrap_or(0);
        let uid = field("Uid:")
            .split_whitespace()
            .next()
            .and_then(|u| u.parse().ok())
            .unwrap_or(0);
        let zombie = field("State:").starts_with('Z');
        let cmdline = std::fs::read(dir.join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let cwd = std::fs::read_link(dir.join("cwd"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let environ = std::fs::read(dir.join("environ"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let tied = cmdline.contains(&scope) || cwd.starts_with(&scope) || environ.contains(&scope);
        processes.push(Process {
            pid,
            ppid,
            uid,
            zombie,
            cmdline: cmdline.trim().to_owned(),
            tied,
        });
    }
    // Descendants of a tied process are tied too.
    loop {
        let tied: std::collections::BTreeSet<u32> =
            processes.iter().filter(|p| p.tied).map(|p| p.pid).collect();
        let mut changed = false;
        for process in processes.iter_mut().filter(|p| !p.tied) {
            if tied.contains(&process.ppid) {
                process.tied = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let me = std::process::id();
    processes
        .into_iter()
        .filter(|p| {
            p.tied
                && !p.zombie
                && p.pid != me
                && (p.uid == 100_000 || markers.iter().any(|m| p.cmdline.contains(m)))
        })
        .map(|p| format!("{} {} {}", p.pid, p.uid, p.cmdline))
        .collect()
}

/// Fails unless `dir` is empty.
pub fn assert_empty_dir(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .expect("the folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        left.is_empty(),
        "left behind in {}: {left:?}",
        dir.display()
    );
}

/// `ubuntu-ci` for a test of the real workers in `dir`: its data in `dir/data`, its
/// configuration `dir/config.toml` (written when absent: the build chroots the tests cache
/// in `target/test-chroots`), and the workers' folders (their tools' TMPDIR) in `dir/tmp`,
/// so that the processes [`worker_processes`] looks for there are this test's alone.
pub fn real_workers_command(dir: &Path) -> Command {
    let config = dir.join("config.toml");
    if !config.exists() {
        let chroots = repo_root().join("target/test-chroots");
        std::fs::write(
            &config,
            format!(
                "[build]\nchroot_dir = {:?}\n",
                chroots.display().to_string()
            ),
        )
        .expect("config.toml");
    }
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).expect("tmp");
    let mut command = crate::ubuntu_ci(&dir.join("data"));
    command.arg("--config").arg(config).env("TMPDIR", tmp);
    command
}
