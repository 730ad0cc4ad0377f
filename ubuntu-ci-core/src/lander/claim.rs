//! Which lander runs a request: each lander process has a runner name
//! (`<host>:<pid>:<start time>`) and claims the requests it runs in the store for a while,
//! renewing the claim as it goes. Another lander resumes a request only when its claim
//! lapsed, or when its claimant was a process of this host that is gone (killed): so two
//! landers never run one request, and a killed lander's requests are taken up at once.

use std::sync::OnceLock;
use std::time::Duration;

/// This process's runner name.
pub(crate) fn runner() -> &'static str {
    static RUNNER: OnceLock<String> = OnceLock::new();
    RUNNER.get_or_init(|| {
        let pid = std::process::id();
        format!(
            "{}:{pid}:{}",
            hostname(),
            start_time(pid).unwrap_or_default()
        )
    })
}

/// Until when a claim made now holds: `lease` from now, RFC 3339.
pub(crate) fn until(lease: Duration) -> String {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    (chrono::Utc::now() + lease).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Whether a claim by `claimant` until `until` still stops this lander from taking over:
/// not when it lapsed, nor when its process, on this host, is gone.
pub(crate) fn holds(claimant: &str, until: &str) -> bool {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    if until <= now.as_str() {
        return false;
    }
    let mut parts = claimant.rsplitn(3, ':');
    let (Some(start), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return true;
    };
    if host != hostname() {
        return true;
    }
    match pid.parse::<u32>() {
        Ok(pid) => start_time(pid).is_some_and(|s| s.to_string() == start),
        Err(_) => true,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// A process's start time (clock ticks since boot, `/proc/<pid>/stat` field 22): with the
/// pid, it names a process even when pids are reused.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_hold_while_their_process_lives_and_their_lease_runs() {
        let later = until(Duration::from_secs(60));
        assert!(holds(runner(), &later), "this process is alive");
        assert!(!holds(runner(), &until(Duration::ZERO)), "lapsed");
        // A process of this host that is gone (pid 0 is never a process with a stat).
        let gone = format!("{}:0:1", hostname());
        assert!(!holds(&gone, &later));
        let elsewhere = "other-host:1:1";
        assert!(holds(elsewhere, &later), "another host's claim is trusted");
        assert!(!holds(elsewhere, &until(Duration::ZERO)));
    }
}
