//! The ticket system over HTTP: a client of `ubuntu-ci serve`'s REST API.
//!
//! Each trait call is one request to `/api/v1/…` (see `docs/rest-api.md`); errors come back
//! as `{"error": …, "kind": …}` and keep their kind, so a caller cannot tell this backend
//! from a local one except by latency. Events arrive as Server-Sent Events.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use url::Url;

use super::{EventStream, TicketSystem};
use crate::error::{Error, Result};
use crate::model::{
    Artifact, ArtifactFilter, NewArtifact, NewSourcePackageUpload, NewSubticket, NewTicket,
    NewTransition, Page, PageRequest, SourcePackage, SourcePackageFilter, SourcePackageUpload,
    SpuFilter, Subticket, SubticketFilter, Ticket, TicketDetail, TicketEvent, TicketFilter,
    Transition, TransitionFilter,
};
use crate::wire::{error_from_response, transport_error, ApiClient, WireError};

/// A client of a ticket system served by `ubuntu-ci serve`.
#[derive(Debug, Clone)]
pub struct HttpTicketSystem {
    api: ApiClient,
}

impl HttpTicketSystem {
    /// A client of the server at `base` (`http://127.0.0.1:8000/`), sending `token` as a
    /// bearer token when given.
    ///
    /// # Errors
    /// `InvalidInput` when `base` is not an http(s) URL.
    pub fn new(base: &str, token: Option<String>) -> Result<HttpTicketSystem> {
        Ok(HttpTicketSystem {
            api: ApiClient::new(base, token)?,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &Url {
        self.api.base()
    }

    /// The absolute URL of a resource URI (`/api/v1/ticket/1/` → `http://host/api/v1/ticket/1/`).
    ///
    /// # Errors
    /// `InvalidInput` for a URI that does not join.
    pub fn absolute(&self, uri: &str) -> Result<Url> {
        self.api.absolute(uri)
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.api.request(method, url)
    }

    async fn post<B: Serialize + Sync, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.api.post(path, body).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T> {
        self.api.get(path, query).await
    }

    async fn list<T: DeserializeOwned>(
        &self,
        resource: &str,
        mut query: Vec<(&str, String)>,
        page: PageRequest,
    ) -> Result<Page<T>> {
        query.push(("limit", page.limit.to_string()));
        query.push(("offset", page.offset.to_string()));
        self.get(&format!("api/v1/{resource}/"), &query).await
    }
}

fn push<T: ToString>(
    query: &mut Vec<(&'static str, String)>,
    name: &'static str,
    value: Option<T>,
) {
    if let Some(value) = value {
        query.push((name, value.to_string()));
    }
}

#[async_trait]
impl TicketSystem for HttpTicketSystem {
    async fn create_ticket(&self, new: NewTicket) -> Result<Ticket> {
        self.post("api/v1/ticket/", &new).await
    }

    async fn get_ticket(&self, id: i64) -> Result<TicketDetail> {
        self.get(&format!("api/v1/ticket/{id}/"), &[]).await
    }

    async fn list_tickets(&self, filter: TicketFilter, page: PageRequest) -> Result<Page<Ticket>> {
        let mut query = Vec::new();
        push(&mut query, "owner", filter.owner);
        push(
            &mut query,
            "state",
            filter.state.map(|s| match s {
                crate::model::TicketState::Open => "open",
                crate::model::TicketState::Closed => "closed",
            }),
        );
        push(&mut query, "step", filter.step);
        push(&mut query, "status", filter.status);
        self.list("ticket", query, page).await
    }

    async fn get_or_create_source_package(&self, name: &str) -> Result<(SourcePackage, bool)> {
        let url = self.absolute("api/v1/sourcepackage/")?;
        let response = self
            .request(Method::POST, url.clone())
            .json(&serde_json::json!({ "name": name }))
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| transport_error(e, &url))?;
        let created = response.status() == StatusCode::CREATED;
        if !response.status().is_success() {
            return Err(error_from_response(response).await);
        }
        let package = response
            .json::<SourcePackage>()
            .await
            .map_err(|e| transport_error(e, &url))?;
        Ok((package, created))
    }

    async fn get_source_package(&self, id: i64) -> Result<SourcePackage> {
        self.get(&format!("api/v1/sourcepackage/{id}/"), &[]).await
    }

    async fn list_source_packages(
        &self,
        filter: SourcePackageFilter,
        page: PageRequest,
    ) -> Result<Page<SourcePackage>> {
        let mut query = Vec::new();
        push(&mut query, "name", filter.name);
        self.list("sourcepackage", query, page).await
    }

    async fn create_spu(&self, new: NewSourcePackageUpload) -> Result<SourcePackageUpload> {
        self.post("api/v1/spu/", &new).await
    }

    async fn get_spu(&self, id: i64) -> Result<SourcePackageUpload> {
        self.get(&format!("api/v1/spu/{id}/"), &[]).await
    }

    async fn list_spus(
        &self,
        filter: SpuFilter,
        page: PageRequest,
    ) -> Result<Page<SourcePackageUpload>> {
        let mut query = Vec::new();
        push(
            &mut query,
            "sourcepackage",
            filter.sourcepackage.map(|u| u.id()),
        );
        push(&mut query, "version", filter.version);
        self.list("spu", query, page).await
    }

    async fn create_subticket(&self, new: NewSubticket) -> Result<Subticket> {
        self.post("api/v1/subticket/", &new).await
    }

    async fn get_subticket(&self, id: i64) -> Result<Subticket> {
        self.get(&format!("api/v1/subticket/{id}/"), &[]).await
    }

    async fn list_subtickets(
        &self,
        filter: SubticketFilter,
        page: PageRequest,
    ) -> Result<Page<Subticket>> {
        let mut query = Vec::new();
        push(&mut query, "ticket", filter.ticket.map(|u| u.id()));
        push(
            &mut query,
            "source_package_upload",
            filter.source_package_upload.map(|u| u.id()),
        );
        self.list("subticket", query, page).await
    }

    async fn create_artifact(&self, new: NewArtifact) -> Result<Artifact> {
        self.post("api/v1/artifact/", &new).await
    }

    async fn get_artifact(&self, id: i64) -> Result<Artifact> {
        self.get(&format!("api/v1/artifact/{id}/"), &[]).await
    }

    async fn list_artifacts(
        &self,
        filter: ArtifactFilter,
        page: PageRequest,
    ) -> Result<Page<Artifact>> {
        let mut query = Vec::new();
        push(&mut query, "ticket", filter.ticket.map(|u| u.id()));
        push(&mut query, "subticket", filter.subticket.map(|u| u.id()));
        push(&mut query, "type", filter.artifact_type);
        self.list("artifact", query, page).await
    }

    async fn record_transition(&self, new: NewTransition) -> Result<Transition> {
        self.post("api/v1/progress/", &new).await
    }

    async fn get_transition(&self, id: i64) -> Result<Transition> {
        self.get(&format!("api/v1/progress/{id}/"), &[]).await
    }

    async fn list_transitions(
        &self,
        filter: TransitionFilter,
        page: PageRequest,
    ) -> Result<Page<Transition>> {
        let mut query = Vec::new();
        push(&mut query, "ticket", filter.ticket.map(|u| u.id()));
        self.list("progress", query, page).await
    }

    async fn events(&self, ticket: i64, after: Option<i64>) -> Result<EventStream> {
        let url = self.absolute(&format!("api/v1/ticket/{ticket}/events/"))?;
        let mut builder = self
            .request(Method::GET, url.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(after) = after {
            builder = builder.query(&[("after", after)]);
        }
        let response = builder.send().await.map_err(|e| transport_error(e, &url))?;
        if !response.status().is_success() {
            return Err(error_from_response(response).await);
        }
        let mut bytes = response.bytes_stream();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let client = self.clone();
        tokio::spawn(async move {
            let mut parser = SseParser::default();
            let mut closed = false;
            loop {
                // A dropped stream must end this task (and its connection) at once, not at
                // the next event, which may never come.
                let chunk = tokio::select! {
                    _ = tx.closed() => return,
                    chunk = bytes.next() => chunk,
                };
                let chunk = match chunk {
                    Some(Ok(chunk)) => chunk,
                    Some(Err(err)) => {
                        let _ = tx.send(Err(transport_error(err, &url))).await;
                        return;
                    }
                    None => break,
                };
                for (name, data) in parser.feed(&chunk) {
                    let item = sse_item(&name, &data);
                    closed |= matches!(&item, Ok(event) if event.closes_ticket());
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
            }
            // The server ends the stream after the closing event (at once when resumed
            // after it); any other end is a lost connection or a server going down, not the
            // ticket's end.
            if !closed {
                let ticket_closed = matches!(
                    client.get_ticket(ticket).await,
                    Ok(detail) if detail.ticket.state == crate::model::TicketState::Closed
                );
                if !ticket_closed {
                    let _ = tx
                        .send(Err(Error::unavailable(
                            "the server ended the event stream before the ticket closed",
                        )
                        .with_resource(url.to_string())))
                        .await;
                }
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}

/// One event from the server: a ticket event, or an error with its kind.
fn sse_item(name: &str, data: &str) -> Result<TicketEvent> {
    if name == "error" {
        return Err(match serde_json::from_str::<WireError>(data) {
            Ok(wire) => Error::new(wire.kind, wire.error),
            Err(_) => Error::internal(format!("the server's event stream failed: {data}")),
        });
    }
    serde_json::from_str::<TicketEvent>(data)
        .map_err(|e| Error::internal("malformed event from the server").with_source(e))
}

/// Splits a Server-Sent Events byte stream into events: their name (`event:`, empty when
/// absent) and their `data`.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    line: Vec<u8>,
    name: String,
    data: Vec<String>,
}

impl SseParser {
    /// Feeds bytes; returns every event completed by them.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        let mut done = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let line = String::from_utf8_lossy(&self.line)
                .trim_end_matches('\r')
                .to_owned();
            self.line.clear();
            if line.is_empty() {
                if !self.data.is_empty() {
                    done.push((std::mem::take(&mut self.name), self.data.join("\n")));
                    self.data.clear();
                }
                self.name.clear();
            } else if let Some(data) = line.strip_prefix("data:") {
                self.data
                    .push(data.strip_prefix(' ').unwrap_or(data).to_owned());
            } else if let Some(name) = line.strip_prefix("event:") {
                self.name = name.trim().to_owned();
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn sse_events_split_across_chunks() {
        let mut parser = SseParser::default();
        assert!(parser.feed(b"id: 1\nevent: progress\nda").is_empty());
        assert_eq!(
            parser.feed(b"ta: {\"a\":1}\n\n: keep-alive\n\ndata: x\r\n"),
            vec![("progress".to_owned(), "{\"a\":1}".to_owned())]
        );
        assert_eq!(
            parser.feed(b"data: y\n\n"),
            vec![(String::new(), "x\ny".to_owned())]
        );
    }

    #[test]
    fn error_events_keep_their_kind() {
        let err = sse_item(
            "error",
            r#"{"error": "database down", "kind": "unavailable"}"#,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(err.message(), "database down");
        assert_eq!(
            sse_item("progress", "not json").unwrap_err().kind(),
            ErrorKind::Internal
        );
    }
}
