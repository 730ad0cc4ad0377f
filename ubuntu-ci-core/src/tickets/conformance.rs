//! The conformance suite of [`TicketSystem`]: every backend runs [`run_all`].
//!
//! Each check creates its own tickets and packages (names carry a random suffix), so the
//! suite can run against a shared database and in parallel with itself. Failures panic with
//! a message naming the broken promise, as a test suite should.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::TicketSystem;
use crate::error::ErrorKind;
use crate::model::{
    ArtifactFilter, ArtifactType, EventKind, NewArtifact, NewSourcePackageUpload, NewSubticket,
    NewTicket, NewTransition, PageRequest, SourcePackageFilter, SpuFilter, StepStatus,
    SubticketFilter, TicketFilter, TicketState, TransitionFilter, Uri, WorkflowStep,
};

/// Runs every check against `system`.
pub async fn run_all(system: Arc<dyn TicketSystem>) {
    seed_flow(&*system).await;
    validation_stores_nothing(&*system).await;
    unknown_references_are_not_found(&*system).await;
    spu_is_unique_per_package_and_version(&*system).await;
    source_packages_are_get_or_create(system.clone()).await;
    concurrent_creates_each_get_their_own_ticket(system.clone()).await;
    lists_filter_and_paginate(&*system).await;
    transitions_keep_history_and_close(&*system).await;
    events_replay_then_follow(system.clone()).await;
}

fn suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

fn new_ticket(owner: &str, title: &str) -> NewTicket {
    NewTicket {
        owner: owner.into(),
        title: title.into(),
        description: "conformance".into(),
        bug_id: "123".into(),
    }
}

/// Steps 1 and 2 of the seed: ticket, package, upload, subticket, artifact, read back.
pub async fn seed_flow(system: &dyn TicketSystem) {
    let ticket = system
        .create_ticket(new_ticket("default-user@example.com", "Default title"))
        .await
        .expect("create_ticket");
    assert_eq!(ticket.bug_id, "https://bugs.launchpad.net/bugs/123");
    assert_eq!(ticket.current_workflow_step, WorkflowStep::New);
    assert_eq!(ticket.status, StepStatus::Pending);
    assert_eq!(ticket.state, TicketState::Open);
    assert_eq!(
        ticket.resource_uri.to_string(),
        format!("/api/v1/ticket/{}/", ticket.id)
    );

    let name = format!("autopilot{}", suffix());
    let (package, created) = system
        .get_or_create_source_package(&name)
        .await
        .expect("get_or_create_source_package");
    assert!(created, "a new name creates a package");
    assert_eq!(package.name, name);

    let spu = system
        .create_spu(NewSourcePackageUpload {
            sourcepackage: package.resource_uri,
            version: "1.5~dev.1".into(),
            fingerprint: "ab".repeat(32),
        })
        .await
        .expect("create_spu");
    assert_eq!(spu.sourcepackage, package.resource_uri);
    assert_eq!(spu.version, "1.5~dev.1");
    assert_eq!(spu.fingerprint, "ab".repeat(32));

    let subticket = system
        .create_subticket(NewSubticket {
            source_package_upload: spu.resource_uri,
            ticket: ticket.resource_uri,
            assignee: "default-user@example.com".into(),
        })
        .await
        .expect("create_subticket");
    assert_eq!(subticket.ticket, ticket.resource_uri);

    let reference = format!(
        "https://swift.example/v1/AUTH_x/ticket.{}.sources/{name}_1.5~dev.1_source.changes",
        ticket.id
    );
    let artifact = system
        .create_artifact(NewArtifact {
            name: format!("{name}_1.5~dev.1_source.changes"),
            subticket: Some(subticket.resource_uri),
            ticket: None,
            reference: reference.clone(),
            artifact_type: ArtifactType::Spu,
        })
        .await
        .expect("create_artifact");
    assert_eq!(
        artifact.ticket, ticket.resource_uri,
        "the subticket implies the ticket"
    );
    assert_eq!(artifact.reference, reference);

    let detail = system.get_ticket(ticket.id).await.expect("get_ticket");
    assert_eq!(detail.ticket.id, ticket.id);
    assert_eq!(detail.subtickets, vec![subticket.clone()]);
    assert_eq!(detail.artifacts, vec![artifact.clone()]);
    assert!(detail.progress.is_empty());

    assert_eq!(system.get_spu(spu.id).await.expect("get_spu"), spu);
    assert_eq!(
        system
            .get_subticket(subticket.id)
            .await
            .expect("get_subticket"),
        subticket
    );
    assert_eq!(
        system
            .get_artifact(artifact.id)
            .await
            .expect("get_artifact"),
        artifact
    );
    assert_eq!(
        system
            .get_source_package(package.id)
            .await
            .expect("get_source_package"),
        package
    );
}

