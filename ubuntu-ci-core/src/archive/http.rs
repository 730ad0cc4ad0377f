//! The archives of a server: a client of `ubuntu-ci serve`'s `/api/v1/ppa/<owner>/<name>/`
//! calls.
//!
//! Files to publish travel through the server's data store: they are put into a private
//! container `ppa-upload.<random>`, the server publishes them from there and deletes it.
//! The `.changes` is validated here first, so a broken upload fails before any byte is sent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::service::{kind_of, ArchiveService, FileKind};
use super::{PublishReport, PublishedPackage};
use crate::error::{Error, Result};
use crate::ppa::PpaName;
use crate::store::{download, Body, ContainerName, ObjectName, ObjectStore};
use crate::upload::validate_changes;
use crate::wire::ApiClient;

/// The prefix of upload containers; the server publishes from no other.
pub const UPLOAD_CONTAINER_PREFIX: &str = "ppa-upload.";

/// Most files one publish may send.
pub const MAX_PUBLISH_FILES: usize = 1000;

/// The server's side of a publish: takes the files of the upload container `request`
/// names out of `store`, publishes them into `ppa` of `archives`, and deletes the container
/// whatever the outcome.
///
/// # Errors
/// `InvalidInput` for a container that is not an upload container, a file not in it, or
/// what publishing refuses; `TooLarge` for more than [`MAX_PUBLISH_FILES`] files.
pub async fn publish_upload(
    store: &dyn ObjectStore,
    archives: &dyn ArchiveService,
    ppa: &PpaName,
    request: &PublishRequest,
) -> Result<PublishReport> {
    if !request.container.starts_with(UPLOAD_CONTAINER_PREFIX) {
        return Err(Error::invalid(format!(
            "container: publishes come from {UPLOAD_CONTAINER_PREFIX}<id> containers"
        )));
    }
    let container = ContainerName::new(request.container.clone())?;
    let result = async {
        if request.files.is_empty() || request.files.len() > MAX_PUBLISH_FILES {
            return Err(Error::invalid(format!(
                "files: name 1 to {MAX_PUBLISH_FILES} .changes or .deb files"
            )));
        }
        let objects = store.list(&container).await?;
        if objects.len() > MAX_PUBLISH_FILES {
            return Err(Error::too_large(format!(
                "the upload holds more than {MAX_PUBLISH_FILES} files"
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("ubuntu-ci-publish-")
            .tempdir()?;
        for object in &objects {
            let name = ObjectName::new(object.name.clone())?;
            download(store, &container, &name, &dir.path().join(name.as_str())).await?;
        }
        let mut files = Vec::with_capacity(request.files.len());
        for file in &request.files {
            let object = ObjectName::new(file.clone())?;
            if !objects.iter().any(|o| o.name == object.as_str()) {
                return Err(Error::invalid(format!("{file} is not in {container}")));
            }
            files.push(dir.path().join(object.as_str()));
        }
        archives
            .publish_files(ppa, request.series.as_deref(), &files)
            .await
    }
    .await;
    // The upload is consumed either way.
    let _ = store.delete_container(&container, true).await;
    result
}

/// The body of `POST /api/v1/ppa/<owner>/<name>/publish/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// The series (default: the server's).
    #[serde(default)]
    pub series: Option<String>,
    /// The upload container holding the files (`ppa-upload.<random>`).
    pub container: String,
    /// The `.changes` and `.deb` files to publish (other files in the container are what
    /// the `.changes` lists).
    pub files: Vec<String>,
}

/// The body of `POST …/remove/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageRequest {
    /// The series (default: the server's).
    #[serde(default)]
    pub series: Option<String>,
    /// The source (or binary) package name.
    #[schema(min_length = 1)]
    pub name: String,
    /// Only this version.
    #[serde(default)]
    pub version: Option<String>,
}

/// The body of `POST …/copy/`: a package request with the PPA to copy into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    /// The series (default: the server's).
    #[serde(default)]
    pub series: Option<String>,
    /// The source package name.
    #[schema(min_length = 1)]
    pub name: String,
    /// Only this version.
    #[serde(default)]
    pub version: Option<String>,
    /// The PPA to copy into (`ppa:ci-team/ppa_archive`).
    #[schema(value_type = String, pattern = "^ppa:[^/]+/[^/]+$")]
    pub to: PpaName,
}

/// The answer of `GET …/packages/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PackageList {
    /// The PPA.
    #[schema(value_type = String)]
    pub ppa: PpaName,
    /// The series listed.
    pub series: Option<String>,
    /// Its packages.
    pub objects: Vec<PublishedPackage>,
}

/// A client of a server's archives.
#[derive(Debug, Clone)]
pub struct HttpArchives {
    api: ApiClient,
    store: Arc<dyn ObjectStore>,
}

