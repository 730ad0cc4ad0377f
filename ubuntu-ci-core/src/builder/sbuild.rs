//! The local source builder: sbuild in unshare mode, in a chroot tarball made by mmdebstrap.
//!
//! One build:
//!
//! 1. `fetch`: the sources from the data store, validated again ([`super::fetch`]);
//! 2. `chroot`: the series' build chroot tarball, `<chroots>/<series>-<arch>.tar.zst`, made
//!    by `mmdebstrap --variant=buildd` when missing or older than the configured age; a lock
//!    file makes concurrent requests make it once;
//! 3. `build`: `sbuild --chroot-mode=unshare` with the PPA as an extra repository (its
//!    folder bind-mounted into the chroot, its key named by `signed-by`), so a source can
//!    build-depend on binaries built before it into the same PPA;
//! 4. `store`: the `.deb`s, `.buildinfo`, binary `.changes` and the build log into the data
//!    store (container `ticket.<id>.builds`), recorded as artifacts on the upload's subticket;
//! 5. `publish`: the `.deb`s into the PPA.
//!
//! Everything runs in a temporary folder of its own, removed at the end whatever happens;
//! sbuild's own unpacked chroot lives inside it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::fetch::fetch_sources;
use super::process::{run, Ending, Outcome, Reporter, Supervision};
use super::{BuildSource, SourceBuilder};
use crate::archive::{Archives, Publishable};
use crate::artifacts::{keep_file, Owner};
use crate::error::{Error, Result};
use crate::fsutil::set_mode;
use crate::model::ArtifactType;
use crate::ppa::PpaName;
use crate::queue::{Done, ProgressQueues, QueueName};
use crate::store::{DataStore, ObjectStore};
use crate::tickets::TicketSystem;
use crate::upload::ValidatedUpload;

/// How the local builder builds.
#[derive(Debug, Clone)]
pub struct SbuildOptions {
    /// Where chroot tarballs are kept (`<data dir>/chroots`).
    pub chroot_dir: PathBuf,
    /// The Debian mirror chroots are made from and builds fetch build-dependencies from.
    pub mirror: String,
    /// A chroot older than this is made again.
    pub chroot_max_age: Duration,
    /// A build (sbuild alone) running longer is ended.
    pub timeout: Duration,
    /// Making a chroot taking longer is ended.
    pub chroot_timeout: Duration,
    /// Where each build's temporary folder goes (it must be reachable from the build's user
    /// namespace; the data dir under a private home may not be).
    pub work_dir: PathBuf,
}

impl SbuildOptions {
    /// The defaults for a data dir.
    pub fn new(data_dir: &Path) -> SbuildOptions {
        SbuildOptions {
            chroot_dir: data_dir.join("chroots"),
            mirror: "http://deb.debian.org/debian".to_owned(),
            chroot_max_age: Duration::from_secs(7 * 24 * 3600),
            timeout: Duration::from_secs(3 * 3600),
            chroot_timeout: Duration::from_secs(3600),
            work_dir: std::env::temp_dir(),
        }
    }
}

/// Builds with sbuild on this machine.
pub struct SbuildBuilder {
    store: Arc<dyn ObjectStore>,
    tickets: Option<Arc<dyn TicketSystem>>,
    archives: Archives,
    queues: Arc<dyn ProgressQueues>,
    options: SbuildOptions,
}

impl fmt::Debug for SbuildBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SbuildBuilder")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SbuildBuilder {
    /// A builder taking sources from `store`, publishing into `archives`, reporting on
    /// `queues`, and recording artifacts in `tickets` when given.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        tickets: Option<Arc<dyn TicketSystem>>,
        archives: Archives,
        queues: Arc<dyn ProgressQueues>,
        options: SbuildOptions,
    ) -> SbuildBuilder {
        SbuildBuilder {
            store,
            tickets,
            archives,
            queues,
            options,
        }
    }
}

/// What a successful build made, as stored.
#[derive(Debug, Default)]
struct Built {
    binaries: Vec<String>,
    files: Vec<String>,
    log: Option<String>,
    /// Who signed the upload, as the ticket records it.
    signature: Option<String>,
}

