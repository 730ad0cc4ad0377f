//! The OpenAPI document of the REST API, generated from the handlers' annotations.
//!
//! The paths come from the routes themselves ([`super::api_router`] registers each handler
//! with its `#[utoipa::path]`); this module adds what is common to them: the info, the
//! schemas, the bearer scheme, and the answers every operation can give (a 500 and a 503
//! anywhere, a 400 where there are parameters or a body, a 401 where a token is needed, a
//! 413 where there is a body).

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::ppa_api;
use crate::{archive, error, lander, model};

/// The API's description without its paths (the routes add those).
#[derive(OpenApi)]
#[openapi(
    info(title = "ubuntu-ci", description = "CI of Debian/Ubuntu source packages: tickets, uploads, artifacts, progress, the lander's requests, the PPA pool and archives, the data store."),
    components(schemas(
        ErrorBody, error::ErrorKind, model::Ticket, model::TicketDetail, model::SourcePackage,
        model::SourcePackageUpload, model::Subticket, model::Artifact, model::Transition,
        model::NewTicket, model::NewSourcePackage, model::NewSourcePackageUpload,
        model::NewSubticket, model::NewArtifact, model::NewTransition, model::TicketEvent,
        model::EventKind, model::WorkflowStep, model::StepStatus, model::TicketState,
        model::ArtifactType, model::PageMeta, ppa_api::PpaView, ppa_api::TicketRef,
        archive::http::PublishRequest, archive::http::PackageRequest, archive::http::CopyRequest,
        archive::http::PackageList, archive::PublishReport, archive::PublishedPackage,
        lander::SubmitOptions, lander::store::RequestStatus, crate::store::ContainerInfo,
        crate::store::ObjectInfo, crate::store::http::ContainerListing,
        crate::store::http::Visibility, super::lander_api::CancelAnswer,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "ticket", description = "Requests for CI"),
        (name = "sourcepackage", description = "Source packages by name"),
        (name = "spu", description = "Source package uploads: one per package and version"),
        (name = "subticket", description = "One upload of a ticket"),
        (name = "artifact", description = "Files of a ticket, in the data store"),
        (name = "progress", description = "The ticket's workflow transitions"),
        (name = "request", description = "A ticket's request, run by the server's lander"),
        (name = "ppa", description = "The PPA pool and the archives"),
        (name = "store", description = "The data store: containers of objects"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document the routes are added to.
pub(crate) fn base() -> Document {
    ApiDoc::openapi()
}

/// The OpenAPI document of every route, served at `/api/v1/openapi.json`.
pub fn document() -> Document {
    static DOCUMENT: OnceLock<Document> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| {
            let (_, mut document) = super::api_router().split_for_parts();
            complete(&mut document);
            document
        })
        .clone()
}

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("WireError")))
                    .build(),
            )
            .build(),
    )
}

