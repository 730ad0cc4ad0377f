//! The PPA pool over HTTP: a client of `ubuntu-ci serve`'s `/api/v1/ppa/` calls.
//!
//! `GET /api/v1/ppa/` lists the pool; `POST /api/v1/ppa/assign/`, `/renew/` and `/release/`
//! take `{"ticket": N}`. Errors keep their kind, so `get_ppa`'s retryable `unavailable`
//! arrives as such.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;

use super::{Ppa, PpaAssigner};
use crate::error::Result;
use crate::model::Page;
use crate::wire::ApiClient;

/// A client of the PPA pool of a server.
#[derive(Debug, Clone)]
pub struct HttpPpaAssigner {
    api: ApiClient,
}

impl HttpPpaAssigner {
    /// A client of the server at `base`, sending `token` when given.
    ///
    /// # Errors
    /// As [`ApiClient::new`].
    pub fn new(base: &str, token: Option<String>) -> Result<HttpPpaAssigner> {
        Ok(HttpPpaAssigner {
            api: ApiClient::new(base, token)?,
        })
    }
}

#[async_trait]
impl PpaAssigner for HttpPpaAssigner {
    async fn get_ppa(&self, ticket: i64) -> Result<Ppa> {
        // The server may wait for a PPA to come free: allow for the pool's wait.
        let url = self.api.absolute("api/v1/ppa/assign/")?;
        let request = self
            .api
            .request(Method::POST, url.clone())
            .json(&serde_json::json!({ "ticket": ticket }));
        self.api
            .send_timeout(request, &url, Duration::from_secs(3600))
            .await
    }

    async fn release_ppa(&self, ticket: i64) -> Result<()> {
        let url = self.api.absolute("api/v1/ppa/release/")?;
        let request = self
            .api
            .request(Method::POST, url.clone())
            .json(&serde_json::json!({ "ticket": ticket }));
        self.api
            .send_raw(request, &url, Duration::from_secs(600))
            .await
            .map(drop)
    }

    async fn renew(&self, ticket: i64) -> Result<Ppa> {
        self.api
            .post(
                "api/v1/ppa/renew/",
                &serde_json::json!({ "ticket": ticket }),
            )
            .await
    }

    async fn list(&self) -> Result<Vec<Ppa>> {
        let page: Page<Ppa> = self.api.get("api/v1/ppa/", &[]).await?;
        Ok(page.objects)
    }
}
