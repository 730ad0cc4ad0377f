//! `ubuntu-ci build`: one upload built into a PPA without a ticket, its progress followed
//! live.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::BuildSource;
use crate::config::Services;
use crate::error::{Error, Result};
use crate::ppa::PpaName;
use crate::queue::{Done, MessageStream, QueueName};
use crate::store::DataStore;
use crate::upload::validate_changes;

/// A build under way: its queue's messages as they come, and its end.
pub struct RunningBuild {
    /// The progress queue.
    pub queue: QueueName,
    /// Every message of the build, ending with the final one.
    pub messages: MessageStream,
    /// The final message, when the build ends.
    pub done: tokio::task::JoinHandle<Result<Done>>,
}

/// Validates `changes` (and its signatures, by the configured policy), stores its files in
/// the data store (container `build.<queue>.sources`) and starts building them into `ppa`
/// with the services' builder, reporting on their queues.
///
/// # Errors
/// `InvalidInput` for a bad upload; `Unauthorized` for a refused signature; `Unsupported`
/// when the archives are not local (building through a server needs workers, which come
/// later).
pub async fn start(
    services: &Services,
    changes: &Path,
    ppa: &PpaName,
    series: Option<&str>,
    architecture: Option<&str>,
    cancel: CancellationToken,
) -> Result<RunningBuild> {
    if services.archives.local().is_none() {
        return Err(Error::unsupported(
            "ubuntu-ci build runs on local state; building through a server needs workers, \
             which are not there yet",
        ));
    }
    let queue = QueueName::fresh("bsbuilder")?;
    let urls = stage_upload(services, changes, &format!("build.{queue}")).await?;
    let messages = services.queues.subscribe(&queue, None).await?;
    let builder = services.builder.clone();
    let request = BuildSource {
        source_packages: urls,
        ppa: ppa.to_string(),
        progress_queue: queue.to_string(),
        ticket_id: None,
        series: series.map(str::to_owned),
        architecture: architecture.map(str::to_owned),
    };
    let done = tokio::spawn(async move { builder.build_source(request, cancel).await });
    Ok(RunningBuild {
        queue,
        messages,
        done,
    })
}

/// Validates the upload `changes` (and its signatures, by the services' policy) and stores
/// its files in the container `<name>.sources`, public, as a worker's request names them;
/// returns their URLs.
///
/// # Errors
/// `InvalidInput` for a bad upload; `Unauthorized` for a refused signature; what the store
/// reports.
pub async fn stage_upload(services: &Services, changes: &Path, name: &str) -> Result<Vec<String>> {
    let upload = validate_changes(changes).await?;
    services.uploads.check(&upload).await?;
    let store = DataStore::open(services.store.clone(), name, "sources", true).await?;
    let mut urls = Vec::new();
    for file in upload.files.iter().chain(&upload.dsc_only_files) {
        let handle = std::fs::File::open(&file.path)
            .map_err(|e| Error::from(e).with_resource(file.path.display().to_string()))?;
        urls.push(
            store
                .put_file(&file.name, crate::store::Body::File(handle))
                .await?
                .to_string(),
        );
    }
    Ok(urls)
}
