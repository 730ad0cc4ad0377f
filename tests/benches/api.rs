//! `POST /api/v1/ticket/` at 32 concurrent clients on SQLite, beside the same number of
//! creates made directly on the SQL store in the same run.
//!
//! Run: `cargo bench -p ubuntu-ci-tests --bench api` (UBUNTU_CI_BENCH_SECONDS sets each
//! phase's length, default 10; UBUNTU_CI_BENCH_CLIENTS the concurrency, default 32).
//! Target: the API reaches at least 30% of the direct rate, with p99 under 10 ms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ubuntu_ci_core::model::NewTicket;
use ubuntu_ci_core::tickets::sql::SqlTicketSystem;
use ubuntu_ci_core::tickets::TicketSystem;
use ubuntu_ci_tests::{TestServer, TOKEN};

struct Run {
    name: &'static str,
    latencies: Vec<Duration>,
    elapsed: Duration,
    errors: usize,
}

impl Run {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index].as_secs_f64() * 1000.0
    }
}

fn ticket(i: usize) -> NewTicket {
    NewTicket {
        owner: "bench@example.com".into(),
        title: format!("bench ticket {i}"),
        description: "benchmark".into(),
        bug_id: "123".into(),
    }
}

/// Runs `clients` loops of `call` for `duration` and gathers their latencies.
async fn drive<F, Fut>(name: &'static str, clients: usize, duration: Duration, call: F) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut i = client * 1_000_000;
            while Instant::now() < deadline {
                let t = Instant::now();
                if call(i).await {
                    latencies.push(t.elapsed());
                } else {
                    errors += 1;
                }
                i += 1;
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await.expect("bench task");
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    Run {
        name,
        latencies,
        elapsed,
        errors,
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that does not name us means "skip".
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !args.is_empty() && !args.iter().any(|a| "api".contains(a.as_str())) {
        return;
    }
    let seconds = env_number("UBUNTU_CI_BENCH_SECONDS", 10);
    let clients = env_number("UBUNTU_CI_BENCH_CLIENTS", 32) as usize;
    let duration = Duration::from_secs(seconds);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/direct.db", dir.path().display());
        let direct: Arc<dyn TicketSystem> =
            Arc::new(SqlTicketSystem::connect(&url).await.expect("sqlite"));
        // Warm-up: the first writes create the WAL and fill caches.
        for i in 0..100 {
            direct.create_ticket(ticket(i)).await.expect("warm-up");
        }
        let system = direct.clone();
        let direct_run = drive(
            "direct SqlTicketSystem::create_ticket",
            clients,
            duration,
            move |i| {
                let system = system.clone();
                async move { system.create_ticket(ticket(i)).await.is_ok() }
            },
        )
        .await;

        let server = TestServer::start().await;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .build()
            .expect("client");
        let endpoint = server.at("/api/v1/ticket/");
        for i in 0..100 {
            client
                .post(&endpoint)
                .bearer_auth(TOKEN)
                .json(&ticket(i))
                .send()
                .await
                .expect("warm-up");
        }
        let api_run = drive(
            "POST /api/v1/ticket/ (HTTP, SQLite)",
            clients,
            duration,
            move |i| {
                let client = client.clone();
                let endpoint = endpoint.clone();
                async move {
                    match client
                        .post(&endpoint)
                        .bearer_auth(TOKEN)
                        .json(&ticket(i))
                        .send()
                        .await
                    {
                        Ok(r) => r.status() == reqwest::StatusCode::CREATED,
                        Err(_) => false,
                    }
                }
            },
        )
        .await;

        println!();
        println!("{clients} concurrent clients, {seconds} s per row, SQLite in a temporary folder");
        println!();
        println!(
            "| {:<40} | {:>8} | {:>9} | {:>8} | {:>8} | {:>6} | {:>9} |",
            "what", "creates", "per s", "p50 ms", "p99 ms", "errors", "vs direct"
        );
        println!(
            "|{:-<42}|{:-<10}|{:-<11}|{:-<10}|{:-<10}|{:-<8}|{:-<11}|",
            "", "", "", "", "", "", ""
        );
        for run in [&direct_run, &api_run] {
            println!(
                "| {:<40} | {:>8} | {:>9.0} | {:>8.2} | {:>8.2} | {:>6} | {:>8.0}% |",
                run.name,
                run.latencies.len(),
                run.rate(),
                run.percentile(0.5),
                run.percentile(0.99),
                run.errors,
                100.0 * run.rate() / direct_run.rate()
            );
        }
        println!();
        let ratio = api_run.rate() / direct_run.rate();
        let p99 = api_run.percentile(0.99);
        println!(
            "target: API >= 30% of direct ({}), API p99 < 10 ms ({})",
            if ratio >= 0.3 { "met" } else { "NOT met" },
            if p99 < 10.0 { "met" } else { "NOT met" }
        );
    });
}
