//! `DataStore::put_file` through the Rust API, as the Python benchmark's baseline
//! (`benches/python-put.sh` runs both in one run and prints the comparison): `COUNT` small
//! objects put one after the other, then the file `BIG` put from the file itself. Prints one
//! JSON line of timings (seconds).
//!
//! Run: `cargo bench -p ubuntu-ci-tests --bench put_file -- DIR COUNT SIZE [BIG]`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ubuntu_ci_core::store::{open_store, Body, DataStore, StoreOptions};

/// Objects put before the timing starts (the Python side does the same).
const WARM_UP: usize = 50;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let parsed = match args.as_slice() {
        [dir, count, size, ..] => count
            .parse::<usize>()
            .ok()
            .zip(size.parse::<usize>().ok())
            .map(|(count, size)| (PathBuf::from(dir), count, size)),
        _ => None,
    };
    let Some((dir, count, size)) = parsed else {
        eprintln!("usage: put_file DIR COUNT SIZE [BIG] (COUNT and SIZE numbers)");
        std::process::exit(2);
    };
    let big = args.get(3).map(PathBuf::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        std::fs::create_dir_all(&dir).expect("dir");
        let url = url::Url::from_directory_path(&dir).expect("a directory URL");
        let store = open_store(
            url.as_str(),
            &StoreOptions {
                public_url: None,
                token: None,
            },
        )
        .expect("store");
        let data = DataStore::open(Arc::clone(&store), "bench.rust", "small", true)
            .await
            .expect("container");
        let content = bytes::Bytes::from(vec![b'x'; size]);
        // Warmed up as the Python side is (its runtime lives on between its runs): the
        // runtime's blocking threads started, the store's folders made.
        for n in 0..WARM_UP {
            data.put_file(&format!("warm-up-{n}"), Body::Bytes(content.clone()))
                .await
                .expect("put");
        }
        let started = Instant::now();
        for n in 0..count {
            data.put_file(&format!("object-{n}"), Body::Bytes(content.clone()))
                .await
                .expect("put");
        }
        let small = started.elapsed().as_secs_f64();
        let mut large = serde_json::Value::Null;
        if let Some(big) = big {
            let data = DataStore::open(store, "bench.rust", "large", true)
                .await
                .expect("container");
            let started = Instant::now();
            let file = std::fs::File::open(&big).expect("BIG");
            data.put_file("big", Body::File(file)).await.expect("put");
            large = started.elapsed().as_secs_f64().into();
        }
        println!(
            "{}",
            serde_json::json!({"small": small, "count": count, "large": large})
        );
    });
}
