//! The data store: containers of named objects, reachable by URL.
//!
//! The seed's `DataStore("ticket.1", "sources", public=True)` is one container
//! (`ticket.1.sources`) of an [`ObjectStore`]; `put_file` streams a file into it and answers
//! the object's URL, which the ticket system records as an artifact's reference. This module
//! holds the backend trait and its contract, the validated names ([`ContainerName`],
//! [`ObjectName`]), the [`DataStore`] handle the rest of the system uses, and
//! [`open_store`], the one place where a store URL picks a backend:
//!
//! | URL | backend |
//! |---|---|
//! | `memory://` | [`memory::MemoryStore`] (a fresh, empty store per call) |
//! | `file:///abs/path` | [`fs::FsStore`] rooted at `/abs/path` |
//! | `http://host:port/` | [`http::HttpStore`], the REST server's store API |
//! | `swift+https://…`, `s3://…` | not implemented yet ([`ErrorKind::Unsupported`]) |
//!
//! Every backend runs the suite in [`conformance`].

pub mod conformance;
pub mod fs;
pub mod http;
pub mod memory;

use std::fmt;
use std::path::Path;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use url::{Position, Url};

use crate::error::{Error, ErrorKind, Result};

/// The longest container name, in bytes.
pub const MAX_CONTAINER_NAME_LEN: usize = 200;

/// The longest object name, in bytes (the usual file-name limit of Linux file systems).
pub const MAX_OBJECT_NAME_LEN: usize = 255;

/// Object names in URLs: every byte but RFC 3986's unreserved characters is percent-encoded.
const NAME_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A validated container name such as `ticket.1.sources`.
///
/// 1 to 200 bytes of `[A-Za-z0-9._-]`, not starting with `.` or `-`, without `..`: safe as a
/// directory name, a URL path segment, a Swift container and (lower-cased) an S3 prefix.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerName(String);

impl ContainerName {
    /// Validates `name` as a container name.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the name breaks the rules of [`ContainerName`].
    pub fn new(name: impl Into<String>) -> Result<ContainerName> {
        let name = name.into();
        validate_container_name(&name)?;
        Ok(ContainerName(name))
    }

    /// The seed's container naming: `<name>.<component>` (`ticket.1` + `sources`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when either part is empty or the result is not a valid name.
    pub fn from_parts(name: &str, component: &str) -> Result<ContainerName> {
        if name.is_empty() || component.is_empty() {
            return Err(Error::invalid(format!(
                "invalid container name parts {name:?} and {component:?}: both must be non-empty"
            )));
        }
        ContainerName::new(format!("{name}.{component}"))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a container name against the rules of [`ContainerName`].
///
/// # Errors
/// [`ErrorKind::InvalidInput`] with a message naming the container and the broken rule.
pub fn validate_container_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "must not be empty".to_string()
    } else if name.len() > MAX_CONTAINER_NAME_LEN {
        format!(
            "is {} bytes long, at most {MAX_CONTAINER_NAME_LEN} are allowed",
            name.len()
        )
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        format!("contains {c:?}; only letters, digits, '.', '_' and '-' are allowed")
    } else if name.starts_with('.') || name.starts_with('-') {
        "must not start with '.' or '-'".to_string()
    } else if name.contains("..") {
        "must not contain \"..\"".to_string()
    } else {
        return Ok(());
    };
    Err(Error::invalid(format!(
        "invalid container name {name:?}: {reason}"
    )))
}

impl FromStr for ContainerName {
    type Err = Error;
    fn from_str(s: &str) -> Result<ContainerName> {
        ContainerName::new(s)
    }
}

impl TryFrom<&str> for ContainerName {
    type Error = Error;
    fn try_from(s: &str) -> Result<ContainerName> {
        ContainerName::new(s)
    }
}

impl TryFrom<String> for ContainerName {
    type Error = Error;
    fn try_from(s: String) -> Result<ContainerName> {
        ContainerName::new(s)
    }
}

impl From<ContainerName> for String {
    fn from(name: ContainerName) -> String {
        name.0
    }
}

impl AsRef<str> for ContainerName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ContainerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A validated object name such as `hello_2.10-3.dsc` (see [`validate_object_name`]).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectName(String);

