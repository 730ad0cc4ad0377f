//! The behaviour suite every [`ObjectStore`] backend runs.
//!
//! Each check is a public async function that panics, with a message naming the backend and
//! the broken promise, when the store does not keep the contract of [`ObjectStore`] and
//! [`DataStore`]. Backends call [`run_all`] from their unit tests (memory, file system); the
//! server's tests call it with an [`HttpStore`](super::http::HttpStore) pointed at a running
//! server, which checks the REST protocol from both ends. Every check works in containers of
//! its own (`conformance-<check>-<random>`), so the suite can run against a store in use and
//! several runs can share one store; it deletes what it created.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use url::Url;

use super::{encode_name, Body, ContainerName, DataStore, ObjectInfo, ObjectName, ObjectStore};
use crate::error::{ErrorKind, Result};

/// Runs every check of the suite, one after the other.
pub async fn run_all(store: Arc<dyn ObjectStore>) {
    put_get_list_delete(&store).await;
    empty_object(&store).await;
    replace_object(&store).await;
    not_found_cases(&store).await;
    ensure_container_semantics(&store).await;
    list_containers_sorted_by_prefix(&store).await;
    visibility_change(&store).await;
    delete_container_semantics(&store).await;
    special_names_round_trip(&store).await;
    url_round_trip(&store).await;
    container_isolation(&store).await;
    large_streamed_object(&store).await;
    put_from_file(&store).await;
    interrupted_put_changes_nothing(&store).await;
    replace_is_atomic_for_readers(&store).await;
    hostile_names_rejected(&store).await;
    data_store_seed_semantics(&store).await;
}

/// A container name no other check or run uses.
fn fresh(check: &str) -> ContainerName {
    let name = format!("conformance-{check}-{:08x}", rand::random::<u32>());
    ContainerName::new(name).unwrap_or_else(|e| panic!("bad test container name: {e}"))
}

fn object(name: &str) -> ObjectName {
    ObjectName::new(name).unwrap_or_else(|e| panic!("bad test object name: {e}"))
}

#[track_caller]
fn ok<T>(store: &Arc<dyn ObjectStore>, result: Result<T>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{store:?}: {what} failed: {e:?}"),
    }
}

#[track_caller]
fn expect_kind<T: std::fmt::Debug>(
    store: &Arc<dyn ObjectStore>,
    result: Result<T>,
    kind: ErrorKind,
    what: &str,
) {
    let actual = match result {
        Ok(value) => panic!("{store:?}: {what} should have failed, answered {value:?}"),
        Err(e) => e.kind(),
    };
    assert_eq!(
        actual, kind,
        "{store:?}: {what} should fail with {kind}, failed with {actual}"
    );
}

/// A reported SHA-256 must be right; a store may leave it out (a put does not hash).
fn check_sha256(store: &Arc<dyn ObjectStore>, sha256: &Option<String>, content: &[u8], what: &str) {
    if let Some(sha256) = sha256 {
        assert_eq!(sha256, &sha256_hex(content), "{store:?}: sha256 of {what}");
    }
}