/// Adds the answers every operation can give, and writes the archive route's catch-all
/// path parameter (`{*path}` to axum) as OpenAPI writes one.
fn complete(document: &mut Document) {
    let paths = std::mem::take(&mut document.paths.paths);
    for (path, mut item) in paths {
        let path = path.replace("{*path}", "{path}");
        for (method, operation) in [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("head", &mut item.head),
        ] {
            let Some(operation) = operation.as_mut() else {
                continue;
            };
            let responses = &mut operation.responses.responses;
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error_response(description));
            };
            let has_params = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let has_body = operation.request_body.is_some() || method == "put";
            if has_params || has_body {
                add("400", "invalid input: a malformed parameter or body");
            }
            if operation.security.is_some() {
                add("401", "no token, or a wrong one");
            }
            if has_body {
                add("413", "the body is larger than allowed");
            }
            add("500", "an internal error");
            add(
                "503",
                "a service behind the server is unavailable; try again later",
            );
        }
        document.paths.paths.insert(path, item);
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    use crate::config::Config;

    #[test]
    fn the_document_names_every_resource() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/api/v1/ticket/",
            "/api/v1/ticket/{id}/",
            "/api/v1/ticket/{id}/events/",
            "/api/v1/ticket/{id}/request/",
            "/api/v1/ticket/{id}/cancel/",
            "/api/v1/ticket/{id}/retry/",
            "/api/v1/sourcepackage/",
            "/api/v1/spu/",
            "/api/v1/subticket/",
            "/api/v1/artifact/",
            "/api/v1/progress/",
            "/api/v1/ppa/",
            "/api/v1/ppa/assign/",
            "/api/v1/ppa/{owner}/{name}/publish/",
            "/ppa/{owner}/{name}/{path}",
            "/store/",
            "/store/{container}/",
            "/store/{container}/{name}",
        ] {
            assert!(paths.contains_key(path), "{path} missing");
        }
        let ticket = &doc["components"]["schemas"]["NewTicket"]["properties"];
        for field in ["owner", "title", "description", "bug_id"] {
            assert!(ticket.get(field).is_some(), "NewTicket.{field} missing");
        }
        assert_eq!(ticket["title"]["minLength"], 1);
        let kind = &doc["components"]["schemas"]["WireError"]["properties"]["kind"];
        let kinds = &doc["components"]["schemas"]["ErrorKind"]["enum"];
        assert_eq!(kind["$ref"], "#/components/schemas/ErrorKind", "{kind}");
        assert!(
            kinds.as_array().unwrap().contains(&"not_found".into()),
            "{kinds}"
        );
        let limit = doc["paths"]["/api/v1/ticket/"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap()
            .clone();
        assert_eq!(limit["schema"]["minimum"], 1, "{limit}");
        assert_eq!(limit["schema"]["maximum"], 1000, "{limit}");
    }

    #[test]
    fn every_operation_declares_the_errors_it_can_answer() {
        let doc = serde_json::to_value(super::document()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                for status in ["500", "503"] {
                    assert!(responses.contains_key(status), "{method} {path}: {status}");
                }
                let takes_input = operation.get("requestBody").is_some()
                    || operation["parameters"]
                        .as_array()
                        .is_some_and(|p| !p.is_empty());
                if takes_input {
                    assert!(responses.contains_key("400"), "{method} {path}: 400");
                }
                if operation.get("security").is_some() {
                    assert!(responses.contains_key("401"), "{method} {path}: 401");
                }
            }
        }
        // What the handlers themselves declare, beside what every operation can answer.
        for (path, method, status) in [
            ("/api/v1/ticket/{id}/", "get", "404"),
            ("/api/v1/ticket/{id}/request/", "post", "409"),
            ("/api/v1/ticket/{id}/request/", "post", "501"),
            ("/api/v1/ticket/{id}/cancel/", "post", "409"),
            ("/api/v1/ppa/{owner}/{name}/publish/", "post", "409"),
            ("/store/{container}/", "delete", "409"),
            ("/store/{container}/{name}", "get", "404"),
        ] {
            assert!(
                doc["paths"][path][method]["responses"]
                    .get(status)
                    .is_some(),
                "{method} {path}: {status}"
            );
        }
    }

    /// The server modules add routes only through `routes!` (so only with their
    /// operation): no plain `.route(` anywhere.
    #[test]
    fn routes_are_added_only_with_their_operation() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            assert!(
                !code.contains(".route("),
                "{}: a route added without its OpenAPI operation (use utoipa_axum::routes!)",
                path.display()
            );
        }
    }

    /// Every documented operation is served: its method on its path reaches a handler
    /// (neither the 404 of unknown paths nor a 405).
    #[tokio::test]
    async fn every_documented_operation_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let services = Config {
            data_dir: Some(dir.path().to_path_buf()),
            ..Config::default()
        }
        .connect(None)
        .await
        .unwrap();
        let state = super::super::ServerState::new(
            services,
            "t".into(),
            url::Url::parse("http://127.0.0.1:1/").unwrap(),
        );
        let router = super::super::router(state);
        let doc = serde_json::to_value(super::document()).unwrap();
        let mut served = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            let concrete = path
                .replace("{id}", "1")
                .replace("{owner}", "ci-team")
                .replace("{name}", "x")
                .replace("{container}", "c")
                .replace("{path}", "dists/bookworm/InRelease");
            for method in item.as_object().unwrap().keys() {
                let method: Method = method.to_uppercase().parse().unwrap();
                let response = router
                    .clone()
                    .oneshot(
                        Request::builder()
                            .method(method.clone())
                            .uri(&concrete)
                            .body(Body::empty())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(&body);
                assert_ne!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}: {text}"
                );
                assert!(
                    !text.contains("the API is under /api/v1/"),
                    "{method} {path} is not routed: {text}"
                );
                served += 1;
            }
        }
        assert!(served > 40, "{served} operations");
    }
}