impl ObjectName {
    /// Validates `name` as an object name.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] as [`validate_object_name`] says.
    pub fn new(name: impl Into<String>) -> Result<ObjectName> {
        let name = name.into();
        validate_object_name(&name)?;
        Ok(ObjectName(name))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks that `name` can name an object: it is used as one file name and one URL segment.
///
/// Rejected: the empty name, more than 255 bytes, `/`, `..` anywhere (so `.` and `..` too),
/// NUL and other control characters (below 0x20, and 0x7f).
///
/// # Errors
/// [`ErrorKind::InvalidInput`] with a message naming the (escaped) name and the broken rule.
pub fn validate_object_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "must not be empty".to_string()
    } else if name.len() > MAX_OBJECT_NAME_LEN {
        format!(
            "is {} bytes long, at most {MAX_OBJECT_NAME_LEN} are allowed",
            name.len()
        )
    } else if name.contains('/') {
        "must not contain '/'".to_string()
    } else if name == "." {
        "must not be \".\"".to_string()
    } else if name.contains("..") {
        "must not contain \"..\"".to_string()
    } else if let Some(c) = name.chars().find(|c| c.is_control()) {
        format!("must not contain control character {c:?}")
    } else {
        return Ok(());
    };
    Err(Error::invalid(format!(
        "invalid object name {name:?}: {reason}"
    )))
}

impl FromStr for ObjectName {
    type Err = Error;
    fn from_str(s: &str) -> Result<ObjectName> {
        ObjectName::new(s)
    }
}

impl TryFrom<&str> for ObjectName {
    type Error = Error;
    fn try_from(s: &str) -> Result<ObjectName> {
        ObjectName::new(s)
    }
}

impl TryFrom<String> for ObjectName {
    type Error = Error;
    fn try_from(s: String) -> Result<ObjectName> {
        ObjectName::new(s)
    }
}

impl From<ObjectName> for String {
    fn from(name: ObjectName) -> String {
        name.0
    }
}

impl AsRef<str> for ObjectName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// What a store knows about one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ObjectInfo {
    /// The container holding the object.
    pub container: String,
    /// The object's name in its container.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, lower-case hex, when the store knows it. Puts do not hash
    /// (a put costs what a copy costs); the file-system store computes it on the first
    /// [`ObjectStore::head`] and keeps it, and reports it from then on.
    pub sha256: Option<String>,
    /// When the current content was stored.
    pub last_modified: DateTime<Utc>,
    /// The URL naming the object (see [`ObjectStore::object_url`]).
    pub url: String,
}

/// What a store knows about one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContainerInfo {
    /// The container's name.
    pub name: String,
    /// Whether its objects are readable without credentials.
    pub public: bool,
    /// How many objects it holds.
    pub object_count: u64,
    /// The sum of its objects' sizes.
    pub bytes: u64,
}

/// A stream of an object's bytes.
pub type ObjectReader = Pin<Box<dyn tokio::io::AsyncRead + Send>>;

/// The content handed to [`ObjectStore::put`]: bytes in memory, a stream read once, or a
/// local file (which a store on the same machine may copy in the kernel).
pub enum Body {
    /// Content already in memory.
    Bytes(Bytes),
    /// Content read from a stream, in constant memory.
    Reader(ObjectReader),
    /// A regular local file, read from its current position.
    File(std::fs::File),
}

impl Body {
    /// Content read from any async reader.
    pub fn from_reader(reader: impl tokio::io::AsyncRead + Send + 'static) -> Body {
        Body::Reader(Box::pin(reader))
    }

    /// Content streamed from a local file.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when the file does not exist, [`ErrorKind::InvalidInput`] when
    /// the path is not a regular file, other kinds as the I/O error says.
    pub async fn from_file(path: impl AsRef<Path>) -> Result<Body> {
        let path = path.as_ref();
        let resource = || path.display().to_string();
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::from(e).with_resource(resource()))?;
        let metadata = file
            .metadata()
            .await
            .map_err(|e| Error::from(e).with_resource(resource()))?;
        if !metadata.is_file() {
            return Err(Error::invalid("not a regular file").with_resource(resource()));
        }
        Ok(Body::File(file.into_std().await))
    }

    /// The content as a reader, whichever form it has.
    pub fn into_reader(self) -> ObjectReader {
        match self {
            Body::Bytes(bytes) => Box::pin(std::io::Cursor::new(bytes)),
            Body::Reader(reader) => reader,
            Body::File(file) => Box::pin(tokio::io::BufReader::with_capacity(
                READ_BUFFER_SIZE,
                tokio::fs::File::from_std(file),
            )),
        }
    }
}

