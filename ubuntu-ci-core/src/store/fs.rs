//! The file-system data store: one directory per container, one real file per object.
//!
//! Layout under the root (the embedded default, served over HTTP by `ubuntu-ci serve`):
//!
//! ```text
//! <root>/<container>/<name>                 the objects, as plain files (file: URLs work)
//! <root>/.meta/<container>.json             {"public": bool}
//! <root>/.meta/objects/<container>/<name>   sidecar: SHA-256 and the file stamp it belongs to
//! <root>/.tmp/                              files being written; deleted containers
//! ```
//!
//! A put writes a temporary file under `.tmp` (same file system) and renames it over the
//! final name: readers, and a process that crashes at any point, see the old file or the
//! whole new one, never a part; a failed put deletes its temporary file, and temporary
//! entries a crash left behind are removed when a store is opened (after an hour). Container
//! names cannot start with `.`, so `.meta` and `.tmp` never clash with a container.
//!
//! Durability: by default a put survives the crash of any process (the rename is atomic)
//! and costs what `cp` costs. With `fsync` ([`FsStore::with_fsync`], `file:///…?fsync=true`)
//! it also survives a crash of the machine: the file is flushed while it is written and
//! synced before the rename, and the directory after it.
//!
//! Constant memory: a local file is copied by the kernel (`copy_file_range`); a stream
//! moves through 1 MiB chunks on a bounded channel to one writer thread; a get hands out a
//! reader over the open file. None ever holds a whole object, whatever its size.
//!
//! A put does not hash. The SHA-256 of an object is computed by the first `head`, kept in a
//! sidecar stamped with the file's inode, size and modification time, and reported by every
//! call after that; a file placed or changed by hand has no matching sidecar and is hashed
//! again on its next `head`.

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use url::Url;

use super::{
    foreign_url, no_container, no_object, resolve_under, url_prefix, url_under, Body,
    ContainerInfo, ContainerName, ObjectInfo, ObjectName, ObjectReader, ObjectStore,
    READ_BUFFER_SIZE,
};
use crate::error::{Error, Result};

/// Size of the chunks a put streams through (the only buffers it holds).
const CHUNK_SIZE: usize = 1024 * 1024;
/// Chunks queued to the writer; bounds a put's memory.
const CHANNEL_DEPTH: usize = 4;
/// Bytes written between background flushes of a large put.
const FLUSH_EVERY: usize = 64 * 1024 * 1024;
/// Age after which an entry of `.tmp` is a crash's leftover.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// A data store in a directory of the local file system.
#[derive(Clone)]
pub struct FsStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsStore")
            .field("root", &self.inner.root)
            .field(
                "public_url",
                &self.inner.public_prefix.as_ref().map(Url::as_str),
            )
            .finish()
    }
}

struct Inner {
    root: PathBuf,
    file_prefix: Url,
    public_prefix: Option<Url>,
    /// Serializes container creation, visibility changes and deletion in this process.
    containers_lock: Mutex<()>,
    /// Whether puts are synced to disk before they are acknowledged.
    fsync: std::sync::atomic::AtomicBool,
}

/// The sidecar of one object: its digest and the stamp of the file it was computed from.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Sidecar {
    sha256: String,
    size: u64,
    ino: u64,
    mtime_ns: i128,
}

#[derive(Debug, Serialize, Deserialize)]
struct ContainerMeta {
    public: bool,
}

enum Chunk {
    Data(Bytes),
    End,
}

impl FsStore {
    /// Opens (creating if needed) a store rooted at `root`; with `public_url` (e.g.
    /// `http://127.0.0.1:8000/store/`) object URLs are `<public_url><container>/<name>`,
    /// otherwise `file://<root>/<container>/<name>`. Removes temporary files older than an
    /// hour.
    ///
    /// # Errors
    /// `InvalidInput` for a `public_url` that cannot be a base; what the file system reports
    /// when the root cannot be created.
    pub fn new(root: PathBuf, public_url: Option<Url>) -> Result<FsStore> {
        let resource = root.display().to_string();
        let root = std::path::absolute(&root).map_err(|e| {
            Error::from(e)
                .with_operation("open_store")
                .with_resource(resource.clone())
        })?;
        let file_prefix = Url::from_directory_path(&root).map_err(|()| {
            Error::invalid("the store root cannot be written as a file: URL")
                .with_resource(resource.clone())
        })?;
        let public_prefix = public_url.as_ref().map(url_prefix).transpose()?;
        let inner = Inner {
            root,
            file_prefix,
            public_prefix,
            containers_lock: Mutex::new(()),
            fsync: std::sync::atomic::AtomicBool::new(false),
        };
        for dir in [
            inner.root.clone(),
            inner.meta_dir(),
            inner.sidecar_root(),
            inner.tmp_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(|e| {
                Error::from(e)
                    .with_operation("open_store")
                    .with_resource(dir.display().to_string())
            })?;
        }
        inner.clean_stale_tmp();
        Ok(FsStore {
            inner: Arc::new(inner),
        })
    }

