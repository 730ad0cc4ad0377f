//! Keeping a worker's output: a file stored in the data store and recorded as an artifact
//! of its ticket or subticket.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::{ArtifactType, NewArtifact, PageRequest, SubticketFilter, Uri};
use crate::store::{Body, DataStore};
use crate::tickets::TicketSystem;

/// What an artifact belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A ticket as a whole (images, test results).
    Ticket(i64),
    /// One upload's subticket (builds).
    Subticket(i64),
}

/// Stores the file at `path` as `name` in `store` and, when there are `tickets` and an
/// `owner`, records it as an artifact of kind `kind`; returns the stored object's URL.
///
/// # Errors
/// What reading the file, the store or the ticket system report.
pub async fn keep_file(
    store: &DataStore,
    tickets: Option<&Arc<dyn TicketSystem>>,
    owner: Option<Owner>,
    name: &str,
    path: &Path,
    kind: ArtifactType,
) -> Result<String> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::from(e).with_resource(path.display().to_string()))?;
    let url = store.put_file(name, Body::File(file)).await?;
    if let (Some(tickets), Some(owner)) = (tickets, owner) {
        let (ticket, subticket) = match owner {
            Owner::Ticket(id) => (Some(Uri::new(id)), None),
            Owner::Subticket(id) => (None, Some(Uri::new(id))),
        };
        tickets
            .create_artifact(NewArtifact {
                name: name.to_owned(),
                subticket,
                ticket,
                reference: url.to_string(),
                artifact_type: kind,
            })
            .await?;
    }
    Ok(url.to_string())
}

/// The subticket of ticket `ticket` whose upload (SPU) has `fingerprint`; `None` when there
/// is none, or the ticket system cannot say.
pub async fn subticket_of(
    tickets: &dyn TicketSystem,
    ticket: i64,
    fingerprint: &str,
) -> Option<i64> {
    let page = tickets
        .list_subtickets(
            SubticketFilter {
                ticket: Some(Uri::new(ticket)),
                source_package_upload: None,
            },
            PageRequest {
                limit: PageRequest::MAX_LIMIT,
                offset: 0,
            },
        )
        .await
        .ok()?;
    for subticket in page.objects {
        let spu = tickets
            .get_spu(subticket.source_package_upload.id())
            .await
            .ok()?;
        if spu.fingerprint == fingerprint {
            return Some(subticket.id);
        }
    }
    None
}