/// The buffer of readers over local files: large reads bypass it, small ones are batched.
pub(crate) const READ_BUFFER_SIZE: usize = 256 * 1024;

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Bytes(bytes) => f.debug_tuple("Bytes").field(&bytes.len()).finish(),
            Body::Reader(_) => f.write_str("Reader(..)"),
            Body::File(file) => f.debug_tuple("File").field(file).finish(),
        }
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Body {
        Body::Bytes(bytes)
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body::Bytes(Bytes::from(bytes))
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Body {
        Body::Bytes(Bytes::from_static(bytes))
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Body {
        Body::Bytes(Bytes::from_static(text.as_bytes()))
    }
}

impl From<String> for Body {
    fn from(text: String) -> Body {
        Body::Bytes(Bytes::from(text))
    }
}

/// A data store backend: containers of objects, each object named by a URL.
///
/// The contract every backend keeps (checked by [`conformance::run_all`]):
///
/// - Names are validated by their types; a backend never sees `..`, `/` or control
///   characters in a name.
/// - Writes are atomic: a reader sees the old object or the whole new one; a failed or
///   interrupted [`put`](ObjectStore::put) leaves the previous state untouched.
/// - Content is streamed: a backend that is not in memory stores and serves an object of any
///   size in constant memory.
/// - Listings are sorted by name (byte order).
/// - Errors carry an [`ErrorKind`]: `NotFound` for an absent container or object,
///   `Conflict` for deleting a non-empty container without `recursive`, `InvalidInput` for a
///   foreign URL, `Unavailable` when a remote store cannot be reached (retryable).
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// Creates the container if absent; a new container gets `public`, an existing one keeps
    /// its visibility. Idempotent.
    ///
    /// # Errors
    /// Only what the storage itself reports (`Internal`, `Unavailable`, `Unauthorized`).
    async fn ensure_container(&self, c: &ContainerName, public: bool) -> Result<ContainerInfo>;

    /// The container's visibility, object count and size.
    ///
    /// # Errors
    /// `NotFound` when the container does not exist.
    async fn container_info(&self, c: &ContainerName) -> Result<ContainerInfo>;

    /// Whether the container's objects are readable without credentials; cheaper than
    /// [`ObjectStore::container_info`], which counts the objects.
    ///
    /// # Errors
    /// `NotFound` when the container does not exist.
    async fn is_public(&self, c: &ContainerName) -> Result<bool> {
        Ok(self.container_info(c).await?.public)
    }

    /// All containers whose name starts with `prefix` (all of them for `None`), sorted by name.
    ///
    /// # Errors
    /// Only what the storage itself reports.
    async fn list_containers(&self, prefix: Option<&str>) -> Result<Vec<ContainerInfo>>;

    /// Stores `body` under `name`, replacing any object of that name, and answers its info
    /// (its size; its SHA-256 only if the backend has it at no cost: puts do not hash).
    ///
    /// Atomic: readers see the old object or the whole new one, never a part; a failed or
    /// interrupted put leaves nothing new under the name. Idempotent for equal content.
    ///
    /// # Errors
    /// `NotFound` when the container does not exist; the reader's own error when `body`
    /// fails midway; what the storage reports.
    async fn put(&self, c: &ContainerName, name: &ObjectName, body: Body) -> Result<ObjectInfo>;

    /// The object's info and a stream of its content (the version current when called).
    ///
    /// # Errors
    /// `NotFound` when the container or the object does not exist.
    async fn get(&self, c: &ContainerName, name: &ObjectName)
        -> Result<(ObjectInfo, ObjectReader)>;

    /// The object's info and its content, whole, for small objects (control files): at
    /// most `limit + 1` bytes are read, so more than `limit` bytes means the object is
    /// larger than that.
    ///
    /// # Errors
    /// As [`ObjectStore::get`].
    async fn get_bytes(
        &self,
        c: &ContainerName,
        name: &ObjectName,
        limit: u64,
    ) -> Result<(ObjectInfo, Vec<u8>)> {
        let (info, reader) = self.get(c, name).await?;
        let mut bytes = Vec::with_capacity(usize::try_from(info.size.min(limit)).unwrap_or(0));
        reader
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| Error::from(e).with_resource(format!("{c}/{name}")))?;
        Ok((info, bytes))
    }

    /// The object's info, without its content.
    ///
    /// # Errors
    /// `NotFound` when the container or the object does not exist.
    async fn head(&self, c: &ContainerName, name: &ObjectName) -> Result<ObjectInfo>;

    /// The infos of all objects of the container, sorted by name.
    ///
    /// # Errors
    /// `NotFound` when the container does not exist.
    async fn list(&self, c: &ContainerName) -> Result<Vec<ObjectInfo>>;

    /// Deletes one object.
    ///
    /// # Errors
    /// `NotFound` when the container or the object does not exist (so a repeated delete
    /// reports `NotFound`; callers wanting idempotency ignore that kind).
    async fn delete_object(&self, c: &ContainerName, name: &ObjectName) -> Result<()>;

    /// Makes the container's objects readable without credentials (`true`) or not. Idempotent.
    ///
    /// # Errors
    /// `NotFound` when the container does not exist.
    async fn set_public(&self, c: &ContainerName, public: bool) -> Result<()>;

    /// Deletes the container, and its objects when `recursive`.
    ///
    /// # Errors
    /// `Conflict` when it holds objects and `recursive` is false (nothing is deleted then);
    /// `NotFound` when it does not exist.
    async fn delete_container(&self, c: &ContainerName, recursive: bool) -> Result<()>;

    /// The URL naming this object; it ends with `/<container>/<percent-encoded name>`, where
    /// every byte but `A-Z a-z 0-9 - . _ ~` of the name is percent-encoded. No network access;
    /// the object need not exist.
    fn object_url(&self, c: &ContainerName, name: &ObjectName) -> Url;

    /// The inverse of [`object_url`](ObjectStore::object_url), without network access.
    ///
    /// # Errors
    /// `InvalidInput` for a URL that does not name an object of this store.
    fn resolve_url(&self, url: &Url) -> Result<(ContainerName, ObjectName)>;
}