fn sha256_hex(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

async fn read_all(store: &Arc<dyn ObjectStore>, mut reader: super::ObjectReader) -> Vec<u8> {
    let mut content = Vec::new();
    if let Err(e) = reader.read_to_end(&mut content).await {
        panic!("{store:?}: reading an object failed: {e}");
    }
    content
}

async fn get_content(
    store: &Arc<dyn ObjectStore>,
    c: &ContainerName,
    name: &ObjectName,
) -> (ObjectInfo, Vec<u8>) {
    let (info, reader) = ok(store, store.get(c, name).await, &format!("get {c}/{name}"));
    let content = read_all(store, reader).await;
    (info, content)
}

/// Checks an info against the content it describes.
#[track_caller]
fn check_info(
    store: &Arc<dyn ObjectStore>,
    info: &ObjectInfo,
    c: &ContainerName,
    name: &ObjectName,
    content: &[u8],
) {
    assert_eq!(
        info.container,
        c.as_str(),
        "{store:?}: info of {c}/{name} names its container"
    );
    assert_eq!(
        info.name,
        name.as_str(),
        "{store:?}: info of {c}/{name} names its object"
    );
    assert_eq!(
        info.size,
        content.len() as u64,
        "{store:?}: size of {c}/{name}"
    );
    check_sha256(store, &info.sha256, content, &format!("{c}/{name}"));
    assert_eq!(
        info.url,
        store.object_url(c, name).as_str(),
        "{store:?}: the info's url of {c}/{name} is its object_url"
    );
    let age = Utc::now().signed_duration_since(info.last_modified);
    assert!(
        age.num_minutes().abs() < 10,
        "{store:?}: last_modified of {c}/{name} is {}, not about now",
        info.last_modified
    );
}

async fn cleanup(store: &Arc<dyn ObjectStore>, c: &ContainerName) {
    ok(
        store,
        store.delete_container(c, true).await,
        &format!("recursive delete of {c}"),
    );
}

/// Put, get, head, list and delete of a few objects.
pub async fn put_get_list_delete(store: &Arc<dyn ObjectStore>) {
    let c = fresh("basic");
    ok(
        store,
        store.ensure_container(&c, true).await,
        "ensure_container",
    );
    let files: [(&str, &[u8]); 3] = [
        ("hello_2.10-3.dsc", b"Format: 3.0 (quilt)\nSource: hello\n"),
        (
            "hello_2.10.orig.tar.gz",
            b"\x1f\x8b\x08\x00 not really gzip",
        ),
        ("hello_2.10-3.debian.tar.xz", b"\xfd7zXZ\x00 not really xz"),
    ];
    for (name, content) in files {
        let name = object(name);
        let info = ok(
            store,
            store.put(&c, &name, Body::from(content)).await,
            "put",
        );
        check_info(store, &info, &c, &name, content);
        let head = ok(store, store.head(&c, &name).await, "head");
        assert_eq!(
            (head.size, &head.url),
            (info.size, &info.url),
            "{store:?}: head agrees with put"
        );
        assert_eq!(
            head.sha256.as_deref(),
            Some(sha256_hex(content).as_str()),
            "{store:?}: head reports the SHA-256"
        );
        assert!(
            (head.last_modified - info.last_modified)
                .num_seconds()
                .abs()
                <= 1,
            "{store:?}: head's last_modified {} is put's {}",
            head.last_modified,
            info.last_modified
        );
        let (got, read) = get_content(store, &c, &name).await;
        assert_eq!(read, content, "{store:?}: get returns what put stored");
        check_info(store, &got, &c, &name, content);
        // Whole, or cut one byte past a limit below the size.
        let size = content.len() as u64;
        let (whole_info, whole) = ok(store, store.get_bytes(&c, &name, size).await, "get_bytes");
        assert_eq!(
            whole, content,
            "{store:?}: get_bytes returns what put stored"
        );
        assert_eq!(
            whole_info.size, size,
            "{store:?}: get_bytes reports the size"
        );
        if size > 2 {
            let (_, cut) = ok(
                store,
                store.get_bytes(&c, &name, size - 2).await,
                "get_bytes under a limit",
            );
            assert_eq!(
                cut,
                &content[..content.len() - 1],
                "{store:?}: get_bytes reads one byte past its limit"
            );
        }
    }
    let listed = ok(store, store.list(&c).await, "list");
    let names: Vec<&str> = listed.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "hello_2.10-3.debian.tar.xz",
            "hello_2.10-3.dsc",
            "hello_2.10.orig.tar.gz"
        ],
        "{store:?}: list is sorted by name"
    );
    for info in &listed {
        let content = files
            .iter()
            .find(|(n, _)| *n == info.name)
            .map(|(_, c)| *c)
            .unwrap_or_default();
        check_info(store, info, &c, &object(&info.name), content);
    }
    let container = ok(store, store.container_info(&c).await, "container_info");
    let total: usize = files.iter().map(|(_, content)| content.len()).sum();
    assert_eq!(
        (
            container.name.as_str(),
            container.public,
            container.object_count,
            container.bytes
        ),
        (c.as_str(), true, 3, total as u64),
        "{store:?}: container_info counts objects and bytes"
    );

    let dsc = object("hello_2.10-3.dsc");
    ok(store, store.delete_object(&c, &dsc).await, "delete_object");
    expect_kind(
        store,
        store.head(&c, &dsc).await,
        ErrorKind::NotFound,
        "head of a deleted object",
    );
    expect_kind(
        store,
        store.get(&c, &dsc).await.map(|(i, _)| i),
        ErrorKind::NotFound,
        "get of a deleted object",
    );
    expect_kind(
        store,
        store.delete_object(&c, &dsc).await,
        ErrorKind::NotFound,
        "second delete_object",
    );
    let listed = ok(store, store.list(&c).await, "list after delete");
    assert_eq!(
        listed.len(),
        2,
        "{store:?}: a deleted object leaves the listing"
    );
    cleanup(store, &c).await;
}

