//! `ubuntu-ci doctor`: whether this machine has what ubuntu-ci needs, and how to fix what
//! it lacks.
//!
//! Each [`Check`] looks at one prerequisite without changing anything: the Debian tools the
//! steps run (dpkg-dev for sources, apt and gpgv for archives, sbuild, mmdebstrap and
//! uidmap for builds), the subordinate ids unshare-mode builds need, user namespaces, an
//! overlay in one (image builds), and the configured state (data dir, ticket system, data store).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Config;

/// Who needs a prerequisite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// ubuntu-ci itself: a missing one breaks a step of a request.
    Product,
    /// Only ubuntu-ci's own test suite and benchmarks.
    Tests,
}

/// One prerequisite and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What is checked (`sbuild`).
    pub name: String,
    /// What it is needed for.
    pub needed_for: &'static str,
    /// Who needs it.
    pub scope: Scope,
    /// Whether it is there.
    pub ok: bool,
    /// What was found, or what is wrong.
    pub detail: String,
    /// How to fix it, when it is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The programs ubuntu-ci runs or its tests need: the program, the Debian package that
/// has it, the oldest version of that package the code relies on (`None`: any), what it is
/// for, and who needs it.
const PROGRAMS: &[(&str, &str, Option<&str>, &str, Scope)] = &[
    (
        "dpkg-source",
        "dpkg-dev",
        Some("1.21"),
        "checking and unpacking source packages",
        Scope::Product,
    ),
    (
        "apt-get",
        "apt",
        Some("2.6"),
        "reading archives",
        Scope::Product,
    ),
    (
        "gpgv",
        "gpgv",
        None,
        "apt's signature checks",
        Scope::Product,
    ),
    // 0.85: --chroot-mode=unshare with a chroot tarball.
    (
        "sbuild",
        "sbuild",
        Some("0.85"),
        "building binary packages",
        Scope::Product,
    ),
    // 1.0: --variant=apt/minbase tarballs made in unshare mode without root.
    (
        "mmdebstrap",
        "mmdebstrap",
        Some("1.0"),
        "making build chroots and images",
        Scope::Product,
    ),
    // 5.28: autopkgtest-virt-unshare.
    (
        "autopkgtest",
        "autopkgtest",
        Some("5.28"),
        "running DEP-8 tests",
        Scope::Product,
    ),
    (
        "unshare",
        "util-linux",
        None,
        "autopkgtest's unshare test beds",
        Scope::Product,
    ),
    (
        "newuidmap",
        "uidmap",
        None,
        "unshare-mode builds",
        Scope::Product,
    ),
    (
        "newgidmap",
        "uidmap",
        None,
        "unshare-mode builds",
        Scope::Product,
    ),
    (
        "zstd",
        "zstd",
        None,
        "chroot and image tarballs",
        Scope::Product,
    ),
    (
        "dpkg-scanpackages",
        "dpkg-dev",
        None,
        "the archive tests",
        Scope::Tests,
    ),
    (
        "gpg",
        "gnupg",
        None,
        "signing uploads in the signature tests",
        Scope::Tests,
    ),
    (
        "apt-ftparchive",
        "apt-utils",
        None,
        "the archive benchmark",
        Scope::Tests,
    ),
];

/// Runs every check for `config`: what ubuntu-ci needs, then (with `tests`) what its test
/// suite needs besides.
pub async fn run(config: &Config, tests: bool) -> Vec<Check> {
    let mut checks = Vec::new();
    for (program, package, min_version, needed_for, scope) in PROGRAMS {
        if *scope == Scope::Tests && !tests {
            continue;
        }
        checks.push(program_check(
            program,
            package,
            *min_version,
            needed_for,
            *scope,
        ));
    }
    let user = current_user();
    for file in ["/etc/subuid", "/etc/subgid"] {
        checks.push(subordinate_ids(Path::new(file), &user));
    }
    checks.push(user_namespaces());
    checks.push(overlay_in_user_namespaces().await);
    checks.push(data_dir(config));
    checks.push(services(config).await);
    checks.push(quarantined_ppas(config).await);
    checks
}