/// Downloads an object into the local file `target`: written beside it under a temporary
/// name, checked against the object's size, synced, then renamed, so `target` never holds
/// a partial download. The file gets mode 0644 (a plain download, not a secret).
///
/// # Errors
/// As [`ObjectStore::get`]; `Internal` when fewer or more bytes arrive than the object has;
/// what the file system reports.
pub async fn download(
    store: &dyn ObjectStore,
    c: &ContainerName,
    name: &ObjectName,
    target: &Path,
) -> Result<ObjectInfo> {
    let (info, mut reader) = store.get(c, name).await?;
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let resource = || target.display().to_string();
    let tmp = tempfile::NamedTempFile::new_in(&dir)
        .map_err(|e| Error::from(e).with_resource(dir.display().to_string()))?;
    let mut file = tokio::fs::File::from_std(
        tmp.reopen()
            .map_err(|e| Error::from(e).with_resource(resource()))?,
    );
    let copied = tokio::io::copy(&mut reader, &mut file)
        .await
        .map_err(|e| Error::from(e).with_resource(resource()))?;
    if copied != info.size {
        return Err(Error::internal(format!(
            "{c}/{name}: got {copied} bytes, expected {}",
            info.size
        )));
    }
    file.sync_all()
        .await
        .map_err(|e| Error::from(e).with_resource(resource()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::from(e).with_resource(resource()))?;
    }
    tmp.persist(target)
        .map_err(|e| Error::from(e.error).with_resource(resource()))?;
    Ok(info)
}

/// The seed's `DataStore`: one container (`<name>.<component>`) of a store.
#[derive(Clone, Debug)]
pub struct DataStore {
    store: Arc<dyn ObjectStore>,
    container: ContainerName,
}

impl DataStore {
    /// The most [`get_bytes`](DataStore::get_bytes) reads into memory.
    pub const GET_BYTES_LIMIT: u64 = 64 * 1024 * 1024;

