//! The REST resources under `/api/v1/`: tickets, source packages, uploads, subtickets,
//! artifacts, progress, and a ticket's event stream.
//!
//! In the seed's (tastypie's) shape: `POST /api/v1/<resource>/` answers 201 with the new
//! resource's URL in `Location` and the resource as body; `GET /api/v1/<resource>/` answers
//! `{"meta": {limit, offset, total_count, next, previous}, "objects": […]}` and takes filters
//! as query parameters (`?ticket=1`); `GET /api/v1/<resource>/<id>/` answers one resource.
//! Writes need the bearer token; reads do not.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use futures::StreamExt;
use serde::Serialize;

use super::connections::ClientAddr;
use super::error::{ApiError, ErrorBody, JsonBody};
use super::{Authorised, ServerState};
use crate::error::{Error, Result};
use crate::model::{
    Artifact, ArtifactFilter, NewArtifact, NewSourcePackage, NewSourcePackageUpload, NewSubticket,
    NewTicket, NewTransition, Page, PageRequest, SourcePackage, SourcePackageFilter,
    SourcePackageUpload, SpuFilter, Subticket, SubticketFilter, Ticket, TicketDetail, TicketFilter,
    Transition, TransitionFilter, Uri,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The routes of the REST API, each with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<ServerState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(openapi_json))
        .routes(routes!(list_tickets, create_ticket))
        .routes(routes!(get_ticket))
        .routes(routes!(ticket_events))
        .routes(routes!(list_source_packages, create_source_package))
        .routes(routes!(get_source_package))
        .routes(routes!(list_spus, create_spu))
        .routes(routes!(get_spu))
        .routes(routes!(list_subtickets, create_subticket))
        .routes(routes!(get_subticket))
        .routes(routes!(list_artifacts, create_artifact))
        .routes(routes!(get_artifact))
        .routes(routes!(list_transitions, create_transition))
        .routes(routes!(get_transition))
}

/// The resources and where they are.
#[utoipa::path(get, path = "/api/v1/", tag = "ticket",
    responses((status = 200, description = "each resource's list endpoint and the schema's URL")))]
async fn index(State(state): State<ServerState>) -> Json<serde_json::Value> {
    let mut resources = serde_json::Map::new();
    for name in [
        "ticket",
        "sourcepackage",
        "spu",
        "subticket",
        "artifact",
        "progress",
        "ppa",
    ] {
        resources.insert(
            name.to_owned(),
            serde_json::json!({
                "list_endpoint": format!("/api/v1/{name}/"),
                "schema": state.absolute("/api/v1/openapi.json"),
            }),
        );
    }
    Json(serde_json::Value::Object(resources))
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "ticket",
    responses((status = 200, description = "the OpenAPI document of the API")))]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(super::openapi::document())
}

fn parse_id(resource: &str, id: &str) -> Result<i64> {
    match id.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(Error::not_found(format!("no such {resource}: {id:?}"))),
    }
}