impl HttpArchives {
    /// A client of the server at `base`; `store` is that server's data store.
    ///
    /// # Errors
    /// As [`ApiClient::new`].
    pub fn new(
        base: &str,
        token: Option<String>,
        store: Arc<dyn ObjectStore>,
    ) -> Result<HttpArchives> {
        Ok(HttpArchives {
            api: ApiClient::new(base, token)?,
            store,
        })
    }

    fn ppa_path(ppa: &PpaName, call: &str) -> String {
        format!("api/v1/ppa/{}/{}/{call}/", ppa.owner(), ppa.name())
    }

    async fn upload(&self, container: &ContainerName, files: &[PathBuf]) -> Result<Vec<String>> {
        // Every file to send, by name: the ones named and what their .changes list.
        let mut sent: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut top = Vec::with_capacity(files.len());
        let mut add = |name: String, path: PathBuf| -> Result<()> {
            match sent.get(&name) {
                Some(existing) if existing != &path => Err(Error::invalid(format!(
                    "two different files are called {name}: {} and {}",
                    existing.display(),
                    path.display()
                ))),
                _ => {
                    sent.insert(name, path);
                    Ok(())
                }
            }
        };
        for file in files {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| Error::invalid(format!("{}: no file name", file.display())))?
                .to_owned();
            match kind_of(file)? {
                FileKind::Changes => {
                    let upload = validate_changes(file).await?;
                    for f in upload.files.iter().chain(&upload.dsc_only_files) {
                        add(f.name.clone(), f.path.clone())?;
                    }
                }
                FileKind::Deb => add(name.clone(), file.clone())?,
            }
            top.push(name);
        }
        self.store.ensure_container(container, false).await?;
        for (name, path) in sent {
            let object = ObjectName::new(name)?;
            let file = std::fs::File::open(&path)
                .map_err(|e| Error::from(e).with_resource(path.display().to_string()))?;
            self.store.put(container, &object, Body::File(file)).await?;
        }
        Ok(top)
    }
}

#[async_trait]
impl ArchiveService for HttpArchives {
    async fn publish_files(
        &self,
        ppa: &PpaName,
        series: Option<&str>,
        files: &[PathBuf],
    ) -> Result<PublishReport> {
        let container = ContainerName::new(format!(
            "{UPLOAD_CONTAINER_PREFIX}{:016x}",
            rand::random::<u64>()
        ))?;
        let result = async {
            let top = self.upload(&container, files).await?;
            let url = self.api.absolute(&Self::ppa_path(ppa, "publish"))?;
            let request = self
                .api
                .request(Method::POST, url.clone())
                .json(&PublishRequest {
                    series: series.map(str::to_owned),
                    container: container.to_string(),
                    files: top,
                });
            self.api
                .send_timeout(request, &url, Duration::from_secs(3600))
                .await
        }
        .await;
        // The server deletes it too; this covers a failure before the call.
        let _ = self.store.delete_container(&container, true).await;
        result
    }

    async fn packages(&self, ppa: &PpaName, series: Option<&str>) -> Result<Vec<PublishedPackage>> {
        let mut query = Vec::new();
        if let Some(series) = series {
            query.push(("series", series.to_owned()));
        }
        let list: PackageList = self
            .api
            .get(&Self::ppa_path(ppa, "packages"), &query)
            .await?;
        Ok(list.objects)
    }

    async fn remove_package(
        &self,
        ppa: &PpaName,
        series: Option<&str>,
        name: &str,
        version: Option<&str>,
    ) -> Result<PublishReport> {
        let body = PackageRequest {
            series: series.map(str::to_owned),
            name: name.to_owned(),
            version: version.map(str::to_owned),
        };
        self.api.post(&Self::ppa_path(ppa, "remove"), &body).await
    }

    async fn copy_package(
        &self,
        from: &PpaName,
        to: &PpaName,
        series: Option<&str>,
        name: &str,
        version: Option<&str>,
    ) -> Result<PublishReport> {
        let body = CopyRequest {
            series: series.map(str::to_owned),
            name: name.to_owned(),
            version: version.map(str::to_owned),
            to: to.clone(),
        };
        self.api.post(&Self::ppa_path(from, "copy"), &body).await
    }

    async fn prepare(&self, _ppa: &PpaName, _series: Option<&str>) -> Result<()> {
        // The server makes the archives it lends ready itself (`assign` does), and makes any
        // other on its first publish: nothing to ask from here.
        Ok(())
    }

    async fn signing_key(&self, ppa: &PpaName) -> Result<String> {
        let url = self
            .api
            .absolute(&format!("ppa/{}/{}/key.asc", ppa.owner(), ppa.name()))?;
        let response = self
            .api
            .send_raw(
                self.api.request(Method::GET, url.clone()),
                &url,
                Duration::from_secs(60),
            )
            .await?;
        response
            .text()
            .await
            .map_err(|e| crate::wire::transport_error(e, &url))
    }

    fn location(&self, ppa: &PpaName) -> String {
        self.api
            .absolute(&format!("ppa/{}/{}/", ppa.owner(), ppa.name()))
            .map(String::from)
            .unwrap_or_default()
    }
}