    /// Opens container `<name>.<component>` of `store`, creating it with `public` if absent
    /// (an existing container keeps its visibility).
    ///
    /// # Errors
    /// `InvalidInput` for a bad container name; what [`ObjectStore::ensure_container`] reports.
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        name: &str,
        component: &str,
        public: bool,
    ) -> Result<DataStore> {
        let container = ContainerName::from_parts(name, component)?;
        store
            .ensure_container(&container, public)
            .await
            .map_err(|e| e.with_operation("open_data_store"))?;
        Ok(DataStore { store, container })
    }

    /// The container this handle writes to.
    pub fn container(&self) -> &ContainerName {
        &self.container
    }

    /// The store holding the container.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Stores a file and answers its URL (the artifact reference of the seed).
    ///
    /// # Errors
    /// `InvalidInput` for a hostile name (nothing is stored then); what [`ObjectStore::put`]
    /// reports.
    pub async fn put_file(&self, name: &str, body: impl Into<Body>) -> Result<Url> {
        let info = self.put_file_info(name, body).await?;
        Url::parse(&info.url).map_err(|e| {
            Error::internal(format!("the store answered an invalid URL {:?}", info.url))
                .with_source(e)
                .with_operation("put_file")
        })
    }

    /// Stores a file and answers all its info (size, SHA-256, URL).
    ///
    /// # Errors
    /// As [`put_file`](DataStore::put_file).
    pub async fn put_file_info(&self, name: &str, body: impl Into<Body>) -> Result<ObjectInfo> {
        let name = ObjectName::new(name).map_err(|e| e.with_operation("put_file"))?;
        self.store
            .put(&self.container, &name, body.into())
            .await
            .map_err(|e| e.with_operation("put_file"))
    }

    /// A stream of a file's content.
    ///
    /// # Errors
    /// `InvalidInput` for a bad name, `NotFound` when absent.
    pub async fn get_file(&self, name: &str) -> Result<ObjectReader> {
        let name = ObjectName::new(name).map_err(|e| e.with_operation("get_file"))?;
        let (_, reader) = self
            .store
            .get(&self.container, &name)
            .await
            .map_err(|e| e.with_operation("get_file"))?;
        Ok(reader)
    }

    /// A small file's whole content, at most [`GET_BYTES_LIMIT`](DataStore::GET_BYTES_LIMIT).
    ///
    /// # Errors
    /// As [`get_file`](DataStore::get_file); `TooLarge` beyond the limit.
    pub async fn get_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let name = ObjectName::new(name).map_err(|e| e.with_operation("get_bytes"))?;
        let resource = || format!("{}/{}", self.container, name);
        let (info, reader) = self
            .store
            .get(&self.container, &name)
            .await
            .map_err(|e| e.with_operation("get_bytes"))?;
        let too_large = || {
            Error::too_large(format!(
                "object is larger than {} bytes to read whole; stream it (`get_file` in Rust, `download` in Python, `ubuntu-ci store get`)",
                Self::GET_BYTES_LIMIT
            ))
            .with_operation("get_bytes")
            .with_resource(resource())
        };
        if info.size > Self::GET_BYTES_LIMIT {
            return Err(too_large());
        }
        // The size is only a hint: the stream itself is capped too.
        let mut content = Vec::with_capacity(usize::try_from(info.size).unwrap_or(0));
        reader
            .take(Self::GET_BYTES_LIMIT + 1)
            .read_to_end(&mut content)
            .await
            .map_err(|e| {
                Error::from(e)
                    .with_operation("get_bytes")
                    .with_resource(resource())
            })?;
        if content.len() as u64 > Self::GET_BYTES_LIMIT {
            return Err(too_large());
        }
        Ok(content)
    }

    /// The infos of all files of the container, sorted by name.
    ///
    /// # Errors
    /// `NotFound` when the container was deleted.
    pub async fn list_files(&self) -> Result<Vec<ObjectInfo>> {
        self.store
            .list(&self.container)
            .await
            .map_err(|e| e.with_operation("list_files"))
    }

    /// Deletes one file.
    ///
    /// # Errors
    /// `InvalidInput` for a bad name, `NotFound` when absent.
    pub async fn delete_file(&self, name: &str) -> Result<()> {
        let name = ObjectName::new(name).map_err(|e| e.with_operation("delete_file"))?;
        self.store
            .delete_object(&self.container, &name)
            .await
            .map_err(|e| e.with_operation("delete_file"))
    }

    /// Makes the container public or private.
    ///
    /// # Errors
    /// `NotFound` when the container was deleted.
    pub async fn change_visibility(&self, public: bool) -> Result<()> {
        self.store
            .set_public(&self.container, public)
            .await
            .map_err(|e| e.with_operation("change_visibility"))
    }

    /// Deletes the container (and its files when `recursive`).
    ///
    /// # Errors
    /// `Conflict` when not empty and not `recursive`; `NotFound` when already deleted.
    pub async fn delete(&self, recursive: bool) -> Result<()> {
        self.store
            .delete_container(&self.container, recursive)
            .await
            .map_err(|e| e.with_operation("delete_data_store"))
    }

    /// The URL a file of this name has (or would have) in the container.
    ///
    /// # Errors
    /// `InvalidInput` for a bad name.
    pub fn file_url(&self, name: &str) -> Result<Url> {
        let name = ObjectName::new(name)?;
        Ok(self.store.object_url(&self.container, &name))
    }
}

