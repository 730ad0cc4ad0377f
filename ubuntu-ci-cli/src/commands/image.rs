//! `ubuntu-ci image`: base images of a series, and images with a PPA's packages installed.

use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::image::{BaseImage, Bootstrap, BuildImage, ImageType};
use ubuntu_ci_core::ppa::PpaName;
use ubuntu_ci_core::queue::QueueName;

use crate::follow::{follow, outcome, LogTo};

/// `image` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Make (or reuse) a base image of a series with mmdebstrap; prints its URL
    Bootstrap(BootstrapArgs),
    /// Make an image from a base with a PPA's packages installed; prints its URL
    Build(BuildArgs),
}

/// Arguments of `image bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The series (default: the configured one, bookworm)
    #[arg(long)]
    pub series: Option<String>,
    /// The architecture (default: the host's)
    #[arg(long)]
    pub arch: Option<String>,
    /// ROOTFS (a root filesystem tarball) or CLOUD (qcow2; not supported here)
    #[arg(long = "type", default_value = "ROOTFS")]
    pub image_type: ImageType,
    /// Make it again even when one of the same recipe is stored
    #[arg(long)]
    pub refresh: bool,
}

/// Arguments of `image build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The base image's URL in the data store (from `image bootstrap`)
    #[arg(long)]
    pub base: String,
    /// A PPA to add as an apt source (repeat; the first carrying a package sets its version)
    #[arg(long = "ppa")]
    pub ppas: Vec<PpaName>,
    /// A binary package to install (repeat)
    #[arg(long = "package")]
    pub packages: Vec<String>,
    /// The base image's series (default: the configured one, bookworm)
    #[arg(long)]
    pub series: Option<String>,
    /// The architecture (default: the host's)
    #[arg(long)]
    pub arch: Option<String>,
    /// The ticket the image is for (stored in ticket.<id>.images, recorded as artifacts)
    #[arg(long, value_parser = crate::cli::ticket_id)]
    pub ticket: Option<i64>,
    /// ROOTFS or CLOUD (not supported here)
    #[arg(long = "type", default_value = "ROOTFS")]
    pub image_type: ImageType,
}

/// Runs an `image` subcommand.
pub async fn run(config: &Config, json: bool, command: ImageCommand) -> anyhow::Result<()> {
    let services = config.connect(None).await?;
    let default_series = config.ppa.archive_options()?.default_series.clone();
    let queue = QueueName::fresh("image-builder")?;
    let messages = services.queues.subscribe(&queue, None).await?;
    let cancel = CancellationToken::new();
    let images = services.images.clone();
    let (what, done) = match command {
        ImageCommand::Bootstrap(args) => {
            let request = Bootstrap {
                series: args.series.unwrap_or(default_series),
                image_type: args.image_type,
                architecture: args.arch,
                refresh: args.refresh,
                progress_queue: queue.to_string(),
            };
            let cancel = cancel.clone();
            (
                "image bootstrap",
                tokio::spawn(async move { images.bootstrap(request, cancel).await }),
            )
        }
        ImageCommand::Build(args) => {
            let request = BuildImage {
                base_image: BaseImage {
                    image_type: args.image_type,
                    url_list: vec![args.base],
                    series: args.series.unwrap_or(default_series),
                },
                ppa_list: args.ppas.iter().map(ToString::to_string).collect(),
                package_list: args.packages,
                progress_queue: queue.to_string(),
                ticket_id: args.ticket,
                architecture: args.arch,
            };
            let cancel = cancel.clone();
            (
                "image build",
                tokio::spawn(async move { images.build_image(request, cancel).await }),
            )
        }
    };
    let done = follow(what, messages, done, &cancel, json, LogTo::Stderr).await?;
    outcome(&done, what)?;
    if !json {
        for url in done
            .results
            .get("url_list")
            .and_then(|u| u.as_array())
            .into_iter()
            .flatten()
        {
            println!("{}", url.as_str().unwrap_or_default());
        }
    }
    Ok(())
}
