//! Steps 1 and 2 of the seed flow through the library: validate an upload, create the
//! ticket, store the files, record the artifacts — on embedded defaults in a temporary data
//! dir, then print the ticket as JSON.
//!
//! Run: `cargo run -p ubuntu-ci-core --example seed_flow -- PATH/TO/pkg_source.changes`
//! (`examples/packages/build-source.sh` makes one).

use std::sync::Arc;

use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::store::DataStore;
use ubuntu_ci_core::submit::{CreateTicket, NoProgress};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let changes = std::env::args()
        .nth(1)
        .ok_or("usage: seed_flow PATH/TO/pkg_source.changes")?;
    let data_dir = tempfile::tempdir()?;
    let config = Config {
        data_dir: Some(data_dir.path().to_path_buf()),
        ..Config::default()
    };
    let services = config.connect(None).await?;

    let ticket = CreateTicket::new("default-user@example.com", "Default title")
        .with_description("Default description")
        .with_bug("1234567")
        .with_upload(&changes)
        .run(&services, Arc::new(NoProgress))
        .await?;
    println!("{}", serde_json::to_string_pretty(&ticket)?);

    // The seed's DataStore, as the lander will use it: the same container, read back.
    let store = DataStore::open(
        services.store.clone(),
        &format!("ticket.{}", ticket.ticket.id),
        "sources",
        true,
    )
    .await?;
    for object in store.list_files().await? {
        println!("{:>10}  {}", object.size, object.url);
    }
    Ok(())
}
