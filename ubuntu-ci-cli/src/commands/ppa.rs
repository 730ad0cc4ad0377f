//! `ubuntu-ci ppa list|get|renew|release|publish|packages|remove|copy|key`.

use std::path::PathBuf;

use clap::Subcommand;
use serde::Serialize;
use ubuntu_ci_core::archive::{self, PublishReport, PublishedPackage};
use ubuntu_ci_core::config::{Config, Services};
use ubuntu_ci_core::ppa::{Ppa, PpaName};

use crate::output::{self, note};

/// Subcommands of `ppa`.
#[derive(Debug, Subcommand)]
pub enum PpaCommand {
    /// List the pool's PPAs with their state and ticket
    List,
    /// Get the PPA of a ticket (the one it holds, else a free one), ready for apt
    Get {
        /// The ticket (its id or URI)
        #[arg(long, value_parser = crate::cli::ticket_id)]
        ticket: i64,
    },
    /// Extend a ticket's lease of its PPA
    Renew {
        /// The ticket (its id or URI)
        #[arg(long, value_parser = crate::cli::ticket_id)]
        ticket: i64,
    },
    /// Give back a ticket's PPA: it is emptied and lent again
    Release {
        /// The ticket (its id or URI)
        #[arg(long, value_parser = crate::cli::ticket_id)]
        ticket: i64,
    },
    /// Publish a source upload (_source.changes) or binary packages (.deb) into a PPA
    Publish {
        /// The PPA (ppa:OWNER/NAME)
        ppa: PpaName,
        /// A .changes (with the files it lists beside it) or .deb files
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The series to publish to (default: the configured one, bookworm)
        #[arg(long)]
        series: Option<String>,
    },
    /// List the packages published in a PPA
    Packages {
        /// The PPA (ppa:OWNER/NAME)
        ppa: PpaName,
        /// The series (default: the configured one)
        #[arg(long)]
        series: Option<String>,
    },
    /// Remove a source package with its binaries (or binaries of that name) from a PPA
    Remove {
        /// The PPA (ppa:OWNER/NAME)
        ppa: PpaName,
        /// The package name
        name: String,
        /// Only this version (default: every version)
        #[arg(value_name = "VERSION")]
        package_version: Option<String>,
        /// The series (default: the configured one)
        #[arg(long)]
        series: Option<String>,
    },
    /// Copy a source package with its binaries from one PPA into another
    Copy {
        /// The PPA to copy from
        from: PpaName,
        /// The PPA to copy into
        to: PpaName,
        /// The source package name
        name: String,
        /// Only this version (default: every version)
        #[arg(value_name = "VERSION")]
        package_version: Option<String>,
        /// The series (default: the configured one)
        #[arg(long)]
        series: Option<String>,
    },
    /// Print the armoured public key that signs a PPA (for apt's signed-by)
    Key {
        /// The PPA (ppa:OWNER/NAME)
        ppa: PpaName,
    },
}

/// A PPA with where apt finds it.
#[derive(Debug, Serialize)]
struct Located {
    #[serde(flatten)]
    ppa: Ppa,
    archive_url: String,
    sources_line: String,
}

fn locate(config: &Config, services: &Services, ppa: Ppa) -> Located {
    let archive_url = services.archives.location(&ppa.name);
    let series = config
        .ppa
        .series
        .clone()
        .unwrap_or_else(|| archive::DEFAULT_SERIES.to_owned());
    let sources_line = archive::sources_line(&ppa.name, &archive_url, &series);
    Located {
        ppa,
        archive_url,
        sources_line,
    }
}

/// Runs `ppa …`.
pub async fn run(config: &Config, json: bool, command: PpaCommand) -> anyhow::Result<()> {
    let services = config.connect(None).await?;
    match command {
        PpaCommand::List => {
            let ppas = services.ppas.list().await?;
            if json {
                let located: Vec<Located> = ppas
                    .into_iter()
                    .map(|p| locate(config, &services, p))
                    .collect();
                return output::json(&located);
            }
            println!("{:<32} {:<9} {:>7}  LEASE UNTIL", "PPA", "STATE", "TICKET");
            for ppa in ppas {
                println!(
                    "{:<32} {:<9} {:>7}  {}",
                    ppa.name.to_string(),
                    ppa.state,
                    ppa.ticket
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "-".into()),
                    ppa.lease_expires_at
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                        .unwrap_or_else(|| "-".into())
                );
            }
            Ok(())
        }
        PpaCommand::Get { ticket } => {
            if !json {
                note!("Getting a PPA for ticket {ticket} (waits while all are busy)…");
            }
            let ppa = services.ready_ppa(ticket).await?;
            print_ppa(&locate(config, &services, ppa), json)
        }
        PpaCommand::Renew { ticket } => {
            let ppa = services.ppas.renew(ticket).await?;
            print_ppa(&locate(config, &services, ppa), json)
        }
        PpaCommand::Release { ticket } => {
            services.ppas.release_ppa(ticket).await?;
            if json {
                output::json(&serde_json::json!({ "ticket": ticket, "released": true }))
            } else {
                println!("Released the PPA of ticket {ticket}; it is emptied and free again.");
                Ok(())
            }
        }
        PpaCommand::Publish { ppa, files, series } => {
            let report = services
                .archives
                .publish_files(&ppa, series.as_deref(), &files)
                .await?;
            print_report(&report, json)
        }
        PpaCommand::Packages { ppa, series } => {
            let packages = services.archives.packages(&ppa, series.as_deref()).await?;
            if json {
                return output::json(&packages);
            }
            print_packages(&packages);
            Ok(())
        }
        PpaCommand::Remove {
            ppa,
            name,
            package_version,
            series,
        } => {
            let report = services
                .archives
                .remove_package(&ppa, series.as_deref(), &name, package_version.as_deref())
                .await?;
            print_report(&report, json)
        }
        PpaCommand::Copy {
            from,
            to,
            name,
            package_version,
            series,
        } => {
            let report = services
                .archives
                .copy_package(
                    &from,
                    &to,
                    series.as_deref(),
                    &name,
                    package_version.as_deref(),
                )
                .await?;
            print_report(&report, json)
        }
        PpaCommand::Key { ppa } => {
            let key = services.archives.signing_key(&ppa).await?;
            if json {
                output::json(&serde_json::json!({ "ppa": ppa, "key": key }))
            } else {
                print!("{key}");
                Ok(())
            }
        }
    }
}

fn print_ppa(located: &Located, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(located);
    }
    let ppa = &located.ppa;
    let holder = match (ppa.ticket, ppa.lease_expires_at) {
        (Some(ticket), Some(until)) => format!(
            "held by ticket {ticket} until {}",
            until.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        _ => ppa.state.to_string(),
    };
    println!("{} ({holder})", ppa.name);
    println!("archive: {}", located.archive_url);
    println!(
        "key:     ubuntu-ci ppa key {} | sudo tee {}",
        ppa.name,
        archive::key_file(&ppa.name)
    );
    println!("apt:     {}", located.sources_line);
    Ok(())
}

fn print_packages(packages: &[PublishedPackage]) {
    for package in packages {
        println!(
            "{:<32} {:<24} {}",
            package.name, package.version, package.architecture
        );
    }
}

fn print_report(report: &PublishReport, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(report);
    }
    for (what, list) in [
        ("published", &report.published),
        ("unchanged", &report.unchanged),
        ("removed", &report.removed),
    ] {
        for package in list {
            println!(
                "{what:<10} {} {} {} in {} {}",
                package.name, package.version, package.architecture, report.ppa, report.series
            );
        }
    }
    Ok(())
}