/// PPAs that could not be emptied, set aside from the pool.
async fn quarantined_ppas(config: &Config) -> Check {
    let check = |ok: bool, detail: String, fix: Option<String>| Check {
        name: "PPA pool".to_owned(),
        needed_for: "lending PPAs to requests",
        scope: Scope::Product,
        ok,
        detail,
        fix,
    };
    let listed = async { config.connect(None).await?.ppas.list().await }.await;
    let ppas = match listed {
        Ok(ppas) => ppas,
        Err(err) => return check(false, format!("cannot list the PPAs: {err}"), None),
    };
    let quarantined: Vec<String> = ppas
        .iter()
        .filter(|p| p.state == crate::ppa::PpaState::Quarantined)
        .map(|p| p.name.to_string())
        .collect();
    if quarantined.is_empty() {
        check(true, format!("{} PPAs, none quarantined", ppas.len()), None)
    } else {
        check(
            false,
            format!(
                "{} could not be emptied and {} set aside (quarantined)",
                quarantined.join(", "),
                if quarantined.len() == 1 { "is" } else { "are" }
            ),
            Some(
                "see the server's log for why (a folder that cannot be removed: its \
                 permissions, chattr +i); a quarantined PPA is tried again every 10 minutes"
                    .to_owned(),
            ),
        )
    }
}

fn program_check(
    program: &str,
    package: &str,
    min_version: Option<&str>,
    needed_for: &'static str,
    scope: Scope,
) -> Check {
    let check = |ok: bool, detail: String, fix: Option<String>| Check {
        name: program.to_owned(),
        needed_for,
        scope,
        ok,
        detail,
        fix,
    };
    let install = format!("sudo apt-get install --no-install-recommends {package}");
    let Some(path) = find_program(program) else {
        return check(false, "not found on PATH".to_owned(), Some(install));
    };
    let Some(min_version) = min_version else {
        return check(true, path.display().to_string(), None);
    };
    match installed_version(package) {
        Some(version) if crate::archive::version::compare(&version, min_version).is_lt() => check(
            false,
            format!(
                "{} ({package} {version}; {min_version} or later is needed)",
                path.display()
            ),
            Some(format!(
                "install {package} {min_version} or later (from bookworm or backports)"
            )),
        ),
        Some(version) => check(
            true,
            format!("{} ({package} {version})", path.display()),
            None,
        ),
        // Not installed by dpkg (a local build): the version cannot be told.
        None => check(
            true,
            format!(
                "{} (not from a Debian package: version not checked)",
                path.display()
            ),
            None,
        ),
    }
}

/// The installed version of the Debian package `package`, from dpkg's database.
pub fn installed_version(package: &str) -> Option<String> {
    let output = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}\t${Version}", package])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let (status, version) = text.split_once('\t')?;
    (output.status.success() && status.ends_with(" installed") && !version.is_empty())
        .then(|| version.to_owned())
}

/// Where `program` is on `PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

fn current_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            // No USER (as in some containers): root when the effective uid is 0.
            std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|status| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix("Uid:"))
                        .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_owned))
                        .filter(|uid| uid == "0")
                        .map(|_| "root".to_owned())
                })
        })
        .unwrap_or_else(|| "root".to_owned())
}

/// Ids a user needs in `/etc/subuid` and `/etc/subgid` for unshare-mode builds.
pub const SUBORDINATE_IDS: u64 = 65536;

