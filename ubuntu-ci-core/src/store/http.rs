//! The data store of a remote `ubuntu-ci serve`, reached over its REST store API.
//!
//! [`HttpStore`] is a client; the server implements the protocol below over its own store
//! (usually an [`FsStore`](super::fs::FsStore) whose `public_url` is `{base}store/`, so both
//! sides name objects by the same URLs). The conformance suite
//! ([`conformance::run_all`](super::conformance::run_all)) run against an `HttpStore`
//! pointed at a test server checks the two sides together.
//!
//! # The store protocol
//!
//! `{base}` is the server root, ending in `/` (e.g. `http://127.0.0.1:8000/`).
//!
//! **Names in paths.** `{container}` is a [`ContainerName`] as is. `{name}` is one path
//! segment: the object name in UTF-8 with every byte except `A-Z a-z 0-9 - . _ ~`
//! percent-encoded (`a b+c` → `a%20b%2Bc`). The server percent-decodes the segment, then
//! validates both names ([`ContainerName::new`], [`ObjectName::new`]) and answers
//! `400 invalid_input` for a bad one; a decoded `/` is a bad name, never a path separator.
//!
//! **Authentication.** When the client has a token, every request carries
//! `Authorization: Bearer <token>`. A server that requires one answers `401 unauthorized`
//! when it is missing or wrong (which reads it lets through anonymously, e.g. objects of
//! public containers, is the server's policy).
//!
//! **Errors.** Any status outside 2xx carries (except for `HEAD`) a JSON body
//! `{"error": "<message for people>", "kind": "<ErrorKind wire name>"}`, e.g.
//! `{"error": "container ticket.1.sources does not exist", "kind": "not_found"}`, with the
//! status of the kind: `invalid_input` 400, `unauthorized` 401, `not_found` 404, `conflict`
//! 409, `too_large` 413, `internal` 500, `unsupported` 501, `unavailable` 503. The client
//! takes the kind from `kind` ([`ErrorKind::from_wire`]); without a JSON body (HEAD, a
//! proxy's error page) it maps the status: 400/422 → invalid_input, 401/403 → unauthorized,
//! 404 → not_found, 409 → conflict, 413 → too_large, 501 → unsupported,
//! 429/502/503/504 → unavailable, anything else → internal. A request that cannot reach the
//! server (refused, reset, timed out) is `unavailable`.
//!
//! **JSON shapes.** `ContainerInfo` is `{"name": "ticket.1.sources", "public": true,
//! "object_count": 3, "bytes": 12345}`; `ObjectInfo` is `{"container": "ticket.1.sources",
//! "name": "hello_2.10-3.dsc", "size": 1234, "sha256": "<64 hex>", "last_modified":
//! "2024-05-01T12:00:00.123456789Z", "url": "<the object's canonical URL>"}` (RFC 3339
//! times). The `url` is what [`ObjectStore::object_url`] gives on the server, normally
//! `{base}store/{container}/{name}`.
//!
//! | request | success | semantics |
//! |---|---|---|
//! | `GET {base}store/` (optional `?prefix=<p>`) | `200`, `[ContainerInfo…]` sorted by name | [`list_containers`](ObjectStore::list_containers) |
//! | `PUT {base}store/{container}/` body `{"public": bool}` | `201` when created, `200` when it existed; `ContainerInfo` | [`ensure_container`](ObjectStore::ensure_container) (an existing container keeps its visibility) |
//! | `GET {base}store/{container}/` | `200`, `{"container": ContainerInfo, "objects": [ObjectInfo…]}` (objects sorted by name) | [`container_info`](ObjectStore::container_info) and [`list`](ObjectStore::list); `404` when absent |
//! | `POST {base}store/{container}/` body `{"public": bool}` | `200` with the new `ContainerInfo` (or `204`) | [`set_public`](ObjectStore::set_public); `404` when absent |
//! | `DELETE {base}store/{container}/?recursive=true\|false` (absent means false) | `204` | [`delete_container`](ObjectStore::delete_container); `409` when not empty and not recursive, `404` when absent |
//! | `PUT {base}store/{container}/{name}` body: the content, streamed (`Content-Length` or chunked) | `201`, `ObjectInfo` | [`put`](ObjectStore::put); `404` when the container is absent; the server streams the body into its store (atomic, constant memory) |
//! | `GET {base}store/{container}/{name}` | `200`, the content, with the headers below | [`get`](ObjectStore::get); `404` when absent |
//! | `HEAD {base}store/{container}/{name}` | `200`, the same headers, no body | [`head`](ObjectStore::head) |
//! | `DELETE {base}store/{container}/{name}` | `204` | [`delete_object`](ObjectStore::delete_object); `404` when absent |
//!
//! Headers of `GET`/`HEAD` on an object: `Content-Length: <size>`; `ETag: "<sha256>"` and
//! `X-Object-Sha256: <sha256>` when the digest is known (`HEAD` computes it, `GET` only
//! reports it: a download starts at once);
//! `Last-Modified: <IMF-fixdate, e.g. Tue, 15 Nov 1994 08:12:31 GMT>`, `Content-Type`
//! (`text/plain; charset=utf-8` for `.changes`, `.dsc`, `.log`, `.buildinfo`, `.txt` and
//! `summary`, `application/json` and `application/xml` by extension, else
//! `application/octet-stream`); optionally `X-Object-Url: <canonical URL>`,
//! which the client then reports as the object's `url` (otherwise it uses its own
//! [`object_url`](ObjectStore::object_url)).

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use reqwest::header::{
    HeaderMap, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, ETAG, LAST_MODIFIED,
};
use reqwest::{Method, RequestBuilder, Response};
use serde::{Deserialize, Serialize};
use tokio_util::io::{ReaderStream, StreamReader};
use url::Url;