#[async_trait]
impl SourceBuilder for SbuildBuilder {
    async fn build_source(&self, request: BuildSource, cancel: CancellationToken) -> Result<Done> {
        let queue = QueueName::new(request.progress_queue.clone())?;
        let reporter = Reporter {
            queues: &*self.queues,
            queue: &queue,
        };
        let result = self.build(&request, &reporter, &cancel).await;
        let done = match result {
            Ok(built) => {
                let mut results = serde_json::Map::new();
                results.insert("ppa".into(), request.ppa.clone().into());
                results.insert("binaries".into(), built.binaries.into());
                results.insert("files".into(), built.files.into());
                if let Some(log) = built.log {
                    results.insert("build_log".into(), log.into());
                }
                if let Some(signature) = built.signature {
                    results.insert("signature".into(), signature.into());
                }
                Done::completed(results)
            }
            Err(failure) => {
                let mut done = Done::failed(failure.reason).with_error_kind(failure.kind);
                if let Some(log) = failure.log {
                    done.results.insert("build_log".into(), log.into());
                }
                done
            }
        };
        reporter.finish(done).await
    }
}

/// Why a build failed, and its log when there is one.
struct Failure {
    reason: String,
    /// The error's kind when the work was refused or broke (bad input, a missing
    /// object), rather than ran and failed.
    kind: Option<crate::ErrorKind>,
    log: Option<String>,
}

impl From<Error> for Failure {
    fn from(err: Error) -> Failure {
        Failure {
            kind: Some(err.kind()),
            reason: err.to_string(),
            log: None,
        }
    }
}