/// A zero-byte object is an object.
pub async fn empty_object(store: &Arc<dyn ObjectStore>) {
    let c = fresh("empty");
    ok(
        store,
        store.ensure_container(&c, false).await,
        "ensure_container",
    );
    let name = object("empty");
    let info = ok(
        store,
        store.put(&c, &name, Body::from(Vec::new())).await,
        "put of nothing",
    );
    check_info(store, &info, &c, &name, b"");
    let head = ok(store, store.head(&c, &name).await, "head of nothing");
    assert_eq!(
        head.sha256.as_deref(),
        Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    let (_, content) = get_content(store, &c, &name).await;
    assert!(content.is_empty(), "{store:?}: an empty object reads empty");
    let info = ok(
        store,
        store
            .put(&c, &name, Body::from_reader(tokio::io::empty()))
            .await,
        "put of an empty stream",
    );
    check_info(store, &info, &c, &name, b"");
    cleanup(store, &c).await;
}

/// A put over an existing name replaces the object.
pub async fn replace_object(store: &Arc<dyn ObjectStore>) {
    let c = fresh("replace");
    ok(
        store,
        store.ensure_container(&c, true).await,
        "ensure_container",
    );
    let name = object("hello_2.10-3.dsc");
    ok(
        store,
        store
            .put(&c, &name, Body::from("first version, longer"))
            .await,
        "first put",
    );
    let info = ok(
        store,
        store.put(&c, &name, Body::from("second")).await,
        "second put",
    );
    check_info(store, &info, &c, &name, b"second");
    let (_, content) = get_content(store, &c, &name).await;
    assert_eq!(
        content, b"second",
        "{store:?}: the second put replaced the first"
    );
    let listed = ok(store, store.list(&c).await, "list");
    assert_eq!(
        listed.len(),
        1,
        "{store:?}: a replaced object is listed once"
    );
    assert_eq!(listed[0].size, 6);
    // Equal content again: idempotent.
    let again = ok(
        store,
        store.put(&c, &name, Body::from("second")).await,
        "repeated put",
    );
    check_sha256(store, &again.sha256, b"second", "a repeated put");
    cleanup(store, &c).await;
}

/// Absent containers and objects answer `NotFound`, and a put does not create a container.
pub async fn not_found_cases(store: &Arc<dyn ObjectStore>) {
    let absent = fresh("absent");
    let name = object("x.dsc");
    let nf = ErrorKind::NotFound;
    expect_kind(
        store,
        store.container_info(&absent).await,
        nf,
        "container_info of an absent container",
    );
    expect_kind(
        store,
        store.list(&absent).await,
        nf,
        "list of an absent container",
    );
    expect_kind(
        store,
        store.put(&absent, &name, Body::from("x")).await,
        nf,
        "put into an absent container",
    );
    expect_kind(
        store,
        store.container_info(&absent).await,
        nf,
        "container_info after a failed put",
    );
    expect_kind(
        store,
        store.get(&absent, &name).await.map(|(i, _)| i),
        nf,
        "get in an absent container",
    );
    expect_kind(
        store,
        store.get_bytes(&absent, &name, 10).await.map(|(i, _)| i),
        nf,
        "get_bytes in an absent container",
    );
    expect_kind(
        store,
        store.head(&absent, &name).await,
        nf,
        "head in an absent container",
    );
    expect_kind(
        store,
        store.delete_object(&absent, &name).await,
        nf,
        "delete_object in an absent container",
    );
    expect_kind(
        store,
        store.set_public(&absent, true).await,
        nf,
        "set_public of an absent container",
    );
    expect_kind(
        store,
        store.delete_container(&absent, false).await,
        nf,
        "delete of an absent container",
    );
    expect_kind(
        store,
        store.delete_container(&absent, true).await,
        nf,
        "recursive delete of an absent container",
    );

    let c = fresh("present");
    ok(
        store,
        store.ensure_container(&c, false).await,
        "ensure_container",
    );
    expect_kind(
        store,
        store.get(&c, &name).await.map(|(i, _)| i),
        nf,
        "get of an absent object",
    );
    expect_kind(
        store,
        store.head(&c, &name).await,
        nf,
        "head of an absent object",
    );
    expect_kind(
        store,
        store.delete_object(&c, &name).await,
        nf,
        "delete of an absent object",
    );
    cleanup(store, &c).await;
}

/// `ensure_container` is idempotent and keeps an existing container's visibility.
pub async fn ensure_container_semantics(store: &Arc<dyn ObjectStore>) {
    let c = fresh("ensure");
    let created = ok(
        store,
        store.ensure_container(&c, false).await,
        "ensure_container",
    );
    assert_eq!(
        (
            created.name.as_str(),
            created.public,
            created.object_count,
            created.bytes
        ),
        (c.as_str(), false, 0, 0),
        "{store:?}: a new container is empty with the visibility asked for"
    );
    ok(
        store,
        store.put(&c, &object("a"), Body::from("abc")).await,
        "put",
    );
    let again = ok(
        store,
        store.ensure_container(&c, true).await,
        "second ensure_container",
    );
    assert_eq!(
        (again.public, again.object_count, again.bytes),
        (false, 1, 3),
        "{store:?}: ensuring an existing container keeps its visibility and objects"
    );
    let info = ok(store, store.container_info(&c).await, "container_info");
    assert!(
        !info.public,
        "{store:?}: ensure_container(true) did not make an existing private container public"
    );
    cleanup(store, &c).await;
}

/// `list_containers` is sorted and filters by prefix.
pub async fn list_containers_sorted_by_prefix(store: &Arc<dyn ObjectStore>) {
    let prefix = fresh("list").to_string();
    let names = [
        format!("{prefix}.b"),
        format!("{prefix}.a"),
        format!("{prefix}.c"),
    ];
    let containers: Vec<ContainerName> = names
        .iter()
        .map(|n| ContainerName::new(n.as_str()).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    for (i, c) in containers.iter().enumerate() {
        ok(
            store,
            store.ensure_container(c, i % 2 == 0).await,
            "ensure_container",
        );
    }
    let listed = ok(
        store,
        store.list_containers(Some(&prefix)).await,
        "list_containers with a prefix",
    );
    let listed_names: Vec<&str> = listed.iter().map(|i| i.name.as_str()).collect();
    let mut expected: Vec<&str> = names.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(
        listed_names, expected,
        "{store:?}: list_containers filters by prefix and sorts"
    );
    let b = listed.iter().find(|i| i.name.ends_with(".b"));
    assert!(
        b.is_some_and(|b| b.public),
        "{store:?}: list_containers reports visibility"
    );
    let all = ok(store, store.list_containers(None).await, "list_containers");
    assert!(
        all.windows(2).all(|w| w[0].name < w[1].name),
        "{store:?}: list_containers(None) is sorted by name"
    );
    for name in &names {
        assert!(
            all.iter().any(|i| &i.name == name),
            "{store:?}: list_containers(None) has {name}"
        );
    }
    let none = ok(
        store,
        store.list_containers(Some(&format!("{prefix}.z"))).await,
        "list_containers",
    );
    assert!(
        none.is_empty(),
        "{store:?}: a prefix matching nothing lists nothing"
    );
    for c in &containers {
        cleanup(store, c).await;
    }
}

/// `set_public` changes visibility, idempotently.
pub async fn visibility_change(store: &Arc<dyn ObjectStore>) {
    let c = fresh("visibility");
    ok(
        store,
        store.ensure_container(&c, true).await,
        "ensure_container",
    );
    for public in [false, false, true, true, false] {
        ok(store, store.set_public(&c, public).await, "set_public");
        let info = ok(store, store.container_info(&c).await, "container_info");
        assert_eq!(
            info.public, public,
            "{store:?}: set_public({public}) took effect"
        );
    }
    let listed = ok(
        store,
        store.list_containers(Some(c.as_str())).await,
        "list_containers",
    );
    assert!(
        listed.iter().any(|i| i.name == c.as_str() && !i.public),
        "{store:?}: list_containers shows the changed visibility"
    );
    cleanup(store, &c).await;
}

/// Deleting a non-empty container needs `recursive`; deletion removes the objects for good.
pub async fn delete_container_semantics(store: &Arc<dyn ObjectStore>) {
    let c = fresh("delete");
    let name = object("hello_2.10-3.dsc");
    ok(
        store,
        store.ensure_container(&c, true).await,
        "ensure_container",
    );
    ok(store, store.put(&c, &name, Body::from("x")).await, "put");
    expect_kind(
        store,
        store.delete_container(&c, false).await,
        ErrorKind::Conflict,
        "non-recursive delete of a non-empty container",
    );
    let (_, content) = get_content(store, &c, &name).await;
    assert_eq!(
        content, b"x",
        "{store:?}: a refused delete leaves the objects"
    );

    ok(store, store.delete_object(&c, &name).await, "delete_object");
    ok(
        store,
        store.delete_container(&c, false).await,
        "non-recursive delete of an empty container",
    );
    expect_kind(
        store,
        store.container_info(&c).await,
        ErrorKind::NotFound,
        "container_info of a deleted container",
    );

    ok(store, store.ensure_container(&c, true).await, "re-creation");
    for n in ["a", "b", "c"] {
        ok(
            store,
            store.put(&c, &object(n), Body::from(n.to_string())).await,
            "put",
        );
    }
    ok(
        store,
        store.delete_container(&c, true).await,
        "recursive delete",
    );
    expect_kind(
        store,
        store.container_info(&c).await,
        ErrorKind::NotFound,
        "container_info after a recursive delete",
    );
    expect_kind(
        store,
        store.head(&c, &object("a")).await,
        ErrorKind::NotFound,
        "head after a recursive delete",
    );
    expect_kind(
        store,
        store.delete_container(&c, true).await,
        ErrorKind::NotFound,
        "second recursive delete",
    );
    let listed = ok(
        store,
        store.list_containers(Some(c.as_str())).await,
        "list_containers",
    );
    assert!(
        listed.iter().all(|i| i.name != c.as_str()),
        "{store:?}: a deleted container is not listed"
    );

    let reborn = ok(
        store,
        store.ensure_container(&c, false).await,
        "re-creation after a recursive delete",
    );
    assert_eq!(
        (reborn.public, reborn.object_count),
        (false, 0),
        "{store:?}: a re-created container is new: empty, with the visibility asked for"
    );
    assert!(
        ok(store, store.list(&c).await, "list").is_empty(),
        "{store:?}: no object comes back"
    );
    cleanup(store, &c).await;
}

/// Names real packages use (`~ + :`), spaces, punctuation and UTF-8 round-trip through
/// put, get, list and URLs.
pub async fn special_names_round_trip(store: &Arc<dyn ObjectStore>) {
    let c = fresh("names");
    ok(
        store,
        store.ensure_container(&c, true).await,
        "ensure_container",
    );
    let names = [
        "autopilot_1.5~dev.1_source.changes",
        "hello_2.10+dfsg-1.debian.tar.xz",
        "epoch:1.0-1.dsc",
        "with space.log",
        "ünïcødé-名前.txt",
        "percent%20literal",
        "q?h#a&b=c;d,e.txt",
        "quote'\"back\\slash",
        ".hidden",
        "-dash",
        "a.",
    ];
    for name in names {
        let name = object(name);
        let content = format!("content of {name}");
        let info = ok(
            store,
            store.put(&c, &name, Body::from(content.clone())).await,
            &format!("put {name:?}"),
        );
        check_info(store, &info, &c, &name, content.as_bytes());
        let url = Url::parse(&info.url)
            .unwrap_or_else(|e| panic!("{store:?}: bad URL {:?}: {e}", info.url));
        assert!(
            url.as_str()
                .ends_with(&format!("/{c}/{}", encode_name(&name))),
            "{store:?}: URL {url} ends with /<container>/<percent-encoded name>"
        );
        let resolved = ok(
            store,
            store.resolve_url(&url),
            &format!("resolve_url({url})"),
        );
        assert_eq!(
            resolved,
            (c.clone(), name.clone()),
            "{store:?}: resolve_url inverts object_url"
        );
        let (_, read) = get_content(store, &c, &name).await;
        assert_eq!(read, content.as_bytes(), "{store:?}: {name:?} round-trips");
    }
    let listed = ok(store, store.list(&c).await, "list");
    let mut expected: Vec<&str> = names.to_vec();
    expected.sort();
    let listed: Vec<&str> = listed.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        listed, expected,
        "{store:?}: special names list back exactly, sorted by bytes"
    );
    cleanup(store, &c).await;
}

/// `object_url` and `resolve_url` are inverses, offline, and foreign URLs are refused.
pub async fn url_round_trip(store: &Arc<dyn ObjectStore>) {
    let c = fresh("urls");
    let name = object("autopilot_1.5~dev.1_source.changes");
    // No container needed: URLs are computed, not looked up.
    let url = store.object_url(&c, &name);
    assert!(
        url.as_str()
            .ends_with(&format!("/{c}/autopilot_1.5~dev.1_source.changes")),
        "{store:?}: {url} ends with /<container>/<name>"
    );
    assert_eq!(
        ok(store, store.resolve_url(&url), "resolve_url"),
        (c.clone(), name.clone())
    );
    let mut other_host = url.clone();
    if other_host.set_host(Some("elsewhere.invalid")).is_ok() && other_host != url {
        expect_kind(
            store,
            store.resolve_url(&other_host),
            ErrorKind::InvalidInput,
            "resolve_url of another host's URL",
        );
    }
    for foreign in [
        "ftp://example.com/a/b",
        "http://elsewhere.invalid/store/c/n",
        "https://swift.example.com/v1/AUTH_x/ticket.1.sources/x.dsc",
    ] {
        let foreign = Url::parse(foreign).unwrap_or_else(|e| panic!("{e}"));
        expect_kind(
            store,
            store.resolve_url(&foreign),
            ErrorKind::InvalidInput,
            &format!("resolve_url({foreign})"),
        );
    }
    // The store's own URL shape, but a hostile name in it.
    let hostile = url
        .as_str()
        .replace("autopilot_1.5~dev.1_source.changes", "..%2Fx");
    if let Ok(hostile) = Url::parse(&hostile) {
        expect_kind(
            store,
            store.resolve_url(&hostile),
            ErrorKind::InvalidInput,
            &format!("resolve_url({hostile})"),
        );
    }
    // One segment too many.
    let deeper = url
        .as_str()
        .replace("autopilot_1.5~dev.1_source.changes", "a/b");
    if let Ok(deeper) = Url::parse(&deeper) {
        expect_kind(
            store,
            store.resolve_url(&deeper),
            ErrorKind::InvalidInput,
            &format!("resolve_url({deeper})"),
        );
    }
}

/// Objects of one container are invisible in another.
pub async fn container_isolation(store: &Arc<dyn ObjectStore>) {
    let a = fresh("isolation-a");
    let b = fresh("isolation-b");
    ok(
        store,
        store.ensure_container(&a, true).await,
        "ensure_container",
    );
    ok(
        store,
        store.ensure_container(&b, true).await,
        "ensure_container",
    );
    let name = object("same-name.dsc");
    ok(
        store,
        store.put(&a, &name, Body::from("in a")).await,
        "put in a",
    );
    expect_kind(
        store,
        store.head(&b, &name).await,
        ErrorKind::NotFound,
        "head of a's object in b",
    );
    assert!(
        ok(store, store.list(&b).await, "list b").is_empty(),
        "{store:?}: b is empty"
    );
    ok(
        store,
        store.put(&b, &name, Body::from("in b")).await,
        "put in b",
    );
    assert_eq!(
        get_content(store, &a, &name).await.1,
        b"in a",
        "{store:?}: a keeps its object"
    );
    assert_eq!(
        get_content(store, &b, &name).await.1,
        b"in b",
        "{store:?}: b has its own object"
    );
    assert_ne!(store.object_url(&a, &name), store.object_url(&b, &name));
    ok(store, store.delete_container(&a, true).await, "delete a");
    assert_eq!(
        get_content(store, &b, &name).await.1,
        b"in b",
        "{store:?}: deleting a leaves b alone"
    );
    cleanup(store, &b).await;
}

/// Pseudo-random bytes in reads of awkward sizes, hashed as they are produced.
struct GeneratedReader {
    remaining: usize,
    state: u64,
    hasher: Arc<std::sync::Mutex<Sha256>>,
}

impl AsyncRead for GeneratedReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.remaining.min(buf.remaining()).min(7919);
        let mut piece = Vec::with_capacity(n);
        for _ in 0..n {
            // xorshift64: cheap, deterministic, incompressible enough.
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            piece.push((self.state >> 24) as u8);
        }
        self.hasher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .update(&piece);
        buf.put_slice(&piece);
        self.remaining -= n;
        Poll::Ready(Ok(()))
    }
}

