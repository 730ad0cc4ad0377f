//! The conformance suite of [`PpaAssigner`]: every backend runs [`run_all`].
//!
//! Each check makes its own pool (a random owner) through the `make` function the backend
//! passes, so that the checks can choose sizes, waits and leases, and run side by side on
//! one database.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{PoolOptions, PpaAssigner, PpaCleaner, PpaName, PpaState};
use crate::archive::{ArchiveOptions, Archives};
use crate::error::ErrorKind;
use crate::model::NewTicket;
use crate::tickets::TicketSystem;

/// Runs every check. `make` builds a pool of the backend with the given options and
/// cleaner; `archives` is a folder for the local archives the checks fill and watch emptied.
pub async fn run_all<F, Fut>(tickets: Arc<dyn TicketSystem>, archives: PathBuf, make: F)
where
    F: Fn(PoolOptions, Arc<dyn PpaCleaner>) -> Fut,
    Fut: Future<Output = Arc<dyn PpaAssigner>>,
{
    let local = Archives::new(archives, ArchiveOptions::default());
    let cleaner: Arc<dyn PpaCleaner> = Arc::new(local.clone());
    let pool = |size, max, wait_ms, lease_ms| {
        make(
            PoolOptions {
                owner: format!("test-{:08x}", rand::random::<u32>()),
                size,
                max,
                wait: Duration::from_millis(wait_ms),
                lease: Duration::from_millis(lease_ms),
            },
            cleaner.clone(),
        )
    };
    let hour = 3_600_000;
    get_is_idempotent_and_release_cleans(&*tickets, &*pool(2, 2, 1000, hour).await, &local).await;
    the_pool_grows_to_its_maximum_then_waits(&*tickets, &*pool(1, 2, 300, hour).await).await;
    lapsed_leases_are_reclaimed(&*tickets, &*pool(1, 1, 2000, 300).await).await;
    unknown_tickets_are_not_found(&*pool(1, 1, 100, hour).await).await;
    no_ppa_is_ever_held_twice(tickets.clone(), pool(5, 5, 60_000, hour).await).await;
}

async fn ticket(tickets: &dyn TicketSystem, title: &str) -> i64 {
    tickets
        .create_ticket(NewTicket {
            owner: "lander@example.com".into(),
            title: title.into(),
            description: String::new(),
            bug_id: String::new(),
        })
        .await
        .expect("create_ticket")
        .id
}

/// The same ticket gets the same PPA; a release empties the archive and frees the PPA.
pub async fn get_is_idempotent_and_release_cleans(
    tickets: &dyn TicketSystem,
    pool: &dyn PpaAssigner,
    archives: &Archives,
) {
    let listed = pool.list().await.expect("list");
    assert_eq!(listed.len(), 2, "the pool starts with its size");
    assert!(listed.iter().all(|p| p.state == PpaState::Free));
    assert!(listed[0].name.name() == "ppa_build_1" && listed[1].name.name() == "ppa_build_2");

    let t = ticket(tickets, "idempotent").await;
    let first = pool.get_ppa(t).await.expect("get_ppa");
    assert_eq!(first.state, PpaState::Reserved);
    assert_eq!(first.ticket, Some(t));
    assert!(first.lease_expires_at.is_some());
    let again = pool.get_ppa(t).await.expect("get_ppa again");
    assert_eq!(again.name, first.name, "one ticket, one PPA");
    assert!(
        again.lease_expires_at >= first.lease_expires_at,
        "asking renews the lease"
    );
    let renewed = pool.renew(t).await.expect("renew");
    assert_eq!(renewed.name, first.name);

    // Something published in the archive, to be emptied on release.
    let dir = archives.path(&first.name);
    archives
        .ensure(&first.name, None)
        .await
        .expect("an archive");
    std::fs::create_dir_all(dir.join("pool/main/h/hello")).expect("archive dir");
    std::fs::write(dir.join("pool/main/h/hello/hello_1.0.dsc"), b"x").expect("archive file");
    pool.release_ppa(t).await.expect("release_ppa");
    assert!(!dir.exists(), "a released PPA's archive is emptied");
    let state = pool
        .list()
        .await
        .expect("list")
        .into_iter()
        .find(|p| p.name == first.name)
        .expect("the PPA is still in the pool");
    assert_eq!((state.state, state.ticket), (PpaState::Free, None));
    pool.release_ppa(t)
        .await
        .expect("a second release is a no-op");
    assert_eq!(
        pool.renew(t).await.expect_err("renew after release").kind(),
        ErrorKind::NotFound
    );
}