impl SbuildBuilder {
    async fn build(
        &self,
        request: &BuildSource,
        reporter: &Reporter<'_>,
        cancel: &CancellationToken,
    ) -> std::result::Result<Built, Failure> {
        let ppa: PpaName = request.ppa.parse()?;
        let series = self.archives.series(request.series.as_deref())?;
        let arch = request
            .architecture
            .clone()
            .unwrap_or_else(|| crate::archive::host_architecture().to_owned());
        crate::archive::deb::check_architecture(&arch)?;

        let work = tempfile::Builder::new()
            .prefix("ubuntu-ci-build-")
            .tempdir_in(&self.options.work_dir)
            .map_err(Error::from)?;
        set_mode(work.path(), 0o755)?;
        let sources = work.path().join("sources");
        let output = work.path().join("output");
        for dir in [&sources, &output] {
            std::fs::create_dir_all(dir).map_err(Error::from)?;
            set_mode(dir, 0o777)?;
        }

        reporter
            .phase(
                "fetch",
                format!("fetching {} source files", request.source_packages.len()),
            )
            .await?;
        let upload = fetch_sources(&*self.store, &request.source_packages, &sources).await?;
        let what = format!("{} {}", upload.changes.source, upload.changes.version);
        // This side's signature policy, before anything is built: the upload may have come
        // through any path (an SPU recorded through the API, a client with a policy of its
        // own), and what is built here is published.
        let policy = self.archives.upload_policy();
        let signature = policy.check(&upload).await.map_err(|e| Failure {
            kind: Some(e.kind()),
            reason: format!("{what} is refused by the signature policy: {e}"),
            log: None,
        })?;
        let signed = signature.describe(&upload, policy.policy);
        reporter.phase("signature", signed.clone()).await?;

        reporter
            .phase(
                "chroot",
                format!("preparing the {series}-{arch} build chroot"),
            )
            .await?;
        let chroot = self.ensure_chroot(&series, &arch, reporter, cancel).await?;

        reporter
            .phase(
                "build",
                format!("building {what} for {series}/{arch} with sbuild"),
            )
            .await?;
        self.archives.ensure(&ppa, Some(&series)).await?;
        let log = work.path().join("console.log");
        let outcome = self
            .run_sbuild(
                &upload, &ppa, &series, &arch, &chroot, &output, &log, reporter, cancel,
            )
            .await?;
        let sbuild_log = find_suffix(&output, ".build").unwrap_or(log);

        reporter
            .phase("store", format!("storing the results of {what}"))
            .await?;
        let container = match request.ticket_id {
            Some(id) => format!("ticket.{id}"),
            None => format!("build.{}", reporter.queue),
        };
        let store = DataStore::open(self.store.clone(), &container, "builds", true).await?;
        let subticket = self.subticket_of(request.ticket_id, &upload).await;
        // Named as Debian names build logs, so that the logs of a ticket's uploads do not
        // take one another's place in its container.
        let log_name = format!(
            "{}_{}_{arch}.build",
            upload.dsc.source,
            crate::upload::version::DebianVersion::parse(&upload.dsc.version)
                .map(|v| v.without_epoch())
                .unwrap_or_else(|_| upload.dsc.version.clone())
        );
        let log_url = self
            .keep_as(
                &store,
                subticket,
                &sbuild_log,
                &log_name,
                ArtifactType::BuildLog,
            )
            .await?;
        if !outcome.succeeded() {
            return Err(Failure {
                kind: None,
                reason: failure_reason(&outcome, &what),
                log: Some(log_url),
            });
        }
        let mut built = Built {
            log: Some(log_url),
            signature: Some(signed),
            ..Built::default()
        };
        let mut debs = Vec::new();
        // Only what the build's own .changes lists, each checked against it: anything else
        // in the output folder (put there by anyone) is neither stored nor published.
        let (changes, names) = built_files(&output, &upload.dsc.source).map_err(|e| Failure {
            kind: None,
            reason: format!("{what}: {e}"),
            log: built.log.clone(),
        })?;
        let mut names: Vec<PathBuf> = names.into_iter().chain([changes]).collect();
        names.sort();
        for path in names {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let kind = if name.ends_with(".deb") {
                ArtifactType::Binary
            } else if name.ends_with(".buildinfo") || name.ends_with(".changes") {
                ArtifactType::Log
            } else {
                continue;
            };
            let url = self.keep(&store, subticket, &path, kind).await?;
            if kind == ArtifactType::Binary {
                debs.push(Publishable::Deb(path.clone()));
                built.binaries.push(url);
            } else {
                built.files.push(url);
            }
        }
        if debs.is_empty() {
            return Err(Failure {
                kind: None,
                reason: format!("sbuild built {what} but left no .deb"),
                log: built.log,
            });
        }

        // The source goes in too, so the PPA serves it (`apt-get source`) and the test
        // runner finds the tests of what it built: into the series built for, whatever
        // the .changes targets (a Debian upload for unstable, tested on bookworm).
        reporter
            .phase(
                "publish",
                format!(
                    "publishing {} binaries and their source into {ppa}",
                    debs.len()
                ),
            )
            .await?;
        debs.insert(0, Publishable::Source(Box::new(upload.clone())));
        self.archives.publish(&ppa, Some(&series), debs).await?;
        Ok(built)
    }

