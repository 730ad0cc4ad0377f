//! The archives as a service: what frontends call, whether the archives are local
//! ([`Archives`]) or a server's ([`super::http::HttpArchives`]).

use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{Archives, PublishReport, Publishable, PublishedPackage};
use crate::error::{Error, Result};
use crate::ppa::PpaName;
use crate::upload::validate_changes;

/// Publishing into PPAs and reading them.
#[async_trait]
pub trait ArchiveService: Send + Sync + fmt::Debug {
    /// Publishes `files` into `series` of `ppa` (the default series when `None`) in one
    /// change: `_source.changes` files (with the files they list beside them) and `.deb`s.
    ///
    /// # Errors
    /// `InvalidInput` for a file that is neither, a broken upload or package, or a
    /// `.changes` for another series; `Conflict` for other content under a published name.
    async fn publish_files(
        &self,
        ppa: &PpaName,
        series: Option<&str>,
        files: &[PathBuf],
    ) -> Result<PublishReport>;

    /// Every package in `series` of `ppa`.
    async fn packages(&self, ppa: &PpaName, series: Option<&str>) -> Result<Vec<PublishedPackage>>;

    /// Removes a source with its binaries, or binaries of that name; see [`Archives::remove`].
    async fn remove_package(
        &self,
        ppa: &PpaName,
        series: Option<&str>,
        name: &str,
        version: Option<&str>,
    ) -> Result<PublishReport>;

    /// Copies a source with its binaries into another PPA; see [`Archives::copy`].
    async fn copy_package(
        &self,
        from: &PpaName,
        to: &PpaName,
        series: Option<&str>,
        name: &str,
        version: Option<&str>,
    ) -> Result<PublishReport>;

    /// Makes `series` of `ppa` a valid archive, empty if nothing is published yet.
    async fn prepare(&self, ppa: &PpaName, series: Option<&str>) -> Result<()>;

    /// The armoured public key that signs `ppa`.
    async fn signing_key(&self, ppa: &PpaName) -> Result<String>;

    /// Where apt finds `ppa`: a `file:` path or an `http://…/ppa/<owner>/<name>/` URL.
    fn location(&self, ppa: &PpaName) -> String;

    /// The local archives, when these are local (the server serves their files).
    fn local(&self) -> Option<&Archives> {
        None
    }
}

/// What `files` ask to publish: `.changes` validated, `.deb`s as they are. (Their
/// signatures are checked by [`Archives::publish`], on every path into an archive.)
///
/// # Errors
/// `InvalidInput` for another kind of file or an invalid upload.
pub async fn classify(files: &[PathBuf]) -> Result<Vec<Publishable>> {
    if files.is_empty() {
        return Err(Error::invalid(
            "nothing to publish: name a .changes or .deb files",
        ));
    }
    let mut items = Vec::with_capacity(files.len());
    for file in files {
        items.push(match kind_of(file)? {
            FileKind::Changes => Publishable::Source(Box::new(validate_changes(file).await?)),
            FileKind::Deb => Publishable::Deb(file.clone()),
        });
    }
    Ok(items)
}

/// What a file to publish is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A `.changes` (a source upload).
    Changes,
    /// A binary package.
    Deb,
}

/// The kind of `file`, by its name.
///
/// # Errors
/// `InvalidInput` for anything but `.changes` and `.deb`.
pub fn kind_of(file: &Path) -> Result<FileKind> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name.ends_with(".changes") {
        Ok(FileKind::Changes)
    } else if name.ends_with(".deb") {
        Ok(FileKind::Deb)
    } else {
        Err(Error::invalid(format!(
            "{}: only .changes (source uploads) and .deb files can be published",
            file.display()
        )))
    }
}

#[async_trait]
impl ArchiveService for Archives {
    async fn publish_files(
        &self,
        ppa: &PpaName,
        series: Option<&str>,
        files: &[PathBuf],
    ) -> Result<PublishReport> {
        let items = classify(files).await?;
        self.publish(ppa, series, items).await
    }

    async fn packages(&self, ppa: &PpaName, series: Option<&str>) -> Result<Vec<PublishedPackage>> {
        self.list(ppa, series).await
    }

    async fn remove_package(
        &self,
        ppa: &PpaName,
        series: Option<&str>,
        name: &str,
        version: Option<&str>,
    ) -> Result<PublishReport> {
        self.remove(ppa, series, name, version).await
    }

    async fn copy_package(
        &self,
        from: &PpaName,
        to: &PpaName,
        series: Option<&str>,
        name: &str,
        version: Option<&str>,
    ) -> Result<PublishReport> {
        self.copy(from, to, series, name, version).await
    }

    async fn prepare(&self, ppa: &PpaName, series: Option<&str>) -> Result<()> {
        self.ensure(ppa, series).await
    }

    async fn signing_key(&self, ppa: &PpaName) -> Result<String> {
        self.public_key(ppa.owner()).await
    }

    fn location(&self, ppa: &PpaName) -> String {
        format!("file:{}", self.path(ppa).display())
    }

    fn local(&self) -> Option<&Archives> {
        Some(self)
    }
}
