//! The in-memory data store: containers and objects in a map, gone when the process ends.
//!
//! For tests and for trying the system out (`memory://`). Objects live in memory whole, so
//! unlike the other backends it does not store in constant memory. Object URLs are
//! `memory:///<container>/<percent-encoded name>`.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use url::Url;

use super::{
    foreign_url, no_container, no_object, resolve_under, url_under, Body, ContainerInfo,
    ContainerName, ObjectInfo, ObjectName, ObjectReader, ObjectStore,
};
use crate::error::{Error, Result};

/// A data store held in memory.
pub struct MemoryStore {
    containers: Mutex<BTreeMap<String, Container>>,
    prefix: Url,
}

struct Container {
    public: bool,
    objects: BTreeMap<String, Object>,
}

#[derive(Clone)]
struct Object {
    content: Bytes,
    sha256: String,
    last_modified: DateTime<Utc>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the content: it may be large.
        f.debug_struct("MemoryStore")
            .field("containers", &self.lock().len())
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        let prefix = Url::parse("memory:///").unwrap_or_else(|_| unreachable!("a constant URL"));
        MemoryStore {
            containers: Mutex::new(BTreeMap::new()),
            prefix,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Container>> {
        // A panic elsewhere cannot leave the map half-updated: every change is one insert or
        // remove.
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn info(&self, c: &str, name: &str, object: &Object) -> ObjectInfo {
        ObjectInfo {
            container: c.to_string(),
            name: name.to_string(),
            size: object.content.len() as u64,
            sha256: Some(object.sha256.clone()),
            last_modified: object.last_modified,
            url: match (ContainerName::new(c), ObjectName::new(name)) {
                (Ok(c), Ok(name)) => self.object_url(&c, &name).to_string(),
                _ => String::new(),
            },
        }
    }
}

fn container_info(name: &str, container: &Container) -> ContainerInfo {
    ContainerInfo {
        name: name.to_string(),
        public: container.public,
        object_count: container.objects.len() as u64,
        bytes: container
            .objects
            .values()
            .map(|o| o.content.len() as u64)
            .sum(),
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn ensure_container(&self, c: &ContainerName, public: bool) -> Result<ContainerInfo> {
        let mut containers = self.lock();
        let container = containers
            .entry(c.to_string())
            .or_insert_with(|| Container {
                public,
                objects: BTreeMap::new(),
            });
        Ok(container_info(c.as_str(), container))
    }

    async fn container_info(&self, c: &ContainerName) -> Result<ContainerInfo> {
        let containers = self.lock();
        let container = containers.get(c.as_str()).ok_or_else(|| no_container(c))?;
        Ok(container_info(c.as_str(), container))
    }

    async fn list_containers(&self, prefix: Option<&str>) -> Result<Vec<ContainerInfo>> {
        let containers = self.lock();
        Ok(containers
            .iter()
            .filter(|(name, _)| prefix.is_none() || prefix.is_some_and(|p| name.starts_with(p)))
            .map(|(name, container)| container_info(name, container))
            .collect())
    }

    async fn put(&self, c: &ContainerName, name: &ObjectName, body: Body) -> Result<ObjectInfo> {
        if !self.lock().contains_key(c.as_str()) {
            return Err(no_container(c));
        }
        let (content, sha256) = match body {
            Body::Bytes(bytes) => {
                let sha256 = hex::encode(Sha256::digest(&bytes));
                (bytes, sha256)
            }
            body => {
                let mut reader = body.into_reader();
                let mut hasher = Sha256::new();
                let mut content = BytesMut::new();
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    let n = reader.read(&mut chunk).await.map_err(|e| {
                        Error::from(e)
                            .with_operation("put")
                            .with_resource(format!("{c}/{name}"))
                    })?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&chunk[..n]);
                    content.extend_from_slice(&chunk[..n]);
                }
                (content.freeze(), hex::encode(hasher.finalize()))
            }
        };
        let object = Object {
            content,
            sha256,
            last_modified: Utc::now(),
        };
        let mut containers = self.lock();
        // The container may have been deleted while the body was read.
        let container = containers
            .get_mut(c.as_str())
            .ok_or_else(|| no_container(c))?;
        container.objects.insert(name.to_string(), object.clone());
        Ok(self.info(c.as_str(), name.as_str(), &object))
    }

    async fn get(
        &self,
        c: &ContainerName,
        name: &ObjectName,
    ) -> Result<(ObjectInfo, ObjectReader)> {
        let object = {
            let containers = self.lock();
            let container = containers.get(c.as_str()).ok_or_else(|| no_container(c))?;
            container
                .objects
                .get(name.as_str())
                .cloned()
                .ok_or_else(|| no_object(c, name))?
        };
        let info = self.info(c.as_str(), name.as_str(), &object);
        let reader: ObjectReader = Box::pin(std::io::Cursor::new(object.content));
        Ok((info, reader))
    }

    async fn head(&self, c: &ContainerName, name: &ObjectName) -> Result<ObjectInfo> {
        let containers = self.lock();
        let container = containers.get(c.as_str()).ok_or_else(|| no_container(c))?;
        let object = container
            .objects
            .get(name.as_str())
            .ok_or_else(|| no_object(c, name))?;
        Ok(self.info(c.as_str(), name.as_str(), object))
    }

    async fn list(&self, c: &ContainerName) -> Result<Vec<ObjectInfo>> {
        let containers = self.lock();
        let container = containers.get(c.as_str()).ok_or_else(|| no_container(c))?;
        Ok(container
            .objects
            .iter()
            .map(|(name, object)| self.info(c.as_str(), name, object))
            .collect())
    }

    async fn delete_object(&self, c: &ContainerName, name: &ObjectName) -> Result<()> {
        let mut containers = self.lock();
        let container = containers
            .get_mut(c.as_str())
            .ok_or_else(|| no_container(c))?;
        container
            .objects
            .remove(name.as_str())
            .map(|_| ())
            .ok_or_else(|| no_object(c, name))
    }

    async fn set_public(&self, c: &ContainerName, public: bool) -> Result<()> {
        let mut containers = self.lock();
        let container = containers
            .get_mut(c.as_str())
            .ok_or_else(|| no_container(c))?;
        container.public = public;
        Ok(())
    }

    async fn delete_container(&self, c: &ContainerName, recursive: bool) -> Result<()> {
        let mut containers = self.lock();
        let container = containers.get(c.as_str()).ok_or_else(|| no_container(c))?;
        if !recursive && !container.objects.is_empty() {
            return Err(Error::conflict(format!(
                "container {c} holds {} objects; delete them first or delete recursively",
                container.objects.len()
            ))
            .with_resource(c.to_string()));
        }
        containers.remove(c.as_str());
        Ok(())
    }

    fn object_url(&self, c: &ContainerName, name: &ObjectName) -> Url {
        url_under(&self.prefix, c, name)
    }

    fn resolve_url(&self, url: &Url) -> Result<(ContainerName, ObjectName)> {
        resolve_under(&self.prefix, url).unwrap_or_else(|| Err(foreign_url(url, &self.prefix)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::conformance;

    #[tokio::test]
    async fn conformance_suite() {
        conformance::run_all(Arc::new(MemoryStore::new())).await;
    }

    #[test]
    fn urls_use_the_memory_scheme() {
        let store = MemoryStore::new();
        let c = ContainerName::new("ticket.1.sources").unwrap();
        let name = ObjectName::new("hello_2.10-3.dsc").unwrap();
        let url = store.object_url(&c, &name);
        assert_eq!(url.as_str(), "memory:///ticket.1.sources/hello_2.10-3.dsc");
        assert_eq!(store.resolve_url(&url).unwrap(), (c, name));
    }
}