fn created<T: Serialize>(state: &ServerState, uri: String, body: T) -> Response {
    let location = state.absolute(&uri);
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = header::HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Query parameters of a list call: paging plus the resource's filters.
struct ListQuery {
    pairs: Vec<(String, String)>,
    page: PageRequest,
}

impl ListQuery {
    /// Parses the query string, refusing parameters other than `allowed` filters, `limit`,
    /// `offset` and `format`.
    fn parse(raw: Option<String>, allowed: &[&str]) -> Result<ListQuery> {
        let mut page = PageRequest::default();
        let mut pairs = Vec::new();
        for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match name.as_ref() {
                "limit" => {
                    let limit: u32 = value
                        .parse()
                        .map_err(|_| Error::invalid(format!("limit: not a number: {value:?}")))?;
                    page = PageRequest::checked(limit, page.offset)?;
                }
                "offset" => {
                    page.offset = value
                        .parse()
                        .map_err(|_| Error::invalid(format!("offset: not a number: {value:?}")))?;
                }
                "format" if value == "json" => {}
                "format" => {
                    return Err(Error::invalid(format!(
                        "format: {value:?} is not served; the API answers JSON only (format=json)"
                    )))
                }
                name if allowed.contains(&name) => {
                    pairs.push((name.to_owned(), value.into_owned()));
                }
                name => {
                    return Err(Error::invalid(format!(
                        "unknown filter {name:?} (filters: {})",
                        allowed.join(", ")
                    )))
                }
            }
        }
        Ok(ListQuery { pairs, page })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn parse_filter<T: std::str::FromStr<Err = Error>>(&self, name: &str) -> Result<Option<T>> {
        self.get(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| Error::invalid(format!("{name}: {}", e.message())))
            })
            .transpose()
    }

    /// Fills in `next` and `previous` as absolute URLs keeping the filters.
    fn link<T>(&self, state: &ServerState, resource: &str, mut page: Page<T>) -> Page<T> {
        let link = |offset: u64| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in &self.pairs {
                query.append_pair(name, value);
            }
            query.append_pair("limit", &page.meta.limit.to_string());
            query.append_pair("offset", &offset.to_string());
            state.absolute(&format!("/api/v1/{resource}/?{}", query.finish()))
        };
        let limit = u64::from(page.meta.limit);
        let offset = page.meta.offset;
        if offset.saturating_add(limit) < page.meta.total_count {
            page.meta.next = Some(link(offset + limit));
        }
        if offset > 0 {
            page.meta.previous = Some(link(offset.saturating_sub(limit)));
        }
        page
    }
}

/// Creates a ticket.
#[utoipa::path(post, path = "/api/v1/ticket/", tag = "ticket", request_body = NewTicket,
    security(("bearer" = [])),
    responses((status = 201, body = Ticket, description = "created; Location names it"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 413, body = ErrorBody)))]
pub async fn create_ticket(
    State(state): State<ServerState>,
    _: Authorised,
    JsonBody(new): JsonBody<NewTicket>,
) -> ApiResult<Response> {
    let ticket = state.services.tickets.create_ticket(new).await?;
    Ok(created(&state, ticket.resource_uri.to_string(), ticket))
}

/// Lists tickets; filters `owner`, `state` (open, closed), `step`, `status`.
#[utoipa::path(get, path = "/api/v1/ticket/", tag = "ticket",
    params(("owner" = Option<String>, Query), ("state" = Option<String>, Query, description = "open or closed"),
           ("step" = Option<String>, Query), ("status" = Option<String>, Query),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "at most this many (default 20)"), ("offset" = Option<u64>, Query)),
    responses((status = 200, body = Page<Ticket>), (status = 400, body = ErrorBody)))]
pub async fn list_tickets(
    State(state): State<ServerState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Page<Ticket>>> {
    let q = ListQuery::parse(raw, &["owner", "state", "step", "status"])?;
    let filter = TicketFilter {
        owner: q.get("owner").map(str::to_owned),
        state: q.parse_filter("state")?,
        step: q.parse_filter("step")?,
        status: q.parse_filter("status")?,
    };
    let page = state.services.tickets.list_tickets(filter, q.page).await?;
    Ok(Json(q.link(&state, "ticket", page)))
}

/// A ticket with its subtickets, artifacts and progress history.
#[utoipa::path(get, path = "/api/v1/ticket/{id}/", tag = "ticket",
    params(("id" = i64, Path)),
    responses((status = 200, body = TicketDetail), (status = 404, body = ErrorBody)))]
