//! The tickets' requests over HTTP: the ticket system handing a ticket to its lander (the
//! seed's step 3), and what the CLI's `status`, `cancel` and `retry` do through a server.
//!
//! - `POST /api/v1/ticket/<id>/request/` (token), body `{}` or any of `series`,
//!   `base_image`, `binary_packages`: the lander takes the ticket's uploads through every
//!   step; 202 with the request's status. 409 when it has a request under way.
//! - `GET /api/v1/ticket/<id>/request/`: where the request stands (step, what it waits
//!   for and its place in line, builds, image, tests, outcome); 404 when there is none.
//! - `POST /api/v1/ticket/<id>/cancel/` (token): stops the request; 202, or 409 when
//!   nothing is under way.
//! - `POST /api/v1/ticket/<id>/retry/` (token): takes a failed or cancelled request up
//!   again at its step; 202 with its status.
//!
//! A server without a lander answers 501 to the writes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::{Authorised, ServerState};
use crate::error::{Error, Result};
use crate::lander::store::RequestStatus;
pub use crate::lander::SubmitOptions;
use crate::lander::{ExecuteRequest, Lander, RequestHandle};
use crate::queue::QueueName;

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The routes, each with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<ServerState> {
    OpenApiRouter::new()
        .routes(routes!(request_status, submit))
        .routes(routes!(cancel))
        .routes(routes!(retry))
}

/// The answer to a stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CancelAnswer {
    /// The ticket.
    pub ticket: i64,
    /// Always true: the stop was asked for.
    pub cancel_requested: bool,
}

fn ticket_id(id: &str) -> Result<i64> {
    match id.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(Error::not_found(format!("no such ticket: {id:?}"))),
    }
}

fn lander(state: &ServerState) -> Result<&Lander> {
    state.lander.as_ref().ok_or_else(|| {
        Error::unsupported("this server runs no lander (it serves the API and the store only)")
    })
}

/// The request's status once it is recorded, 202.
async fn accepted(state: &ServerState, handle: RequestHandle) -> ApiResult<Response> {
    let ticket = handle.ticket_id();
    // The outcome is on the ticket and in the store; the task only logs a lander error.
    tokio::spawn(async move {
        if let Err(err) = handle.outcome().await {
            tracing::error!(ticket, error = %err, "the lander failed");
        }
    });
    let status = status_of(state, ticket).await?;
    Ok((StatusCode::ACCEPTED, Json(status)).into_response())
}

async fn status_of(state: &ServerState, ticket: i64) -> Result<RequestStatus> {
    let store = state
        .services
        .requests
        .as_ref()
        .ok_or_else(|| Error::unsupported("this server keeps no lander requests"))?;
    store.status(ticket).await?.ok_or_else(|| {
        Error::not_found(format!(
            "ticket {ticket} has no request (POST /api/v1/ticket/{ticket}/request/ starts one)"
        ))
    })
}

/// Hands the ticket to the server's lander: its uploads go through every step. The body is
/// `{}` or the request's options.
#[utoipa::path(post, path = "/api/v1/ticket/{id}/request/", tag = "request", params(("id" = i64, Path, description = "the ticket")),
    request_body(content = SubmitOptions, description = "may be empty"),
    security(("bearer" = [])),
    responses((status = 202, body = RequestStatus, description = "accepted; the request's status"),
              (status = 404, body = ErrorBody, description = "no such ticket"),
              (status = 409, body = ErrorBody, description = "a request is under way"),
              (status = 501, body = ErrorBody, description = "this server runs no lander")))]
async fn submit(
    State(state): State<ServerState>,
    _: Authorised,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = ticket_id(&id)?;
    let options: SubmitOptions = if body.iter().all(u8::is_ascii_whitespace) {
        SubmitOptions::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Error::invalid(format!("the request's options: {e}")))?
    };
    let lander = lander(&state)?;
    let ticket = state.services.tickets.get_ticket(id).await?;
    let queue = QueueName::fresh(&format!("ticket-{id}"))?;
    let request = ExecuteRequest::for_ticket_with(&ticket, &queue, options)?;
    let handle = lander.submit(request).await?;
    accepted(&state, handle).await
}

/// Where the ticket's request stands: its step and what it does there, what it waits for
/// and its place in line, its builds, image, tests and outcome.
#[utoipa::path(get, path = "/api/v1/ticket/{id}/request/", tag = "request", params(("id" = i64, Path, description = "the ticket")),
    responses((status = 200, body = RequestStatus),
              (status = 404, body = ErrorBody, description = "no such ticket, or no request")))]
async fn request_status(
    State(state): State<ServerState>,
    Path(id): Path<String>,
) -> ApiResult<Json<RequestStatus>> {
    let id = ticket_id(&id)?;
    state.services.tickets.get_ticket(id).await?;
    Ok(Json(status_of(&state, id).await?))
}

/// Stops the ticket's request under way.
#[utoipa::path(post, path = "/api/v1/ticket/{id}/cancel/", tag = "request", params(("id" = i64, Path, description = "the ticket")),
    security(("bearer" = [])),
    responses((status = 202, body = CancelAnswer),
              (status = 404, body = ErrorBody, description = "no such ticket"),
              (status = 409, body = ErrorBody, description = "nothing under way"),
              (status = 501, body = ErrorBody, description = "this server runs no lander")))]
async fn cancel(
    State(state): State<ServerState>,
    _: Authorised,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = ticket_id(&id)?;
    let lander = lander(&state)?;
    state.services.tickets.get_ticket(id).await?;
    if !lander.cancel(id).await? {
        return Err(Error::conflict(format!(
            "ticket {id} has no request under way (its lander finished, or it never started)"
        ))
        .into());
    }
    let answer = CancelAnswer {
        ticket: id,
        cancel_requested: true,
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// Takes a failed or cancelled request up again at the step it stopped at.
#[utoipa::path(post, path = "/api/v1/ticket/{id}/retry/", tag = "request", params(("id" = i64, Path, description = "the ticket")),
    security(("bearer" = [])),
    responses((status = 202, body = RequestStatus),
              (status = 404, body = ErrorBody, description = "no such ticket, or no request"),
              (status = 409, body = ErrorBody, description = "under way, or completed"),
              (status = 501, body = ErrorBody, description = "this server runs no lander")))]
async fn retry(
    State(state): State<ServerState>,
    _: Authorised,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = ticket_id(&id)?;
    let handle = lander(&state)?.retry(id, None).await?;
    accepted(&state, handle).await
}
