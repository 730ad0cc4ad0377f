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
