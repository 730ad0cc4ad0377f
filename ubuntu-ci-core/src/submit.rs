//! Submitting source packages: steps 1 and 2 of the seed flow as one operation.
//!
//! [`CreateTicket`] validates every `_source.changes` and the files it lists before it
//! creates anything, then creates the ticket, one source package, upload and subticket per
//! `.changes`, stores every file in the container `ticket.<id>.sources` (public) and records
//! an `SPU` artifact per stored file. The CLI, the server and Python all call this; none of
//! them repeats its rules.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

use crate::config::Services;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    ArtifactType, NewArtifact, NewSourcePackageUpload, NewSubticket, NewTicket, NewTransition,
    PageRequest, SourcePackageFilter, SourcePackageUpload, SpuFilter, StepStatus, TicketDetail,
    WorkflowStep,
};
use crate::store::{Body, DataStore};
use crate::upload::{validate_changes, ValidatedUpload};

/// The data store component that holds a ticket's sources (`ticket.<id>.sources`).
pub const SOURCES_COMPONENT: &str = "sources";

/// Hears how a submission goes, for progress bars and logs. Every method has a default
/// that does nothing.
pub trait SubmitProgress: Send + Sync {
    /// A `.changes` is being validated (its files checksummed).
    fn validating(&self, _changes: &std::path::Path) {}
    /// A file starts uploading.
    fn upload_started(&self, _name: &str, _size: u64) {}
    /// More bytes of a file went out.
    fn upload_progress(&self, _name: &str, _bytes: u64) {}
    /// A file is stored at `url`.
    fn upload_finished(&self, _name: &str, _url: &str) {}
}

/// A [`SubmitProgress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;
impl SubmitProgress for NoProgress {}

/// `create_ticket` of the seed: a ticket for one or more source package uploads.
#[derive(Debug, Clone)]
pub struct CreateTicket {
    ticket: NewTicket,
    uploads: Vec<PathBuf>,
    assignee: Option<String>,
}

impl CreateTicket {
    /// A ticket for `owner` titled `title`, with no uploads yet.
    pub fn new(owner: impl Into<String>, title: impl Into<String>) -> CreateTicket {
        CreateTicket {
            ticket: NewTicket {
                owner: owner.into(),
                title: title.into(),
                description: String::new(),
                bug_id: String::new(),
            },
            uploads: Vec::new(),
            assignee: None,
        }
    }