/// Beyond its size the pool grows to its maximum; beyond that `get_ppa` waits, then fails
/// with a retryable error; a release lets the waiter through.
pub async fn the_pool_grows_to_its_maximum_then_waits(
    tickets: &dyn TicketSystem,
    pool: &dyn PpaAssigner,
) {
    let a = ticket(tickets, "a").await;
    let b = ticket(tickets, "b").await;
    let c = ticket(tickets, "c").await;
    let pa = pool.get_ppa(a).await.expect("first");
    let pb = pool.get_ppa(b).await.expect("second, grown");
    assert_ne!(pa.name, pb.name);
    assert_eq!(pool.list().await.expect("list").len(), 2);
    let started = std::time::Instant::now();
    let err = pool.get_ppa(c).await.expect_err("the pool is full");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "get_ppa waited for its wait time before giving up"
    );
    pool.release_ppa(a).await.expect("release");
    let pc = pool.get_ppa(c).await.expect("a released PPA is lent again");
    assert_eq!(pc.name, pa.name);
    assert_eq!(
        pool.list().await.expect("list").len(),
        2,
        "no growth past the maximum"
    );
}

/// A reservation not renewed within its lease is reclaimed for the next ticket.
pub async fn lapsed_leases_are_reclaimed(tickets: &dyn TicketSystem, pool: &dyn PpaAssigner) {
    let stuck = ticket(tickets, "stuck").await;
    let next = ticket(tickets, "next").await;
    let held = pool.get_ppa(stuck).await.expect("get_ppa");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let reclaimed = pool
        .get_ppa(next)
        .await
        .expect("the lapsed PPA is lent again");
    assert_eq!(reclaimed.name, held.name);
    assert_eq!(reclaimed.ticket, Some(next));
    assert_eq!(
        pool.renew(stuck)
            .await
            .expect_err("the lapsed lease")
            .kind(),
        ErrorKind::NotFound
    );
}

/// A ticket that does not exist gets no PPA.
pub async fn unknown_tickets_are_not_found(pool: &dyn PpaAssigner) {
    let err = pool
        .get_ppa(i64::from(i32::MAX) - 11)
        .await
        .expect_err("unknown ticket");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(pool
        .list()
        .await
        .expect("list")
        .iter()
        .all(|p| p.state == PpaState::Free));
}

/// 100 tickets at once on a pool of 5: every one gets a PPA, and no PPA is ever held by
/// two tickets at the same time.
pub async fn no_ppa_is_ever_held_twice(tickets: Arc<dyn TicketSystem>, pool: Arc<dyn PpaAssigner>) {
    let holders: Arc<Mutex<HashMap<PpaName, i64>>> = Arc::default();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (tickets, pool, holders) = (tickets.clone(), pool.clone(), holders.clone());
        tasks.push(tokio::spawn(async move {
            let t = ticket(&*tickets, &format!("crowd {i}")).await;
            let ppa = pool
                .get_ppa(t)
                .await
                .expect("every ticket gets a PPA in time");
            if let Some(other) = holders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(ppa.name.clone(), t)
            {
                panic!(
                    "{} lent to ticket {t} while ticket {other} holds it",
                    ppa.name
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            holders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&ppa.name);
            pool.release_ppa(t).await.expect("release");
            ppa.name
        }));
    }
    let mut used = std::collections::BTreeSet::new();
    for task in tasks {
        used.insert(task.await.expect("task").to_string());
    }
    assert!(
        used.len() <= 5,
        "only the pool's 5 PPAs were lent: {used:?}"
    );
    let listed = pool.list().await.expect("list");
    assert_eq!(listed.len(), 5);
    assert!(
        listed
            .iter()
            .all(|p| p.state == PpaState::Free && p.ticket.is_none()),
        "every PPA is free again: {listed:?}"
    );
}