/// Whether `file` gives `user` at least [`SUBORDINATE_IDS`] ids.
pub fn subordinate_ids(file: &Path, user: &str) -> Check {
    let needed_for = "unshare-mode builds (sbuild, mmdebstrap)";
    let fix = Some(format!(
        "echo '{user}:100000:{SUBORDINATE_IDS}' | sudo tee -a {}",
        file.display()
    ));
    let name = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            return Check {
                name,
                needed_for,
                scope: Scope::Product,
                ok: false,
                detail: format!("cannot read it: {e}"),
                fix,
            }
        }
    };
    let count: u64 = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.trim().split(':');
            let (who, _start, count) = (parts.next()?, parts.next()?, parts.next()?);
            (who == user)
                .then(|| count.trim().parse::<u64>().ok())
                .flatten()
        })
        .sum();
    if count >= SUBORDINATE_IDS {
        Check {
            name,
            needed_for,
            scope: Scope::Product,
            ok: true,
            detail: format!("{user} has {count} subordinate ids"),
            fix: None,
        }
    } else {
        Check {
            name,
            needed_for,
            scope: Scope::Product,
            ok: false,
            detail: format!("{user} has {count} subordinate ids, {SUBORDINATE_IDS} are needed"),
            fix,
        }
    }
}

fn user_namespaces() -> Check {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    let debian_switch = std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
        .ok()
        .map(|t| t.trim() == "1");
    let (ok, detail, fix) = match (max, debian_switch) {
        (Some(0), _) => (
            false,
            "user namespaces are disabled (user.max_user_namespaces = 0)".to_owned(),
            Some("sudo sysctl -w user.max_user_namespaces=15000".to_owned()),
        ),
        (_, Some(false)) => (
            false,
            "unprivileged user namespaces are disabled".to_owned(),
            Some("sudo sysctl -w kernel.unprivileged_userns_clone=1".to_owned()),
        ),
        (Some(n), _) => (true, format!("up to {n} user namespaces"), None),
        (None, _) => (
            false,
            "cannot read /proc/sys/user/max_user_namespaces".to_owned(),
            Some("run on Linux with user namespaces enabled".to_owned()),
        ),
    };
    Check {
        name: "user namespaces".to_owned(),
        needed_for: "unshare-mode builds (sbuild, mmdebstrap)",
        scope: Scope::Product,
        ok,
        detail,
        fix,
    }
}