/// Invalid input is refused with `InvalidInput` and leaves no trace.
pub async fn validation_stores_nothing(system: &dyn TicketSystem) {
    let owner = format!("nobody-{}@example.com", suffix());
    for bad in [
        new_ticket(&owner, ""),
        new_ticket("", "title"),
        new_ticket(&owner, &"x".repeat(300)),
        NewTicket {
            bug_id: "not a url".into(),
            ..new_ticket(&owner, "t")
        },
        new_ticket(&owner, "bell\u{7}"),
    ] {
        let err = system.create_ticket(bad).await.expect_err("bad ticket");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    let page = system
        .list_tickets(
            TicketFilter {
                owner: Some(owner),
                ..Default::default()
            },
            PageRequest::default(),
        )
        .await
        .expect("list_tickets");
    assert_eq!(page.meta.total_count, 0, "a refused ticket was stored");

    for bad in ["Hello", "../x", "a", "foo bar"] {
        let err = system
            .get_or_create_source_package(bad)
            .await
            .expect_err("bad package name");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}: {err}");
    }
    let (package, _) = system
        .get_or_create_source_package(&format!("valid{}", suffix()))
        .await
        .expect("package");
    let err = system
        .create_spu(NewSourcePackageUpload {
            sourcepackage: package.resource_uri,
            version: "not a version".into(),
            fingerprint: String::new(),
        })
        .await
        .expect_err("bad version");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let spus = system
        .list_spus(
            SpuFilter {
                sourcepackage: Some(package.resource_uri),
                version: None,
            },
            PageRequest::default(),
        )
        .await
        .expect("list_spus");
    assert_eq!(spus.meta.total_count, 0);
}

/// References to resources that do not exist are `NotFound` and store nothing.
pub async fn unknown_references_are_not_found(system: &dyn TicketSystem) {
    let missing = i64::from(i32::MAX) - 7;
    assert_eq!(
        system.get_ticket(missing).await.expect_err("ticket").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        system
            .ticket(missing)
            .await
            .expect_err("ticket alone")
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        system.get_spu(missing).await.expect_err("spu").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        system
            .get_artifact(missing)
            .await
            .expect_err("artifact")
            .kind(),
        ErrorKind::NotFound
    );
    let err = system
        .create_spu(NewSourcePackageUpload {
            sourcepackage: Uri::new(missing),
            version: "1.0".into(),
            fingerprint: String::new(),
        })
        .await
        .expect_err("spu of a missing package");
    assert_eq!(err.kind(), ErrorKind::NotFound);

    let ticket = system
        .create_ticket(new_ticket("dev@example.com", "refs"))
        .await
        .expect("ticket");
    let err = system
        .create_subticket(NewSubticket {
            source_package_upload: Uri::new(missing),
            ticket: ticket.resource_uri,
            assignee: "dev@example.com".into(),
        })
        .await
        .expect_err("subticket of a missing upload");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = system
        .create_artifact(NewArtifact {
            name: "x.log".into(),
            subticket: None,
            ticket: Some(Uri::new(missing)),
            reference: "memory:///c/x.log".into(),
            artifact_type: ArtifactType::Log,
        })
        .await
        .expect_err("artifact of a missing ticket");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = system
        .record_transition(NewTransition {
            ticket: Uri::new(missing),
            step: WorkflowStep::Queued,
            status: StepStatus::Pending,
            message: String::new(),
        })
        .await
        .expect_err("transition of a missing ticket");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let detail = system.get_ticket(ticket.id).await.expect("ticket");
    assert!(detail.subtickets.is_empty() && detail.artifacts.is_empty());
}