/// How [`open_store`] configures a backend.
#[derive(Clone, Default)]
pub struct StoreOptions {
    /// For a `file://` store served over HTTP: the URL objects are published under, e.g.
    /// `http://127.0.0.1:8000/store/`; object URLs are `<public_url><container>/<name>`.
    pub public_url: Option<Url>,
    /// For an `http://` store: the bearer token sent on every request.
    pub token: Option<String>,
}

impl fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOptions")
            .field("public_url", &self.public_url.as_ref().map(Url::as_str))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Opens the store a URL names; the one place where a backend is chosen.
///
/// `memory://` gives a fresh in-memory store; `file:///abs/path` a file-system store rooted
/// there (created if absent); `http://host:port/` the REST server's store API.
///
/// # Errors
/// `InvalidInput` for a malformed URL or an unknown scheme; `Unsupported` for `swift+https://`,
/// `s3://` and `https://` (not implemented in this build); what the backend reports when
/// opening (e.g. an unwritable root).
pub fn open_store(url: &str, options: &StoreOptions) -> Result<Arc<dyn ObjectStore>> {
    let parsed = Url::parse(url).map_err(|e| {
        Error::invalid(format!(
            "invalid store URL {url:?} (expected memory://, file:///abs/path or http://host:port/)"
        ))
        .with_source(e)
    })?;
    match parsed.scheme() {
        "memory" => Ok(Arc::new(memory::MemoryStore::new())),
        "file" => {
            let root = match parsed.host_str() {
                None | Some("") | Some("localhost") => parsed.to_file_path().ok(),
                Some(_) => None,
            }
            .ok_or_else(|| {
                Error::invalid(format!(
                    "invalid store URL {url:?}: a file store needs a local absolute path (file:///abs/path)"
                ))
            })?;
            let mut fsync = false;
            for (key, value) in parsed.query_pairs() {
                match (key.as_ref(), value.as_ref()) {
                    ("fsync", "true" | "1" | "yes") => fsync = true,
                    ("fsync", "false" | "0" | "no") => fsync = false,
                    (key, value) => {
                        return Err(Error::invalid(format!(
                            "invalid store URL {url:?}: unknown option {key}={value} (known: fsync=true|false)"
                        )))
                    }
                }
            }
            Ok(Arc::new(
                fs::FsStore::new(root, options.public_url.clone())?.with_fsync(fsync),
            ))
        }
        "http" => Ok(Arc::new(http::HttpStore::new(
            parsed,
            options.token.clone(),
        )?)),
        "https" => Err(Error::unsupported(format!(
            "store URL {url:?}: https is not supported by this build (no TLS); use http:// behind a TLS proxy"
        ))),
        "swift" | "swift+https" | "swift+http" | "s3" => Err(Error::unsupported(format!(
            "store URL {url:?}: the {} backend is not implemented yet",
            parsed.scheme()
        ))),
        other => Err(Error::invalid(format!(
            "invalid store URL {url:?}: unknown scheme {other:?} (expected memory, file or http)"
        ))),
    }
}

/// Percent-encodes an object name as one URL path segment.
pub(crate) fn encode_name(name: &ObjectName) -> String {
    utf8_percent_encode(name.as_str(), NAME_ENCODE_SET).to_string()
}

/// Normalizes a URL objects are published under: no query or fragment, path ending in `/`.
pub(crate) fn url_prefix(url: &Url) -> Result<Url> {
    if url.cannot_be_a_base() {
        return Err(Error::invalid(format!(
            "{url} cannot be the base of object URLs"
        )));
    }
    let mut prefix = url.clone();
    prefix.set_query(None);
    prefix.set_fragment(None);
    if !prefix.path().ends_with('/') {
        let path = format!("{}/", prefix.path());
        prefix.set_path(&path);
    }
    Ok(prefix)
}

/// The URL of an object under a prefix made by [`url_prefix`]: `<prefix><container>/<name>`.
pub(crate) fn url_under(prefix: &Url, c: &ContainerName, name: &ObjectName) -> Url {
    let mut url = prefix.clone();
    let path = format!("{}{}/{}", prefix.path(), c, encode_name(name));
    url.set_path(&path);
    url
}