    /// Sets the description.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> CreateTicket {
        self.ticket.description = description.into();
        self
    }

    /// Sets the Launchpad bug: a number or a URL. Without one, the ticket takes the first
    /// bug the uploads' `.changes` say they fix (`Launchpad-Bugs-Fixed`, else `Closes`).
    #[must_use]
    pub fn with_bug(mut self, bug: impl Into<String>) -> CreateTicket {
        self.ticket.bug_id = bug.into();
        self
    }

    /// Adds a `_source.changes` (the files it lists sit beside it).
    #[must_use]
    pub fn with_upload(mut self, changes: impl Into<PathBuf>) -> CreateTicket {
        self.uploads.push(changes.into());
        self
    }

    /// Sets the subtickets' assignee (default: the owner).
    #[must_use]
    pub fn with_assignee(mut self, assignee: impl Into<String>) -> CreateTicket {
        self.assignee = Some(assignee.into());
        self
    }

    /// Validates everything, then creates the ticket and stores the files.
    ///
    /// # Errors
    /// `InvalidInput` for a bad field or upload, `Conflict` when a version was already
    /// uploaded with other files; in both cases nothing was created. Errors after the ticket
    /// exists (the store failing) mark the ticket `FAILED` and are returned.
    pub async fn run(self, services: &Services, progress: SharedProgress) -> Result<TicketDetail> {
        let new_ticket = self.ticket.clone().validate()?;
        let assignee = self
            .assignee
            .clone()
            .unwrap_or_else(|| new_ticket.owner.clone());
        if self.uploads.is_empty() {
            return Err(Error::invalid(
                "no source package given: pass at least one _source.changes",
            ));
        }
        let mut uploads = Vec::with_capacity(self.uploads.len());
        let mut notes = Vec::with_capacity(self.uploads.len());
        for path in &self.uploads {
            progress.validating(path);
            let upload = validate_changes(path).await?;
            let signature = services
                .uploads
                .check(&upload)
                .await
                .map_err(|e| e.with_resource(path.display().to_string()))?;
            notes.push(signature.describe(&upload, services.uploads.policy));
            uploads.push(upload);
        }
        check_no_clashes(&uploads)?;
        // No bug given: the first the uploads say they fix, a Launchpad bug of any of them
        // before a Debian one.
        let mut new_ticket = new_ticket;
        if new_ticket.bug_id.is_empty() {
            let changes: Vec<&crate::upload::Changes> =
                uploads.iter().map(|u| &u.changes).collect();
            if let Some(bug) = crate::upload::first_bug_fixed(&changes) {
                new_ticket.bug_id = bug;
            }
        }
        let mut existing = Vec::with_capacity(uploads.len());
        for upload in &uploads {
            existing.push(find_spu(services, upload).await?);
        }

        let ticket = services.tickets.create_ticket(new_ticket).await?;
        let result = self
            .fill(
                services, &progress, ticket.id, &uploads, existing, &assignee,
            )
            .await;
        let result = match result {
            // Who signed the uploads (or that nobody did) is part of the ticket's record.
            Ok(()) => services
                .tickets
                .record_transition(NewTransition {
                    ticket: ticket.resource_uri,
                    step: WorkflowStep::New,
                    status: StepStatus::Pending,
                    message: notes.join("\n"),
                })
                .await
                .map(drop),
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => services.tickets.get_ticket(ticket.id).await,
            Err(err) => {
                // The ticket is acknowledged: leave it visibly failed, not half-made.
                let _ = services
                    .tickets
                    .record_transition(NewTransition {
                        ticket: ticket.resource_uri,
                        step: WorkflowStep::New,
                        status: StepStatus::Failed,
                        message: format!("submission failed: {err}"),
                    })
                    .await;
                Err(err.with_operation("create_ticket"))
            }
        }
    }

    async fn fill(
        &self,
        services: &Services,
        progress: &SharedProgress,
        ticket_id: i64,
        uploads: &[ValidatedUpload],
        existing: Vec<Option<SourcePackageUpload>>,
        assignee: &str,
    ) -> Result<()> {
        let ticket_uri = crate::model::Uri::new(ticket_id);
        let store = DataStore::open(
            services.store.clone(),
            &format!("ticket.{ticket_id}"),
            SOURCES_COMPONENT,
            true,
        )
        .await?;
        let mut stored: BTreeMap<String, String> = BTreeMap::new();
        for (upload, existing) in uploads.iter().zip(existing) {
            let spu = match existing {
                Some(spu) => spu,
                None => create_spu(services, upload).await?,
            };
            let subticket = services
                .tickets
                .create_subticket(NewSubticket {
                    source_package_upload: spu.resource_uri,
                    ticket: ticket_uri,
                    assignee: assignee.to_owned(),
                })
                .await?;
            // The .dsc's own files that the .changes leaves out (`-sd` uploads) are needed to
            // build, so they are stored too.
            for file in upload.files.iter().chain(&upload.dsc_only_files) {
                let url = match stored.get(&file.name) {
                    Some(url) => url.clone(),
                    None => {
                        progress.upload_started(&file.name, file.size);
                        let reader = tokio::fs::File::open(&file.path).await.map_err(|e| {
                            Error::from(e).with_resource(file.path.display().to_string())
                        })?;
                        let reader = VerifyingReader {
                            inner: reader,
                            name: file.name.clone(),
                            progress: progress.clone(),
                            done: 0,
                            hasher: Sha256::new(),
                            expected_size: file.size,
                            expected_sha256: file.sha256.clone(),
                            checked: false,
                        };
                        let info = store
                            .put_file_info(&file.name, Body::from_reader(reader))
                            .await?;
                        progress.upload_finished(&file.name, &info.url);
                        stored.insert(file.name.clone(), info.url.clone());
                        info.url
                    }
                };
                services
                    .tickets
                    .create_artifact(NewArtifact {
                        name: file.name.clone(),
                        subticket: Some(subticket.resource_uri),
                        ticket: None,
                        reference: url,
                        artifact_type: ArtifactType::Spu,
                    })
                    .await?;
            }
        }
        Ok(())
    }
}

