//! `ubuntu-ci test`: runs a package's DEP-8 tests in an image with autopkgtest.

use clap::Args;
use tokio_util::sync::CancellationToken;
use ubuntu_ci_core::builder::standalone::stage_upload;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::queue::QueueName;
use ubuntu_ci_core::runner::{PackageNames, TestImage};
use ubuntu_ci_core::Error;

use crate::follow::{follow, LogTo};

/// Arguments of `test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The image's URL in the data store (from `image build`)
    pub image: String,
    /// The binary package(s) whose source's tests run
    #[arg(required = true)]
    pub packages: Vec<String>,
    /// The source upload to take the tests from (default: the source the image's PPAs
    /// publish)
    #[arg(long)]
    pub source: Option<std::path::PathBuf>,
    /// The ticket (results in ticket.<id>.test-runner, recorded as artifacts)
    #[arg(long, value_parser = crate::cli::ticket_id)]
    pub ticket: Option<i64>,
    /// The test request's id (default: a new one)
    #[arg(long)]
    pub id: Option<String>,
}

/// Runs `test`: exit status 0 when the tests passed, were skipped or there were none
/// (none of which fails a request), 10 when they failed, 11 when they could not run.
pub async fn run(config: &Config, json: bool, args: TestArgs) -> anyhow::Result<()> {
    let services = config.connect(None).await?;
    let queue = QueueName::fresh("test-runner")?;
    // A new request's id: the queue's own number.
    let id = args.id.unwrap_or_else(|| {
        queue
            .as_str()
            .trim_start_matches("test-runner-")
            .trim_end_matches("-exchange")
            .to_owned()
    });
    let source_packages = match &args.source {
        Some(changes) => stage_upload(&services, changes, &format!("test.{queue}")).await?,
        None => Vec::new(),
    };
    let request = TestImage {
        test_request_id: id,
        image_url: args.image,
        package_name: PackageNames::Many(args.packages),
        progress_queue: Some(queue.to_string()),
        ticket_id: args.ticket,
        source_packages,
    };
    let messages = services.queues.subscribe(&queue, None).await?;
    let cancel = CancellationToken::new();
    let done = {
        let (tests, cancel) = (services.tests.clone(), cancel.clone());
        tokio::spawn(async move { tests.test_image(request, cancel).await })
    };
    let done = follow("test", messages, done, &cancel, json, LogTo::Stdout).await?;
    crate::follow::outcome(&done, "test run")?;
    match done.results.get("test_result").and_then(|r| r.as_str()) {
        Some("FAILED") => Err(crate::exit::TestsDidNotPass("FAILED".to_owned()).into()),
        Some(_) => Ok(()),
        None => Err(Error::internal("the test runner gave no test_result").into()),
    }
}
