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

/// Running processes of the workers: those of the user namespaces' root (host uid 100000)
/// and those whose command line holds one of `markers`. Zombies (ended, waiting for their
/// parent to collect them) are not running and not counted.
pub fn worker_processes(markers: &[&str]) -> Vec<String> {
    let output = Command::new("ps")
        .args(["-eo", "pid,uid,stat,args", "--no-headers"])
        .output()
        .expect("ps");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let zombie = fields.get(2).is_some_and(|s| s.starts_with('Z'));
            !zombie && (fields.get(1) == Some(&"100000") || markers.iter().any(|m| l.contains(m)))
        })
        .map(str::to_owned)
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