/// One version, one upload: a second create of the same package and version conflicts.
pub async fn spu_is_unique_per_package_and_version(system: &dyn TicketSystem) {
    let (package, _) = system
        .get_or_create_source_package(&format!("hello{}", suffix()))
        .await
        .expect("package");
    let new = NewSourcePackageUpload {
        sourcepackage: package.resource_uri,
        version: "2.10-3".into(),
        fingerprint: String::new(),
    };
    let first = system.create_spu(new.clone()).await.expect("first upload");
    let err = system.create_spu(new).await.expect_err("second upload");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let other = system
        .create_spu(NewSourcePackageUpload {
            sourcepackage: package.resource_uri,
            version: "2.10-4".into(),
            fingerprint: String::new(),
        })
        .await
        .expect("another version");
    assert_ne!(first.id, other.id);
    let found = system
        .list_spus(
            SpuFilter {
                sourcepackage: Some(package.resource_uri),
                version: Some("2.10-3".into()),
            },
            PageRequest::default(),
        )
        .await
        .expect("list_spus");
    assert_eq!(found.objects, vec![first]);
}

/// get_or_create gives one package per name, even when raced.
pub async fn source_packages_are_get_or_create(system: Arc<dyn TicketSystem>) {
    let name = format!("race{}", suffix());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let system = system.clone();
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            system.get_or_create_source_package(&name).await
        }));
    }
    let mut ids = Vec::new();
    let mut created = 0;
    for task in tasks {
        let (package, was_created) = task.await.expect("task").expect("get_or_create");
        ids.push(package.id);
        created += usize::from(was_created);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one name, one package: {ids:?}");
    assert_eq!(created, 1, "exactly one call creates it");
    let page = system
        .list_source_packages(
            SourcePackageFilter { name: Some(name) },
            PageRequest::default(),
        )
        .await
        .expect("list_source_packages");
    assert_eq!(page.meta.total_count, 1);
}

