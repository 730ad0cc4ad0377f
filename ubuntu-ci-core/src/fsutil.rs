//! Small file-system helpers shared by the workers.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Sets the permission bits of `path`.
///
/// # Errors
/// The I/O error, naming the path.
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::from(e).with_resource(path.display().to_string()))
}

/// Writes `text` to `path` (its folders made), readable by all: the workers' files are read
/// from user namespaces.
///
/// # Errors
/// The I/O error, naming the path.
pub fn write_readable(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::from(e).with_resource(parent.display().to_string()))?;
    }
    let mut file = std::fs::File::create(path)
        .map_err(|e| Error::from(e).with_resource(path.display().to_string()))?;
    file.write_all(text.as_bytes())?;
    set_mode(path, 0o644)
}

/// Opens (making it if needed) the lock file `path` and waits, off the async threads, for
/// an exclusive lock on it, held until the file is dropped; it serialises work across
/// processes (making one chroot, one base image).
///
/// # Errors
/// The I/O error, naming the path.
pub async fn lock_file(path: std::path::PathBuf) -> Result<std::fs::File> {
    tokio::task::spawn_blocking(move || -> Result<std::fs::File> {
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::from(e).with_resource(path.display().to_string()))?;
        file.lock()?;
        Ok(file)
    })
    .await
    .map_err(|e| Error::internal("a lock task failed").with_source(e))?
}