use super::{
    encode_name, foreign_url, resolve_under, url_prefix, url_under, Body, ContainerInfo,
    ContainerName, ObjectInfo, ObjectName, ObjectReader, ObjectStore, READ_BUFFER_SIZE,
};
use crate::error::{Error, Result};
pub use crate::wire::WireError;
use crate::wire::{error_from_response, transport_error};

/// The header carrying an object's SHA-256 (lower-case hex).
pub const SHA256_HEADER: &str = "x-object-sha256";
/// The optional header carrying an object's canonical URL.
pub const URL_HEADER: &str = "x-object-url";

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The JSON body of `PUT` and `POST {base}store/{container}/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Visibility {
    /// Whether the container's objects are readable without credentials.
    pub public: bool,
}

/// The JSON answer of `GET {base}store/{container}/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContainerListing {
    /// The container itself.
    pub container: ContainerInfo,
    /// Its objects, sorted by name.
    pub objects: Vec<ObjectInfo>,
}

/// A client of the REST server's store API.
#[derive(Clone)]
pub struct HttpStore {
    base: Url,
    prefix: Url,
    token: Option<String>,
    client: reqwest::Client,
}

impl fmt::Debug for HttpStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpStore")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl HttpStore {
    /// A client of the server at `base` (its root, e.g. `http://127.0.0.1:8000/`), sending
    /// `token` as a bearer token when given.
    ///
    /// # Errors
    /// `InvalidInput` when `base` is not an `http` URL that can be a base; `Internal` when the
    /// HTTP client cannot be built.
    pub fn new(base: Url, token: Option<String>) -> Result<HttpStore> {
        let base = url_prefix(&crate::wire::base_url(base.as_str())?)?;
        let prefix = base
            .join("store/")
            .map_err(|e| Error::invalid(format!("bad store server URL {base}")).with_source(e))?;
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            // Per read, not per request: a long upload or download is fine, a silent
            // server is not.
            .read_timeout(std::time::Duration::from_secs(300))
            .build()
            .map_err(|e| Error::internal("cannot build the HTTP client").with_source(e))?;
        Ok(HttpStore {
            base,
            prefix,
            token,
            client,
        })
    }

    /// The server root this client talks to.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn container_url(&self, c: &ContainerName) -> Url {
        let mut url = self.prefix.clone();
        let path = format!("{}{}/", self.prefix.path(), c);
        url.set_path(&path);
        url
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let request = self.client.request(method, url);
        match &self.token {
            Some(token) => request.header(AUTHORIZATION, format!("Bearer {token}")),
            None => request,
        }
    }

    /// Sends a request; any answer outside 2xx becomes the error it describes.
    async fn send(
        &self,
        request: RequestBuilder,
        resource: impl Fn() -> String,
    ) -> Result<Response> {
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(e, &self.base).with_resource(resource()))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(error_from_response(response)
                .await
                .with_resource(resource()))
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(response: Response) -> Result<T> {
        let url = response.url().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(e, &url))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::internal("the store server answered malformed JSON").with_source(e))
    }

    fn object_info_from_headers(
        &self,
        c: &ContainerName,
        name: &ObjectName,
        headers: &HeaderMap,
    ) -> Result<ObjectInfo> {
        let text = |header: &str| -> Result<&str> {
            headers
                .get(header)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    Error::internal(format!(
                        "the store server's answer lacks a valid {header} header"
                    ))
                })
        };
        let size = text(CONTENT_LENGTH.as_str())?.parse::<u64>().map_err(|e| {
            Error::internal("the store server sent a bad Content-Length").with_source(e)
        })?;
        // The digest is optional (a fresh object has none until its first HEAD); an ETag
        // that is not a SHA-256 says nothing about it.
        let sha256 = match text(SHA256_HEADER) {
            Ok(sha256) if is_sha256(sha256) => Some(sha256.to_ascii_lowercase()),
            Ok(sha256) => {
                return Err(Error::internal(format!(
                    "the store server sent a bad SHA-256 {sha256:?}"
                )))
            }
            Err(_) => text(ETAG.as_str())
                .ok()
                .map(|etag| etag.trim_matches('"'))
                .filter(|etag| is_sha256(etag))
                .map(str::to_ascii_lowercase),
        };
        let last_modified = DateTime::parse_from_rfc2822(text(LAST_MODIFIED.as_str())?)
            .map_err(|e| {
                Error::internal("the store server sent a bad Last-Modified").with_source(e)
            })?
            .with_timezone(&Utc);
        let url = match text(URL_HEADER) {
            Ok(url) => url.to_string(),
            Err(_) => self.object_url(c, name).to_string(),
        };
        Ok(ObjectInfo {
            container: c.to_string(),
            name: name.to_string(),
            size,
            sha256,
            last_modified,
            url,
        })
    }

    async fn get_listing(&self, c: &ContainerName) -> Result<ContainerListing> {
        let response = self
            .send(self.request(Method::GET, self.container_url(c)), || {
                c.to_string()
            })
            .await?;
        Self::json(response).await
    }
}