    /// Makes puts survive a crash of the machine, not only of a process: each put is synced
    /// to disk before it is acknowledged (slower: it waits for the disk).
    #[must_use]
    pub fn with_fsync(self, fsync: bool) -> FsStore {
        self.inner
            .fsync
            .store(fsync, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The local file holding an object (which may not exist).
    pub fn object_path(&self, c: &ContainerName, name: &ObjectName) -> PathBuf {
        self.inner.object_path(c, name)
    }
}

impl Inner {
    fn container_dir(&self, c: &ContainerName) -> PathBuf {
        self.root.join(c.as_str())
    }

    fn object_path(&self, c: &ContainerName, name: &ObjectName) -> PathBuf {
        self.container_dir(c).join(name.as_str())
    }

    fn meta_dir(&self) -> PathBuf {
        self.root.join(".meta")
    }

    fn container_meta_path(&self, c: &ContainerName) -> PathBuf {
        self.meta_dir().join(format!("{c}.json"))
    }

    fn sidecar_root(&self) -> PathBuf {
        self.meta_dir().join("objects")
    }

    fn sidecar_dir(&self, c: &ContainerName) -> PathBuf {
        self.sidecar_root().join(c.as_str())
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join(".tmp")
    }

    fn temp_file(&self, prefix: &str) -> io::Result<tempfile::NamedTempFile> {
        let mut builder = tempfile::Builder::new();
        builder.prefix(prefix);
        // 0644 before the umask, as `cp` would create it: a web server may serve the root.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
        builder.tempfile_in(self.tmp_dir())
    }

    fn object_url(&self, c: &ContainerName, name: &ObjectName) -> Url {
        url_under(
            self.public_prefix.as_ref().unwrap_or(&self.file_prefix),
            c,
            name,
        )
    }

    fn clean_stale_tmp(&self) {
        let entries = match fs::read_dir(self.tmp_dir()) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(error = %e, root = %self.root.display(), "cannot list the store's .tmp");
                return;
            }
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            let stale = metadata
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > STALE_AFTER);
            if !stale {
                continue;
            }
            let path = entry.path();
            let removed = if metadata.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match removed {
                Ok(()) => tracing::info!(path = %path.display(), "removed a stale temporary entry"),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale temporary entry")
                }
            }
        }
    }

    fn container_exists(&self, c: &ContainerName) -> bool {
        fs::symlink_metadata(self.container_dir(c)).is_ok_and(|m| m.is_dir())
    }

    fn read_public(&self, c: &ContainerName) -> bool {
        let path = self.container_meta_path(c);
        match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<ContainerMeta>(&bytes) {
                Ok(meta) => meta.public,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unreadable container metadata; treating the container as private");
                    false
                }
            },
            // A directory made by hand: private, the safe default.
            Err(_) => false,
        }
    }

    fn write_public(&self, c: &ContainerName, public: bool) -> Result<()> {
        let json = serde_json::to_vec(&ContainerMeta { public })?;
        let mut tmp = self.temp_file(".meta-")?;
        tmp.write_all(&json)?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.container_meta_path(c))
            .map_err(|e| Error::from(e.error))?;
        sync_dir(&self.meta_dir())?;
        Ok(())
    }

    fn container_info(&self, c: &ContainerName) -> Result<ContainerInfo> {
        let dir = self.container_dir(c);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(no_container(c)),
            Err(e) => return Err(Error::from(e).with_resource(c.to_string())),
        };
        let mut object_count = 0;
        let mut bytes = 0;
        for entry in entries {
            let entry = entry?;
            if object_name_of(&entry).is_none() {
                continue;
            }
            if let Ok(metadata) = entry.metadata() {
                if metadata.is_file() {
                    object_count += 1;
                    bytes += metadata.len();
                }
            }
        }
        Ok(ContainerInfo {
            name: c.to_string(),
            public: self.read_public(c),
            object_count,
            bytes,
        })
    }

    fn sidecar_path(&self, c: &ContainerName, name: &ObjectName) -> PathBuf {
        self.sidecar_dir(c).join(name.as_str())
    }

    fn cached_sha256(
        &self,
        c: &ContainerName,
        name: &ObjectName,
        meta: &Metadata,
    ) -> Option<String> {
        let bytes = fs::read(self.sidecar_path(c, name)).ok()?;
        let sidecar: Sidecar = serde_json::from_slice(&bytes).ok()?;
        (sidecar.size == meta.len()
            && sidecar.ino == ino(meta)
            && sidecar.mtime_ns == mtime_ns(meta))
        .then_some(sidecar.sha256)
    }

    /// Records a digest; failing only costs a rehash later, so errors are logged.
    fn store_sha256(&self, c: &ContainerName, name: &ObjectName, meta: &Metadata, sha256: &str) {
        let sidecar = Sidecar {
            sha256: sha256.to_string(),
            size: meta.len(),
            ino: ino(meta),
            mtime_ns: mtime_ns(meta),
        };
        let result = (|| -> Result<()> {
            fs::create_dir_all(self.sidecar_dir(c))?;
            let mut tmp = self.temp_file(".sha256-")?;
            tmp.write_all(&serde_json::to_vec(&sidecar)?)?;
            // No fsync: a sidecar lost in a crash is recomputed.
            tmp.persist(self.sidecar_path(c, name))
                .map_err(|e| Error::from(e.error))?;
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(container = %c, object = %name, error = %e, "cannot record an object's SHA-256");
        }
    }

    /// The digest of an open object file, from its sidecar or by hashing it (and rewinding).
    fn sha256_of(
        &self,
        c: &ContainerName,
        name: &ObjectName,
        file: &mut File,
        meta: &Metadata,
    ) -> Result<String> {
        if let Some(sha256) = self.cached_sha256(c, name, meta) {
            return Ok(sha256);
        }
        let (sha256, _) = hash_reader(&mut *file)?;
        file.rewind()?;
        // Hashing takes time: a put may have replaced the file and recorded its digest
        // meanwhile, which must not be overwritten with this older one.
        let still_current = fs::symlink_metadata(self.object_path(c, name))
            .is_ok_and(|now| ino(&now) == ino(meta) && dev(&now) == dev(meta));
        if still_current {
            self.store_sha256(c, name, meta, &sha256);
        }
        Ok(sha256)
    }

    fn info(
        &self,
        c: &ContainerName,
        name: &ObjectName,
        meta: &Metadata,
        sha256: Option<String>,
    ) -> ObjectInfo {
        ObjectInfo {
            container: c.to_string(),
            name: name.to_string(),
            size: meta.len(),
            sha256,
            last_modified: modified(meta),
            url: self.object_url(c, name).to_string(),
        }
    }

    /// Opens an object file, refusing anything but a regular file (symlinks included).
    fn open_object(&self, c: &ContainerName, name: &ObjectName) -> Result<(File, Metadata)> {
        let path = self.object_path(c, name);
        let absent = || {
            if self.container_exists(c) {
                no_object(c, name)
            } else {
                no_container(c)
            }
        };
        // The name must be a regular file itself, not a symlink to one elsewhere: the entry
        // seen before opening must be the file opened. A put renaming a new version in
        // between makes them differ; looking again then finds the new version.
        for _ in 0..8 {
            let linked = match fs::symlink_metadata(&path) {
                Ok(linked) if linked.is_file() => linked,
                Ok(_) => return Err(absent()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(absent()),
                Err(e) => return Err(Error::from(e)),
            };
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(absent()),
                Err(e) => return Err(Error::from(e)),
            };
            let meta = file.metadata()?;
            if meta.is_file() && ino(&linked) == ino(&meta) && dev(&linked) == dev(&meta) {
                return Ok((file, meta));
            }
        }
        Err(Error::unavailable("the object keeps changing; try again")
            .with_resource(format!("{c}/{name}")))
    }

    fn head(&self, c: &ContainerName, name: &ObjectName) -> Result<ObjectInfo> {
        let (mut file, meta) = self.open_object(c, name)?;
        let sha256 = self.sha256_of(c, name, &mut file, &meta)?;
        Ok(self.info(c, name, &meta, Some(sha256)))
    }

    /// What is known of an object without reading it: the SHA-256 only if cached.
    fn stat(&self, c: &ContainerName, name: &ObjectName) -> Result<ObjectInfo> {
        let (_, meta) = self.open_object(c, name)?;
        let sha256 = self.cached_sha256(c, name, &meta);
        Ok(self.info(c, name, &meta, sha256))
    }

    fn list(&self, c: &ContainerName) -> Result<Vec<ObjectInfo>> {
        let entries = match fs::read_dir(self.container_dir(c)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(no_container(c)),
            Err(e) => return Err(Error::from(e)),
        };
        let mut infos = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Some(name) = object_name_of(&entry) else {
                continue;
            };
            // Listing never hashes: a container of large fresh objects lists at once.
            match self.stat(c, &name) {
                Ok(info) => infos.push(info),
                // Deleted meanwhile, or not a regular file.
                Err(e) if e.kind() == crate::error::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(infos)
    }

    fn ensure_container(&self, c: &ContainerName, public: bool) -> Result<ContainerInfo> {
        let _guard = self
            .containers_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !self.container_exists(c) {
            // Creating the directory decides, across processes, who creates the container;
            // only the creator sets its visibility. Until the flag is written the container
            // reads as private, the safe side.
            match fs::create_dir(self.container_dir(c)) {
                Ok(()) => {
                    self.write_public(c, public)?;
                    sync_dir(&self.root)?;
                }
                // Created by another process meanwhile; it keeps what that one set.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::from(e)),
            }
        }
        self.container_info(c)
    }

    fn set_public(&self, c: &ContainerName, public: bool) -> Result<()> {
        let _guard = self
            .containers_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !self.container_exists(c) {
            return Err(no_container(c));
        }
        self.write_public(c, public)
    }

    fn delete_container(&self, c: &ContainerName, recursive: bool) -> Result<()> {
        let _guard = self
            .containers_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let dir = self.container_dir(c);
        if !self.container_exists(c) {
            return Err(no_container(c));
        }
        let not_empty = |count: usize| {
            Error::conflict(format!(
                "container {c} holds {count} entries; delete them first or delete recursively"
            ))
            .with_resource(c.to_string())
        };
        if recursive {
            // One rename makes the whole container disappear at once; the files go after.
            let graveyard = self
                .tmp_dir()
                .join(format!(".deleted-{c}-{:016x}", rand::random::<u64>()));
            fs::rename(&dir, &graveyard)?;
            sync_dir(&self.root)?;
            if let Err(e) = fs::remove_dir_all(&graveyard) {
                tracing::warn!(path = %graveyard.display(), error = %e, "cannot remove a deleted container's files");
            }
        } else {
            let count = fs::read_dir(&dir)?.count();
            if count > 0 {
                return Err(not_empty(count));
            }
            if let Err(e) = fs::remove_dir(&dir) {
                // A put may have landed between the check and the removal.
                let count = fs::read_dir(&dir)
                    .map(|entries| entries.count())
                    .unwrap_or(0);
                return Err(if count > 0 {
                    not_empty(count)
                } else {
                    Error::from(e)
                });
            }
            sync_dir(&self.root)?;
        }
        for result in [
            fs::remove_file(self.container_meta_path(c)),
            fs::remove_dir_all(self.sidecar_dir(c)),
        ] {
            if let Err(e) = result {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(container = %c, error = %e, "cannot remove a deleted container's metadata");
                }
            }
        }
        Ok(())
    }

    fn delete_object(&self, c: &ContainerName, name: &ObjectName) -> Result<()> {
        let path = self.object_path(c, name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(if self.container_exists(c) {
                    no_object(c, name)
                } else {
                    no_container(c)
                })
            }
            Err(e) => return Err(Error::from(e)),
        };
        if meta.is_dir() {
            return Err(no_object(c, name));
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(no_object(c, name)),
            Err(e) => return Err(Error::from(e)),
        }
        sync_dir(&self.container_dir(c))?;
        if let Err(e) = fs::remove_file(self.sidecar_path(c, name)) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(container = %c, object = %name, error = %e, "cannot remove an object's sidecar");
            }
        }
        Ok(())
    }

    /// Moves a complete temporary file over the object's name (synced first with `fsync`).
    fn commit(
        &self,
        c: &ContainerName,
        name: &ObjectName,
        tmp: tempfile::NamedTempFile,
    ) -> Result<ObjectInfo> {
        if self.fsync() {
            tmp.as_file().sync_all()?;
        }
        let meta = tmp.as_file().metadata()?;
        match tmp.persist(self.object_path(c, name)) {
            Ok(_) => {}
            Err(e) if e.error.kind() == io::ErrorKind::NotFound => return Err(no_container(c)),
            Err(e) => return Err(Error::from(e.error)),
        }
        if self.fsync() {
            sync_dir(&self.container_dir(c))?;
        }
        Ok(self.info(c, name, &meta, None))
    }

    fn fsync(&self) -> bool {
        self.fsync.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Copies a local file into a temporary file; on Linux `std::io::copy` between two files
    /// is `copy_file_range`, so the bytes never enter this process.
    fn copy_file(&self, mut source: File) -> Result<tempfile::NamedTempFile> {
        let mut tmp = self.temp_file(".put-")?;
        io::copy(&mut source, tmp.as_file_mut())?;
        Ok(tmp)
    }
}

