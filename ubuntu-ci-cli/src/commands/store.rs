//! `ubuntu-ci store put|get|ls|rm`: data store containers, as `swift upload|download|list|delete`.

use std::path::PathBuf;

use clap::Subcommand;
use tokio::io::AsyncWriteExt;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::store::{self, Body, ContainerName, ObjectName};
use ubuntu_ci_core::Error;

use crate::output;

/// Subcommands of `store`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Upload files into a container (created if absent)
    Put {
        /// The container (`ticket.1.sources`)
        container: String,
        /// Files to upload
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Store under this name instead of the file's name (one file only)
        #[arg(long)]
        name: Option<String>,
        /// Make a new container public (readable without a token)
        #[arg(long)]
        public: bool,
    },
    /// Download an object
    Get {
        /// The container
        container: String,
        /// The object's name
        name: String,
        /// Where to write it (`-` for stdout) [default: ./NAME]
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// List containers, or the objects of one
    Ls {
        /// The container; without it, every container
        container: Option<String>,
        /// Only containers whose name starts with this
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Delete objects, or a whole container when no name is given
    Rm {
        /// The container
        container: String,
        /// Objects to delete
        names: Vec<String>,
        /// Delete a container that still holds objects
        #[arg(short, long)]
        recursive: bool,
    },
}

/// Runs `store …`.
pub async fn run(config: &Config, json: bool, command: StoreCommand) -> anyhow::Result<()> {
    let store = config.connect_store()?;
    match command {
        StoreCommand::Put {
            container,
            files,
            name,
            public,
        } => {
            if name.is_some() && files.len() > 1 {
                return Err(Error::invalid("--name takes one file only").into());
            }
            let container = ContainerName::new(container)?;
            store.ensure_container(&container, public).await?;
            let mut stored = Vec::new();
            for file in &files {
                let object = match &name {
                    Some(name) => name.clone(),
                    None => file
                        .file_name()
                        .and_then(|n| n.to_str())
                        .ok_or_else(|| {
                            Error::invalid(format!("{}: no usable file name", file.display()))
                        })?
                        .to_owned(),
                };
                let object = ObjectName::new(object)?;
                let body = Body::from_file(file)
                    .await
                    .map_err(|e| e.with_resource(file.display().to_string()))?;
                let info = store.put(&container, &object, body).await?;
                if !json {
                    println!("{}", info.url);
                }
                stored.push(info);
            }
            if json {
                output::json(&stored)?;
            }
            Ok(())
        }
        StoreCommand::Get {
            container,
            name,
            output: target,
        } => {
            let container = ContainerName::new(container)?;
            let object = ObjectName::new(name)?;
            let info = match target.as_deref() {
                Some(path) if path.as_os_str() == "-" => {
                    let (_, mut reader) = store.get(&container, &object).await?;
                    let mut stdout = tokio::io::stdout();
                    tokio::io::copy(&mut reader, &mut stdout).await?;
                    stdout.flush().await?;
                    // The object is the output; JSON after it would corrupt it.
                    return Ok(());
                }
                _ => {
                    let path = target.unwrap_or_else(|| PathBuf::from(object.as_str()));
                    let info = store::download(&*store, &container, &object, &path).await?;
                    if !json {
                        println!("{} ({})", path.display(), output::bytes(info.size));
                    }
                    info
                }
            };
            if json {
                output::json(&info)?;
            }
            Ok(())
        }
        StoreCommand::Ls { container, prefix } => {
            if container.is_some() && prefix.is_some() {
                return Err(Error::invalid(
                    "--prefix filters containers; give it without CONTAINER",
                )
                .into());
            }
            match container {
                None => {
                    let containers = store.list_containers(prefix.as_deref()).await?;
                    if json {
                        return output::json(&containers);
                    }
                    for c in containers {
                        println!(
                            "{:<40} {:>6} objects {:>10}  {}",
                            c.name,
                            c.object_count,
                            output::bytes(c.bytes),
                            if c.public { "public" } else { "private" }
                        );
                    }
                }
                Some(container) => {
                    let container = ContainerName::new(container)?;
                    let objects = store.list(&container).await?;
                    if json {
                        return output::json(&objects);
                    }
                    for o in objects {
                        println!(
                            "{:>10}  {}  {}",
                            output::bytes(o.size),
                            o.last_modified.format("%Y-%m-%d %H:%M"),
                            o.name
                        );
                    }
                }
            }
            Ok(())
        }
        StoreCommand::Rm {
            container,
            names,
            recursive,
        } => {
            let container = ContainerName::new(container)?;
            if names.is_empty() {
                store.delete_container(&container, recursive).await?;
            } else {
                for name in names {
                    store
                        .delete_object(&container, &ObjectName::new(name)?)
                        .await?;
                }
            }
            Ok(())
        }
    }
}
