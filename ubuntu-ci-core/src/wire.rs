//! What the server and its HTTP clients share: the error body and the mapping of errors
//! to and from HTTP.
//!
//! The server answers every error as [`WireError`] with the status of its kind
//! (`server::error::status_of`); the clients ([`crate::tickets::http`],
//! [`crate::store::http`]) read it back into an [`Error`] of the same kind with
//! [`error_from_response`], so a caller cannot tell a remote backend from a local one.

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;

use crate::error::{Error, ErrorKind, Result};

/// The JSON body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WireError {
    /// What went wrong, for people.
    pub error: String,
    /// The error kind (`invalid_input`, `not_found`, `conflict`, `unauthorized`,
    /// `too_large`, `unavailable`, `unsupported`, `internal`); an unknown one (from a newer
    /// server) reads as `internal`.
    #[serde(deserialize_with = "kind_from_wire")]
    pub kind: ErrorKind,
}

fn kind_from_wire<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<ErrorKind, D::Error> {
    let name = String::deserialize(d)?;
    Ok(ErrorKind::from_wire(&name))
}

/// The kind an error status means when the answer has no JSON error body (a proxy's page,
/// a HEAD request).
pub fn kind_of_status(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        400 | 422 => ErrorKind::InvalidInput,
        401 | 403 => ErrorKind::Unauthorized,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        413 => ErrorKind::TooLarge,
        501 => ErrorKind::Unsupported,
        429 | 502 | 503 | 504 => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

/// Reads an error answer into an error of ours, naming the URL.
pub async fn error_from_response(response: reqwest::Response) -> Error {
    let status = response.status();
    let url = response.url().to_string();
    let body = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<WireError>(&body) {
        Ok(wire) => Error::new(wire.kind, wire.error),
        Err(_) => {
            let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            let text = text.trim();
            let message = if text.is_empty() {
                format!("the server answered {status}")
            } else {
                format!("the server answered {status}: {text}")
            };
            Error::new(kind_of_status(status), message)
        }
    }
    .with_resource(url)
}

/// A request that did not get an answer: the server may be back later, so it is
/// retryable, unless the request itself could not be built.
pub fn transport_error(err: reqwest::Error, url: &Url) -> Error {
    let kind = if err.is_builder() {
        ErrorKind::InvalidInput
    } else if err.is_decode() {
        ErrorKind::Internal
    } else {
        ErrorKind::Unavailable
    };
    Error::new(kind, "request to the ubuntu-ci server failed")
        .with_resource(url.to_string())
        .with_source(err)
}

/// The absolute URL on `server` of a resource URI (`/api/v1/ticket/1/` →
/// `http://host/prefix/api/v1/ticket/1/`).
///
/// # Errors
/// As [`base_url`]; `InvalidInput` for a URI that does not join.
pub fn resource_url(server: &str, uri: &str) -> Result<String> {
    base_url(server)?
        .join(uri.trim_start_matches('/'))
        .map(String::from)
        .map_err(|e| Error::invalid(format!("bad URI {uri:?}: {e}")))
}

/// A server's base URL with a trailing slash, so that relative paths join under it.
///
/// # Errors
/// `InvalidInput` for anything but an `http` URL (TLS is not built in yet: `https` is
/// `Unsupported`).
pub fn base_url(url: &str) -> Result<Url> {
    let base =
        Url::parse(url).map_err(|e| Error::invalid(format!("bad server URL {url:?}: {e}")))?;
    if base.scheme() == "https" {
        return Err(Error::unsupported(format!(
            "{url}: https is not supported yet; reach the server over http (e.g. through a local TLS proxy)"
        )));
    }
    if base.scheme() != "http" || base.cannot_be_a_base() {
        return Err(Error::invalid(format!(
            "bad server URL {url:?}: expected http://HOST:PORT/"
        )));
    }
    Ok(as_base(base))
}

/// `url` as a base that relative paths join under: its path ending in `/`, no query, no
/// fragment.
pub fn as_base(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// A JSON client of `ubuntu-ci serve`'s REST API: the base URL, the bearer token, and the
/// error mapping every HTTP backend shares.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: Url,
    token: Option<String>,
    client: reqwest::Client,
}

impl ApiClient {
    /// A client of the server at `base` (`http://127.0.0.1:8000/`), sending `token` as a
    /// bearer token when given.
    ///
    /// # Errors
    /// As [`base_url`].
    pub fn new(base: &str, token: Option<String>) -> Result<ApiClient> {
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| Error::internal("cannot build an HTTP client").with_source(e))?;
        Ok(ApiClient {
            base: base_url(base)?,
            token,
            client,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The absolute URL of a path on the server (`/api/v1/ticket/1/` or `api/v1/…`).
    ///
    /// # Errors
    /// `InvalidInput` for a path that does not join.
    pub fn absolute(&self, path: &str) -> Result<Url> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| Error::invalid(format!("bad URI {path:?}: {e}")))
    }

    /// A request with the token.
    pub fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, url);
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Sends a request and reads a successful answer, failing with the server's error.
    ///
    /// # Errors
    /// The server's error with its kind; `Unavailable` when it cannot be reached.
    pub async fn send_raw(
        &self,
        builder: reqwest::RequestBuilder,
        url: &Url,
        timeout: std::time::Duration,
    ) -> Result<reqwest::Response> {
        let response = builder
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| transport_error(e, url))?;
        if !response.status().is_success() {
            return Err(error_from_response(response).await);
        }
        Ok(response)
    }

    /// Sends a request and decodes its JSON answer.
    ///
    /// # Errors
    /// As [`ApiClient::send_raw`]; `Internal` for an answer of another shape.
    pub async fn send<T: serde::de::DeserializeOwned>(
        &self,
        builder: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<T> {
        self.send_timeout(builder, url, std::time::Duration::from_secs(60))
            .await
    }

    /// [`ApiClient::send`] with another timeout, for slow calls.
    ///
    /// # Errors
    /// As [`ApiClient::send`].
    pub async fn send_timeout<T: serde::de::DeserializeOwned>(
        &self,
        builder: reqwest::RequestBuilder,
        url: &Url,
        timeout: std::time::Duration,
    ) -> Result<T> {
        let response = self.send_raw(builder, url, timeout).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(e, url))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::internal("the server's answer is not what this client expects")
                .with_resource(url.to_string())
                .with_source(e)
        })
    }

    /// `POST path` with a JSON body.
    ///
    /// # Errors
    /// As [`ApiClient::send`].
    pub async fn post<B: serde::Serialize + Sync, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let url = self.absolute(path)?;
        self.send(
            self.request(reqwest::Method::POST, url.clone()).json(body),
            &url,
        )
        .await
    }

    /// `GET path?query`.
    ///
    /// # Errors
    /// As [`ApiClient::send`].
    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T> {
        let url = self.absolute(path)?;
        self.send(
            self.request(reqwest::Method::GET, url.clone()).query(query),
            &url,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(kind_of_status(StatusCode::NOT_FOUND), ErrorKind::NotFound);
        assert_eq!(kind_of_status(StatusCode::CONFLICT), ErrorKind::Conflict);
        assert_eq!(
            kind_of_status(StatusCode::FORBIDDEN),
            ErrorKind::Unauthorized
        );
        assert_eq!(
            kind_of_status(StatusCode::BAD_GATEWAY),
            ErrorKind::Unavailable
        );
        assert_eq!(kind_of_status(StatusCode::IM_A_TEAPOT), ErrorKind::Internal);
    }

    #[test]
    fn base_urls_get_a_trailing_slash() {
        assert_eq!(
            base_url("http://127.0.0.1:8000").unwrap().as_str(),
            "http://127.0.0.1:8000/"
        );
        assert_eq!(
            base_url("http://h/ci?x=1").unwrap().as_str(),
            "http://h/ci/"
        );
        assert_eq!(
            base_url("https://h/").unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        assert!(base_url("ftp://h/").is_err());
        assert!(base_url("not a url").is_err());
    }
}