/// An 8 MiB object streamed from a reader has the right size and SHA-256, and streams back.
pub async fn large_streamed_object(store: &Arc<dyn ObjectStore>) {
    const SIZE: usize = 8 * 1024 * 1024 + 123;
    let c = fresh("large");
    ok(
        store,
        store.ensure_container(&c, false).await,
        "ensure_container",
    );
    let name = object("big.orig.tar.xz");
    let hasher = Arc::new(std::sync::Mutex::new(Sha256::new()));
    let reader = GeneratedReader {
        remaining: SIZE,
        state: 0x9e37_79b9_7f4a_7c15,
        hasher: hasher.clone(),
    };
    let info = ok(
        store,
        store.put(&c, &name, Body::from_reader(reader)).await,
        "put of 8 MiB",
    );
    let expected = hex::encode(
        hasher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .finalize(),
    );
    assert_eq!(
        info.size, SIZE as u64,
        "{store:?}: size of a streamed object"
    );
    if let Some(sha256) = &info.sha256 {
        assert_eq!(sha256, &expected, "{store:?}: sha256 of a streamed object");
    }

    let (got, mut reader) = ok(store, store.get(&c, &name).await, "get of 8 MiB");
    assert_eq!(got.size, SIZE as u64, "{store:?}: get's info");
    let mut hasher = Sha256::new();
    let mut size = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => panic!("{store:?}: reading a large object failed: {e}"),
        };
        hasher.update(&buf[..n]);
        size += n;
    }
    assert_eq!(size, SIZE, "{store:?}: a large object reads back whole");
    assert_eq!(
        hex::encode(hasher.finalize()),
        expected,
        "{store:?}: a large object reads back intact"
    );
    let head = ok(store, store.head(&c, &name).await, "head");
    assert_eq!((head.size, head.sha256), (SIZE as u64, Some(expected)));
    cleanup(store, &c).await;
}