/// The error of a request that got no answer.
#[async_trait]
impl ObjectStore for HttpStore {
    async fn ensure_container(&self, c: &ContainerName, public: bool) -> Result<ContainerInfo> {
        let request = self
            .request(Method::PUT, self.container_url(c))
            .json(&Visibility { public });
        let response = self.send(request, || c.to_string()).await;
        Self::json(response?)
            .await
            .map_err(|e| e.with_operation("ensure_container"))
    }

    async fn container_info(&self, c: &ContainerName) -> Result<ContainerInfo> {
        self.get_listing(c)
            .await
            .map(|listing| listing.container)
            .map_err(|e| e.with_operation("container_info"))
    }

    async fn list_containers(&self, prefix: Option<&str>) -> Result<Vec<ContainerInfo>> {
        let mut url = self.prefix.clone();
        if let Some(prefix) = prefix {
            url.query_pairs_mut().append_pair("prefix", prefix);
        }
        let response = self
            .send(self.request(Method::GET, url), || "store".into())
            .await;
        let mut infos: Vec<ContainerInfo> =
            Self::json(response.map_err(|e| e.with_operation("list_containers"))?).await?;
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(infos)
    }

    async fn put(&self, c: &ContainerName, name: &ObjectName, body: Body) -> Result<ObjectInfo> {
        let resource = || format!("{c}/{name}");
        let expected_size = match &body {
            Body::Bytes(bytes) => Some(bytes.len() as u64),
            Body::Reader(_) | Body::File(_) => None,
        };
        // A body that fails midway aborts the request; its own error, not the transport's
        // "unavailable", is the put's error (it is the caller's input that broke).
        let body_error: Arc<Mutex<Option<io::Error>>> = Arc::default();
        let body = match body {
            Body::Bytes(bytes) => reqwest::Body::from(bytes),
            body => {
                let seen = body_error.clone();
                let stream = ReaderStream::with_capacity(body.into_reader(), READ_BUFFER_SIZE)
                    .map_err(move |err| {
                        let copy = io::Error::new(err.kind(), err.to_string());
                        if let Ok(mut seen) = seen.lock() {
                            seen.get_or_insert(err);
                        }
                        copy
                    });
                reqwest::Body::wrap_stream(stream)
            }
        };
        let request = self
            .request(Method::PUT, self.object_url(c, name))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body);
        let sent = self.send(request, resource).await;
        if let Some(err) = body_error.lock().ok().and_then(|mut seen| seen.take()) {
            return Err(Error::from(err)
                .with_operation("put")
                .with_resource(resource()));
        }
        let response = sent.map_err(|e| e.with_operation("put"))?;
        let info: ObjectInfo = Self::json(response)
            .await
            .map_err(|e| e.with_operation("put").with_resource(resource()))?;
        if expected_size.is_some_and(|size| size != info.size) || info.name != name.as_str() {
            return Err(Error::internal(format!(
                "the store server stored {} bytes as {:?}, not what was sent",
                info.size, info.name
            ))
            .with_operation("put")
            .with_resource(resource()));
        }
        Ok(info)
    }

    async fn get(
        &self,
        c: &ContainerName,
        name: &ObjectName,
    ) -> Result<(ObjectInfo, ObjectReader)> {
        let resource = || format!("{c}/{name}");
        let response = self
            .send(
                self.request(Method::GET, self.object_url(c, name)),
                resource,
            )
            .await
            .map_err(|e| e.with_operation("get"))?;
        let info = self
            .object_info_from_headers(c, name, response.headers())
            .map_err(|e| e.with_operation("get").with_resource(resource()))?;
        let stream = response.bytes_stream().map_err(io::Error::other);
        let reader: ObjectReader = Box::pin(StreamReader::new(stream));
        Ok((info, reader))
    }

    async fn head(&self, c: &ContainerName, name: &ObjectName) -> Result<ObjectInfo> {
        let resource = || format!("{c}/{name}");
        let response = self
            .send(
                self.request(Method::HEAD, self.object_url(c, name)),
                resource,
            )
            .await
            .map_err(|e| e.with_operation("head"))?;
        self.object_info_from_headers(c, name, response.headers())
            .map_err(|e| e.with_operation("head").with_resource(resource()))
    }

    async fn list(&self, c: &ContainerName) -> Result<Vec<ObjectInfo>> {
        let mut objects = self
            .get_listing(c)
            .await
            .map_err(|e| e.with_operation("list"))?
            .objects;
        objects.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(objects)
    }

    async fn delete_object(&self, c: &ContainerName, name: &ObjectName) -> Result<()> {
        self.send(
            self.request(Method::DELETE, self.object_url(c, name)),
            || format!("{c}/{name}"),
        )
        .await
        .map(drop)
        .map_err(|e| e.with_operation("delete_object"))
    }

    async fn set_public(&self, c: &ContainerName, public: bool) -> Result<()> {
        let request = self
            .request(Method::POST, self.container_url(c))
            .json(&Visibility { public });
        self.send(request, || c.to_string())
            .await
            .map(drop)
            .map_err(|e| e.with_operation("set_public"))
    }

    async fn delete_container(&self, c: &ContainerName, recursive: bool) -> Result<()> {
        let mut url = self.container_url(c);
        url.query_pairs_mut()
            .append_pair("recursive", if recursive { "true" } else { "false" });
        self.send(self.request(Method::DELETE, url), || c.to_string())
            .await
            .map(drop)
            .map_err(|e| e.with_operation("delete_container"))
    }

    fn object_url(&self, c: &ContainerName, name: &ObjectName) -> Url {
        url_under(&self.prefix, c, name)
    }

    fn resolve_url(&self, url: &Url) -> Result<(ContainerName, ObjectName)> {
        resolve_under(&self.prefix, url).unwrap_or_else(|| Err(foreign_url(url, &self.prefix)))
    }
}

