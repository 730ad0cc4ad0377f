//! `TicketSystem`: the seed's ticket calls, on the embedded ticket store or on a server.

use std::sync::Arc;

use pyo3::prelude::*;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::model::{
    ArtifactType, NewArtifact, NewSourcePackageUpload, NewSubticket, NewTicket, Uri,
};
use ubuntu_ci_core::tickets::{open_ticket_system, TicketSystemOptions};

use crate::{to_python, wait};

/// The ticket system: by default the configured one (the configuration file and
/// `UBUNTU_CI_*` variables, as the CLI: the embedded store in the data dir unless a server
/// is set); or the one `url` names (`http://server/`, `sqlite:///path`, `postgres://…`),
/// with `token` for a server.
///
/// The create calls return the new resource's URI (`/api/v1/ticket/1/`; on a server, its
/// whole URL), as the seed shows them.
#[pyclass(module = "ubuntu_ci._native", frozen)]
pub(crate) struct TicketSystem {
    inner: Arc<Tickets>,
}

struct Tickets {
    system: Arc<dyn ubuntu_ci_core::tickets::TicketSystem>,
    /// The server's base URL, which resource URIs are written against.
    server: Option<String>,
    /// The configuration it was opened with (the default owner of tickets).
    config: Config,
}

impl Tickets {
    fn url<R: ubuntu_ci_core::model::Resource>(&self, uri: Uri<R>) -> PyResult<String> {
        let uri = uri.to_string();
        match &self.server {
            Some(server) => ubuntu_ci_core::wire::resource_url(server, &uri)
                .map_err(|e| Python::attach(|py| crate::errors::to_python(py, &e))),
            None => Ok(uri),
        }
    }
}

/// A resource's URI as given by the caller: `/api/v1/ticket/1/`, its whole URL, or its id.
pub(crate) fn uri<R: ubuntu_ci_core::model::Resource>(
    value: &Bound<'_, PyAny>,
) -> PyResult<Uri<R>> {
    if value.is_instance_of::<pyo3::types::PyBool>() {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "a resource is its URI, its URL or its id, not a bool",
        ));
    }
    let text: String = match value.extract::<i64>() {
        // Checked as its URI is (a positive number).
        Ok(id) => id.to_string(),
        Err(_) => value.extract()?,
    };
    Uri::parse(&text).map_err(|e| Python::attach(|py| crate::errors::to_python(py, &e)))
}

#[pymethods]
impl TicketSystem {
    #[new]
    #[pyo3(signature = (url = None, *, token = None))]
    fn new(py: Python<'_>, url: Option<String>, token: Option<String>) -> PyResult<TicketSystem> {
        let inner = wait(py, async move {
            let config = Config::load(None)?.with_env();
            let (url, token) = match url {
                Some(url) => (url, token),
                None => match &config.server {
                    Some(server) => (server.clone(), token.or_else(|| config.token.clone())),
                    None => (config.local_tickets_url()?, None),
                },
            };
            let server =
                (url.starts_with("http://") || url.starts_with("https://")).then(|| url.clone());
            let system = open_ticket_system(&url, &TicketSystemOptions { token }).await?;
            Ok(Tickets {
                system,
                server,
                config,
            })
        })?;
        Ok(TicketSystem {
            inner: Arc::new(inner),
        })
    }

    /// Creates a ticket; its URI. `owner` defaults to the configured owner (or
    /// `DEBEMAIL`); `bug_id` is a Launchpad bug URL or number.
    #[pyo3(signature = (title, owner = None, description = String::new(), bug_id = String::new()))]
    fn create_ticket(
        &self,
        py: Python<'_>,
        title: String,
        owner: Option<String>,
        description: String,
        bug_id: String,
    ) -> PyResult<String> {
        let owner = self
            .inner
            .config
            .owner_or_default(owner)
            .map_err(|e| crate::errors::to_python(py, &e))?;
        let inner = Arc::clone(&self.inner);
        let ticket = wait(py, async move {
            inner
                .system
                .create_ticket(NewTicket {
                    owner,
                    title,
                    description,
                    bug_id,
                })
                .await
        })?;
        self.inner.url(ticket.resource_uri)
    }