/// `Body::from_file` streams a local file.
pub async fn put_from_file(store: &Arc<dyn ObjectStore>) {
    let c = fresh("file");
    ok(
        store,
        store.ensure_container(&c, false).await,
        "ensure_container",
    );
    let content: Vec<u8> = (0..(1024 * 1024 + 7)).map(|i| (i % 251) as u8).collect();
    let mut file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("temporary file: {e}"));
    std::io::Write::write_all(&mut file, &content)
        .unwrap_or_else(|e| panic!("temporary file: {e}"));
    let body = Body::from_file(file.path())
        .await
        .unwrap_or_else(|e| panic!("Body::from_file: {e}"));
    let name = object("from-file.bin");
    let info = ok(store, store.put(&c, &name, body).await, "put from a file");
    check_info(store, &info, &c, &name, &content);
    assert_eq!(get_content(store, &c, &name).await.1, content);
    let missing = Body::from_file(file.path().with_extension("missing")).await;
    assert_eq!(
        missing.map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::NotFound)
    );
    cleanup(store, &c).await;
}

/// Yields `good` bytes, then fails like a dropped connection.
struct FailingReader {
    good: usize,
}

impl AsyncRead for FailingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.good == 0 {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the uploader went away",
            )));
        }
        let n = self.good.min(buf.remaining()).min(64 * 1024);
        buf.put_slice(&vec![b'p'; n]);
        self.good -= n;
        Poll::Ready(Ok(()))
    }
}

