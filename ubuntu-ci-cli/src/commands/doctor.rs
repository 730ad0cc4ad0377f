//! `ubuntu-ci doctor`: checks this machine's prerequisites and says how to fix what is
//! missing.

use clap::Args;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::doctor::{self, Scope};

use crate::exit::PrerequisitesMissing;
use crate::output;

/// Arguments of `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also check what ubuntu-ci's own test suite needs (gpg, dpkg-scanpackages,
    /// apt-ftparchive)
    #[arg(long)]
    pub tests: bool,
}

/// Runs `doctor`; fails (exit 12) when a prerequisite is missing.
pub async fn run(config: &Config, json: bool, args: DoctorArgs) -> anyhow::Result<()> {
    let checks = doctor::run(config, args.tests).await;
    if json {
        output::json(&checks)?;
    } else {
        for (scope, heading) in [
            (Scope::Product, "What ubuntu-ci needs:"),
            (Scope::Tests, "What its test suite needs besides:"),
        ] {
            if !checks.iter().any(|c| c.scope == scope) {
                continue;
            }
            println!("{}", output::stdout::bold(heading));
            for check in checks.iter().filter(|c| c.scope == scope) {
                let mark = if check.ok {
                    output::stdout::green("ok     ")
                } else {
                    output::stdout::red("MISSING")
                };
                println!(
                    "{mark} {:<20} {}  ({})",
                    check.name, check.detail, check.needed_for
                );
                if let Some(fix) = &check.fix {
                    println!("        fix: {fix}");
                }
            }
        }
    }
    let missing = checks.iter().filter(|c| !c.ok).count();
    if missing == 0 {
        if !json {
            println!("Everything ubuntu-ci needs is here.");
        }
        Ok(())
    } else {
        Err(PrerequisitesMissing(missing).into())
    }
}
