//! What one client, or many, may hold of a server: slow and idle connections are closed
//! after the time limit, past the connection cap a client gets a 503 at once, one address
//! cannot take every event stream, a body that stalls frees its connection, and through
//! all of it the server keeps answering others.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use ubuntu_ci_core::config::ServeLimits;
use ubuntu_ci_tests::{TestServer, TOKEN};

fn address(server: &TestServer) -> String {
    server.url.authority().to_owned()
}

/// Reads from `stream` until the server closes it; how long that took.
fn until_closed(mut stream: TcpStream, within: Duration) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    stream.set_read_timeout(Some(within)).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (started.elapsed(), seen),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (started.elapsed(), seen)
            }
            Err(e) => panic!("the server kept the connection open past {within:?}: {e}"),
        }
    }
}

async fn answers_quickly(server: &TestServer) {
    let started = Instant::now();
    let response = reqwest::get(server.at("/api/v1/ticket/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // A bound on liveness (the server is not stuck behind the greedy clients), generous
    // for a loaded CI host; latencies are the business of a load benchmark.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_and_idle_connections_are_closed_and_others_answered() {
    let limits = ServeLimits {
        header_timeout_secs: 1,
        ..ServeLimits::default()
    };
    let server = TestServer::start_with(|state| state.with_limits(limits)).await;
    let address = address(&server);
    // Half a request head, then nothing (slow-loris), and a connection that says nothing.
    let mut slow = TcpStream::connect(&address).unwrap();
    slow.write_all(b"GET /api/v1/ticket/ HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let idle = TcpStream::connect(&address).unwrap();
    answers_quickly(&server).await;
    let (slow_took, idle_took) = tokio::task::spawn_blocking(move || {
        (
            until_closed(slow, Duration::from_secs(10)).0,
            until_closed(idle, Duration::from_secs(10)).0,
        )
    })
    .await
    .unwrap();
    assert!(slow_took < Duration::from_secs(5), "{slow_took:?}");
    assert!(idle_took < Duration::from_secs(5), "{idle_took:?}");
    answers_quickly(&server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_connection_cap_a_client_gets_a_503_at_once() {
    let limits = ServeLimits {
        max_connections: 4,
        ..ServeLimits::default()
    };
    let server = TestServer::start_with(|state| state.with_limits(limits)).await;
    let address = address(&server);
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(&address).unwrap())
        .collect();
    // Let the server take them all before the next.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = TcpStream::connect(&address).unwrap();
    let (took, answer) =
        tokio::task::spawn_blocking(move || until_closed(refused, Duration::from_secs(5)))
            .await
            .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"kind\":\"unavailable\""), "{answer}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(held);
    // Their slots come back once the server sees them closed.
    let mut answered = false;
    for _ in 0..40 {
        if let Ok(response) = reqwest::get(server.at("/api/v1/ticket/")).await {
            if response.status() == StatusCode::OK {
                answered = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "the server answers again");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_cannot_take_every_event_stream() {
    let limits = ServeLimits {
        max_event_streams_per_client: 2,
        ..ServeLimits::default()
    };
    let server = TestServer::start_with(|state| state.with_limits(limits)).await;
    let response = reqwest::Client::new()
        .post(server.at("/api/v1/ticket/"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"owner": "dev@example.com", "title": "events"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let events = server.at("/api/v1/ticket/1/events/");
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let greedy = from("127.0.0.1");
    let mut open = Vec::new();
    for _ in 0..2 {
        let stream = greedy.get(&events).send().await.unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        open.push(stream);
    }
    let third = greedy.get(&events).send().await.unwrap();
    assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = third.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("the most one client may"),
        "{body}"
    );
    // Another address (loopback is all of 127.0.0.0/8) still gets one.
    let other = from("127.0.0.2").get(&events).send().await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    drop(open);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_stalls_frees_its_connection() {
    let limits = ServeLimits {
        body_timeout_secs: 1,
        ..ServeLimits::default()
    };
    let server = TestServer::start_with(|state| state.with_limits(limits)).await;
    let container = ubuntu_ci_core::store::ContainerName::new("ticket.1.sources").unwrap();
    server
        .client(Some(TOKEN))
        .await
        .store
        .ensure_container(&container, true)
        .await
        .unwrap();
    let mut stalled = TcpStream::connect(address(&server)).unwrap();
    let head = format!(
        "PUT /store/ticket.1.sources/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: 1000000\r\n\r\n"
    );
    stalled.write_all(head.as_bytes()).unwrap();
    stalled.write_all(&[b'x'; 1000]).unwrap();
    let (took, answer) =
        tokio::task::spawn_blocking(move || until_closed(stalled, Duration::from_secs(10)))
            .await
            .unwrap();
    assert!(took < Duration::from_secs(6), "{took:?}");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        answer.is_empty() || !answer.starts_with("HTTP/1.1 2"),
        "nothing stored: {answer}"
    );
    let stored = server
        .client(Some(TOKEN))
        .await
        .store
        .list(&container)
        .await
        .unwrap();
    assert!(stored.is_empty(), "{stored:?}");
    answers_quickly(&server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_past_the_size_cap_are_refused_and_not_stored() {
    let limits = ServeLimits {
        max_object_bytes: 1000,
        ..ServeLimits::default()
    };
    let server = TestServer::start_with(|state| state.with_limits(limits)).await;
    let container = ubuntu_ci_core::store::ContainerName::new("ticket.1.sources").unwrap();
    let services = server.client(Some(TOKEN)).await;
    services
        .store
        .ensure_container(&container, true)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let put = |name: &str| {
        client
            .put(server.at(&format!("/store/ticket.1.sources/{name}")))
            .bearer_auth(TOKEN)
    };
    // Said by its length, and streamed without one.
    let said = put("said").body(vec![b'x'; 2000]).send().await.unwrap();
    assert_eq!(said.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let chunks = futures::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 500]))),
    );
    let streamed = put("streamed")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = streamed.json().await.unwrap();
    assert_eq!(body["kind"], "too_large");
    let small = put("small").body(vec![b'x'; 500]).send().await.unwrap();
    assert_eq!(small.status(), StatusCode::CREATED);
    let names: Vec<String> = services
        .store
        .list(&container)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, ["small"]);
}