/// Whether an overlay can be mounted in a user namespace (`userxattr`, Linux 5.11 or
/// later), as image builds do: tried in a temporary folder.
async fn overlay_in_user_namespaces() -> Check {
    let needed_for = "image builds (an overlay on the cached base)";
    let tried = async {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        for sub in ["lower", "upper", "work", "merged"] {
            std::fs::create_dir(dir.path().join(sub)).map_err(|e| e.to_string())?;
        }
        let p = |sub: &str| dir.path().join(sub).display().to_string();
        let output = tokio::process::Command::new("unshare")
            .args([
                "--map-root-user",
                "--mount",
                "--",
                "mount",
                "-t",
                "overlay",
                "overlay",
            ])
            .arg("-o")
            .arg(format!(
                "lowerdir={},upperdir={},workdir={},userxattr",
                p("lower"),
                p("upper"),
                p("work")
            ))
            .arg(p("merged"))
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| format!("unshare: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    };
    match tried.await {
        Ok(()) => Check {
            name: "overlay in user namespaces".to_owned(),
            needed_for,
            scope: Scope::Product,
            ok: true,
            detail: "an overlay mounts in a user namespace".to_owned(),
            fix: None,
        },
        Err(err) => Check {
            name: "overlay in user namespaces".to_owned(),
            needed_for,
            scope: Scope::Product,
            ok: false,
            detail: format!("an overlay could not be mounted in a user namespace: {err}"),
            fix: Some(
                "run on Linux 5.11 or later with user namespaces and overlayfs enabled".to_owned(),
            ),
        },
    }
}

fn data_dir(config: &Config) -> Check {
    let needed_for = "local state (tickets, store, PPAs, build chroots)";
    let dir = match config.data_dir() {
        Ok(dir) => dir,
        Err(e) => {
            return Check {
                name: "data dir".to_owned(),
                needed_for,
                scope: Scope::Product,
                ok: false,
                detail: e.to_string(),
                fix: Some("set --data-dir or UBUNTU_CI_DATA_DIR".to_owned()),
            }
        }
    };
    let writable = std::fs::create_dir_all(&dir)
        .and_then(|()| tempfile::tempfile_in(&dir).map(drop))
        .map_err(|e| e.to_string());
    Check {
        name: "data dir".to_owned(),
        needed_for,
        scope: Scope::Product,
        ok: writable.is_ok(),
        detail: match &writable {
            Ok(()) => format!("{} is writable", dir.display()),
            Err(e) => format!("{}: {e}", dir.display()),
        },
        fix: writable.is_err().then(|| {
            format!(
                "make {} writable, or choose another with --data-dir",
                dir.display()
            )
        }),
    }
}

async fn services(config: &Config) -> Check {
    let needed_for = "everything: the ticket system and the data store";
    let target = config
        .server
        .clone()
        .unwrap_or_else(|| "local state".to_owned());
    let result = async {
        let services = config.connect(None).await?;
        services
            .tickets
            .list_tickets(Default::default(), crate::model::PageRequest::default())
            .await?;
        services.store.list_containers(Some("ticket.")).await?;
        Ok::<(), crate::Error>(())
    }
    .await;
    Check {
        name: "services".to_owned(),
        needed_for,
        scope: Scope::Product,
        ok: result.is_ok(),
        detail: match &result {
            Ok(()) => format!("{target}: tickets and store answer"),
            Err(e) => format!("{target}: {e}"),
        },
        fix: result.is_err().then(|| {
            "check --server/--token or tickets_url/store_url in the configuration".to_owned()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ids_are_counted_for_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("subuid");
        std::fs::write(
            &file,
            "dev:100000:65536\nroot:200000:1000\nroot:300000:70000\n",
        )
        .unwrap();
        assert!(subordinate_ids(&file, "dev").ok);
        let root = subordinate_ids(&file, "root");
        assert!(root.ok, "{root:?}");
        let nobody = subordinate_ids(&file, "nobody");
        assert!(!nobody.ok);
        assert!(nobody.fix.unwrap().contains("nobody:100000:65536"));
        let missing = subordinate_ids(&dir.path().join("absent"), "root");
        assert!(!missing.ok && missing.detail.contains("cannot read"));
    }

    #[test]
    fn programs_are_found_on_the_path() {
        assert!(find_program("sh").is_some());
        assert!(find_program("surely-not-a-program-xyz").is_none());
        let check = program_check(
            "surely-not-a-program-xyz",
            "xyz",
            None,
            "tests",
            Scope::Tests,
        );
        assert!(!check.ok);
        assert_eq!(
            check.fix.as_deref(),
            Some("sudo apt-get install --no-install-recommends xyz")
        );
    }

    #[test]
    fn versions_are_checked_against_the_oldest_the_code_relies_on() {
        // dpkg-query itself comes with dpkg, on every Debian system.
        let version = installed_version("dpkg").expect("dpkg is installed");
        let new_enough = program_check("dpkg-query", "dpkg", Some("1.0"), "x", Scope::Product);
        assert!(new_enough.ok, "{new_enough:?}");
        assert!(new_enough.detail.contains(&version), "{new_enough:?}");
        let too_old = program_check("dpkg-query", "dpkg", Some("99:1"), "x", Scope::Product);
        assert!(!too_old.ok);
        assert!(
            too_old.detail.contains("99:1 or later is needed"),
            "{too_old:?}"
        );
        assert!(installed_version("surely-not-a-package-xyz").is_none());
    }

    #[tokio::test]
    async fn a_fresh_data_dir_passes_the_state_checks() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: Some(dir.path().to_path_buf()),
            ..Config::default()
        };
        let checks = run(&config, true).await;
        for name in ["data dir", "services", "overlay in user namespaces"] {
            let check = checks.iter().find(|c| c.name == name).unwrap();
            assert!(check.ok, "{check:?}");
        }
    }
}
