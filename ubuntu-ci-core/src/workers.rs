//! Workers of services reached through a server.
//!
//! Building and testing through a server needs workers fed through the server's queues
//! (RabbitMQ), which come with the lander. Until then, [`ThroughServer`] stands for the
//! builders of a client: every request is refused with `Unsupported`, and nothing is
//! started.

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::builder::{BuildSource, SourceBuilder};
use crate::error::{Error, Result};
use crate::image::{Bootstrap, BuildImage, ImageBuilder};
use crate::queue::Done;
use crate::runner::{TestImage, TestRunner};

/// The workers of a client of a server: not there yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThroughServer;

fn unsupported(what: &str) -> Error {
    Error::unsupported(format!(
        "{what} through a server needs workers, which are not there yet; run it on the \
         server's machine (without --server) instead"
    ))
}

#[async_trait]
impl SourceBuilder for ThroughServer {
    async fn build_source(&self, _: BuildSource, _: CancellationToken) -> Result<Done> {
        Err(unsupported("building"))
    }
}

#[async_trait]
impl ImageBuilder for ThroughServer {
    async fn bootstrap(&self, _: Bootstrap, _: CancellationToken) -> Result<Done> {
        Err(unsupported("making a base image"))
    }

    async fn build_image(&self, _: BuildImage, _: CancellationToken) -> Result<Done> {
        Err(unsupported("building an image"))
    }
}

#[async_trait]
impl TestRunner for ThroughServer {
    async fn test_image(&self, _: TestImage, _: CancellationToken) -> Result<Done> {
        Err(unsupported("running tests"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_request_is_unsupported() {
        let request = BuildSource {
            source_packages: vec![],
            ppa: "ppa:ci-team/ppa_build_1".into(),
            progress_queue: "q".into(),
            ticket_id: None,
            series: None,
            architecture: None,
        };
        let err = ThroughServer
            .build_source(request, CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Unsupported);
        let err = ThroughServer
            .bootstrap(
                Bootstrap {
                    series: "bookworm".into(),
                    image_type: Default::default(),
                    architecture: None,
                    refresh: false,
                    progress_queue: "q".into(),
                },
                CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Unsupported);
    }
}