    async fn keep(
        &self,
        store: &DataStore,
        subticket: Option<i64>,
        path: &Path,
        kind: ArtifactType,
    ) -> Result<String> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::internal("a build output without a name"))?;
        self.keep_as(store, subticket, path, name, kind).await
    }

    async fn keep_as(
        &self,
        store: &DataStore,
        subticket: Option<i64>,
        path: &Path,
        name: &str,
        kind: ArtifactType,
    ) -> Result<String> {
        keep_file(
            store,
            self.tickets.as_ref(),
            subticket.map(Owner::Subticket),
            name,
            path,
            kind,
        )
        .await
    }

    /// The subticket of `upload` in ticket `ticket`: the one whose SPU has its fingerprint.
    async fn subticket_of(&self, ticket: Option<i64>, upload: &ValidatedUpload) -> Option<i64> {
        let (tickets, ticket) = (self.tickets.as_ref()?, ticket?);
        crate::artifacts::subticket_of(&**tickets, ticket, &upload.fingerprint).await
    }

    /// The chroot tarball of `series`/`arch`, made when missing or too old.
    async fn ensure_chroot(
        &self,
        series: &str,
        arch: &str,
        reporter: &Reporter<'_>,
        cancel: &CancellationToken,
    ) -> Result<PathBuf> {
        let dir = self.options.chroot_dir.clone();
        std::fs::create_dir_all(&dir)?;
        let tarball = dir.join(format!("{series}-{arch}.tar.zst"));
        let lock_path = dir.join(format!(".{series}-{arch}.lock"));
        let lock = crate::fsutil::lock_file(lock_path).await?;
        let fresh = std::fs::metadata(&tarball)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < self.options.chroot_max_age);
        if !fresh {
            let tmp = dir.join(format!(
                ".{series}-{arch}.{:08x}.tar.zst",
                rand::random::<u32>()
            ));
            let mut command = Command::new("mmdebstrap");
            command
                .arg("--variant=buildd")
                .arg(format!("--architectures={arch}"))
                .arg("--include=ca-certificates")
                .arg(series)
                .arg(&tmp)
                .arg(&self.options.mirror);
            let log = dir.join(format!("{series}-{arch}.mmdebstrap.log"));
            let supervision = Supervision {
                phase: "chroot".to_owned(),
                timeout: self.options.chroot_timeout,
                ..Supervision::default()
            };
            let outcome = run(command, &log, reporter, &supervision, cancel).await;
            let made = matches!(&outcome, Ok(o) if o.succeeded());
            if !made {
                let _ = std::fs::remove_file(&tmp);
                return Err(match outcome {
                    Ok(o) => Error::unavailable(format!(
                        "mmdebstrap could not make the {series}-{arch} chroot ({}): {}",
                        o.ending.describe(),
                        o.tail.last().cloned().unwrap_or_default()
                    )),
                    Err(e) => e,
                });
            }
            std::fs::rename(&tmp, &tarball)?;
        }
        drop(lock);
        Ok(tarball)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_sbuild(
        &self,
        upload: &ValidatedUpload,
        ppa: &PpaName,
        series: &str,
        arch: &str,
        chroot: &Path,
        output: &Path,
        log: &Path,
        reporter: &Reporter<'_>,
        cancel: &CancellationToken,
    ) -> Result<Outcome> {
        let work = output
            .parent()
            .ok_or_else(|| Error::internal("a build folder without a parent"))?;
        let unpack = work.join("chroot");
        std::fs::create_dir_all(&unpack)?;
        set_mode(&unpack, 0o777)?;
        // A snapshot of the PPA (hard links) in the build's own folder is bind-mounted into
        // the chroot, key.asc with it: the data dir may be private (under a 0700 home), out of
        // reach of the build's user namespace, and the snapshot cannot change mid-build.
        let archive = work.join("ppa");
        crate::archive::snapshot(&self.archives.path(ppa), &archive)?;
        let config = work.join("sbuild.conf");
        std::fs::write(
            &config,
            format!(
                "$unshare_tmpdir_template = '{}/tmp.sbuild.XXXXXXXXXX';\n\
                 $unshare_bind_mounts = [ {{ directory => '{}', mountpoint => '/srv/ubuntu-ci-ppa' }} ];\n\
                 1;\n",
                perl_quote(&unpack)?,
                perl_quote(&archive)?,
            ),
        )?;
        let dsc = upload
            .files
            .iter()
            .find(|f| f.name.ends_with(".dsc"))
            .ok_or_else(|| Error::internal("a validated upload without a .dsc"))?;
        let mut command = Command::new("sbuild");
        command
            .env("SBUILD_CONFIG", &config)
            // sbuild's own temporary folders (the unpacked chroot) inside the build's: gone
            // with it, and told apart from other builds on the machine.
            .env("TMPDIR", work)
            .arg("--chroot-mode=unshare")
            .arg(format!("--chroot={}", chroot.display()))
            .arg(format!("--dist={series}"))
            .arg(format!("--arch={arch}"))
            .arg("--no-run-lintian")
            .arg("--no-run-piuparts")
            .arg("--no-run-autopkgtest")
            .arg("--nolog")
            .arg(format!(
                "--extra-repository=deb [signed-by=/srv/ubuntu-ci-ppa/key.asc] file:/srv/ubuntu-ci-ppa {series} main"
            ))
            .arg(format!("--build-dir={}", output.display()))
            .arg(&dsc.path)
            .current_dir(output);
        let supervision = Supervision {
            phase: "build".to_owned(),
            timeout: self.options.timeout,
            // sbuild needs some seconds after SIGTERM to end its build and clean up.
            grace: Duration::from_secs(30),
            ..Supervision::default()
        };
        run(command, log, reporter, &supervision, cancel).await
    }
}

