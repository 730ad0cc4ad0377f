//! The OpenAPI document of the REST API, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::{api, ppa_api};
use crate::{archive, model};

/// The API's description, served at `/api/v1/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "ubuntu-ci", description = "CI of Debian/Ubuntu source packages: tickets, uploads, artifacts, progress."),
    paths(
        api::create_ticket, api::list_tickets, api::get_ticket, api::ticket_events,
        api::create_source_package, api::list_source_packages, api::get_source_package,
        api::create_spu, api::list_spus, api::get_spu,
        api::create_subticket, api::list_subtickets, api::get_subticket,
        api::create_artifact, api::list_artifacts, api::get_artifact,
        api::create_transition, api::list_transitions, api::get_transition,
        ppa_api::list_ppas, ppa_api::assign, ppa_api::renew, ppa_api::release,
        ppa_api::packages, ppa_api::publish, ppa_api::remove, ppa_api::copy,
    ),
    components(schemas(
        ErrorBody, model::Ticket, model::TicketDetail, model::SourcePackage,
        model::SourcePackageUpload, model::Subticket, model::Artifact, model::Transition,
        model::NewTicket, model::NewSourcePackage, model::NewSourcePackageUpload,
        model::NewSubticket, model::NewArtifact, model::NewTransition, model::TicketEvent,
        model::EventKind, model::WorkflowStep, model::StepStatus, model::TicketState,
        model::ArtifactType, model::PageMeta, ppa_api::PpaView, ppa_api::TicketRef,
        archive::http::PublishRequest, archive::http::PackageRequest,
        archive::http::PackageList, archive::PublishReport, archive::PublishedPackage,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "ticket", description = "Requests for CI"),
        (name = "sourcepackage", description = "Source packages by name"),
        (name = "spu", description = "Source package uploads: one per package and version"),
        (name = "subticket", description = "One upload of a ticket"),
        (name = "artifact", description = "Files of a ticket, in the data store"),
        (name = "progress", description = "The ticket's workflow transitions"),
        (name = "ppa", description = "The PPA pool and the archives"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_names_every_resource() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/api/v1/ticket/",
            "/api/v1/ticket/{id}/",
            "/api/v1/ticket/{id}/events/",
            "/api/v1/sourcepackage/",
            "/api/v1/spu/",
            "/api/v1/subticket/",
            "/api/v1/artifact/",
            "/api/v1/progress/",
            "/api/v1/ppa/",
            "/api/v1/ppa/assign/",
            "/api/v1/ppa/{owner}/{name}/publish/",
        ] {
            assert!(paths.contains_key(path), "{path} missing");
        }
        let ticket = &doc["components"]["schemas"]["NewTicket"]["properties"];
        for field in ["owner", "title", "description", "bug_id"] {
            assert!(ticket.get(field).is_some(), "NewTicket.{field} missing");
        }
    }
}