/// Two uploads in one ticket must not name one package version twice, nor one file name
/// with two contents.
fn check_no_clashes(uploads: &[ValidatedUpload]) -> Result<()> {
    let mut versions = BTreeMap::new();
    let mut files: BTreeMap<&str, &str> = BTreeMap::new();
    for upload in uploads {
        let key = (&upload.changes.source, &upload.changes.version);
        if versions.insert(key, &upload.changes_path).is_some() {
            return Err(Error::invalid(format!(
                "{} {} is given twice",
                upload.changes.source, upload.changes.version
            ))
            .with_resource(upload.changes_path.display().to_string()));
        }
        for file in upload.files.iter().chain(&upload.dsc_only_files) {
            match files.insert(&file.name, &file.sha256) {
                Some(other) if other != file.sha256 => {
                    return Err(Error::invalid(format!(
                        "{} is listed by two uploads with different contents",
                        file.name
                    ))
                    .with_resource(upload.changes_path.display().to_string()))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The upload already recorded for this package and version, if its files are the same.
///
/// # Errors
/// `Conflict` when the version was uploaded with other files.
async fn find_spu(
    services: &Services,
    upload: &ValidatedUpload,
) -> Result<Option<SourcePackageUpload>> {
    let packages = services
        .tickets
        .list_source_packages(
            SourcePackageFilter {
                name: Some(upload.changes.source.clone()),
            },
            PageRequest::new(1, 0),
        )
        .await?;
    let Some(package) = packages.objects.into_iter().next() else {
        return Ok(None);
    };
    let spus = services
        .tickets
        .list_spus(
            SpuFilter {
                sourcepackage: Some(package.resource_uri),
                version: Some(upload.changes.version.clone()),
            },
            PageRequest::new(1, 0),
        )
        .await?;
    match spus.objects.into_iter().next() {
        None => Ok(None),
        Some(spu) if spu.fingerprint == upload.fingerprint => Ok(Some(spu)),
        Some(spu) => Err(Error::conflict(format!(
            "{} {} was already uploaded ({}) with different files; one version has one content: upload a new version",
            upload.changes.source, upload.changes.version, spu.resource_uri
        ))
        .with_resource(upload.changes_path.display().to_string())),
    }
}

/// Creates the package (if needed) and its upload; a concurrent submission of the same
/// files may win the race, which is fine when its fingerprint matches.
async fn create_spu(services: &Services, upload: &ValidatedUpload) -> Result<SourcePackageUpload> {
    let (package, _) = services
        .tickets
        .get_or_create_source_package(&upload.changes.source)
        .await?;
    let created = services
        .tickets
        .create_spu(NewSourcePackageUpload {
            sourcepackage: package.resource_uri,
            version: upload.changes.version.clone(),
            fingerprint: upload.fingerprint.clone(),
        })
        .await;
    match created {
        Ok(spu) => Ok(spu),
        Err(err) if err.kind() == ErrorKind::Conflict => {
            find_spu(services, upload).await?.ok_or(err)
        }
        Err(err) => Err(err),
    }
}

/// Streams a validated file to the store, telling the progress listener, and fails the
/// read at its end if the content is not what was validated (the file changed on disk
/// meanwhile): a failed read fails the put, so nothing unvalidated is ever stored.
struct VerifyingReader<R> {
    inner: R,
    name: String,
    progress: SharedProgress,
    done: u64,
    hasher: Sha256,
    expected_size: u64,
    expected_sha256: String,
    /// Set once the end was checked: reads after it answer the end again.
    checked: bool,
}

impl<R: AsyncRead + Unpin> AsyncRead for VerifyingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let read = &buf.filled()[before..];
        if read.is_empty() {
            if this.checked {
                return Poll::Ready(Ok(()));
            }
            this.checked = true;
            let sha256 = hex::encode(std::mem::take(&mut this.hasher).finalize());
            if this.done != this.expected_size || sha256 != this.expected_sha256 {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} changed on disk while it was being uploaded", this.name),
                )));
            }
            return Poll::Ready(Ok(()));
        }
        this.hasher.update(read);
        this.done += read.len() as u64;
        this.progress.upload_progress(&this.name, this.done);
        Poll::Ready(Ok(()))
    }
}

/// Shares one [`SubmitProgress`] between threads.
pub type SharedProgress = Arc<dyn SubmitProgress>;

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn verifying(
        content: &'static [u8],
        size: u64,
        sha256: String,
    ) -> VerifyingReader<&'static [u8]> {
        VerifyingReader {
            inner: content,
            name: "hello_1.0.orig.tar.gz".into(),
            progress: Arc::new(NoProgress),
            done: 0,
            hasher: Sha256::new(),
            expected_size: size,
            expected_sha256: sha256,
            checked: false,
        }
    }

    #[tokio::test]
    async fn a_file_that_changed_after_validation_fails_the_read() {
        let good = hex::encode(Sha256::digest(b"upstream"));
        let mut out = Vec::new();
        verifying(b"upstream", 8, good.clone())
            .read_to_end(&mut out)
            .await
            .unwrap();
        assert_eq!(out, b"upstream");

        let err = verifying(b"upstreaM", 8, good.clone())
            .read_to_end(&mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("changed on disk"), "{err}");
        let err = verifying(b"upstream and more", 8, good)
            .read_to_end(&mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn a_failed_verification_stores_nothing() {
        let store: Arc<dyn crate::store::ObjectStore> =
            Arc::new(crate::store::memory::MemoryStore::new());
        let data = DataStore::open(store, "ticket.1", "sources", true)
            .await
            .unwrap();
        let wrong = hex::encode(Sha256::digest(b"other"));
        let err = data
            .put_file("hello.dsc", Body::from_reader(verifying(b"dsc", 3, wrong)))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("changed on disk"), "{err}");
        assert!(data.list_files().await.unwrap().is_empty());
    }
}