/// The object name of a directory entry, if it is a valid one.
fn object_name_of(entry: &fs::DirEntry) -> Option<ObjectName> {
    entry
        .file_name()
        .into_string()
        .ok()
        .and_then(|name| ObjectName::new(name).ok())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

fn hash_reader(mut reader: impl Read) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK_SIZE];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

fn modified(meta: &Metadata) -> DateTime<Utc> {
    meta.modified()
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| DateTime::<Utc>::UNIX_EPOCH)
}

#[cfg(unix)]
fn ino(meta: &Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(unix)]
fn dev(meta: &Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::dev(meta)
}

#[cfg(unix)]
fn mtime_ns(meta: &Metadata) -> i128 {
    use std::os::unix::fs::MetadataExt;
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

#[cfg(not(unix))]
fn ino(_meta: &Metadata) -> u64 {
    0
}

#[cfg(not(unix))]
fn dev(_meta: &Metadata) -> u64 {
    0
}

#[cfg(not(unix))]
fn mtime_ns(meta: &Metadata) -> i128 {
    meta.modified()
        .ok()
        .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128)
}

/// Runs file-system work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal("a file-system task failed").with_source(e))?
}

/// Hands a chunk back to the pump once the writer is done with it: reusing buffers spares
/// an allocation and a page fault per 4 KiB of content.
fn recycle(chunk: Bytes, recycler: &SyncSender<BytesMut>) {
    // A chunk sliced from caller's bytes is shared; only a sole owner gets the buffer back.
    if let Ok(mut buffer) = chunk.try_into_mut() {
        buffer.clear();
        let _ = recycler.try_send(buffer);
    }
}