/// Tickets created at once each come back as asked, with their own id.
pub async fn concurrent_creates_each_get_their_own_ticket(system: Arc<dyn TicketSystem>) {
    let owner = format!("crowd-{}@example.com", suffix());
    let mut tasks = Vec::new();
    for i in 0..50 {
        let system = system.clone();
        let owner = owner.clone();
        tasks.push(tokio::spawn(async move {
            let title = format!("crowd ticket {i}");
            let ticket = system
                .create_ticket(new_ticket(&owner, &title))
                .await
                .expect("create_ticket");
            (title, ticket)
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        let (title, ticket) = task.await.expect("task");
        assert_eq!(
            ticket.title, title,
            "each caller gets the ticket it asked for"
        );
        assert!(ids.insert(ticket.id), "ids are unique");
        let stored = system.get_ticket(ticket.id).await.expect("get_ticket");
        assert_eq!(stored.ticket, ticket);
    }
    let page = system
        .list_tickets(
            TicketFilter {
                owner: Some(owner),
                ..Default::default()
            },
            PageRequest::default(),
        )
        .await
        .expect("list");
    assert_eq!(page.meta.total_count, 50);
}

/// Owner and state filters, limit and offset, total counts.
pub async fn lists_filter_and_paginate(system: &dyn TicketSystem) {
    let owner = format!("lister-{}@example.com", suffix());
    let mut ids = Vec::new();
    for i in 0..5 {
        let t = system
            .create_ticket(new_ticket(&owner, &format!("ticket {i}")))
            .await
            .expect("create");
        ids.push(t.id);
    }
    let by_owner = TicketFilter {
        owner: Some(owner.clone()),
        ..Default::default()
    };
    let page = system
        .list_tickets(by_owner.clone(), PageRequest::new(2, 1))
        .await
        .expect("page");
    assert_eq!(page.meta.total_count, 5);
    assert_eq!(page.meta.limit, 2);
    assert_eq!(page.meta.offset, 1);
    assert_eq!(
        page.objects.iter().map(|t| t.id).collect::<Vec<_>>(),
        [ids[3], ids[2]],
        "newest first, offset then limit"
    );
    // The owner filter takes the owner as it is given at creation too.
    let named = system
        .list_tickets(
            TicketFilter {
                owner: Some(format!("Lister <{owner}>")),
                ..Default::default()
            },
            PageRequest::default(),
        )
        .await
        .expect("by name and address");
    assert_eq!(named.meta.total_count, 5);
    let past_end = system
        .list_tickets(by_owner.clone(), PageRequest::new(10, 10))
        .await
        .expect("past the end");
    assert!(past_end.objects.is_empty());
    assert_eq!(past_end.meta.total_count, 5);

    system
        .record_transition(NewTransition {
            ticket: Uri::new(ids[0]),
            step: WorkflowStep::SourceBuild,
            status: StepStatus::Failed,
            message: "build failed".into(),
        })
        .await
        .expect("fail one");
    let closed = system
        .list_tickets(
            TicketFilter {
                state: Some(TicketState::Closed),
                ..by_owner.clone()
            },
            PageRequest::default(),
        )
        .await
        .expect("closed");
    assert_eq!(
        closed.objects.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    let open = system
        .list_tickets(
            TicketFilter {
                state: Some(TicketState::Open),
                ..by_owner.clone()
            },
            PageRequest::default(),
        )
        .await
        .expect("open");
    assert_eq!(open.meta.total_count, 4);
    let failed = system
        .list_tickets(
            TicketFilter {
                status: Some(StepStatus::Failed),
                step: Some(WorkflowStep::SourceBuild),
                ..by_owner
            },
            PageRequest::default(),
        )
        .await
        .expect("failed");
    assert_eq!(failed.meta.total_count, 1);
}

/// Transitions update the ticket, are kept in order, and a closed ticket takes no more.
pub async fn transitions_keep_history_and_close(system: &dyn TicketSystem) {
    let ticket = system
        .create_ticket(new_ticket("dev@example.com", "progress"))
        .await
        .expect("ticket");
    let steps = [
        (WorkflowStep::Queued, StepStatus::Pending),
        (WorkflowStep::SourceBuild, StepStatus::InProgress),
        (WorkflowStep::SourceBuild, StepStatus::Succeeded),
        (WorkflowStep::Complete, StepStatus::Succeeded),
    ];
    for (step, status) in steps {
        let t = system
            .record_transition(NewTransition {
                ticket: ticket.resource_uri,
                step,
                status,
                message: format!("{step} {status}"),
            })
            .await
            .expect("transition");
        assert_eq!((t.step, t.status), (step, status));
        assert_eq!(
            system.get_transition(t.id).await.expect("get_transition"),
            t
        );
    }
    let detail = system.get_ticket(ticket.id).await.expect("ticket");
    assert_eq!(
        system.ticket(ticket.id).await.expect("ticket alone"),
        detail.ticket
    );
    assert_eq!(detail.ticket.current_workflow_step, WorkflowStep::Complete);
    assert_eq!(detail.ticket.status, StepStatus::Succeeded);
    assert_eq!(detail.ticket.state, TicketState::Closed);
    assert_eq!(
        detail
            .progress
            .iter()
            .map(|t| (t.step, t.status))
            .collect::<Vec<_>>(),
        steps.to_vec()
    );
    let listed = system
        .list_transitions(
            TransitionFilter {
                ticket: Some(ticket.resource_uri),
            },
            PageRequest::default(),
        )
        .await
        .expect("list_transitions");
    assert_eq!(listed.objects, detail.progress);
    let err = system
        .record_transition(NewTransition {
            ticket: ticket.resource_uri,
            step: WorkflowStep::Complete,
            status: StepStatus::Failed,
            message: String::new(),
        })
        .await
        .expect_err("a closed ticket moved");
    assert_eq!(err.kind(), ErrorKind::Conflict);

    let other = system
        .create_ticket(new_ticket("dev@example.com", "backwards"))
        .await
        .expect("ticket");
    system
        .record_transition(NewTransition {
            ticket: other.resource_uri,
            step: WorkflowStep::ImageBuild,
            status: StepStatus::InProgress,
            message: String::new(),
        })
        .await
        .expect("forward");
    let err = system
        .record_transition(NewTransition {
            ticket: other.resource_uri,
            step: WorkflowStep::Queued,
            status: StepStatus::Pending,
            message: String::new(),
        })
        .await
        .expect_err("went backwards");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let artifacts = system
        .list_artifacts(
            ArtifactFilter {
                ticket: Some(other.resource_uri),
                ..Default::default()
            },
            PageRequest::default(),
        )
        .await
        .expect("artifacts");
    assert!(artifacts.objects.is_empty());
}

/// A late subscriber gets the history, then live events, and the stream ends at closing.
pub async fn events_replay_then_follow(system: Arc<dyn TicketSystem>) {
    let ticket = system
        .create_ticket(new_ticket("dev@example.com", "events"))
        .await
        .expect("ticket");
    system
        .record_transition(NewTransition {
            ticket: ticket.resource_uri,
            step: WorkflowStep::Queued,
            status: StepStatus::Pending,
            message: "queued".into(),
        })
        .await
        .expect("queued");
    let mut stream = system.events(ticket.id, None).await.expect("subscribe");
    let created = next_event(&mut stream).await.expect("event").expect("ok");
    assert_eq!(created.kind, EventKind::TicketCreated);
    assert_eq!(created.ticket, ticket.resource_uri);
    let queued = next_event(&mut stream).await.expect("event").expect("ok");
    assert_eq!(queued.kind, EventKind::Progress);
    assert_eq!(queued.message, "queued");
    assert!(queued.id > created.id);

    let writer = system.clone();
    let uri = ticket.resource_uri;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer
            .create_artifact(NewArtifact {
                name: "build.log".into(),
                subticket: None,
                ticket: Some(uri),
                reference: "memory:///ticket.1.logs/build.log".into(),
                artifact_type: ArtifactType::BuildLog,
            })
            .await
            .expect("artifact");
        writer
            .record_transition(NewTransition {
                ticket: uri,
                step: WorkflowStep::Complete,
                status: StepStatus::Succeeded,
                message: "done".into(),
            })
            .await
            .expect("complete");
    });
    let artifact = next_event(&mut stream).await.expect("event").expect("ok");
    assert_eq!(artifact.kind, EventKind::ArtifactCreated);
    let done = next_event(&mut stream).await.expect("event").expect("ok");
    assert_eq!(done.kind, EventKind::Progress);
    assert!(done.closes_ticket());
    assert!(
        next_event(&mut stream).await.is_none(),
        "the stream ends when the ticket closes"
    );

    let mut resumed = system
        .events(ticket.id, Some(queued.id))
        .await
        .expect("resume");
    let first = next_event(&mut resumed).await.expect("event").expect("ok");
    assert_eq!(first.id, artifact.id, "resuming starts after the given id");

    let mut after_the_end = system
        .events(ticket.id, Some(done.id))
        .await
        .expect("resume after the closing event");
    assert!(
        next_event(&mut after_the_end).await.is_none(),
        "a closed ticket's stream resumed after its last event ends at once"
    );

    let err = system
        .events(i64::from(i32::MAX) - 3, None)
        .await
        .err()
        .expect("events of a missing ticket");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let subtickets = system
        .list_subtickets(
            SubticketFilter {
                ticket: Some(ticket.resource_uri),
                ..Default::default()
            },
            PageRequest::default(),
        )
        .await
        .expect("subtickets");
    assert!(subtickets.objects.is_empty());
}

async fn next_event(
    stream: &mut super::EventStream,
) -> Option<crate::error::Result<crate::model::TicketEvent>> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10 s")
}

/// A PostgreSQL database made for one test run and dropped after it.
#[derive(Debug)]
pub struct PostgresTestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PostgresTestDatabase {
    /// The URL of the fresh database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database.
    pub async fn drop(self) {
        if let Ok(mut conn) =
            <sqlx::AnyConnection as sqlx::Connection>::connect(&self.admin_url).await
        {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await;
        }
    }
}

/// Creates a fresh database on the server named by `UBUNTU_CI_TEST_POSTGRES`; `None`, with a
/// line on stderr saying the test was skipped, when the variable is unset.
pub async fn postgres_test_database() -> Option<PostgresTestDatabase> {
    let Ok(admin_url) = std::env::var("UBUNTU_CI_TEST_POSTGRES") else {
        eprintln!(
            "SKIPPED: PostgreSQL tests (set UBUNTU_CI_TEST_POSTGRES=postgres://user@host/db)"
        );
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!("ubuntu_ci_test_{:016x}", rand::random::<u64>());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin_url}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
    let mut url = url::Url::parse(&admin_url).expect("UBUNTU_CI_TEST_POSTGRES is a URL");
    url.set_path(&format!("/{name}"));
    Some(PostgresTestDatabase {
        admin_url,
        name,
        url: url.to_string(),
    })
}
