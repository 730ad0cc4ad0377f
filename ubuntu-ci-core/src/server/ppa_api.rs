//! The PPA pool and archives over HTTP.
//!
//! - `GET /api/v1/ppa/`: every PPA of the pool with its state, ticket, archive URL and the
//!   apt sources line to use it.
//! - `POST /api/v1/ppa/assign/`, `/renew/`, `/release/` with `{"ticket": N}` (token).
//! - `GET /api/v1/ppa/<owner>/<name>/packages/?series=S`: what an archive holds.
//! - `POST /api/v1/ppa/<owner>/<name>/publish/`, `/remove/`, `/copy/` (token).
//! - `GET /ppa/<owner>/<name>/…`: the archives themselves, for apt, without a token; the
//!   signing key at `/ppa/<owner>/<name>/key.asc`.

use std::path::{Component, Path as FsPath};

use axum::body::Body as HttpBody;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody, JsonBody};
use super::{Authorised, ServerState};
use crate::archive::http::{
    publish_upload, CopyRequest, PackageList, PackageRequest, PublishRequest,
};
use crate::archive::{Archives, PublishReport};
use crate::error::{Error, Result};
use crate::model::{Page, PageMeta};
use crate::ppa::{Ppa, PpaName};

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The routes of the PPA pool and the archives' API, each with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<ServerState> {
    OpenApiRouter::new()
        .routes(routes!(list_ppas))
        .routes(routes!(assign))
        .routes(routes!(renew))
        .routes(routes!(release))
        .routes(routes!(packages))
        .routes(routes!(publish))
        .routes(routes!(remove))
        .routes(routes!(copy))
}

/// The archives' files, for apt (no body limit: it answers GETs only).
pub fn archive_routes() -> OpenApiRouter<ServerState> {
    OpenApiRouter::new().routes(routes!(archive_file))
}

/// A PPA as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PpaView {
    /// `ppa:<owner>/<name>`.
    #[schema(value_type = String)]
    pub name: PpaName,
    /// free, reserved, dirty or cleaning.
    #[schema(value_type = String)]
    pub state: crate::ppa::PpaState,
    /// The ticket holding it.
    pub ticket: Option<i64>,
    /// When its lease lapses.
    pub lease_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When its state last changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Where apt finds it.
    pub archive_url: String,
    /// Its signing key.
    pub key_url: String,
    /// The line for `/etc/apt/sources.list.d/`, with the key saved at the path it names.
    pub sources_line: String,
}

impl PpaView {
    fn new(state: &ServerState, ppa: Ppa) -> PpaView {
        let (archive_url, key_url) = urls(state, &ppa.name);
        let series = state
            .services
            .archives
            .local()
            .map_or(crate::archive::DEFAULT_SERIES, |a| {
                a.options().default_series.as_str()
            })
            .to_owned();
        let sources_line = crate::archive::sources_line(&ppa.name, &archive_url, &series);
        PpaView {
            name: ppa.name,
            state: ppa.state,
            ticket: ppa.ticket,
            lease_expires_at: ppa.lease_expires_at,
            updated_at: ppa.updated_at,
            archive_url,
            key_url,
            sources_line,
        }
    }
}

fn urls(state: &ServerState, ppa: &PpaName) -> (String, String) {
    let base = format!("/ppa/{}/{}/", ppa.owner(), ppa.name());
    (
        state.absolute(&base),
        state.absolute(&format!("{base}key.asc")),
    )
}

/// `{"ticket": N}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketRef {
    /// The ticket's id.
    pub ticket: i64,
}

/// Every PPA of the pool with its state, ticket, archive URL and apt sources line.
#[utoipa::path(get, path = "/api/v1/ppa/", tag = "ppa",
    responses((status = 200, body = Page<PpaView>), (status = 400, body = ErrorBody)))]
