//! A lander in a process of its own, with instant workers, for the kill tests
//! (tests/tests/lander_kill.rs): killed with SIGKILL at a point, then run again to resume.
//!
//!     lander_victim DATA_DIR run REQUEST.json   # executes the request
//!     lander_victim DATA_DIR resume             # resumes what a killed one left
//!
//! `UBUNTU_CI_TEST_HANG_AT` names the point where it stops for good (after printing
//! `HANGING <point>`): a worker's (see `ubuntu_ci_tests::fakes`), `prepare` (the first
//! archive made ready: the PPA's, in PPA_ASSIGNMENT), or `copy` / `copied` around the
//! archive copy of PUBLISH. Each outcome is printed as `OUTCOME <json>`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use ubuntu_ci_core::archive::{ArchiveService, Archives, PublishReport, PublishedPackage};
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::lander::{ExecuteRequest, Lander, LanderOptions};
use ubuntu_ci_core::ppa::PpaName;
use ubuntu_ci_core::Result;
use ubuntu_ci_tests::fakes::{instant, Hang};

/// The archives, stopping at `copy` (before a copy) or `copied` (after it).
#[derive(Debug)]
struct HangingArchives {
    inner: Arc<dyn ArchiveService>,
    hang: Hang,
}

#[async_trait]
impl ArchiveService for HangingArchives {
    async fn publish_files(
        &self,
        ppa: &PpaName,
        series: Option<&str>,
        files: &[PathBuf],
    ) -> Result<PublishReport> {
        self.inner.publish_files(ppa, series, files).await
    }

    async fn packages(&self, ppa: &PpaName, series: Option<&str>) -> Result<Vec<PublishedPackage>> {
        self.inner.packages(ppa, series).await
    }

    async fn remove_package(
        &self,
        ppa: &PpaName,
        series: Option<&str>,
        name: &str,
        version: Option<&str>,
    ) -> Result<PublishReport> {
        self.inner.remove_package(ppa, series, name, version).await
    }

    async fn copy_package(
        &self,
        from: &PpaName,
        to: &PpaName,
        series: Option<&str>,
        name: &str,
        version: Option<&str>,
    ) -> Result<PublishReport> {
        self.hang.point("copy").await;
        let report = self
            .inner
            .copy_package(from, to, series, name, version)
            .await?;
        self.hang.record(&format!("copied {name}"));
        self.hang.point("copied").await;
        Ok(report)
    }

    async fn prepare(&self, ppa: &PpaName, series: Option<&str>) -> Result<()> {
        self.hang.point("prepare").await;
        self.inner.prepare(ppa, series).await
    }

    async fn signing_key(&self, ppa: &PpaName) -> Result<String> {
        self.inner.signing_key(ppa).await
    }

    fn location(&self, ppa: &PpaName) -> String {
        self.inner.location(ppa)
    }

    fn local(&self) -> Option<&Archives> {
        self.inner.local()
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: lander_victim DATA_DIR run REQUEST.json | lander_victim DATA_DIR resume");
        std::process::exit(2);
    }
    let data = Path::new(&args[1]);
    let config = Config {
        data_dir: Some(data.to_path_buf()),
        ..Config::default()
    };
    let services = config.connect(None).await.expect("services");
    let (mut services, ..) = instant(services, data.join("debs"), &[], &[], Duration::ZERO);
    services.archives = Arc::new(HangingArchives {
        inner: services.archives.clone(),
        hang: Hang::from_env(),
    });
    let lander = Lander::new(services, LanderOptions::new("bookworm").expect("options"));
    let outcomes = match args[2].as_str() {
        "run" => {
            let text = std::fs::read_to_string(&args[3]).expect("the request file");
            let request: ExecuteRequest = serde_json::from_str(&text).expect("a request");
            vec![lander
                .execute(request, CancellationToken::new())
                .await
                .expect("execute")]
        }
        "resume" => lander
            .resume(CancellationToken::new())
            .await
            .expect("resume"),
        other => panic!("unknown mode {other}"),
    };
    for outcome in outcomes {
        println!(
            "OUTCOME {}",
            serde_json::to_string(&outcome).expect("outcome")
        );
    }
}