pub async fn get_ticket(
    State(state): State<ServerState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TicketDetail>> {
    let id = parse_id("ticket", &id)?;
    Ok(Json(state.services.tickets.get_ticket(id).await?))
}

/// The ticket's events as Server-Sent Events: the history after `after` (or the
/// `Last-Event-ID` header), then live ones; the stream ends when the ticket closes.
#[utoipa::path(get, path = "/api/v1/ticket/{id}/events/", tag = "ticket",
    params(("id" = i64, Path), ("after" = Option<i64>, Query)),
    responses((status = 200, content_type = "text/event-stream", body = crate::model::TicketEvent,
               description = "one `data:` line of TicketEvent JSON per event"),
              (status = 404, body = ErrorBody)))]
pub async fn ticket_events(
    State(state): State<ServerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    client: Option<Extension<ClientAddr>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let id = parse_id("ticket", &id)?;
    let q = ListQuery::parse(raw, &["after"])?;
    let after = match q
        .get("after")
        .or_else(|| headers.get("last-event-id").and_then(|v| v.to_str().ok()))
    {
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| Error::invalid(format!("after: not an event id: {v:?}")))?,
        ),
        None => None,
    };
    // Bounded per client first, so that one client cannot take every stream.
    let per_client = match client {
        Some(Extension(ClientAddr(address))) => Some(
            state
                .streams_per_client
                .enter(address.ip(), state.limits.max_event_streams_per_client)
                .ok_or_else(|| {
                    Error::unavailable(format!(
                        "{} holds {} event streams, the most one client may; close one, \
                         or try again later",
                        address.ip(),
                        state.limits.max_event_streams_per_client
                    ))
                })?,
        ),
        None => None,
    };
    let permit = state
        .event_streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| Error::unavailable("too many open event streams; try again later"))?;
    let events = state.services.tickets.events(id, after).await?;
    let stream = events.take_until(state.stopping()).map(move |event| {
        // The permits live as long as the stream.
        let _open = (&permit, &per_client);
        Ok::<Event, Infallible>(match event {
            Ok(event) => Event::default()
                .id(event.id.to_string())
                .event(event.kind.as_str())
                .json_data(&event)
                .unwrap_or_else(|_| Event::default().event("error").data("unserialisable event")),
            Err(err) => Event::default().event("error").data(
                serde_json::json!({"error": err.to_string(), "kind": err.kind().as_str()})
                    .to_string(),
            ),
        })
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// Gets or creates a source package by name: 201 when created, 200 when it existed.
#[utoipa::path(post, path = "/api/v1/sourcepackage/", tag = "sourcepackage",
    request_body = NewSourcePackage, security(("bearer" = [])),
    responses((status = 201, body = SourcePackage), (status = 200, body = SourcePackage),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create_source_package(
    State(state): State<ServerState>,
    _: Authorised,
    JsonBody(new): JsonBody<NewSourcePackage>,
) -> ApiResult<Response> {
    let (package, was_created) = state
        .services
        .tickets
        .get_or_create_source_package(&new.name)
        .await?;
    if was_created {
        Ok(created(&state, package.resource_uri.to_string(), package))
    } else {
        Ok(Json(package).into_response())
    }
}

/// Lists source packages; filter `name`.
#[utoipa::path(get, path = "/api/v1/sourcepackage/", tag = "sourcepackage",
    params(("name" = Option<String>, Query), ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "at most this many (default 20)"), ("offset" = Option<u64>, Query)),
    responses((status = 200, body = Page<SourcePackage>)))]
pub async fn list_source_packages(
    State(state): State<ServerState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Page<SourcePackage>>> {
    let q = ListQuery::parse(raw, &["name"])?;
    let filter = SourcePackageFilter {
        name: q.get("name").map(str::to_owned),
    };
    let page = state
        .services
        .tickets
        .list_source_packages(filter, q.page)
        .await?;
    Ok(Json(q.link(&state, "sourcepackage", page)))
}

/// One source package.
#[utoipa::path(get, path = "/api/v1/sourcepackage/{id}/", tag = "sourcepackage",
    params(("id" = i64, Path)),
    responses((status = 200, body = SourcePackage), (status = 404, body = ErrorBody)))]
