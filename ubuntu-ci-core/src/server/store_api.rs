//! The data store over HTTP, under `/store/`: objects at the URLs the store hands out.
//!
//! The protocol is the one [`crate::store::http::HttpStore`] speaks (its module documents
//! it). Objects of public containers are readable without a token; everything else needs
//! it. Bodies stream both ways in constant memory.

use axum::body::Body as HttpBody;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody, JsonBody};
use super::{Authorised, ServerState};
use crate::error::ErrorKind;
use crate::error::{Error, Result};
use crate::store::http::{ContainerListing, Visibility, SHA256_HEADER, URL_HEADER};
use crate::store::{Body, ContainerName, ObjectInfo, ObjectName};

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The routes of the data store, each with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<ServerState> {
    OpenApiRouter::new()
        .routes(routes!(list_containers))
        .routes(routes!(
            list_objects,
            ensure_container,
            set_visibility,
            delete_container
        ))
        .routes(routes!(get_object, head_object, put_object, delete_object))
}

fn container(name: &str) -> Result<ContainerName> {
    ContainerName::new(name)
}

fn object(name: &str) -> Result<ObjectName> {
    ObjectName::new(name)
}

/// Public containers are readable by anyone; private ones need the token.
async fn authorise_read(state: &ServerState, headers: &HeaderMap, c: &ContainerName) -> Result<()> {
    if state.is_authorised(headers) {
        return Ok(());
    }
    match state.services.store.is_public(c).await {
        Ok(true) => Ok(()),
        // A private container and one that does not exist get the same answer without a
        // token: a stranger learns nothing of what is stored.
        Ok(false) => state.authorise(headers),
        Err(err) if err.kind() == ErrorKind::NotFound => state.authorise(headers),
        Err(err) => Err(err),
    }
}

/// The containers: every one with the token, the public ones without.
#[utoipa::path(get, path = "/store/", tag = "store",
    params(("prefix" = Option<String>, Query, description = "only names starting with this")),
    responses((status = 200, body = Vec<crate::store::ContainerInfo>)))]
async fn list_containers(
    State(state): State<ServerState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let mut prefix = None;
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "prefix" => prefix = Some(value.into_owned()),
            other => return Err(Error::invalid(format!("unknown parameter {other:?}")).into()),
        }
    }
    let authorised = state.is_authorised(&headers);
    let containers = state
        .services
        .store
        .list_containers(prefix.as_deref())
        .await?
        .into_iter()
        .filter(|c| authorised || c.public)
        .collect::<Vec<_>>();
    Ok(Json(containers).into_response())
}

/// Makes a container (201), or sets an existing one's visibility (200).
#[utoipa::path(put, path = "/store/{container}/", tag = "store", params(("container" = String, Path, description = "the container (`ticket.1.sources`)")),
    request_body = Visibility, security(("bearer" = [])),
    responses((status = 201, body = crate::store::ContainerInfo, description = "made"),
              (status = 200, body = crate::store::ContainerInfo, description = "it existed")))]
async fn ensure_container(
    State(state): State<ServerState>,
    _: Authorised,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Visibility>,
) -> ApiResult<Response> {
    let c = container(&name)?;
    let existed = match state.services.store.container_info(&c).await {
        Ok(_) => true,
        Err(err) if err.kind() == ErrorKind::NotFound => false,
        Err(err) => return Err(err.into()),
    };
    let info = state
        .services
        .store
        .ensure_container(&c, body.public)
        .await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(info)).into_response())
}

/// A container with its objects (a private one needs the token).
#[utoipa::path(get, path = "/store/{container}/", tag = "store", params(("container" = String, Path, description = "the container (`ticket.1.sources`)")),
    responses((status = 200, body = ContainerListing),
              (status = 401, body = ErrorBody, description = "a private container, no token"),
              (status = 404, body = ErrorBody)))]
async fn list_objects(
    State(state): State<ServerState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let c = container(&name)?;
    authorise_read(&state, &headers, &c).await?;
    let info = state.services.store.container_info(&c).await?;
    let objects = state.services.store.list(&c).await?;
    Ok(Json(serde_json::json!({ "container": info, "objects": objects })).into_response())
}

/// Sets a container's visibility.
#[utoipa::path(post, path = "/store/{container}/", tag = "store", params(("container" = String, Path, description = "the container (`ticket.1.sources`)")),
    request_body = Visibility, security(("bearer" = [])),
    responses((status = 200, body = crate::store::ContainerInfo), (status = 404, body = ErrorBody)))]
async fn set_visibility(
    State(state): State<ServerState>,
    _: Authorised,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Visibility>,
) -> ApiResult<Response> {
    let c = container(&name)?;
    state.services.store.set_public(&c, body.public).await?;
    let info = state.services.store.container_info(&c).await?;
    Ok(Json(info).into_response())
}

/// Deletes a container: an empty one, or with `recursive=true` everything in it.
#[utoipa::path(delete, path = "/store/{container}/", tag = "store",
    params(("container" = String, Path, description = "the container (`ticket.1.sources`)"), ("recursive" = Option<bool>, Query)), security(("bearer" = [])),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "not empty")))]
