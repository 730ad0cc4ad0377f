//! Finding and opening the files an upload lists, in the directory of its `.changes`.
//!
//! Names come from an untrusted file and were already checked by
//! [`validate_file_name`](super::validate_file_name), so they cannot hold `/`. What remains is
//! the file system itself: a listed name may be a directory, a FIFO (opening it would hang),
//! or a symbolic link. Links are followed only when their final target is a regular file in
//! the same directory (what `uscan --symlink` creates for orig tarballs); anything leaving
//! the directory is refused. After opening, the open file is compared with what was
//! checked, so a file swapped in between is noticed.

use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The directory holding a `.changes` and the files it lists.
#[derive(Debug, Clone)]
pub(crate) struct UploadDir {
    /// The directory as given (for messages and for building paths).
    dir: PathBuf,
    /// The same directory with every link resolved, to tell where link targets land.
    canonical: PathBuf,
}

/// Why a listed file cannot be used; the caller adds the field and file names.
#[derive(Debug)]
pub(crate) enum LocateError {
    /// Nothing of that name beside the `.changes`.
    Missing,
    /// Present but unusable; the text says why.
    Unusable(String),
}

/// A listed file found on disk: where to read it and what was checked.
#[derive(Debug)]
pub(crate) struct Located {
    /// The path to read: the name in the directory, or a link's target within it.
    pub path: PathBuf,
    /// Metadata of `path` (a regular file), to compare with the opened file.
    pub metadata: Metadata,
}

impl UploadDir {
    /// The directory `dir`, which must exist.
    pub(crate) fn new(dir: &Path) -> Result<UploadDir> {
        let canonical = std::fs::canonicalize(dir).map_err(|err| {
            Error::invalid(format!("cannot open directory {}", dir.display())).with_source(err)
        })?;
        Ok(UploadDir {
            dir: dir.to_path_buf(),
            canonical,
        })
    }

    /// The directory as given, for messages.
    pub(crate) fn display(&self) -> std::path::Display<'_> {
        self.dir.display()
    }

    /// Finds the regular file `name` (an already validated bare file name).
    pub(crate) fn locate(&self, name: &str) -> std::result::Result<Located, LocateError> {
        let path = self.dir.join(name);
        let metadata = match std::fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(LocateError::Missing)
            }
            Err(err) => return Err(LocateError::Unusable(format!("cannot inspect: {err}"))),
        };
        if metadata.file_type().is_symlink() {
            return self.follow_link(&path);
        }
        if !metadata.is_file() {
            return Err(LocateError::Unusable(format!(
                "not a regular file ({})",
                describe_type(&metadata)
            )));
        }
        Ok(Located { path, metadata })
    }

    fn follow_link(&self, link: &Path) -> std::result::Result<Located, LocateError> {
        let target = std::fs::canonicalize(link).map_err(|err| {
            LocateError::Unusable(format!("symbolic link that cannot be resolved: {err}"))
        })?;
        if target.parent() != Some(self.canonical.as_path()) {
            return Err(LocateError::Unusable(format!(
                "symbolic link pointing outside the upload directory (to {})",
                target.display()
            )));
        }
        let metadata = std::fs::symlink_metadata(&target)
            .map_err(|err| LocateError::Unusable(format!("cannot inspect link target: {err}")))?;
        if !metadata.is_file() {
            return Err(LocateError::Unusable(format!(
                "symbolic link to something that is not a regular file ({})",
                describe_type(&metadata)
            )));
        }
        Ok(Located {
            path: target,
            metadata,
        })
    }
}

impl Located {
    /// Opens the file and checks it is still the one inspected by [`UploadDir::locate`].
    pub(crate) fn open(&self) -> std::result::Result<File, String> {
        let file = File::open(&self.path).map_err(|err| format!("cannot open: {err}"))?;
        let opened = file
            .metadata()
            .map_err(|err| format!("cannot inspect the opened file: {err}"))?;
        if !opened.is_file() || !same_file(&opened, &self.metadata) {
            return Err("changed while being checked (replaced by another file)".to_owned());
        }
        Ok(file)
    }
}

#[cfg(unix)]
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.len() == b.len() && a.modified().ok() == b.modified().ok()
}

fn describe_type(metadata: &Metadata) -> &'static str {
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else {
        "a device, FIFO or socket"
    }
}