/// A put whose body fails midway fails, and leaves the name as it was.
pub async fn interrupted_put_changes_nothing(store: &Arc<dyn ObjectStore>) {
    let c = fresh("interrupted");
    ok(
        store,
        store.ensure_container(&c, false).await,
        "ensure_container",
    );
    let fresh_name = object("never.tar.xz");
    let failing = Body::from_reader(FailingReader {
        good: 2 * 1024 * 1024 + 17,
    });
    // The reader's own error comes back (InvalidData: invalid input), whatever the
    // backend: a broken input is not a retryable transport failure.
    expect_kind(
        store,
        store.put(&c, &fresh_name, failing).await,
        ErrorKind::InvalidInput,
        "put of a failing body",
    );
    expect_kind(
        store,
        store.head(&c, &fresh_name).await,
        ErrorKind::NotFound,
        "head after an interrupted put",
    );

    let name = object("kept.dsc");
    let old = ok(
        store,
        store.put(&c, &name, Body::from("the old content")).await,
        "put",
    );
    let failing = Body::from_reader(FailingReader { good: 100 });
    expect_kind(
        store,
        store.put(&c, &name, failing).await,
        ErrorKind::InvalidInput,
        "replacing put of a failing body",
    );
    let (info, content) = get_content(store, &c, &name).await;
    assert_eq!(
        content, b"the old content",
        "{store:?}: an interrupted replace keeps the old content"
    );
    assert_eq!(info.size, old.size);
    check_sha256(store, &info.sha256, b"the old content", "the kept object");
    let listed = ok(store, store.list(&c).await, "list");
    assert_eq!(
        listed.len(),
        1,
        "{store:?}: an interrupted put lists nothing"
    );
    cleanup(store, &c).await;
}

