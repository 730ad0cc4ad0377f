//! `ubuntu-ci doctor`: checks this machine's prerequisites and says how to fix what is
//! missing.

use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::{doctor, Error};

use crate::output;

/// Runs `doctor`; fails (exit 9, unsupported) when a prerequisite is missing.
pub async fn run(config: &Config, json: bool) -> anyhow::Result<()> {
    let checks = doctor::run(config).await;
    if json {
        output::json(&checks)?;
    } else {
        for check in &checks {
            let mark = if check.ok { "ok     " } else { "MISSING" };
            println!(
                "{mark} {:<20} {}  ({})",
                check.name, check.detail, check.needed_for
            );
            if let Some(fix) = &check.fix {
                println!("        fix: {fix}");
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
        Err(Error::unsupported(format!(
            "{missing} prerequisite{} missing on this machine; see the fixes above",
            if missing == 1 { " is" } else { "s are" }
        ))
        .into())
    }
}
