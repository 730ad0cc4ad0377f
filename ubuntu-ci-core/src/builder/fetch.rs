//! Fetching a build's sources: from the configured data store only, and validated again.

use std::path::Path;

use url::Url;

use crate::error::{Error, Result};
use crate::store::{download, ContainerName, ObjectName, ObjectStore};
use crate::upload::{validate_changes, validate_file_name, ValidatedUpload};

/// Most source files one build takes.
pub const MAX_SOURCE_FILES: usize = 100;

/// Downloads `urls` (objects of `store`; any other URL is refused before anything is
/// fetched) into `dir` and validates the one `.changes` among them, with every checksum
/// checked again.
///
/// # Errors
/// `InvalidInput` for a URL outside the store, a bad file name, no or several `.changes`,
/// or an upload that does not validate; `NotFound` for a missing object.
pub async fn fetch_sources(
    store: &dyn ObjectStore,
    urls: &[String],
    dir: &Path,
) -> Result<ValidatedUpload> {
    if urls.is_empty() || urls.len() > MAX_SOURCE_FILES {
        return Err(Error::invalid(format!(
            "source_packages: give 1 to {MAX_SOURCE_FILES} URLs of the data store"
        )));
    }
    // Every URL is checked before the first download.
    let objects = urls
        .iter()
        .map(|text| source_object(store, text))
        .collect::<Result<Vec<_>>>()?;
    let changes: Vec<&str> = objects
        .iter()
        .map(|(_, o)| o.as_str())
        .filter(|name| name.ends_with(".changes"))
        .collect();
    let changes =
        match changes.as_slice() {
            [one] => (*one).to_owned(),
            [] => return Err(Error::invalid(
                "source_packages: no .changes among the URLs; give the upload's _source.changes",
            )),
            _ => {
                return Err(Error::invalid(format!(
                    "source_packages: {} .changes files; build one upload at a time",
                    changes.len()
                )))
            }
        };
    for (container, object) in &objects {
        download(store, container, object, &dir.join(object.as_str())).await?;
    }
    validate_changes(&dir.join(changes)).await
}

/// The object of the data store a `source_packages` URL names, its file name checked.
///
/// # Errors
/// `InvalidInput` for a malformed URL, one outside `store`, or a bad file name.
pub fn source_object(store: &dyn ObjectStore, text: &str) -> Result<(ContainerName, ObjectName)> {
    let url = Url::parse(text)
        .map_err(|e| Error::invalid(format!("source_packages: bad URL {text:?}: {e}")))?;
    let (container, object) = store.resolve_url(&url).map_err(|e| {
        Error::invalid(format!(
            "source_packages: {text} is not in the configured data store: {}",
            e.message()
        ))
    })?;
    validate_file_name(object.as_str())?;
    Ok((container, object))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Body, ContainerName, ObjectName};
    use crate::ErrorKind;

    async fn stored_upload() -> (
        tempfile::TempDir,
        std::sync::Arc<dyn ObjectStore>,
        Vec<String>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open_store(
            &format!("file://{}/", dir.path().join("store").display()),
            &Default::default(),
        )
        .unwrap();
        let container = ContainerName::new("ticket.1.sources").unwrap();
        store.ensure_container(&container, true).await.unwrap();
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/good-upload");
        let mut urls = Vec::new();
        for entry in std::fs::read_dir(corpus).unwrap() {
            let entry = entry.unwrap();
            let name = ObjectName::new(entry.file_name().to_string_lossy().into_owned()).unwrap();
            let bytes = std::fs::read(entry.path()).unwrap();
            store
                .put(&container, &name, Body::Bytes(bytes.into()))
                .await
                .unwrap();
            urls.push(store.object_url(&container, &name).to_string());
        }
        (dir, store, urls)
    }

    #[tokio::test]
    async fn sources_come_from_the_store_and_are_validated_again() {
        let (dir, store, urls) = stored_upload().await;
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let upload = fetch_sources(&*store, &urls, &work).await.unwrap();
        assert_eq!(upload.changes.source, "tiny");

        // A changed object fails the checksums.
        let container = ContainerName::new("ticket.1.sources").unwrap();
        let orig = ObjectName::new("tiny_1.0.orig.tar.gz").unwrap();
        store
            .put(&container, &orig, Body::Bytes(b"tampered".to_vec().into()))
            .await
            .unwrap();
        let again = dir.path().join("again");
        std::fs::create_dir_all(&again).unwrap();
        let err = fetch_sources(&*store, &urls, &again).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }

    #[tokio::test]
    async fn foreign_urls_are_refused_before_any_download() {
        let (dir, store, mut urls) = stored_upload().await;
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        urls.push("http://example.com/evil_1.0.dsc".into());
        let err = fetch_sources(&*store, &urls, &work).await.unwrap_err();
        assert!(
            err.message().contains("not in the configured data store"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_dir(&work).unwrap().count(),
            0,
            "nothing was fetched"
        );
        for bad in [vec![], vec!["not a url".to_owned()]] {
            assert_eq!(
                fetch_sources(&*store, &bad, &work)
                    .await
                    .unwrap_err()
                    .kind(),
                ErrorKind::InvalidInput
            );
        }
        let no_changes: Vec<String> = urls
            .iter()
            .filter(|u| u.ends_with(".dsc") && u.starts_with("file:"))
            .cloned()
            .collect();
        let err = fetch_sources(&*store, &no_changes, &work)
            .await
            .unwrap_err();
        assert!(err.message().contains("no .changes"), "{err}");
    }
}
