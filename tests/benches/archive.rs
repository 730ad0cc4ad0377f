//! Publishing one binary package into an archive that already holds 100, 1,000 and 10,000
//! packages, beside regenerating the same tree's `Packages` with `apt-ftparchive packages`
//! in the same run.
//!
//! Run: `cargo bench -p ubuntu-ci-tests --bench archive` (needs apt-ftparchive, from
//! apt-utils). UBUNTU_CI_BENCH_SIZES overrides the sizes (`100,1000,10000`),
//! UBUNTU_CI_BENCH_REPEAT the publishes measured per size (default 5).
//! Target: the publish cost stays nearly flat as the archive grows, and at 10,000 packages it
//! is at least 10× faster than the full regeneration.
//!
//! The publish is the whole change: reading the .deb, placing it in the pool, the new
//! `Packages` with its `.gz` and `.xz`, the Release, both signatures, and the switch of the
//! live generation. apt-ftparchive only writes the uncompressed `Packages` to /dev/null.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ubuntu_ci_core::archive::{ArchiveOptions, Archives, Publishable};
use ubuntu_ci_core::ppa::PpaName;
use ubuntu_ci_tests::apt::write_minimal_deb;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn fill(archives: &Archives, ppa: &PpaName, debs: &Path, count: usize) {
    const BATCH: usize = 1000;
    let mut done = 0;
    while done < count {
        let batch = BATCH.min(count - done);
        let items: Vec<Publishable> = (done..done + batch)
            .map(|i| {
                let arch = if i % 5 == 0 { "all" } else { "amd64" };
                Publishable::Deb(write_minimal_deb(
                    debs,
                    &format!("pkg{i:05}"),
                    "1.0-1",
                    arch,
                ))
            })
            .collect();
        archives.publish(ppa, None, items).await.expect("fill");
        done += batch;
    }
}

fn apt_ftparchive(root: &Path) -> Duration {
    let start = Instant::now();
    let status = Command::new("apt-ftparchive")
        .args(["packages", "pool"])
        .current_dir(root)
        .stdout(Stdio::null())
        .status()
        .expect("apt-ftparchive (install apt-utils)");
    assert!(status.success(), "apt-ftparchive failed");
    start.elapsed()
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("UBUNTU_CI_BENCH_SIZES")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("sizes: numbers"))
        .collect();
    let repeat: usize = std::env::var("UBUNTU_CI_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    println!(
        "{:>8} {:>14} {:>18} {:>8}",
        "packages", "publish 1 (ms)", "apt-ftparchive (ms)", "ratio"
    );
    for size in sizes {
        let work = tempfile::tempdir().expect("tempdir");
        let archives = Archives::new(work.path().join("ppa"), ArchiveOptions::default());
        let ppa: PpaName = "ppa:ci-team/ppa_bench".parse().expect("name");
        let debs = work.path().join("debs");
        std::fs::create_dir_all(&debs).expect("mkdir");
        fill(&archives, &ppa, &debs, size).await;

        let mut publishes = Vec::with_capacity(repeat);
        for i in 0..repeat {
            let deb = write_minimal_deb(&debs, &format!("new{i:03}"), "2.0-1", "amd64");
            let start = Instant::now();
            let report = archives
                .publish(&ppa, None, vec![Publishable::Deb(deb)])
                .await
                .expect("publish");
            publishes.push(start.elapsed());
            assert_eq!(report.published.len(), 1);
        }
        let root = archives.path(&ppa);
        let regenerations: Vec<Duration> = (0..3).map(|_| apt_ftparchive(&root)).collect();
        let (publish, regenerate) = (median(publishes), median(regenerations));
        println!(
            "{:>8} {:>14.1} {:>18.1} {:>7.1}x",
            size,
            ms(publish),
            ms(regenerate),
            regenerate.as_secs_f64() / publish.as_secs_f64()
        );
    }
}