/// Reads `body` in chunks and hands each to the writer; `Ok(false)` when it quit.
async fn pump(
    body: Body,
    to_writer: &mpsc::Sender<Chunk>,
    recycled: Receiver<BytesMut>,
) -> Result<bool> {
    match body {
        Body::Bytes(bytes) => {
            let mut start = 0;
            while start < bytes.len() {
                let end = (start + CHUNK_SIZE).min(bytes.len());
                if to_writer
                    .send(Chunk::Data(bytes.slice(start..end)))
                    .await
                    .is_err()
                {
                    return Ok(false);
                }
                start = end;
            }
        }
        body => {
            let mut reader = body.into_reader();
            loop {
                let mut chunk = recycled
                    .try_recv()
                    .ok()
                    .filter(|buffer| buffer.capacity() >= CHUNK_SIZE)
                    .unwrap_or_else(|| BytesMut::with_capacity(CHUNK_SIZE));
                let mut eof = false;
                // Full chunks keep the per-chunk costs (channel, syscalls) low.
                while chunk.len() < CHUNK_SIZE {
                    if reader.read_buf(&mut chunk).await? == 0 {
                        eof = true;
                        break;
                    }
                }
                if !chunk.is_empty() && to_writer.send(Chunk::Data(chunk.freeze())).await.is_err() {
                    return Ok(false);
                }
                if eof {
                    break;
                }
            }
        }
    }
    Ok(to_writer.send(Chunk::End).await.is_ok())
}