/// Readers during replacements see one whole version, whose info matches its content.
pub async fn replace_is_atomic_for_readers(store: &Arc<dyn ObjectStore>) {
    const SIZE: usize = 256 * 1024;
    let c = fresh("atomic");
    ok(
        store,
        store.ensure_container(&c, false).await,
        "ensure_container",
    );
    let name = object("contended.bin");
    let versions: Vec<Bytes> = [b'a', b'b', b'c']
        .iter()
        .map(|b| Bytes::from(vec![*b; SIZE]))
        .collect();
    ok(
        store,
        store.put(&c, &name, Body::from(versions[0].clone())).await,
        "put",
    );
    let writer = {
        let (store, c, name, versions) = (store.clone(), c.clone(), name.clone(), versions.clone());
        tokio::spawn(async move {
            for round in 0..6 {
                let body = Body::from_reader(std::io::Cursor::new(versions[round % 3].clone()));
                if let Err(e) = store.put(&c, &name, body).await {
                    panic!("{store:?}: concurrent put failed: {e:?}");
                }
            }
        })
    };
    for _ in 0..12 {
        let (info, content) = get_content(store, &c, &name).await;
        assert_eq!(
            content.len(),
            SIZE,
            "{store:?}: a reader saw a partial object"
        );
        assert!(
            content.iter().all(|b| *b == content[0]),
            "{store:?}: a reader saw a mix of two versions"
        );
        check_sha256(
            store,
            &info.sha256,
            &content,
            "get's info of its own content",
        );
        tokio::task::yield_now().await;
    }
    join(store, writer).await;
    cleanup(store, &c).await;
}

async fn join(
    store: &Arc<dyn ObjectStore>,
    task: impl Future<Output = std::result::Result<(), tokio::task::JoinError>>,
) {
    if let Err(e) = task.await {
        panic!("{store:?}: a concurrent task failed: {e}");
    }
}