/// The reason of a failed build, from sbuild's exit and the end of its log.
fn failure_reason(outcome: &Outcome, what: &str) -> String {
    let unsatisfiable: Vec<&str> = outcome
        .tail
        .iter()
        .filter_map(|l| l.trim().strip_prefix("unsat-dependency:"))
        .map(str::trim)
        .collect();
    let tail_field = |name: &str| {
        outcome
            .tail
            .iter()
            .find_map(|l| l.strip_prefix(name).map(str::trim))
            .unwrap_or_default()
            .to_owned()
    };
    match &outcome.ending {
        Ending::TimedOut => format!("the build of {what} ran past its time limit and was ended"),
        Ending::Cancelled => format!("the build of {what} was cancelled"),
        _ if !unsatisfiable.is_empty() => format!(
            "build-dependency not satisfiable for {what}: {}",
            unsatisfiable.join(", ")
        ),
        ending => {
            let stage = tail_field("Fail-Stage:");
            format!(
                "the build of {what} failed ({}{}); the log says:\n{}",
                ending.describe(),
                if stage.is_empty() {
                    String::new()
                } else {
                    format!(", stage {stage}")
                },
                error_context(&outcome.tail).join("\n")
            )
        }
    }
}

/// The lines that explain a failure: up to 15 before and including sbuild's last `E: `
/// line before its summary, else the 15 before the summary.
fn error_context(tail: &[String]) -> Vec<&str> {
    // sbuild repeats its error after the summary: look before the summary.
    let summary = tail
        .iter()
        .rposition(|l| l.starts_with("| Summary"))
        .unwrap_or(tail.len());
    let end = tail[..summary]
        .iter()
        .rposition(|l| l.starts_with("E: "))
        .map_or(summary, |i| i + 1);
    let lines: Vec<&str> = tail[..end]
        .iter()
        .map(String::as_str)
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(15)..].to_vec()
}

/// The build's own `.changes` in `output` (`<source>_<version>_<arch>.changes`, which
/// sbuild writes) and the files it lists, each found beside it with the size and SHA-256
/// it says.
///
/// # Errors
/// `Internal` when there is no such `.changes`, it cannot be read, or a file it lists is
/// missing or differs.
fn built_files(output: &Path, source: &str) -> Result<(PathBuf, Vec<PathBuf>)> {
    let prefix = format!("{source}_");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(output)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".changes"))
                && p.is_file()
        })
        .collect();
    candidates.sort();
    let [changes] = candidates.as_slice() else {
        return Err(Error::internal(format!(
            "sbuild left {} .changes for {source} (one is expected)",
            candidates.len()
        )));
    };
    let text = std::fs::read(changes)?;
    let paragraphs =
        crate::upload::deb822::parse(&text, &crate::upload::deb822::Limits::default())?;
    let listed = paragraphs
        .first()
        .and_then(|p| p.field("Checksums-Sha256"))
        .ok_or_else(|| Error::internal("the build's .changes has no Checksums-Sha256"))?;
    let mut files = Vec::new();
    for (_, entry) in listed.entries() {
        let words: Vec<&str> = entry.split_whitespace().collect();
        let [sha256, size, name] = words.as_slice() else {
            return Err(Error::internal(format!(
                "the build's .changes lists {entry:?}"
            )));
        };
        crate::upload::validate_file_name(name)?;
        let path = output.join(name);
        let digests = crate::upload::checksums::digest_file_blocking(&path)
            .map_err(|e| e.with_resource((*name).to_owned()))?;
        if digests.size.to_string() != *size || !digests.sha256.eq_ignore_ascii_case(sha256) {
            return Err(Error::internal(format!(
                "{name} is not what the build's .changes lists (changed after the build?)"
            )));
        }
        files.push(path);
    }
    Ok((changes.clone(), files))
}

