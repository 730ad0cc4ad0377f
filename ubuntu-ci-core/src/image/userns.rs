//! Files owned by the subordinate ids of `/etc/subuid`, as the image builder's user
//! namespaces make them (`unshare --map-auto`: the namespace's root is the first subordinate
//! id, so nothing run in it can touch the user's own files).
//!
//! Such files cannot be chowned or removed by the user directly; a second namespace does it,
//! mapping the user to its root and the subordinate ids from 1 up
//! (`unshare --map-auto --map-root-user`), which reaches both.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::error::{Error, Result};

/// `unshare` arguments for a user namespace whose root is the first subordinate id.
pub(crate) const SUBORDINATE_ROOT: [&str; 5] = ["--map-auto", "--setuid", "0", "--setgid", "0"];

/// Makes `dirs` (missing ones created) owned by the subordinate root, so that a namespace
/// of [`SUBORDINATE_ROOT`] may write in them.
///
/// # Errors
/// `Internal` naming what `unshare` said.
pub(crate) async fn give_to_subordinate_root(dirs: &[PathBuf]) -> Result<()> {
    for dir in dirs {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::from(e).with_resource(dir.display().to_string()))?;
    }
    let output = Command::new("unshare")
        .args(["--map-auto", "--map-root-user", "--", "chown", "1:1", "--"])
        .args(dirs)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| Error::from(e).with_resource("unshare"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "could not hand folders to the subordinate ids (is there a line for this user in \
             /etc/subuid and /etc/subgid? `ubuntu-ci doctor` checks): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Removes `path` and everything under it, whoever of the user and its subordinate ids
/// owns it; waits (blocking) for the removal. Missing is fine.
pub(crate) fn remove_blocking(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    let removed = std::process::Command::new("unshare")
        .args([
            "--map-auto",
            "--map-root-user",
            "--",
            "rm",
            "-rf",
            "--one-file-system",
            "--",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if removed || std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    // Without subordinate ids the files are the user's own.
    std::fs::remove_dir_all(path)
}

/// A folder (in a folder others may traverse) removed with everything in it when dropped,
/// including what the subordinate ids own.
#[derive(Debug)]
pub(crate) struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// A new folder `<parent>/<prefix>XXXXXX` of mode 0755.
    pub(crate) fn new(parent: &Path, prefix: &str) -> Result<WorkDir> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)
            .map_err(|e| Error::from(e).with_resource(parent.display().to_string()))?;
        let path = dir.keep();
        crate::fsutil::set_mode(&path, 0o755)?;
        Ok(WorkDir { path })
    }

    /// The folder.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(err) = remove_blocking(&self.path) {
            tracing::warn!(path = %self.path.display(), %err, "a work folder was not removed");
        }
    }
}