/// The path of an object below `{base}`, as the protocol spells it: `store/{container}/{name}`.
pub fn object_path(c: &ContainerName, name: &ObjectName) -> String {
    format!("store/{c}/{}", encode_name(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn urls_follow_the_protocol() {
        let store = HttpStore::new(Url::parse("http://127.0.0.1:8000").unwrap(), None).unwrap();
        let c = ContainerName::new("ticket.1.sources").unwrap();
        let name = ObjectName::new("hello 2.10+3.dsc").unwrap();
        let url = store.object_url(&c, &name);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8000/store/ticket.1.sources/hello%202.10%2B3.dsc"
        );
        assert_eq!(
            url.as_str(),
            format!("http://127.0.0.1:8000/{}", object_path(&c, &name))
        );
        assert_eq!(
            store.container_url(&c).as_str(),
            "http://127.0.0.1:8000/store/ticket.1.sources/"
        );
        assert_eq!(store.resolve_url(&url).unwrap(), (c, name));
        let other = Url::parse("http://127.0.0.1:9000/store/ticket.1.sources/x").unwrap();
        assert_eq!(
            store.resolve_url(&other).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        // A server under a path prefix.
        let store = HttpStore::new(Url::parse("http://host/ci/").unwrap(), None).unwrap();
        assert_eq!(
            store
                .object_url(
                    &ContainerName::new("c").unwrap(),
                    &ObjectName::new("n").unwrap()
                )
                .as_str(),
            "http://host/ci/store/c/n"
        );
        assert!(HttpStore::new(Url::parse("ftp://host/").unwrap(), None).is_err());
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable() {
        // A port that was free a moment ago: nothing listens there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let base = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let store = HttpStore::new(base, Some("token".into())).unwrap();
        let err = store.list_containers(None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.is_retryable());
    }

    /// What the fake server received: the request head and body.
    struct Received {
        head: String,
        body: Vec<u8>,
    }

    /// Answers one request with `response` (a whole HTTP/1.1 response) and reports it.
    async fn answer_once(response: String) -> (Url, tokio::task::JoinHandle<Received>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            let head_end = loop {
                let n = socket.read(&mut buf).await.unwrap();
                data.extend_from_slice(&buf[..n]);
                if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
            };
            let head = String::from_utf8(data[..head_end].to_vec()).unwrap();
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            let mut body = data[head_end..].to_vec();
            while body.len() < length {
                let n = socket.read(&mut buf).await.unwrap();
                body.extend_from_slice(&buf[..n]);
            }
            socket.write_all(response.as_bytes()).await.unwrap();
            socket.shutdown().await.unwrap();
            Received { head, body }
        });
        (base, task)
    }

    fn names() -> (ContainerName, ObjectName) {
        (
            ContainerName::new("ticket.1.sources").unwrap(),
            ObjectName::new("hello 2.10+3.dsc").unwrap(),
        )
    }

    #[tokio::test]
    async fn head_reads_the_protocol_headers() {
        let sha = "a".repeat(64);
        let (base, server) = answer_once(format!(
            "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: \"{sha}\"\r\n\
             X-Object-Sha256: {sha}\r\nLast-Modified: Tue, 15 Nov 1994 08:12:31 GMT\r\n\r\n"
        ))
        .await;
        let store = HttpStore::new(base, Some("s3cret".into())).unwrap();
        let (c, name) = names();
        let info = store.head(&c, &name).await.unwrap();
        assert_eq!(
            (info.size, info.sha256.as_deref()),
            (1234, Some(sha.as_str()))
        );
        assert_eq!(info.last_modified.to_rfc3339(), "1994-11-15T08:12:31+00:00");
        assert_eq!(info.url, store.object_url(&c, &name).as_str());
        let received = server.await.unwrap();
        assert!(
            received
                .head
                .starts_with("HEAD /store/ticket.1.sources/hello%202.10%2B3.dsc HTTP/1.1\r\n"),
            "{}",
            received.head
        );
        assert!(received
            .head
            .to_ascii_lowercase()
            .contains("authorization: bearer s3cret\r\n"));
    }

    #[tokio::test]
    async fn put_sends_the_body_and_reads_the_info() {
        let (c, name) = names();
        let info = ObjectInfo {
            container: c.to_string(),
            name: name.to_string(),
            size: 5,
            sha256: Some("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824".into()),
            last_modified: Utc::now(),
            url: "http://ci.example.com/store/ticket.1.sources/hello%202.10%2B3.dsc".into(),
        };
        let json = serde_json::to_string(&info).unwrap();
        let (base, server) = answer_once(format!(
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        ))
        .await;
        let store = HttpStore::new(base, None).unwrap();
        let answered = store.put(&c, &name, Body::from("hello")).await.unwrap();
        assert_eq!(answered, info);
        let received = server.await.unwrap();
        assert!(received
            .head
            .starts_with("PUT /store/ticket.1.sources/hello%202.10%2B3.dsc HTTP/1.1\r\n"));
        assert!(!received.head.to_ascii_lowercase().contains("authorization"));
        assert_eq!(received.body, b"hello");
    }

    #[tokio::test]
    async fn error_bodies_carry_the_kind() {
        let json = r#"{"error":"container ticket.1.sources holds 2 entries","kind":"conflict"}"#;
        let (base, server) = answer_once(format!(
            "HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        ))
        .await;
        let store = HttpStore::new(base, None).unwrap();
        let (c, _) = names();
        let err = store.delete_container(&c, false).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(err.to_string().contains("holds 2 entries"), "{err}");
        let received = server.await.unwrap();
        assert!(received
            .head
            .starts_with("DELETE /store/ticket.1.sources/?recursive=false HTTP/1.1\r\n"));
    }

    #[tokio::test]
    async fn errors_without_a_json_body_map_the_status() {
        let page = "<html>bad gateway</html>";
        let (base, _server) = answer_once(format!(
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{page}",
            page.len()
        ))
        .await;
        let store = HttpStore::new(base, None).unwrap();
        let (c, _) = names();
        let err = store.container_info(&c).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    }
}