/// Writes chunks to a new temporary file; `None` when the stream ended without `End`.
///
/// With `fsync`, large files are flushed to disk in the background while they are written
/// (every [`FLUSH_EVERY`] bytes, skipped while a flush is still running), so the final
/// fsync only waits for the last part instead of the whole file.
fn write_chunks(
    inner: &Inner,
    mut rx: mpsc::Receiver<Chunk>,
    recycler: SyncSender<BytesMut>,
) -> Result<Option<tempfile::NamedTempFile>> {
    let tmp = inner.temp_file(".put-")?;
    let file: &File = tmp.as_file();
    let complete = std::thread::scope(|scope| -> Result<bool> {
        let mut flusher = None;
        let mut unflushed = 0usize;
        let mut complete = false;
        while let Some(chunk) = rx.blocking_recv() {
            match chunk {
                Chunk::Data(data) => {
                    let mut writer = file;
                    writer.write_all(&data)?;
                    unflushed += data.len();
                    recycle(data, &recycler);
                    if inner.fsync() && unflushed >= FLUSH_EVERY {
                        unflushed = 0;
                        let (wake, _) = flusher.get_or_insert_with(|| {
                            let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
                            let handle = scope.spawn(move || -> io::Result<()> {
                                while woken.recv().is_ok() {
                                    file.sync_data()?;
                                }
                                Ok(())
                            });
                            (wake, handle)
                        });
                        // Full: a flush is running and one is queued; this one can be skipped.
                        let _ = wake.try_send(());
                    }
                }
                Chunk::End => {
                    complete = true;
                    break;
                }
            }
        }
        if let Some((wake, handle)) = flusher {
            drop(wake);
            handle
                .join()
                .map_err(|_| Error::internal("the flushing thread panicked"))??;
        }
        Ok(complete)
    })?;
    if !complete {
        return Ok(None);
    }
    Ok(Some(tmp))
}

#[async_trait]
impl ObjectStore for FsStore {
    async fn ensure_container(&self, c: &ContainerName, public: bool) -> Result<ContainerInfo> {
        let (inner, c2) = (self.inner.clone(), c.clone());
        blocking(move || inner.ensure_container(&c2, public))
            .await
            .map_err(|e| {
                e.with_operation("ensure_container")
                    .with_resource(c.to_string())
            })
    }

    async fn is_public(&self, c: &ContainerName) -> Result<bool> {
        let (inner, c2) = (self.inner.clone(), c.clone());
        blocking(move || {
            if inner.container_exists(&c2) {
                Ok(inner.read_public(&c2))
            } else {
                Err(no_container(&c2))
            }
        })
        .await
    }

    async fn container_info(&self, c: &ContainerName) -> Result<ContainerInfo> {
        let (inner, c2) = (self.inner.clone(), c.clone());
        blocking(move || inner.container_info(&c2))
            .await
            .map_err(|e| e.with_operation("container_info"))
    }