    /// The source package named `name`, made if new; its URI.
    fn get_or_create_source_package(&self, py: Python<'_>, name: String) -> PyResult<String> {
        let inner = Arc::clone(&self.inner);
        let (package, _) = wait(py, async move {
            inner.system.get_or_create_source_package(&name).await
        })?;
        self.inner.url(package.resource_uri)
    }

    /// Records an upload of a source package (its URI, or its name: made if new) at
    /// `version`; its URI. `fingerprint` is the signing key's, when it was signed.
    #[pyo3(signature = (sourcepackage, version, fingerprint = String::new()))]
    fn create_source_package_upload(
        &self,
        py: Python<'_>,
        sourcepackage: &Bound<'_, PyAny>,
        version: String,
        fingerprint: String,
    ) -> PyResult<String> {
        let text: Option<String> = sourcepackage.extract().ok();
        let given = match text.as_deref() {
            Some(name) if !name.contains('/') => Err(name.to_owned()),
            _ => Ok(uri(sourcepackage)?),
        };
        let inner = Arc::clone(&self.inner);
        let spu = wait(py, async move {
            let sourcepackage = match given {
                Ok(uri) => uri,
                Err(name) => {
                    inner
                        .system
                        .get_or_create_source_package(&name)
                        .await?
                        .0
                        .resource_uri
                }
            };
            inner
                .system
                .create_spu(NewSourcePackageUpload {
                    sourcepackage,
                    version,
                    fingerprint,
                })
                .await
        })?;
        self.inner.url(spu.resource_uri)
    }

    /// Creates the subticket of `ticket` for a source package upload; its URI.
    fn create_subticket(
        &self,
        py: Python<'_>,
        source_package_upload: &Bound<'_, PyAny>,
        ticket: &Bound<'_, PyAny>,
        assignee: String,
    ) -> PyResult<String> {
        let new = NewSubticket {
            source_package_upload: uri(source_package_upload)?,
            ticket: uri(ticket)?,
            assignee,
        };
        let inner = Arc::clone(&self.inner);
        let subticket = wait(py, async move { inner.system.create_subticket(new).await })?;
        self.inner.url(subticket.resource_uri)
    }

    /// Records an artifact (`type`: `SPU`, `BINARY`, `BUILD_LOG`, `IMAGE`, `TEST_LOG`, `TEST_RESULT`, `LOG`) of a subticket or
    /// of a ticket; its URI.
    #[pyo3(signature = (name, reference, r#type, *, subticket = None, ticket = None))]
    fn create_artifact(
        &self,
        py: Python<'_>,
        name: String,
        reference: String,
        r#type: String,
        subticket: Option<&Bound<'_, PyAny>>,
        ticket: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let artifact_type: ArtifactType = r#type
            .parse()
            .map_err(|e: ubuntu_ci_core::Error| crate::errors::to_python(py, &e))?;
        let new = NewArtifact {
            name,
            subticket: subticket.map(uri).transpose()?,
            ticket: ticket.map(uri).transpose()?,
            reference,
            artifact_type,
        };
        let inner = Arc::clone(&self.inner);
        let artifact = wait(py, async move { inner.system.create_artifact(new).await })?;
        self.inner.url(artifact.resource_uri)
    }

    /// The ticket (its URI or id) with its subtickets, artifacts and transitions: the
    /// REST API's JSON as dicts (`ubuntu_ci.TicketSystem.ticket` makes typed objects of it).
    fn get_ticket(&self, py: Python<'_>, ticket: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let id = uri::<ubuntu_ci_core::model::Ticket>(ticket)?.id();
        let inner = Arc::clone(&self.inner);
        let detail = wait(py, async move { inner.system.get_ticket(id).await })?;
        to_python(py, &detail)
    }

    fn __repr__(&self) -> String {
        match &self.inner.server {
            Some(server) => format!("TicketSystem({server:?})"),
            None => "TicketSystem()".to_owned(),
        }
    }
}