fn find_suffix(dir: &Path, suffix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix))
                && p.is_file()
        })
}

/// A path for a single-quoted Perl string.
fn perl_quote(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .ok_or_else(|| Error::invalid(format!("{} is not UTF-8", path.display())))?;
    if text.contains(['\'', '\\']) {
        return Err(Error::invalid(format!(
            "{text}: a path with quotes or backslashes cannot go into sbuild's configuration"
        )));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(code: i32, tail: &[&str]) -> Outcome {
        Outcome {
            ending: Ending::Exited(Some(code)),
            tail: tail.iter().map(|l| (*l).to_owned()).collect(),
        }
    }

    #[test]
    fn failure_reasons_name_the_cause() {
        let deps = outcome(
            3,
            &[
                "      unsat-dependency: no-such-package-xyz:amd64",
                "Status: given-back",
            ],
        );
        assert_eq!(
            failure_reason(&deps, "hello 1.0"),
            "build-dependency not satisfiable for hello 1.0: no-such-package-xyz:amd64"
        );
        let failed = outcome(
            2,
            &[
                "make: *** [debian/rules:7: build] Error 1",
                "Fail-Stage: build",
                "Status: attempted",
            ],
        );
        let reason = failure_reason(&failed, "hello 1.0");
        assert!(reason.contains("exit status 2, stage build"), "{reason}");
        assert!(reason.contains("debian/rules:7"), "{reason}");
        assert!(!reason.contains("Summary"), "{reason}");
        let timed_out = Outcome {
            ending: Ending::TimedOut,
            tail: vec![],
        };
        assert!(failure_reason(&timed_out, "x").contains("time limit"));
    }

    #[test]
    fn hostile_paths_stay_out_of_the_perl_config() {
        assert!(perl_quote(Path::new("/tmp/ok dir")).is_ok());
        assert!(perl_quote(Path::new("/tmp/x'; system('rm')")).is_err());
    }

    /// Only the files the build's own .changes lists are taken, each as it lists it: a
    /// .deb dropped into the output folder by someone else is left out, and one changed
    /// after the build fails it.
    #[test]
    fn only_what_the_builds_changes_lists_is_taken() {
        use sha2::{Digest, Sha256};
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let write = |name: &str, content: &[u8]| {
            std::fs::write(out.join(name), content).unwrap();
            (hex::encode(Sha256::digest(content)), content.len())
        };
        let (deb_sum, deb_len) = write("hello_1.0-1_amd64.deb", b"the real package");
        let (info_sum, info_len) = write("hello_1.0-1_amd64.buildinfo", b"buildinfo");
        write("evil_6.6_amd64.deb", b"not built here");
        let changes = format!(
            "Format: 1.8\nSource: hello\nVersion: 1.0-1\nChecksums-Sha256:\n \
             {deb_sum} {deb_len} hello_1.0-1_amd64.deb\n {info_sum} {info_len} hello_1.0-1_amd64.buildinfo\n"
        );
        std::fs::write(out.join("hello_1.0-1_amd64.changes"), &changes).unwrap();
        let (found, files) = built_files(out, "hello").unwrap();
        assert!(found.ends_with("hello_1.0-1_amd64.changes"));
        let mut names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["hello_1.0-1_amd64.buildinfo", "hello_1.0-1_amd64.deb"]
        );

        // Swapped after the build.
        std::fs::write(out.join("hello_1.0-1_amd64.deb"), b"swapped content!").unwrap();
        let err = built_files(out, "hello").unwrap_err();
        assert!(
            err.to_string()
                .contains("is not what the build's .changes lists"),
            "{err}"
        );
        // A listed name that is a path.
        std::fs::write(
            out.join("hello_1.0-1_amd64.changes"),
            format!("Source: hello\nChecksums-Sha256:\n {deb_sum} {deb_len} ../x.deb\n"),
        )
        .unwrap();
        assert!(built_files(out, "hello").is_err());
        // No .changes at all.
        std::fs::remove_file(out.join("hello_1.0-1_amd64.changes")).unwrap();
        assert!(built_files(out, "hello").is_err());
    }
}