pub async fn get_source_package(
    State(state): State<ServerState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SourcePackage>> {
    let id = parse_id("sourcepackage", &id)?;
    Ok(Json(state.services.tickets.get_source_package(id).await?))
}

/// Creates a source package upload; 409 when the version exists.
#[utoipa::path(post, path = "/api/v1/spu/", tag = "spu", request_body = NewSourcePackageUpload,
    security(("bearer" = [])),
    responses((status = 201, body = SourcePackageUpload), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn create_spu(
    State(state): State<ServerState>,
    _: Authorised,
    JsonBody(new): JsonBody<NewSourcePackageUpload>,
) -> ApiResult<Response> {
    let spu = state.services.tickets.create_spu(new).await?;
    Ok(created(&state, spu.resource_uri.to_string(), spu))
}

/// Lists source package uploads; filters `sourcepackage`, `version`.
#[utoipa::path(get, path = "/api/v1/spu/", tag = "spu",
    params(("sourcepackage" = Option<String>, Query), ("version" = Option<String>, Query),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "at most this many (default 20)"), ("offset" = Option<u64>, Query)),
    responses((status = 200, body = Page<SourcePackageUpload>)))]
pub async fn list_spus(
    State(state): State<ServerState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Page<SourcePackageUpload>>> {
    let q = ListQuery::parse(raw, &["sourcepackage", "version"])?;
    let filter = SpuFilter {
        sourcepackage: q.parse_filter::<Uri<SourcePackage>>("sourcepackage")?,
        version: q.get("version").map(str::to_owned),
    };
    let page = state.services.tickets.list_spus(filter, q.page).await?;
    Ok(Json(q.link(&state, "spu", page)))
}

/// One source package upload.
#[utoipa::path(get, path = "/api/v1/spu/{id}/", tag = "spu", params(("id" = i64, Path)),
    responses((status = 200, body = SourcePackageUpload), (status = 404, body = ErrorBody)))]
pub async fn get_spu(
    State(state): State<ServerState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SourcePackageUpload>> {
    let id = parse_id("spu", &id)?;
    Ok(Json(state.services.tickets.get_spu(id).await?))
}

/// Creates a subticket.
#[utoipa::path(post, path = "/api/v1/subticket/", tag = "subticket", request_body = NewSubticket,
    security(("bearer" = [])),
    responses((status = 201, body = Subticket), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn create_subticket(
    State(state): State<ServerState>,
    _: Authorised,
    JsonBody(new): JsonBody<NewSubticket>,
) -> ApiResult<Response> {
    let subticket = state.services.tickets.create_subticket(new).await?;
    Ok(created(
        &state,
        subticket.resource_uri.to_string(),
        subticket,
    ))
}

/// Lists subtickets; filters `ticket`, `source_package_upload`.
#[utoipa::path(get, path = "/api/v1/subticket/", tag = "subticket",
    params(("ticket" = Option<String>, Query), ("source_package_upload" = Option<String>, Query),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "at most this many (default 20)"), ("offset" = Option<u64>, Query)),
    responses((status = 200, body = Page<Subticket>)))]
pub async fn list_subtickets(
    State(state): State<ServerState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Page<Subticket>>> {
    let q = ListQuery::parse(raw, &["ticket", "source_package_upload"])?;
    let filter = SubticketFilter {
        ticket: q.parse_filter("ticket")?,
        source_package_upload: q.parse_filter("source_package_upload")?,
    };
    let page = state
        .services
        .tickets
        .list_subtickets(filter, q.page)
        .await?;
    Ok(Json(q.link(&state, "subticket", page)))
}

/// One subticket.
#[utoipa::path(get, path = "/api/v1/subticket/{id}/", tag = "subticket", params(("id" = i64, Path)),
    responses((status = 200, body = Subticket), (status = 404, body = ErrorBody)))]