/// Hostile names are refused by [`DataStore`] with `InvalidInput`, and nothing is stored.
pub async fn hostile_names_rejected(store: &Arc<dyn ObjectStore>) {
    let container = fresh("hostile");
    let data = ok(
        store,
        DataStore::open(store.clone(), container.as_str(), "sources", true).await,
        "DataStore::open",
    );
    let long = "x".repeat(256);
    let hostile = [
        "../x",
        "/x",
        "a/b",
        "",
        "a\0b",
        long.as_str(),
        "..",
        ".",
        "a\nb",
        "x\u{7f}",
        "..\\..\\x/y",
    ];
    for name in hostile {
        let what = format!("put_file({name:?})");
        expect_kind(
            store,
            data.put_file(name, "evil").await,
            ErrorKind::InvalidInput,
            &what,
        );
        expect_kind(
            store,
            data.get_file(name).await.map(|_| ()),
            ErrorKind::InvalidInput,
            &format!("get_file({name:?})"),
        );
        expect_kind(
            store,
            data.delete_file(name).await,
            ErrorKind::InvalidInput,
            &format!("delete_file({name:?})"),
        );
        expect_kind(
            store,
            data.file_url(name),
            ErrorKind::InvalidInput,
            &format!("file_url({name:?})"),
        );
    }
    let listed = ok(store, data.list_files().await, "list_files");
    assert!(
        listed.is_empty(),
        "{store:?}: hostile names stored {listed:?}"
    );
    let containers = ok(
        store,
        store.list_containers(Some(container.as_str())).await,
        "list_containers",
    );
    assert_eq!(
        containers.len(),
        1,
        "{store:?}: hostile names created containers: {containers:?}"
    );
    expect_kind(
        store,
        DataStore::open(store.clone(), "../ticket", "sources", true).await,
        ErrorKind::InvalidInput,
        "DataStore::open(\"../ticket\")",
    );
    expect_kind(
        store,
        DataStore::open(store.clone(), "ticket.1", "", true).await,
        ErrorKind::InvalidInput,
        "DataStore::open with an empty component",
    );
    ok(store, data.delete(true).await, "delete");
}

/// The seed's `DataStore("ticket.N", "sources", public=True)` and its `put_file`.
pub async fn data_store_seed_semantics(store: &Arc<dyn ObjectStore>) {
    let ticket = format!("ticket.{}", rand::random::<u32>());
    let data = ok(
        store,
        DataStore::open(store.clone(), &ticket, "sources", true).await,
        "DataStore::open",
    );
    let expected = format!("{ticket}.sources");
    assert_eq!(
        data.container().as_str(),
        expected,
        "{store:?}: DataStore(name, component) is container name.component"
    );
    let info = ok(
        store,
        store.container_info(data.container()).await,
        "container_info",
    );
    assert!(
        info.public,
        "{store:?}: public=True makes a public container"
    );

    let name = "autopilot_1.5~dev.1_source.changes";
    let content = "Format: 1.8\nSource: autopilot\nVersion: 1.5~dev.1\n";
    let url = ok(store, data.put_file(name, content).await, "put_file");
    assert!(
        url.as_str().ends_with(&format!("/{expected}/{name}")),
        "{store:?}: put_file's URL {url} ends with /{expected}/{name}"
    );
    assert_eq!(
        ok(store, data.file_url(name), "file_url"),
        url,
        "{store:?}: file_url is put_file's URL"
    );
    let resolved = ok(store, store.resolve_url(&url), "resolve_url");
    assert_eq!(
        (resolved.0.as_str(), resolved.1.as_str()),
        (expected.as_str(), name)
    );
    assert_eq!(
        ok(store, data.get_bytes(name).await, "get_bytes"),
        content.as_bytes()
    );
    let read = read_all(store, ok(store, data.get_file(name).await, "get_file")).await;
    assert_eq!(read, content.as_bytes());
    let info = ok(
        store,
        data.put_file_info("hello_2.10-3.dsc", b"dsc".to_vec())
            .await,
        "put_file_info",
    );
    assert_eq!(info.size, 3);
    check_sha256(store, &info.sha256, b"dsc", "put_file_info");
    let files = ok(store, data.list_files().await, "list_files");
    let names: Vec<&str> = files.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, [name, "hello_2.10-3.dsc"], "{store:?}: list_files");

    // Opening again (even asking for private) keeps the container, its files and visibility.
    let again = ok(
        store,
        DataStore::open(store.clone(), &ticket, "sources", false).await,
        "second DataStore::open",
    );
    assert_eq!(ok(store, again.list_files().await, "list_files").len(), 2);
    assert!(
        ok(
            store,
            store.container_info(again.container()).await,
            "container_info"
        )
        .public
    );
    ok(
        store,
        again.change_visibility(false).await,
        "change_visibility",
    );
    assert!(
        !ok(
            store,
            store.container_info(data.container()).await,
            "container_info"
        )
        .public
    );

    ok(
        store,
        data.delete_file("hello_2.10-3.dsc").await,
        "delete_file",
    );
    expect_kind(
        store,
        data.get_bytes("hello_2.10-3.dsc").await,
        ErrorKind::NotFound,
        "get_bytes of a deleted file",
    );
    expect_kind(
        store,
        data.delete(false).await,
        ErrorKind::Conflict,
        "non-recursive delete of a non-empty DataStore",
    );
    ok(store, data.delete(true).await, "recursive delete");
    expect_kind(
        store,
        data.list_files().await,
        ErrorKind::NotFound,
        "list_files of a deleted DataStore",
    );
}