/// The inverse of [`url_under`]; `None` when `url` is not of the form
/// `<prefix><container>/<name>` (with no query).
pub(crate) fn resolve_under(
    prefix: &Url,
    url: &Url,
) -> Option<Result<(ContainerName, ObjectName)>> {
    if url[..Position::BeforePath] != prefix[..Position::BeforePath] || url.query().is_some() {
        return None;
    }
    let rest = url.path().strip_prefix(prefix.path())?;
    let (container, name) = rest.split_once('/')?;
    let decode = |s: &str| -> Result<String> {
        match percent_decode_str(s).decode_utf8() {
            Ok(decoded) => Ok(decoded.into_owned()),
            Err(e) => Err(
                Error::invalid(format!("URL {url} names an object that is not UTF-8"))
                    .with_source(e),
            ),
        }
    };
    Some((|| {
        let container = ContainerName::new(decode(container)?)?;
        let name = ObjectName::new(decode(name)?)?;
        Ok((container, name))
    })())
}

/// The error of `resolve_url` for a URL that is not one of the store's.
pub(crate) fn foreign_url(url: &Url, expected: &Url) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("URL {url} does not name an object of this store (expected {expected}<container>/<name>)"),
    )
}

/// The error for an absent container.
pub(crate) fn no_container(c: &ContainerName) -> Error {
    Error::not_found(format!("container {c} does not exist")).with_resource(c.to_string())
}

