//! `ubuntu-ci build`: builds one source upload into a PPA with sbuild, showing the build
//! log live.

use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;
use ubuntu_ci_core::builder::standalone;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::ppa::PpaName;

use crate::follow::{follow, outcome, LogTo};

/// Arguments of `build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The _source.changes to build (the files it lists beside it)
    pub changes: PathBuf,
    /// The PPA to build against and publish into (ppa:OWNER/NAME)
    #[arg(long)]
    pub ppa: PpaName,
    /// The series (default: the configured one, bookworm)
    #[arg(long)]
    pub series: Option<String>,
    /// The architecture (default: the host's)
    #[arg(long)]
    pub arch: Option<String>,
    /// End the build when sbuild runs longer than this: seconds, or a number with s, m or h
    /// (default: [build] timeout_secs, else 3h)
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<u64>,
}

/// Seconds of a duration written `90`, `90s`, `30m` or `3h`.
fn parse_duration(text: &str) -> Result<u64, String> {
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        _ => return Err(format!("unknown unit {unit:?}: use s, m or h")),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 30m or 3h"))?;
    match value.checked_mul(scale) {
        Some(0) => Err("a timeout must be above 0".to_owned()),
        Some(secs) => Ok(secs),
        None => Err(format!("{text:?} is too long")),
    }
}

/// Runs `build`.
pub async fn run(config: &Config, json: bool, args: BuildArgs) -> anyhow::Result<()> {
    let mut config = config.clone();
    if let Some(secs) = args.timeout {
        config.build.timeout_secs = Some(secs);
    }
    let services = config.connect(None).await?;
    let cancel = CancellationToken::new();
    let running = standalone::start(
        &services,
        &args.changes,
        &args.ppa,
        args.series.as_deref(),
        args.arch.as_deref(),
        cancel.clone(),
    )
    .await?;
    let done = follow(
        "build",
        running.messages,
        running.done,
        &cancel,
        json,
        LogTo::Stdout,
    )
    .await?;
    outcome(&done, "build")
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("3h"), Ok(10800));
        for bad in [
            "",
            "h",
            "0",
            "0m",
            "-5",
            "5d",
            "1.5h",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
