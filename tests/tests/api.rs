//! The REST API over real HTTP: the seed's calls, status codes of bad input, the HTTP
//! backends' conformance suites against a live server.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};
use ubuntu_ci_tests::{TestServer, TOKEN};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(
    server: &TestServer,
    path: &str,
    body: Value,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = client().post(server.at(path)).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request")
}

async fn error_kind(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("JSON error body");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    body["kind"].as_str().expect("kind").to_owned()
}

#[tokio::test]
async fn the_seed_calls_answer_as_the_seed_shows() {
    let server = TestServer::start().await;
    let response = post(
        &server,
        "/api/v1/ticket/",
        json!({ "owner": "default-user@example.com", "title": "Default title",
                "description": "Default description",
                "bug_id": "https://bugs.launchpad.net/bugs/1234567" }),
        Some(TOKEN),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, server.at("/api/v1/ticket/1/"));
    let ticket: Value = response.json().await.unwrap();
    assert_eq!(ticket["resource_uri"], "/api/v1/ticket/1/");
    assert_eq!(ticket["owner"], "default-user@example.com");
    assert_eq!(ticket["bug_id"], "https://bugs.launchpad.net/bugs/1234567");

    let response = post(
        &server,
        "/api/v1/sourcepackage/",
        json!({"name": "autopilot"}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let again = post(
        &server,
        "/api/v1/sourcepackage/",
        json!({"name": "autopilot"}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "get-or-create: the second call finds it"
    );

    let response = post(
        &server,
        "/api/v1/spu/",
        json!({ "sourcepackage": "/api/v1/sourcepackage/1/", "version": "1.5~dev.1" }),
        Some(TOKEN),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        server.at("/api/v1/spu/1/")
    );
    let conflict = post(
        &server,
        "/api/v1/spu/",
        json!({ "sourcepackage": "/api/v1/sourcepackage/1/", "version": "1.5~dev.1" }),
        Some(TOKEN),
    )
    .await;
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    assert_eq!(error_kind(conflict).await, "conflict");

    // The seed writes the ticket without its trailing slash.
    let response = post(
        &server,
        "/api/v1/subticket/",
        json!({ "source_package_upload": "/api/v1/spu/1/", "ticket": "/api/v1/ticket/1",
                "assignee": "default-user@example.com" }),
        Some(TOKEN),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        server.at("/api/v1/subticket/1/")
    );

    let reference = "https://swift.example/v1/AUTH_bucket_id/ticket.1.sources/autopilot_1.5~dev.1_source.changes";
    let response = post(
        &server,
        "/api/v1/artifact/",
        json!({ "name": "autopilot_1.5~dev.1_source.changes", "subticket": "/api/v1/subticket/1/",
                "reference": reference, "type": "SPU" }),
        Some(TOKEN),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        server.at("/api/v1/artifact/1/")
    );

    let list: Value = client()
        .get(server.at("/api/v1/artifact/?ticket=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["meta"]["total_count"], 1);
    assert_eq!(list["meta"]["limit"], 20);
    assert_eq!(list["meta"]["offset"], 0);
    assert_eq!(list["meta"]["next"], Value::Null);
    assert_eq!(list["objects"][0]["reference"], reference);
    assert_eq!(list["objects"][0]["type"], "SPU");
    assert_eq!(list["objects"][0]["subticket"], "/api/v1/subticket/1/");

    let detail: Value = client()
        .get(server.at("/api/v1/ticket/1/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        detail["subtickets"][0]["source_package_upload"],
        "/api/v1/spu/1/"
    );
    assert_eq!(
        detail["artifacts"][0]["name"],
        "autopilot_1.5~dev.1_source.changes"
    );

    let progress = post(
        &server,
        "/api/v1/progress/",
        json!({ "ticket": "/api/v1/ticket/1/", "step": "QUEUED", "status": "PENDING", "message": "queued" }),
        Some(TOKEN),
    )
    .await;
    assert_eq!(progress.status(), StatusCode::CREATED);
    let ticket: Value = client()
        .get(server.at("/api/v1/ticket/1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ticket["current_workflow_step"], "QUEUED");
    assert_eq!(ticket["progress"][0]["message"], "queued");
}

#[tokio::test]
async fn lists_paginate_with_links() {
    let server = TestServer::start().await;
    for i in 0..5 {
        let r = post(
            &server,
            "/api/v1/ticket/",
            json!({"owner": "pager@example.com", "title": format!("t{i}")}),
            Some(TOKEN),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let page: Value = client()
        .get(server.at("/api/v1/ticket/?owner=pager@example.com&limit=2&offset=2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["meta"]["total_count"], 5);
    assert_eq!(page["objects"].as_array().unwrap().len(), 2);
    assert_eq!(page["objects"][0]["title"], "t2");
    let next = page["meta"]["next"].as_str().expect("next");
    assert!(next.starts_with(&server.at("/api/v1/ticket/?")), "{next}");
    assert!(
        next.contains("offset=4") && next.contains("owner=pager%40example.com"),
        "{next}"
    );
    let previous = page["meta"]["previous"].as_str().expect("previous");
    assert!(previous.contains("offset=0"), "{previous}");
    let last: Value = client()
        .get(next)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(last["objects"].as_array().unwrap().len(), 1);
    assert_eq!(last["meta"]["next"], Value::Null);
}

#[tokio::test]
async fn bad_input_gets_the_right_4xx_and_changes_nothing() {
    let server = TestServer::start().await;
    let ticket = json!({"owner": "dev@example.com", "title": "t"});

    let missing_token = post(&server, "/api/v1/ticket/", ticket.clone(), None).await;
    assert_eq!(missing_token.status(), StatusCode::UNAUTHORIZED);
    assert!(missing_token.headers().contains_key("www-authenticate"));
    assert_eq!(error_kind(missing_token).await, "unauthorized");
    let wrong_token = post(&server, "/api/v1/ticket/", ticket.clone(), Some("nope")).await;
    assert_eq!(wrong_token.status(), StatusCode::UNAUTHORIZED);

    let bad_json = client()
        .post(server.at("/api/v1/ticket/"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"owner\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_kind(bad_json).await, "invalid_input");

    let not_json = client()
        .post(server.at("/api/v1/ticket/"))
        .bearer_auth(TOKEN)
        .body("owner=x")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);

    let wrong_type = post(
        &server,
        "/api/v1/ticket/",
        json!({"owner": 5, "title": "t"}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(wrong_type.status(), StatusCode::BAD_REQUEST);
    let unknown_field = post(
        &server,
        "/api/v1/ticket/",
        json!({"owner": "a@b", "title": "t", "priority": "high"}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(unknown_field.status(), StatusCode::BAD_REQUEST);
    let body = error_kind(unknown_field).await;
    assert_eq!(body, "invalid_input");
    let empty_title = post(
        &server,
        "/api/v1/ticket/",
        json!({"owner": "a@b", "title": ""}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(empty_title.status(), StatusCode::BAD_REQUEST);
    let bad_ref = post(
        &server,
        "/api/v1/subticket/",
        json!({"source_package_upload": "/api/v1/ticket/1/", "ticket": "/api/v1/ticket/1/", "assignee": "a@b"}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(bad_ref.status(), StatusCode::BAD_REQUEST);

    let oversized = client()
        .post(server.at("/api/v1/ticket/"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"owner\": \"a@b\", \"title\": \"t\", \"description\": \"{}\"}}",
            "x".repeat(2 * 1024 * 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_kind(oversized).await, "too_large");

    for path in [
        "/api/v1/ticket/999/",
        "/api/v1/ticket/abc/",
        "/api/v1/spu/0/",
        "/api/v1/nothing/",
    ] {
        let r = client().get(server.at(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error_kind(r).await, "not_found");
    }
    let unknown_ref = post(
        &server,
        "/api/v1/spu/",
        json!({"sourcepackage": "/api/v1/sourcepackage/42/", "version": "1.0"}),
        Some(TOKEN),
    )
    .await;
    assert_eq!(unknown_ref.status(), StatusCode::NOT_FOUND);
    for query in [
        "limit=abc",
        "limit=0",
        "offset=-1",
        "colour=red",
        "state=maybe",
    ] {
        let r = client()
            .get(server.at(&format!("/api/v1/ticket/?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
    }

    let listed: Value = client()
        .get(server.at("/api/v1/ticket/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["meta"]["total_count"], 0,
        "refused requests stored nothing"
    );
}

#[tokio::test]
async fn the_openapi_document_is_served() {
    let server = TestServer::start().await;
    let doc: Value = client()
        .get(server.at("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/api/v1/progress/"]["post"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn the_http_ticket_system_passes_the_conformance_suite() {
    let server = TestServer::start().await;
    let client = server.client(Some(TOKEN)).await;
    ubuntu_ci_core::tickets::conformance::run_all(client.tickets).await;
}

#[tokio::test]
async fn the_http_store_passes_the_conformance_suite() {
    let server = TestServer::start().await;
    let client = server.client(Some(TOKEN)).await;
    ubuntu_ci_core::store::conformance::run_all(client.store).await;
}

#[tokio::test]
async fn public_objects_need_no_token_and_private_ones_do() {
    let server = TestServer::start().await;
    let store = server.client(Some(TOKEN)).await.store;
    let public = ubuntu_ci_core::store::DataStore::open(store.clone(), "ticket.1", "sources", true)
        .await
        .unwrap();
    let url = public
        .put_file("hello_1.0-1.dsc", b"Source: hello\n".to_vec())
        .await
        .unwrap();
    assert_eq!(
        url.as_str(),
        server.at("/store/ticket.1.sources/hello_1.0-1.dsc")
    );
    let response = client().get(url.clone()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "Source: hello\n");

    let private = ubuntu_ci_core::store::DataStore::open(store, "ticket.1", "private", false)
        .await
        .unwrap();
    let url = private.put_file("secret.log", b"s".to_vec()).await.unwrap();
    let anonymous = client().get(url.clone()).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let authorised = client().get(url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(authorised.status(), StatusCode::OK);
    // Without the token, a container that does not exist looks like a private one: a
    // stranger learns nothing of what is stored. With it, it is not found.
    for path in ["/store/no.such/x", "/store/no.such/"] {
        let anonymous = client().get(server.at(path)).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{path}");
        let authorised = client()
            .get(server.at(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(authorised.status(), StatusCode::NOT_FOUND, "{path}");
    }

    let anonymous_put = client()
        .put(server.at("/store/ticket.1.sources/x"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_put.status(), StatusCode::UNAUTHORIZED);
    let hostile = client()
        .put(server.at("/store/ticket.1.sources/..%2Fescape"))
        .bearer_auth(TOKEN)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(hostile.status(), StatusCode::BAD_REQUEST);
    assert!(!server.data_dir.path().join("store/escape").exists());
    let names: Vec<String> = public
        .list_files()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, vec!["hello_1.0-1.dsc"]);
}

#[tokio::test]
async fn events_stream_over_sse_until_the_ticket_closes() {
    use futures::StreamExt;
    use ubuntu_ci_core::model::{NewTransition, StepStatus, WorkflowStep};

    let server = TestServer::start().await;
    let (tickets, ticket, mut events) = subscribed_ticket(&server).await;
    let writer: Arc<dyn ubuntu_ci_core::tickets::TicketSystem> = tickets.clone();
    let uri = ticket.resource_uri;
    tokio::spawn(async move {
        writer
            .record_transition(NewTransition {
                ticket: uri,
                step: WorkflowStep::Complete,
                status: StepStatus::Failed,
                message: "gave up".into(),
            })
            .await
            .unwrap();
    });
    let last = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
        .await
        .expect("event in time")
        .unwrap()
        .unwrap();
    assert_eq!(last.message, "gave up");
    assert!(
        tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
            .await
            .expect("end in time")
            .is_none()
    );
}

#[tokio::test]
async fn a_server_shutting_down_ends_open_event_streams() {
    use futures::StreamExt;

    let server = TestServer::start().await;
    let (_tickets, _ticket, mut events) = subscribed_ticket(&server).await;
    // The ticket stays open: only the shutdown can end this stream.
    drop(server);
    let end = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
        .await
        .expect("the stream ends when the server stops, not never");
    // Not a silent end, which would read as "the ticket closed": a retryable error.
    let err = end.expect("an error before the end").unwrap_err();
    assert_eq!(err.kind(), ubuntu_ci_core::ErrorKind::Unavailable, "{err}");
    assert!(events.next().await.is_none());
}

/// A new ticket on `server`, created through the HTTP client, and its event stream with
/// the creation event already read.
async fn subscribed_ticket(
    server: &TestServer,
) -> (
    Arc<dyn ubuntu_ci_core::tickets::TicketSystem>,
    ubuntu_ci_core::model::Ticket,
    ubuntu_ci_core::tickets::EventStream,
) {
    use futures::StreamExt;

    let tickets = server.client(Some(TOKEN)).await.tickets;
    let ticket = tickets
        .create_ticket(ubuntu_ci_core::model::NewTicket {
            owner: "dev@example.com".into(),
            title: "events".into(),
            description: String::new(),
            bug_id: String::new(),
        })
        .await
        .unwrap();
    let mut events = tickets.events(ticket.id, None).await.unwrap();
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.kind.as_str(), "ticket_created");
    (tickets, ticket, events)
}

#[tokio::test]
async fn event_streams_are_capped_and_freed() {
    use futures::StreamExt;

    let server = TestServer::start_with(|state| state.with_event_stream_limit(1)).await;
    let (tickets, ticket, first) = subscribed_ticket(&server).await;
    let refused = client()
        .get(server.at(&format!("/api/v1/ticket/{}/events/", ticket.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_kind(refused).await, "unavailable");
    drop(first);
    // The server notices the closed stream at its next write or keep-alive; retry briefly.
    let mut again = None;
    for _ in 0..40 {
        match tickets.events(ticket.id, None).await {
            Ok(events) => {
                again = Some(events);
                break;
            }
            Err(err) if err.kind() == ubuntu_ci_core::ErrorKind::Unavailable => {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            Err(err) => panic!("{err}"),
        }
    }
    let mut again = again.expect("a freed permit lets a new stream open");
    assert_eq!(
        again.next().await.unwrap().unwrap().kind.as_str(),
        "ticket_created"
    );
}

/// Every error is the documented JSON: a method a route does not take (405, with Allow), a
/// format the API does not serve, a limit out of range; the seed's paths without their
/// trailing slash name the same resources.
#[tokio::test]
async fn every_error_is_the_documented_json_and_slashless_paths_work() {
    let server = TestServer::start().await;
    let refused = client()
        .delete(server.at("/api/v1/ticket/"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = refused.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert_eq!(error_kind(refused).await, "invalid_input");

    for (query, says) in [
        ("format=xml", "format: \"xml\" is not served"),
        ("limit=0", "limit: must be 1 to 1000"),
        ("limit=5000", "limit: must be 1 to 1000"),
    ] {
        let response = client()
            .get(server.at(&format!("/api/v1/ticket/?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["kind"], "invalid_input", "{query}");
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{query}: {body}"
        );
    }
    // The token is checked before the body is read: without it, a bad body is a 401 too.
    for path in [
        "/api/v1/ticket/",
        "/api/v1/ppa/assign/",
        "/api/v1/ticket/1/request/",
        "/api/v1/ppa/ci-team/ppa_build_1/copy/",
    ] {
        let bad = || {
            client()
                .post(server.at(path))
                .header("content-type", "application/json")
                .body("{not json")
        };
        let anonymous = bad().send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{path}");
        let authorised = bad().bearer_auth(TOKEN).send().await.unwrap();
        assert_ne!(authorised.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let json_format = client()
        .get(server.at("/api/v1/ticket/?format=json"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_format.status(), StatusCode::OK);

    post(
        &server,
        "/api/v1/ticket",
        json!({"owner": "Jane Dev <jane@example.com>", "title": "t"}),
        Some(TOKEN),
    )
    .await;
    for path in ["/api/v1/ticket", "/api/v1/ticket/1", "/api/v1/ticket/1/"] {
        let response = client().get(server.at(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let ticket: Value = client()
        .get(server.at("/api/v1/ticket/1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ticket["owner"], "jane@example.com");
    let schema = client()
        .get(server.at("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(schema.status(), StatusCode::OK);
}