/// The error for an absent object.
pub(crate) fn no_object(c: &ContainerName, name: &ObjectName) -> Error {
    Error::not_found(format!("object {name:?} does not exist in container {c}"))
        .with_resource(format!("{c}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names() {
        for good in ["ticket.1.sources", "a", "A-b_c.9", &"x".repeat(200)] {
            assert_eq!(ContainerName::new(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            ".a",
            "-a",
            "a..b",
            "a/b",
            "a b",
            "ä",
            "a:b",
            &"x".repeat(201),
        ] {
            let err = ContainerName::new(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        }
        assert_eq!(
            ContainerName::from_parts("ticket.1", "sources")
                .unwrap()
                .as_str(),
            "ticket.1.sources"
        );
        assert!(ContainerName::from_parts("ticket.1", "").is_err());
        assert!(ContainerName::from_parts("", "sources").is_err());
        let parsed: ContainerName = "ticket.2.sources".parse().unwrap();
        assert_eq!(parsed.to_string(), "ticket.2.sources");
        let json = serde_json::to_string(&parsed).unwrap();
        assert_eq!(json, "\"ticket.2.sources\"");
        assert!(serde_json::from_str::<ContainerName>("\"../x\"").is_err());
    }

    #[test]
    fn object_names() {
        for good in [
            "hello_2.10-3.dsc",
            "autopilot_1.5~dev.1_source.changes",
            "a b+c:d",
            "ünïcødé.txt",
            ".hidden",
            &"x".repeat(255),
        ] {
            validate_object_name(good).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "/x",
            "a/b",
            "a..b",
            "a\0b",
            "a\nb",
            "a\u{7f}",
            &"x".repeat(256),
        ] {
            let err = validate_object_name(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
            assert!(err.to_string().contains("invalid object name"), "{err}");
        }
        // The message escapes what it quotes.
        let err = validate_object_name("a\0b").unwrap_err();
        assert!(err.to_string().contains("\"a\\0b\""), "{err}");
    }

    /// Every character Debian policy allows in a source or binary package's file names
    /// (package names: a-z 0-9 + - .; versions: A-Z a-z 0-9 . + ~ - and the epoch's colon,
    /// which file names leave out; `_` between the parts) goes through the one pair that
    /// makes URLs of names and names of URLs, and comes back as it was.
    #[test]
    fn every_character_of_debian_file_names_round_trips_through_urls() {
        let prefix = url_prefix(&Url::parse("http://127.0.0.1:8000/store/").unwrap()).unwrap();
        let c = ContainerName::new("ticket.1.sources").unwrap();
        let allowed: String = ('a'..='z')
            .chain('A'..='Z')
            .chain('0'..='9')
            .chain(['.', '+', '~', '-', '_', ':'])
            .collect();
        for name in [
            format!("pkg_{allowed}.dsc"),
            "hello_2.10-3+ci1.dsc".to_owned(),
            "node-fetch_3.3.0+~cs11.4.11.orig-data-uri-to-buffer.tar.gz".to_owned(),
            "llvm-defaults_0.55.7~deb12u1.tar.xz".to_owned(),
            "libdisorder_0.0.2+git20130809.8062ee1-4_source.changes".to_owned(),
            "fenics_0.5.0.1_all.deb".to_owned(),
        ] {
            let object = ObjectName::new(name.clone()).unwrap();
            let url = url_under(&prefix, &c, &object);
            // The URL parses back to itself, and to the name.
            let reparsed = Url::parse(url.as_str()).unwrap();
            assert_eq!(reparsed, url, "{name}");
            let (c2, n2) = resolve_under(&prefix, &reparsed).unwrap().unwrap();
            assert_eq!((c2.as_str(), n2.as_str()), (c.as_str(), name.as_str()));
            // `+` is encoded (a form decoder would read it as a space), `~` is not.
            let segment = url.path().rsplit('/').next().unwrap().to_owned();
            assert!(!segment.contains('+'), "{segment}");
            assert_eq!(segment.contains('~'), name.contains('~'), "{segment}");
        }
    }

    #[test]
    fn urls_round_trip_under_a_prefix() {
        let prefix = url_prefix(&Url::parse("http://127.0.0.1:8000/store").unwrap()).unwrap();
        assert_eq!(prefix.as_str(), "http://127.0.0.1:8000/store/");
        let c = ContainerName::new("ticket.1.sources").unwrap();
        for name in ["autopilot_1.5~dev.1_source.changes", "a b+c:d%e", "ü?#&x"] {
            let name = ObjectName::new(name).unwrap();
            let url = url_under(&prefix, &c, &name);
            assert!(url
                .as_str()
                .starts_with("http://127.0.0.1:8000/store/ticket.1.sources/"));
            let (c2, n2) = resolve_under(&prefix, &url).unwrap().unwrap();
            assert_eq!((c2, n2), (c.clone(), name));
        }
        let url = url_under(
            &prefix,
            &c,
            &ObjectName::new("autopilot_1.5~dev.1_source.changes").unwrap(),
        );
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8000/store/ticket.1.sources/autopilot_1.5~dev.1_source.changes"
        );
        let url = url_under(&prefix, &c, &ObjectName::new("a b+c").unwrap());
        assert!(url.as_str().ends_with("/a%20b%2Bc"), "{url}");
        for foreign in [
            "http://127.0.0.1:8001/store/c/n",
            "http://127.0.0.1:8000/other/c/n",
            "http://127.0.0.1:8000/store/c",
            "http://127.0.0.1:8000/store/c/n?x=1",
            // The URL parser itself turns an encoded `..` segment into a step up.
            "http://127.0.0.1:8000/store/c/%2E%2E",
        ] {
            assert!(
                resolve_under(&prefix, &Url::parse(foreign).unwrap()).is_none(),
                "{foreign}"
            );
        }
        for hostile in [
            "http://127.0.0.1:8000/store/c/a%2Fb",
            "http://127.0.0.1:8000/store/c/n/m",
            "http://127.0.0.1:8000/store/c/a%2E%2E",
            "http://127.0.0.1:8000/store/c/%FF",
            "http://127.0.0.1:8000/store/.c/n",
        ] {
            let err = resolve_under(&prefix, &Url::parse(hostile).unwrap())
                .unwrap()
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{hostile}");
        }
    }

    #[test]
    fn open_store_chooses_backends() {
        let options = StoreOptions::default();
        let memory = open_store("memory://", &options).unwrap();
        assert!(format!("{memory:?}").contains("MemoryStore"));
        for (url, kind) in [
            (
                "swift+https://swift.example.com/v1/AUTH_x",
                ErrorKind::Unsupported,
            ),
            ("s3://bucket/prefix", ErrorKind::Unsupported),
            ("https://example.com/", ErrorKind::Unsupported),
            ("ftp://example.com/", ErrorKind::InvalidInput),
            ("/relative/path", ErrorKind::InvalidInput),
            ("file://remote-host/x", ErrorKind::InvalidInput),
        ] {
            let err = open_store(url, &options).unwrap_err();
            assert_eq!(err.kind(), kind, "{url}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(dir.path()).unwrap();
        let fs = open_store(url.as_str(), &options).unwrap();
        assert!(format!("{fs:?}").contains("FsStore"));
        let http = open_store(
            "http://127.0.0.1:8000/",
            &StoreOptions {
                public_url: None,
                token: Some("secret".into()),
            },
        )
        .unwrap();
        assert!(!format!("{http:?}").contains("secret"));
    }

    #[test]
    fn options_hide_the_token() {
        let options = StoreOptions {
            public_url: None,
            token: Some("secret".into()),
        };
        assert!(!format!("{options:?}").contains("secret"));
    }
}
