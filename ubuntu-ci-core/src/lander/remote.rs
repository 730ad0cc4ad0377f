//! The landers of a `ubuntu-ci serve`, as a client sees them: submit a ticket's request,
//! ask where it stands, stop it, retry it (see [`crate::server::lander_api`]).

use reqwest::Method;

use super::store::RequestStatus;
use super::SubmitOptions;
use crate::error::{ErrorKind, Result};
use crate::server::lander_api::CancelAnswer;
use crate::wire::ApiClient;

/// A client of a server's landers.
#[derive(Debug, Clone)]
pub struct HttpLanders {
    api: ApiClient,
}

impl HttpLanders {
    /// A client of the server at `base`, sending `token` when given.
    ///
    /// # Errors
    /// As [`ApiClient::new`].
    pub fn new(base: &str, token: Option<String>) -> Result<HttpLanders> {
        Ok(HttpLanders {
            api: ApiClient::new(base, token)?,
        })
    }

    /// Hands the ticket's uploads to the server's lander.
    ///
    /// # Errors
    /// `Conflict` when the ticket has a request under way; `Unsupported` when the server
    /// runs no lander; the API's errors.
    pub async fn submit(&self, ticket: i64, options: &SubmitOptions) -> Result<RequestStatus> {
        self.api
            .post(&format!("api/v1/ticket/{ticket}/request/"), options)
            .await
    }

    /// Where the ticket's request stands; `None` when it has none.
    ///
    /// # Errors
    /// `NotFound` for an unknown ticket; the API's errors.
    pub async fn status(&self, ticket: i64) -> Result<Option<RequestStatus>> {
        let url = self
            .api
            .absolute(&format!("api/v1/ticket/{ticket}/request/"))?;
        let request = self.api.request(Method::GET, url.clone());
        match self.api.send::<RequestStatus>(request, &url).await {
            Ok(status) => Ok(Some(status)),
            Err(err)
                if err.kind() == ErrorKind::NotFound && err.to_string().contains("no request") =>
            {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Stops the ticket's request.
    ///
    /// # Errors
    /// `Conflict` when nothing is under way; the API's errors.
    pub async fn cancel(&self, ticket: i64) -> Result<()> {
        let _: CancelAnswer = self
            .api
            .post(
                &format!("api/v1/ticket/{ticket}/cancel/"),
                &serde_json::json!({}),
            )
            .await?;
        Ok(())
    }

    /// Takes the ticket's failed or cancelled request up again at its step.
    ///
    /// # Errors
    /// As [`super::Lander::retry`]; the API's errors.
    pub async fn retry(&self, ticket: i64) -> Result<RequestStatus> {
        self.api
            .post(
                &format!("api/v1/ticket/{ticket}/retry/"),
                &serde_json::json!({}),
            )
            .await
    }
}