async fn delete_container(
    State(state): State<ServerState>,
    _: Authorised,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let c = container(&name)?;
    let mut recursive = false;
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match (key.as_ref(), value.as_ref()) {
            ("recursive", "true" | "1") => recursive = true,
            ("recursive", "false" | "0") => recursive = false,
            (key, value) => {
                return Err(Error::invalid(format!("bad parameter {key}={value}")).into())
            }
        }
    }
    state.services.store.delete_container(&c, recursive).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Stores an object (the body, streamed), replacing one of the same name whole.
#[utoipa::path(put, path = "/store/{container}/{name}", tag = "store", params(("container" = String, Path, description = "the container (`ticket.1.sources`)"), ("name" = String, Path, description = "the object's name")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    security(("bearer" = [])),
    responses((status = 201, body = crate::store::ObjectInfo, description = "stored; Location names it"),
              (status = 404, body = ErrorBody, description = "no such container"),
              (status = 413, body = ErrorBody, description = "larger than [serve] max_object_bytes")))]
async fn put_object(
    State(state): State<ServerState>,
    _: Authorised,
    Path((c, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: HttpBody,
) -> ApiResult<Response> {
    let c = container(&c)?;
    let name = object(&name)?;
    let cap = state.limits.max_object_bytes;
    let too_large = || {
        Error::too_large(format!(
            "an object is at most {cap} bytes on this server ([serve] max_object_bytes)"
        ))
        .with_resource(format!("{c}/{name}"))
    };
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|length| length > cap)
    {
        return Err(too_large().into());
    }
    // Counted as it comes too (a body without a length, or a lying one): past the cap the
    // put fails and nothing is stored.
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = seen.clone();
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(|e| std::io::Error::other(e.to_string()))?;
        let total = counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed)
            + chunk.len() as u64;
        if total > cap {
            return Err(std::io::Error::other("the object is larger than allowed"));
        }
        Ok(chunk)
    });
    let reader = tokio_util::io::StreamReader::new(stream);
    let info = match state
        .services
        .store
        .put(&c, &name, Body::from_reader(reader))
        .await
    {
        Ok(info) => info,
        Err(_) if seen.load(std::sync::atomic::Ordering::Relaxed) > cap => {
            return Err(too_large().into())
        }
        Err(err) => return Err(err.into()),
    };
    let mut response = (StatusCode::CREATED, Json(&info)).into_response();
    if let Ok(value) = HeaderValue::from_str(&info.url) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

fn object_headers(info: &ObjectInfo, headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&info.name)),
    );
    if let Some(sha256) = &info.sha256 {
        if let Ok(v) = HeaderValue::from_str(&format!("\"{sha256}\"")) {
            headers.insert(header::ETAG, v);
        }
        if let Ok(v) = HeaderValue::from_str(sha256) {
            headers.insert(SHA256_HEADER, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&info.url) {
        headers.insert(URL_HEADER, v);
    }
    let modified = info
        .last_modified
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    if let Ok(v) = HeaderValue::from_str(&modified) {
        headers.insert(header::LAST_MODIFIED, v);
    }
}

/// Text files Debian tools write are shown as text in a browser; the rest is bytes.
fn content_type(name: &str) -> &'static str {
    let text = [".changes", ".dsc", ".log", ".buildinfo", ".txt", "summary"];
    if text.iter().any(|ext| name.ends_with(ext)) {
        "text/plain; charset=utf-8"
    } else if name.ends_with(".json") {
        "application/json"
    } else if name.ends_with(".xml") {
        "application/xml"
    } else {
        "application/octet-stream"
    }
}

/// An object's content (a private container's needs the token).
#[utoipa::path(get, path = "/store/{container}/{name}", tag = "store", params(("container" = String, Path, description = "the container (`ticket.1.sources`)"), ("name" = String, Path, description = "the object's name")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
              (status = 401, body = ErrorBody, description = "a private container, no token"),
              (status = 404, body = ErrorBody)))]
async fn get_object(
    State(state): State<ServerState>,
    Path((c, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let c = container(&c)?;
    let name = object(&name)?;
    authorise_read(&state, &headers, &c).await?;
    let (info, reader) = state.services.store.get(&c, &name).await?;
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024);
    let mut response = HttpBody::from_stream(stream).into_response();
    object_headers(&info, response.headers_mut());
    Ok(response)
}

/// HEAD computes the digest (GET only reports a known one, to start streaming at once).
/// An object's size, checksum and time, in headers.
#[utoipa::path(head, path = "/store/{container}/{name}", tag = "store", params(("container" = String, Path, description = "the container (`ticket.1.sources`)"), ("name" = String, Path, description = "the object's name")),
    responses((status = 200, description = "the object's headers"),
              (status = 401, description = "a private container, no token"),
              (status = 404, description = "no such object")))]
async fn head_object(
    State(state): State<ServerState>,
    Path((c, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let c = container(&c)?;
    let name = object(&name)?;
    authorise_read(&state, &headers, &c).await?;
    let info = state.services.store.head(&c, &name).await?;
    let mut response = StatusCode::OK.into_response();
    object_headers(&info, response.headers_mut());
    Ok(response)
}

/// Deletes an object.
#[utoipa::path(delete, path = "/store/{container}/{name}", tag = "store", params(("container" = String, Path, description = "the container (`ticket.1.sources`)"), ("name" = String, Path, description = "the object's name")),
    security(("bearer" = [])),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
async fn delete_object(
    State(state): State<ServerState>,
    _: Authorised,
    Path((c, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let c = container(&c)?;
    let name = object(&name)?;
    state.services.store.delete_object(&c, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
