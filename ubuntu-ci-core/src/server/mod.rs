//! `ubuntu-ci serve`: the REST API of the ticket system and the data store's objects.
//!
//! [`router`] builds the axum application over [`Services`]; [`serve`] runs it on a
//! listener until a shutdown signal. Handlers stay thin: they parse, authorise and call the
//! ticket system or the store; every rule lives behind those traits. The API is described in
//! `docs/rest-api.md` and, generated from this code, at `/api/v1/openapi.json`.

pub mod api;
pub mod connections;
pub mod error;
pub mod lander_api;
pub mod openapi;
pub mod ppa_api;
pub mod store_api;

use std::path::Path;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::Router;
use url::Url;

use crate::config::{ServeLimits, Services};
use crate::error::{Error, Result};

/// Largest JSON body the API accepts.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct ServerState {
    /// The backends.
    pub services: Services,
    /// The token that authorises writes.
    token: Arc<str>,
    /// The URL clients reach this server at (`http://127.0.0.1:8000/`).
    pub public_url: Url,
    /// Set when the server shuts down, so that endless responses (event streams) end and
    /// graceful shutdown does not wait for their clients.
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// Open event streams; each holds a permit (they cost a task and polling).
    pub(crate) event_streams: Arc<tokio::sync::Semaphore>,
    /// Open event streams per client address.
    pub(crate) streams_per_client: Arc<connections::PerClient>,
    /// What one client, or all, may hold.
    pub limits: ServeLimits,
    /// The lander that runs the tickets' requests (none: this server runs none).
    pub lander: Option<crate::lander::Lander>,
}

impl ServerState {
    /// State for a server reachable at `public_url`, accepting `token` for writes.
    pub fn new(services: Services, token: String, public_url: Url) -> ServerState {
        ServerState {
            services,
            token: token.into(),
            public_url,
            stopping: Arc::new(tokio::sync::watch::channel(false).0),
            event_streams: Arc::new(tokio::sync::Semaphore::new(
                ServeLimits::default().max_event_streams,
            )),
            streams_per_client: Arc::default(),
            limits: ServeLimits::default(),
            lander: None,
        }
    }

    /// Serves under `limits` (connections, time limits, event streams in all and per
    /// client).
    #[must_use]
    pub fn with_limits(mut self, limits: ServeLimits) -> ServerState {
        self.event_streams = Arc::new(tokio::sync::Semaphore::new(limits.max_event_streams));
        self.limits = limits;
        self
    }

    /// Runs the tickets' requests with `lander`.
    #[must_use]
    pub fn with_lander(mut self, lander: crate::lander::Lander) -> ServerState {
        self.lander = Some(lander);
        self
    }

    /// Allows at most `limit` event streams open at once (default: that of [`ServeLimits`]).
    #[must_use]
    pub fn with_event_stream_limit(self, limit: usize) -> ServerState {
        let limits = ServeLimits {
            max_event_streams: limit,
            ..self.limits
        };
        self.with_limits(limits)
    }

    /// Resolves when the server starts shutting down.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stopping = self.stopping.subscribe();
        async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        }
    }

    /// Whether the request carries the right bearer token.
    pub fn is_authorised(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            return false;
        };
        let Ok(value) = value.to_str() else {
            return false;
        };
        let Some(given) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        else {
            return false;
        };
        constant_time_eq(given.trim().as_bytes(), self.token.as_bytes())
    }

    /// Fails with `Unauthorized` unless the request carries the right bearer token.
    pub fn authorise(&self, headers: &HeaderMap) -> Result<()> {
        if self.is_authorised(headers) {
            Ok(())
        } else if headers.contains_key(axum::http::header::AUTHORIZATION) {
            Err(Error::unauthorized("wrong token"))
        } else {
            Err(Error::unauthorized(
                "this call needs a token: Authorization: Bearer <token> (ubuntu-ci --token, UBUNTU_CI_TOKEN)",
            ))
        }
    }

    /// The absolute URL of a path on this server.
    pub fn absolute(&self, path: &str) -> String {
        match self.public_url.join(path.trim_start_matches('/')) {
            Ok(url) => url.to_string(),
            Err(_) => path.to_owned(),
        }
    }
}

/// A request that carries the server's token. As an extractor it runs on the request's
/// head, before any body is read: a request without the token is refused (401) whatever
/// its body, which is never parsed.
#[derive(Debug, Clone, Copy)]
pub struct Authorised;