pub async fn get_subticket(
    State(state): State<ServerState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Subticket>> {
    let id = parse_id("subticket", &id)?;
    Ok(Json(state.services.tickets.get_subticket(id).await?))
}

/// Records an artifact.
#[utoipa::path(post, path = "/api/v1/artifact/", tag = "artifact", request_body = NewArtifact,
    security(("bearer" = [])),
    responses((status = 201, body = Artifact), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_artifact(
    State(state): State<ServerState>,
    _: Authorised,
    JsonBody(new): JsonBody<NewArtifact>,
) -> ApiResult<Response> {
    let artifact = state.services.tickets.create_artifact(new).await?;
    Ok(created(&state, artifact.resource_uri.to_string(), artifact))
}

/// Lists artifacts; filters `ticket`, `subticket`, `type`.
#[utoipa::path(get, path = "/api/v1/artifact/", tag = "artifact",
    params(("ticket" = Option<String>, Query), ("subticket" = Option<String>, Query),
           ("type" = Option<String>, Query), ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "at most this many (default 20)"), ("offset" = Option<u64>, Query)),
    responses((status = 200, body = Page<Artifact>)))]
pub async fn list_artifacts(
    State(state): State<ServerState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Page<Artifact>>> {
    let q = ListQuery::parse(raw, &["ticket", "subticket", "type"])?;
    let filter = ArtifactFilter {
        ticket: q.parse_filter("ticket")?,
        subticket: q.parse_filter("subticket")?,
        artifact_type: q.parse_filter("type")?,
    };
    let page = state
        .services
        .tickets
        .list_artifacts(filter, q.page)
        .await?;
    Ok(Json(q.link(&state, "artifact", page)))
}

/// One artifact.
#[utoipa::path(get, path = "/api/v1/artifact/{id}/", tag = "artifact", params(("id" = i64, Path)),
    responses((status = 200, body = Artifact), (status = 404, body = ErrorBody)))]
pub async fn get_artifact(
    State(state): State<ServerState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Artifact>> {
    let id = parse_id("artifact", &id)?;
    Ok(Json(state.services.tickets.get_artifact(id).await?))
}

/// The progress call: moves a ticket to a workflow step and status, kept in its history.
#[utoipa::path(post, path = "/api/v1/progress/", tag = "progress", request_body = NewTransition,
    security(("bearer" = [])),
    responses((status = 201, body = Transition), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the ticket is closed, or the step goes backwards")))]
pub async fn create_transition(
    State(state): State<ServerState>,
    _: Authorised,
    JsonBody(new): JsonBody<NewTransition>,
) -> ApiResult<Response> {
    let transition = state.services.tickets.record_transition(new).await?;
    Ok(created(
        &state,
        transition.resource_uri.to_string(),
        transition,
    ))
}

/// Lists progress transitions; filter `ticket`.
#[utoipa::path(get, path = "/api/v1/progress/", tag = "progress",
    params(("ticket" = Option<String>, Query), ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "at most this many (default 20)"), ("offset" = Option<u64>, Query)),
    responses((status = 200, body = Page<Transition>)))]
pub async fn list_transitions(
    State(state): State<ServerState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Page<Transition>>> {
    let q = ListQuery::parse(raw, &["ticket"])?;
    let filter = TransitionFilter {
        ticket: q.parse_filter("ticket")?,
    };
    let page = state
        .services
        .tickets
        .list_transitions(filter, q.page)
        .await?;
    Ok(Json(q.link(&state, "progress", page)))
}

/// One progress transition.
#[utoipa::path(get, path = "/api/v1/progress/{id}/", tag = "progress", params(("id" = i64, Path)),
    responses((status = 200, body = Transition), (status = 404, body = ErrorBody)))]
pub async fn get_transition(
    State(state): State<ServerState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Transition>> {
    let id = parse_id("progress", &id)?;
    Ok(Json(state.services.tickets.get_transition(id).await?))
}