pub async fn list_ppas(
    State(state): State<ServerState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Page<PpaView>>> {
    if let Some(raw) = raw.filter(|r| !r.is_empty() && r != "format=json") {
        return Err(Error::invalid(format!("unknown parameters {raw:?}")).into());
    }
    let ppas = state.services.ppas.list().await?;
    let count = ppas.len();
    let objects: Vec<PpaView> = ppas.into_iter().map(|p| PpaView::new(&state, p)).collect();
    Ok(Json(Page {
        meta: PageMeta {
            limit: u32::try_from(count).unwrap_or(u32::MAX),
            offset: 0,
            total_count: count as u64,
            next: None,
            previous: None,
        },
        objects,
    }))
}

/// The PPA of a ticket: the one it holds, else a free one (waits up to the pool's wait).
#[utoipa::path(post, path = "/api/v1/ppa/assign/", tag = "ppa", request_body = TicketRef,
    security(("bearer" = [])),
    responses((status = 200, body = PpaView), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "no such ticket"),
              (status = 503, body = ErrorBody, description = "no PPA came free in time; retry")))]
pub async fn assign(
    State(state): State<ServerState>,
    _: Authorised,
    JsonBody(body): JsonBody<TicketRef>,
) -> ApiResult<Json<PpaView>> {
    let ppa = state.services.ready_ppa(body.ticket).await?;
    Ok(Json(PpaView::new(&state, ppa)))
}

/// Extends a ticket's lease of its PPA.
#[utoipa::path(post, path = "/api/v1/ppa/renew/", tag = "ppa", request_body = TicketRef,
    security(("bearer" = [])),
    responses((status = 200, body = PpaView), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "the ticket holds no PPA")))]
pub async fn renew(
    State(state): State<ServerState>,
    _: Authorised,
    JsonBody(body): JsonBody<TicketRef>,
) -> ApiResult<Json<PpaView>> {
    let ppa = state.services.ppas.renew(body.ticket).await?;
    Ok(Json(PpaView::new(&state, ppa)))
}

/// Gives back a ticket's PPA: it is emptied and free again.
#[utoipa::path(post, path = "/api/v1/ppa/release/", tag = "ppa", request_body = TicketRef,
    security(("bearer" = [])),
    responses((status = 204, description = "released (or nothing held)"),
              (status = 401, body = ErrorBody)))]
pub async fn release(
    State(state): State<ServerState>,
    _: Authorised,
    JsonBody(body): JsonBody<TicketRef>,
) -> ApiResult<StatusCode> {
    state.services.ppas.release_ppa(body.ticket).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn ppa_name(owner: &str, name: &str) -> Result<PpaName> {
    PpaName::new(owner, name).map_err(|e| Error::not_found(e.message().to_owned()))
}

/// The packages an archive holds.
#[utoipa::path(get, path = "/api/v1/ppa/{owner}/{name}/packages/", tag = "ppa",
    params(("owner" = String, Path), ("name" = String, Path), ("series" = Option<String>, Query)),
    responses((status = 200, body = PackageList), (status = 400, body = ErrorBody)))]
pub async fn packages(
    State(state): State<ServerState>,
    Path((owner, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<PackageList>> {
    let ppa = ppa_name(&owner, &name)?;
    let mut series = None;
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "series" => series = Some(value.into_owned()),
            "format" if value == "json" => {}
            other => return Err(Error::invalid(format!("unknown parameter {other:?}")).into()),
        }
    }
    let objects = state
        .services
        .archives
        .packages(&ppa, series.as_deref())
        .await?;
    Ok(Json(PackageList {
        ppa,
        series,
        objects,
    }))
}

/// Publishes the `.changes` and `.deb` files of an upload container, all or none.
#[utoipa::path(post, path = "/api/v1/ppa/{owner}/{name}/publish/", tag = "ppa",
    params(("owner" = String, Path), ("name" = String, Path)),
    request_body = PublishRequest, security(("bearer" = [])),
    responses((status = 200, body = PublishReport), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody, description = "no token, or a refused signature"),
              (status = 409, body = ErrorBody, description = "other content under a published name")))]