    async fn list_containers(&self, prefix: Option<&str>) -> Result<Vec<ContainerInfo>> {
        let inner = self.inner.clone();
        let prefix = prefix.map(str::to_string);
        blocking(move || {
            let mut infos = Vec::new();
            for entry in fs::read_dir(&inner.root)? {
                let entry = entry?;
                let Some(c) = entry
                    .file_name()
                    .into_string()
                    .ok()
                    .and_then(|name| ContainerName::new(name).ok())
                else {
                    continue;
                };
                if prefix
                    .as_deref()
                    .is_some_and(|p| !c.as_str().starts_with(p))
                    || !entry.file_type().is_ok_and(|t| t.is_dir())
                {
                    continue;
                }
                match inner.container_info(&c) {
                    Ok(info) => infos.push(info),
                    // Deleted meanwhile.
                    Err(e) if e.kind() == crate::error::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            infos.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(infos)
        })
        .await
        .map_err(|e| e.with_operation("list_containers"))
    }

    async fn put(&self, c: &ContainerName, name: &ObjectName, body: Body) -> Result<ObjectInfo> {
        let context = |e: Error| e.with_operation("put").with_resource(format!("{c}/{name}"));
        let inner = self.inner.clone();
        let exists = {
            let (inner, c) = (inner.clone(), c.clone());
            blocking(move || Ok(inner.container_exists(&c))).await?
        };
        if !exists {
            return Err(no_container(c).with_operation("put"));
        }
        if let Body::File(source) = body {
            let (c2, name2) = (c.clone(), name.clone());
            return blocking(move || {
                let tmp = inner.copy_file(source)?;
                inner.commit(&c2, &name2, tmp)
            })
            .await
            .map_err(context);
        }
        let (to_writer, writer_rx) = mpsc::channel(CHANNEL_DEPTH);
        let (recycler, recycled) = std::sync::mpsc::sync_channel(CHANNEL_DEPTH + 2);
        let writer = {
            let inner = inner.clone();
            tokio::task::spawn_blocking(move || write_chunks(&inner, writer_rx, recycler))
        };
        let pumped = pump(body, &to_writer, recycled).await;
        // Dropping the sender ends the writer; without `End` it discards its work.
        drop(to_writer);
        let written = writer
            .await
            .map_err(|e| Error::internal("a file-system task failed").with_source(e));
        // The temporary file (deleted when dropped) is gone before any error is returned.
        let tmp = written.and_then(|w| w).map_err(context)?;
        let complete = pumped.map_err(context)?;
        let (Some(tmp), true) = (tmp, complete) else {
            return Err(context(Error::internal("the put was interrupted")));
        };
        let (c2, name2) = (c.clone(), name.clone());
        blocking(move || inner.commit(&c2, &name2, tmp))
            .await
            .map_err(context)
    }

    async fn get(
        &self,
        c: &ContainerName,
        name: &ObjectName,
    ) -> Result<(ObjectInfo, ObjectReader)> {
        let (inner, c2, name2) = (self.inner.clone(), c.clone(), name.clone());
        let (info, file) = blocking(move || {
            let (file, meta) = inner.open_object(&c2, &name2)?;
            // Reading must start at once, even for a large fresh object: no hashing here.
            let sha256 = inner.cached_sha256(&c2, &name2, &meta);
            Ok((inner.info(&c2, &name2, &meta, sha256), file))
        })
        .await
        .map_err(|e| e.with_operation("get"))?;
        // The open file is the version described by `info`, whatever is renamed over it later.
        let reader: ObjectReader = Box::pin(tokio::io::BufReader::with_capacity(
            READ_BUFFER_SIZE,
            tokio::fs::File::from_std(file),
        ));
        Ok((info, reader))
    }

    async fn get_bytes(
        &self,
        c: &ContainerName,
        name: &ObjectName,
        limit: u64,
    ) -> Result<(ObjectInfo, Vec<u8>)> {
        use std::io::Read;
        let (inner, c2, name2) = (self.inner.clone(), c.clone(), name.clone());
        // Opened and read in one go off the async threads.
        blocking(move || {
            let (file, meta) = inner.open_object(&c2, &name2)?;
            let sha256 = inner.cached_sha256(&c2, &name2, &meta);
            let info = inner.info(&c2, &name2, &meta, sha256);
            let mut bytes = Vec::with_capacity(usize::try_from(meta.len().min(limit)).unwrap_or(0));
            file.take(limit.saturating_add(1))
                .read_to_end(&mut bytes)
                .map_err(|e| Error::from(e).with_resource(format!("{c2}/{name2}")))?;
            Ok((info, bytes))
        })
        .await
        .map_err(|e| e.with_operation("get"))
    }

    async fn head(&self, c: &ContainerName, name: &ObjectName) -> Result<ObjectInfo> {
        let (inner, c2, name2) = (self.inner.clone(), c.clone(), name.clone());
        blocking(move || inner.head(&c2, &name2))
            .await
            .map_err(|e| e.with_operation("head"))
    }

    async fn list(&self, c: &ContainerName) -> Result<Vec<ObjectInfo>> {
        let (inner, c2) = (self.inner.clone(), c.clone());
        blocking(move || inner.list(&c2))
            .await
            .map_err(|e| e.with_operation("list").with_resource(c.to_string()))
    }

    async fn delete_object(&self, c: &ContainerName, name: &ObjectName) -> Result<()> {
        let (inner, c2, name2) = (self.inner.clone(), c.clone(), name.clone());
        blocking(move || inner.delete_object(&c2, &name2))
            .await
            .map_err(|e| {
                e.with_operation("delete_object")
                    .with_resource(format!("{c}/{name}"))
            })
    }

    async fn set_public(&self, c: &ContainerName, public: bool) -> Result<()> {
        let (inner, c2) = (self.inner.clone(), c.clone());
        blocking(move || inner.set_public(&c2, public))
            .await
            .map_err(|e| e.with_operation("set_public").with_resource(c.to_string()))
    }

    async fn delete_container(&self, c: &ContainerName, recursive: bool) -> Result<()> {
        let (inner, c2) = (self.inner.clone(), c.clone());
        blocking(move || inner.delete_container(&c2, recursive))
            .await
            .map_err(|e| {
                e.with_operation("delete_container")
                    .with_resource(c.to_string())
            })
    }

    fn object_url(&self, c: &ContainerName, name: &ObjectName) -> Url {
        self.inner.object_url(c, name)
    }

    fn resolve_url(&self, url: &Url) -> Result<(ContainerName, ObjectName)> {
        let inner = &self.inner;
        inner
            .public_prefix
            .iter()
            .chain([&inner.file_prefix])
            .find_map(|prefix| resolve_under(prefix, url))
            .unwrap_or_else(|| {
                Err(foreign_url(
                    url,
                    inner.public_prefix.as_ref().unwrap_or(&inner.file_prefix),
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, ReadBuf};

    use super::*;
    use crate::error::ErrorKind;
    use crate::store::{conformance, DataStore};

    fn store_in(dir: &Path) -> FsStore {
        FsStore::new(dir.to_path_buf(), None).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        conformance::run_all(Arc::new(store_in(dir.path()))).await;
    }

    #[tokio::test]
    async fn conformance_suite_with_public_url() {
        let dir = tempfile::tempdir().unwrap();
        let public = Url::parse("http://127.0.0.1:8000/store/").unwrap();
        conformance::run_all(Arc::new(
            FsStore::new(dir.path().into(), Some(public)).unwrap(),
        ))
        .await;
    }

    /// Yields `good` bytes, then fails.
    struct FailingReader {
        good: usize,
    }

    impl AsyncRead for FailingReader {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.good == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "client went away",
                )));
            }
            let n = self.good.min(buf.remaining()).min(100_000);
            buf.put_slice(&vec![b'x'; n]);
            self.good -= n;
            Poll::Ready(Ok(()))
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn an_interrupted_put_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        let c = ContainerName::new("ticket.1.sources").unwrap();
        let name = ObjectName::new("big.orig.tar.xz").unwrap();
        store.ensure_container(&c, true).await.unwrap();

        let err = store
            .put(
                &c,
                &name,
                Body::from_reader(FailingReader {
                    good: 3 * CHUNK_SIZE + 5,
                }),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(entries(&dir.path().join("ticket.1.sources")).is_empty());
        assert!(entries(&dir.path().join(".tmp")).is_empty());
        assert_eq!(
            store.head(&c, &name).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );

        // Over an existing object: the old content stays, whole.
        let old = store
            .put(&c, &name, Body::from(b"old content".to_vec()))
            .await
            .unwrap();
        store
            .put(&c, &name, Body::from_reader(FailingReader { good: 10 }))
            .await
            .unwrap_err();
        let head = store.head(&c, &name).await.unwrap();
        assert_eq!(
            (head.size, head.last_modified),
            (old.size, old.last_modified)
        );
        assert_eq!(
            entries(&dir.path().join("ticket.1.sources")),
            vec!["big.orig.tar.xz"]
        );
        assert!(entries(&dir.path().join(".tmp")).is_empty());
    }

    #[tokio::test]
    async fn objects_are_real_files_named_by_file_urls() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(store_in(dir.path()));
        let data = DataStore::open(store.clone(), "ticket.1", "sources", true)
            .await
            .unwrap();
        let url = data
            .put_file("hello_2.10-3.dsc", "Source: hello\n")
            .await
            .unwrap();
        assert_eq!(url.scheme(), "file");
        let path = url.to_file_path().unwrap();
        assert_eq!(path, dir.path().join("ticket.1.sources/hello_2.10-3.dsc"));
        assert_eq!(fs::read(&path).unwrap(), b"Source: hello\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o600, 0o600);
            assert_eq!(mode & 0o022, 0, "never group/world-writable");
        }
        assert_eq!(
            fs::read_to_string(dir.path().join(".meta/ticket.1.sources.json")).unwrap(),
            r#"{"public":true}"#
        );
    }

    #[tokio::test]
    async fn state_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let c = ContainerName::new("ticket.7.sources").unwrap();
        let name = ObjectName::new("a.dsc").unwrap();
        let put = {
            let store = store_in(dir.path());
            store.ensure_container(&c, true).await.unwrap();
            store.set_public(&c, false).await.unwrap();
            store.put(&c, &name, Body::from("abc")).await.unwrap()
        };
        let store = store_in(dir.path());
        assert!(!store.container_info(&c).await.unwrap().public);
        let head = store.head(&c, &name).await.unwrap();
        assert_eq!((head.size, &head.url), (put.size, &put.url));
        assert_eq!(put.sha256, None, "a put does not hash");
        assert_eq!(
            head.sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
    }

    #[tokio::test]
    async fn local_files_are_copied_whole_and_fsync_is_an_option() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source.bin");
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&source, &content).unwrap();
        for fsync in [false, true] {
            let store = store_in(&dir.path().join(format!("store-{fsync}"))).with_fsync(fsync);
            let c = ContainerName::new("ticket.3.images").unwrap();
            store.ensure_container(&c, false).await.unwrap();
            let name = ObjectName::new("image.bin").unwrap();
            let body = Body::from_file(&source).await.unwrap();
            assert!(matches!(body, Body::File(_)));
            let info = store.put(&c, &name, body).await.unwrap();
            assert_eq!(info.size, content.len() as u64);
            assert_eq!(fs::read(store.object_path(&c, &name)).unwrap(), content);
            assert!(
                entries(&store.root().join(".tmp")).is_empty(),
                "no temporary file is left"
            );
        }
        let url = format!("file://{}/s?fsync=true", dir.path().display());
        super::super::open_store(&url, &Default::default()).unwrap();
        let bad = format!("file://{}/s?fsync=maybe", dir.path().display());
        assert_eq!(
            super::super::open_store(&bad, &Default::default())
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidInput
        );
    }