impl axum::extract::FromRequestParts<ServerState> for Authorised {
    type Rejection = error::ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &ServerState,
    ) -> std::result::Result<Self, Self::Rejection> {
        state.authorise(&parts.headers).map_err(error::ApiError)?;
        Ok(Authorised)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Every route of the application with its OpenAPI operation: the REST API under
/// `/api/v1/`, the archives under `/ppa/` and the data store under `/store/`. Routes are
/// only ever added here through `utoipa_axum::routes!`, from the handlers' own
/// `#[utoipa::path]` annotations, so none can be served undocumented (a test checks the
/// modules add no other way, and that every documented operation is served).
pub(crate) fn api_router() -> utoipa_axum::router::OpenApiRouter<ServerState> {
    let api = api::routes()
        .merge(ppa_api::routes())
        .merge(lander_api::routes())
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY));
    utoipa_axum::router::OpenApiRouter::with_openapi(openapi::base())
        .merge(api)
        .merge(ppa_api::archive_routes())
        .merge(store_api::routes())
}

/// The whole application (see [`api_router`]); unknown paths are a JSON 404, a method a
/// route does not take a JSON 405, as every other error.
pub fn router(state: ServerState) -> Router {
    let (router, _) = api_router().split_for_parts();
    router
        .fallback(|| async {
            error::ApiError(Error::not_found(
                "no such resource; the API is under /api/v1/",
            ))
        })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            error::method_not_allowed(&method)
        })
        .with_state(state)
}

/// The seed writes resource paths with and without their trailing slash
/// (`/api/v1/ticket/1`): the API's paths are served with it, so one without is taken as
/// the same (before routing, so that no route is served undocumented).
fn with_trailing_slash(mut request: axum::extract::Request) -> axum::extract::Request {
    let path = request.uri().path();
    let last = path.rsplit('/').next().unwrap_or_default();
    if path.starts_with("/api/v1/") && !path.ends_with('/') && !last.contains('.') {
        let mut parts = request.uri().clone().into_parts();
        let slashed = match request.uri().query() {
            Some(query) => format!("{path}/?{query}"),
            None => format!("{path}/"),
        };
        if let Ok(path_and_query) = slashed.parse() {
            parts.path_and_query = Some(path_and_query);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request
}

/// The API token: `explicit` when given, else the one stored in `data_dir/api-token`, else a
/// new random one stored there (mode 0600). The flag says whether it was just created.
///
/// # Errors
/// `Internal` when the token file cannot be read or written.
pub fn load_or_create_token(data_dir: &Path, explicit: Option<&str>) -> Result<(String, bool)> {
    if let Some(token) = explicit.filter(|t| !t.trim().is_empty()) {
        return Ok((token.trim().to_owned(), false));
    }
    let path = data_dir.join("api-token");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok((text.trim().to_owned(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::from(e).with_resource(path.display().to_string())),
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| Error::from(e).with_resource(data_dir.display().to_string()))?;
    let token = hex::encode(rand::random::<[u8; 24]>());
    let mut tmp = tempfile::NamedTempFile::new_in(data_dir)
        .map_err(|e| Error::from(e).with_resource(data_dir.display().to_string()))?;
    {
        use std::io::Write;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        tmp.write_all(format!("{token}\n").as_bytes())?;
        tmp.as_file().sync_all()?;
    }
    // Two servers starting at once: the first rename wins and both use the file's token.
    match tmp.persist_noclobber(&path) {
        Ok(_) => Ok((token, true)),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(&path)?;
            Ok((text.trim().to_owned(), false))
        }
        Err(e) => Err(Error::from(e.error).with_resource(path.display().to_string())),
    }
}

/// Serves `state` on `listener` until `shutdown` resolves.
///
/// # Errors
/// `Internal` when the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ServerState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let stopping = state.stopping.clone();
    let limits = state.limits;
    limits.validate()?;
    connections::serve_connections(listener, router(state), limits, async move {
        shutdown.await;
        stopping.send_replace(true);
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (first, created) = load_or_create_token(dir.path(), None).unwrap();
        assert!(created);
        assert_eq!(first.len(), 48);
        let (second, created) = load_or_create_token(dir.path(), None).unwrap();
        assert!(!created);
        assert_eq!(first, second);
        let (explicit, _) = load_or_create_token(dir.path(), Some("s3cret")).unwrap();
        assert_eq!(explicit, "s3cret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("api-token"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn token_comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