pub async fn publish(
    State(state): State<ServerState>,
    _: Authorised,
    Path((owner, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<PublishRequest>,
) -> ApiResult<Json<PublishReport>> {
    let ppa = ppa_name(&owner, &name)?;
    let report = publish_upload(
        &*state.services.store,
        &*state.services.archives,
        &ppa,
        &body,
    )
    .await?;
    Ok(Json(report))
}

/// Removes a source with its binaries, or binaries of that name.
#[utoipa::path(post, path = "/api/v1/ppa/{owner}/{name}/remove/", tag = "ppa",
    params(("owner" = String, Path), ("name" = String, Path)),
    request_body = PackageRequest, security(("bearer" = [])),
    responses((status = 200, body = PublishReport), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<ServerState>,
    _: Authorised,
    Path((owner, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<PackageRequest>,
) -> ApiResult<Json<PublishReport>> {
    let ppa = ppa_name(&owner, &name)?;
    let report = state
        .services
        .archives
        .remove_package(
            &ppa,
            body.series.as_deref(),
            &body.name,
            body.version.as_deref(),
        )
        .await?;
    Ok(Json(report))
}

/// Copies a source with its binaries into the PPA named by `to`.
#[utoipa::path(post, path = "/api/v1/ppa/{owner}/{name}/copy/", tag = "ppa",
    params(("owner" = String, Path), ("name" = String, Path)),
    request_body = CopyRequest, security(("bearer" = [])),
    responses((status = 200, body = PublishReport), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn copy(
    State(state): State<ServerState>,
    _: Authorised,
    Path((owner, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<CopyRequest>,
) -> ApiResult<Json<PublishReport>> {
    let from = ppa_name(&owner, &name)?;
    let to = body.to;
    let report = state
        .services
        .archives
        .copy_package(
            &from,
            &to,
            body.series.as_deref(),
            &body.name,
            body.version.as_deref(),
        )
        .await?;
    Ok(Json(report))
}

/// Serves a file of a local archive. Hidden names (the generations behind `dists/<series>`,
/// lock and key folders) and `..` are refused; symbolic links are followed only within the
/// archive.
/// A file of a PPA's apt archive (`dists/…`, `pool/…`, `key.asc`), for apt.
#[utoipa::path(get, path = "/ppa/{owner}/{name}/{*path}", tag = "ppa",
    params(("owner" = String, Path), ("name" = String, Path),
           ("path" = String, Path, description = "the file's path in the archive")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
              (status = 404, body = ErrorBody)))]
async fn archive_file(
    State(state): State<ServerState>,
    Path((owner, name, path)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let not_found = || Error::not_found(format!("no such file in ppa:{owner}/{name}: {path}"));
    let ppa = ppa_name(&owner, &name)?;
    let archives: &Archives = state
        .services
        .archives
        .local()
        .ok_or_else(|| Error::unsupported("this server's archives are not local"))?;
    let relative = FsPath::new(&path);
    let plain = !path.is_empty()
        && path.len() <= 1024
        && relative.components().all(|c| match c {
            Component::Normal(part) => !part.to_string_lossy().starts_with('.'),
            _ => false,
        });
    if !plain {
        return Err(not_found().into());
    }
    let root = archives.path(&ppa);
    let (Ok(root), Ok(file)) = (
        tokio::fs::canonicalize(&root).await,
        tokio::fs::canonicalize(root.join(relative)).await,
    ) else {
        return Err(not_found().into());
    };
    if !file.starts_with(&root) {
        return Err(not_found().into());
    }
    let handle = tokio::fs::File::open(&file)
        .await
        .map_err(|_| not_found())?;
    let meta = handle.metadata().await.map_err(Error::from)?;
    if !meta.is_file() {
        return Err(not_found().into());
    }
    let content_type = match file.extension().and_then(|e| e.to_str()) {
        Some("gz") => "application/gzip",
        Some("xz") => "application/x-xz",
        Some("deb") => "application/vnd.debian.binary-package",
        Some("asc" | "gpg") => "application/pgp-keys",
        _ if file.file_name().is_some_and(|n| {
            matches!(
                n.to_str(),
                Some("Release" | "InRelease" | "Packages" | "Sources")
            )
        }) =>
        {
            "text/plain; charset=utf-8"
        }
        _ => "application/octet-stream",
    };
    let mut response =
        HttpBody::from_stream(tokio_util::io::ReaderStream::new(handle)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    Ok(response)
}