    #[tokio::test]
    async fn files_placed_by_hand_are_hashed_on_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        let c = ContainerName::new("images").unwrap();
        store.ensure_container(&c, false).await.unwrap();
        let path = dir.path().join("images/base.tar");
        fs::write(&path, b"hello").unwrap();
        // Not objects: a directory, a symlink, an invalid name.
        fs::create_dir(dir.path().join("images/subdir")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("images/passwd")).unwrap();
        fs::write(dir.path().join("images/bad\nname"), b"x").unwrap();

        let name = ObjectName::new("base.tar").unwrap();
        let info = store.head(&c, &name).await.unwrap();
        let hello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!((info.size, info.sha256.as_deref()), (5, Some(hello)));
        let listed = store.list(&c).await.unwrap();
        assert_eq!(listed, vec![info]);
        for absent in ["subdir", "passwd"] {
            let err = store
                .head(&c, &ObjectName::new(absent).unwrap())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "{absent}");
        }

        // Changed in place: the stale sidecar is not believed.
        fs::write(&path, b"world").unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        let info = store.head(&c, &name).await.unwrap();
        let world = "486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7";
        assert_eq!(info.sha256.as_deref(), Some(world));
    }

    #[tokio::test]
    async fn stale_temporary_files_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        drop(store_in(dir.path()));
        let tmp = dir.path().join(".tmp");
        let old = tmp.join(".put-old");
        fs::write(&old, b"partial").unwrap();
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(2 * 3600))
            .unwrap();
        fs::write(tmp.join(".put-fresh"), b"in progress").unwrap();
        drop(store_in(dir.path()));
        assert_eq!(entries(&tmp), vec![".put-fresh"]);
    }

    #[tokio::test]
    async fn resolve_accepts_file_and_public_urls() {
        let dir = tempfile::tempdir().unwrap();
        let public = Url::parse("http://127.0.0.1:8000/store/").unwrap();
        let store = FsStore::new(dir.path().into(), Some(public)).unwrap();
        let c = ContainerName::new("ticket.1.sources").unwrap();
        let name = ObjectName::new("autopilot_1.5~dev.1_source.changes").unwrap();
        let url = store.object_url(&c, &name);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8000/store/ticket.1.sources/autopilot_1.5~dev.1_source.changes"
        );
        let file_url = Url::from_file_path(store.object_path(&c, &name)).unwrap();
        for url in [url, file_url] {
            assert_eq!(store.resolve_url(&url).unwrap(), (c.clone(), name.clone()));
        }
        let foreign = Url::parse("http://127.0.0.1:8000/api/v1/ticket/1/").unwrap();
        assert_eq!(
            store.resolve_url(&foreign).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
}
