//! `submit`: the seed's whole submission in one call (the CLI's `create-ticket -s`).

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::submit::{CreateTicket, NoProgress};

use crate::{to_python, wait};

/// Creates a ticket for the source package uploads `sources` (`_source.changes` files,
/// the files they list beside them): every upload checked first (checksums, names,
/// signatures as configured), then the ticket, its uploads and subtickets made and every
/// file stored and recorded as an `SPU` artifact, on the configured services (as the CLI).
/// The ticket, as the REST API's JSON (dicts).
#[pyfunction]
#[pyo3(signature = (title, sources, *, owner = None, description = String::new(), bug_id = String::new(), assignee = None))]
pub(crate) fn submit(
    py: Python<'_>,
    title: String,
    sources: Vec<PathBuf>,
    owner: Option<String>,
    description: String,
    bug_id: String,
    assignee: Option<String>,
) -> PyResult<Py<PyAny>> {
    let detail = wait(py, async move {
        let config = Config::load(None)?.with_env();
        let owner = config.owner_or_default(owner)?;
        let mut request = CreateTicket::new(owner, title).with_description(description);
        if !bug_id.is_empty() {
            request = request.with_bug(bug_id);
        }
        if let Some(assignee) = assignee {
            request = request.with_assignee(assignee);
        }
        for source in sources {
            request = request.with_upload(source);
        }
        let services = config.connect(None).await?;
        request.run(&services, Arc::new(NoProgress)).await
    })?;
    to_python(py, &detail)
}
