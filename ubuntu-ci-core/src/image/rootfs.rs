//! The local image builder: base images made by `mmdebstrap` in unshare mode, images built
//! on an overlay of the unpacked base in user namespaces (no root privileges, nothing of
//! the host changed; the namespaces' root is the first subordinate id).
//!
//! **Bootstrap**: `mmdebstrap --variant=minbase --include=ca-certificates,gpgv` of a series,
//! keeping apt's package lists, stored as `images/<series>-<arch>.rootfs.<recipe>.tar.zst`,
//! where `<recipe>` is a digest of everything that made it (series, architecture, mirror,
//! options): asking again for the same recipe reuses the stored image.
//!
//! **Build**, one image:
//!
//! 1. `fetch`: the base image from the data store (never any other URL), unpacked once
//!    into a local cache by its SHA-256 (`<cache>/base/<sha256>/`), so a later build on the
//!    same base neither fetches nor unpacks it;
//! 2. `prepare`: a hard-link snapshot of each PPA, its owner's key, one apt source per PPA
//!    in `/etc/apt/sources.list.d/ubuntu-ci.list` (`deb [signed-by=/etc/apt/keyrings/
//!    ubuntu-ci-<owner>.asc] file:/srv/ubuntu-ci-ppa/<owner>/<name> <series> main`), and
//!    the packages to install,
//!    pinned to the version the first PPA of `ppa_list` carrying them has;
//! 3. `install`: a script (`BUILD_SCRIPT`) mounts an overlay on the base's tree
//!    (read-only), adds the sources and bind-mounts the snapshots, runs `apt-get update`,
//!    `apt-get install` and `apt-get clean` in a chroot in nested namespaces, and packs
//!    the overlay;
//! 4. `verify`: the manifest of installed packages is read from the packed image's
//!    `/var/lib/dpkg/status`, and each requested package must be installed at the PPA's
//!    version;
//! 5. `store`: the image and its manifest (and its description, `<image>.json`) go into
//!    `ticket.<id>.images` and become artifacts of the ticket.
//!
//! The image keeps the PPAs' apt sources and keys; the PPAs' folders are bind-mounted at
//! `/srv/ubuntu-ci-ppa/<owner>/<name>` by whoever uses the image (the test runner reads
//! which from the description).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::userns::{give_to_subordinate_root, remove_blocking, WorkDir, SUBORDINATE_ROOT};
use super::{check_package_name, Bootstrap, BuildImage, ImageBuilder, ImageType};
use crate::archive::{check_series, key_file, sources_line, version, Archives};
use crate::artifacts::{keep_file, Owner};
use crate::builder::process::{run, Ending, Outcome, Reporter, Supervision};
use crate::error::{Error, Result};
use crate::fsutil::{lock_file, set_mode, write_readable};
use crate::model::ArtifactType;
use crate::ppa::PpaName;
use crate::queue::{Done, ProgressQueues, QueueName};
use crate::store::{download, ContainerName, DataStore, ObjectName, ObjectStore};
use crate::tickets::TicketSystem;

/// The container of base images.
pub const IMAGES_CONTAINER: &str = "images";

/// The file in an image's `/etc/apt/sources.list.d` with one line per PPA.
pub const SOURCES_FILE: &str = "ubuntu-ci.list";

/// Where the PPAs' folders are bind-mounted in an image.
pub const PPA_MOUNT_ROOT: &str = "/srv/ubuntu-ci-ppa";

/// How the local image builder works.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// The Debian mirror base images are made from.
    pub mirror: String,
    /// The local cache of base images (`<data dir>/images`).
    pub cache_dir: PathBuf,
    /// Where each build's temporary folder goes (reachable from the user namespace).
    pub work_dir: PathBuf,
    /// An image build (or a bootstrap) running longer is ended.
    pub timeout: Duration,
}

impl ImageOptions {
    /// The defaults for a data dir.
    pub fn new(data_dir: &Path) -> ImageOptions {
        ImageOptions {
            mirror: "http://deb.debian.org/debian".to_owned(),
            cache_dir: data_dir.join("images"),
            work_dir: std::env::temp_dir(),
            timeout: Duration::from_secs(3600),
        }
    }
}

/// What an image holds, stored beside it as `<image>.json` and inside it as
/// `/etc/ubuntu-ci/image.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageDescription {
    /// `ROOTFS`.
    pub image_type: ImageType,
    /// The series.
    pub series: String,
    /// The architecture.
    pub architecture: String,
    /// The base image it was made from, and the base's SHA-256.
    pub base_image: String,
    /// SHA-256 of the base image.
    pub base_sha256: String,
    /// The PPAs whose apt sources it has (to bind-mount at
    /// `/srv/ubuntu-ci-ppa/<owner>/<name>`).
    pub ppa_list: Vec<String>,
    /// The requested packages and the versions installed.
    pub packages: BTreeMap<String, String>,
}

/// Builds images on this machine with mmdebstrap.
pub struct RootfsImageBuilder {
    store: Arc<dyn ObjectStore>,
    tickets: Option<Arc<dyn TicketSystem>>,
    archives: Archives,
    queues: Arc<dyn ProgressQueues>,
    options: ImageOptions,
}

impl fmt::Debug for RootfsImageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootfsImageBuilder")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RootfsImageBuilder {
    /// A builder taking base images from and storing images into `store`, reading PPAs
    /// from `archives`, reporting on `queues`, and recording artifacts in `tickets` when
    /// given.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        tickets: Option<Arc<dyn TicketSystem>>,
        archives: Archives,
        queues: Arc<dyn ProgressQueues>,
        options: ImageOptions,
    ) -> RootfsImageBuilder {
        RootfsImageBuilder {
            store,
            tickets,
            archives,
            queues,
            options,
        }
    }
}

/// Why an image build failed, with its log when there is one.
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

type Results = serde_json::Map<String, serde_json::Value>;

/// Sends the final message of `result` and returns it.
async fn finish(
    reporter: &Reporter<'_>,
    result: std::result::Result<Results, Failure>,
) -> Result<Done> {
    let done = match result {
        Ok(results) => Done::completed(results),
        Err(failure) => {
            let mut done = Done::failed(failure.reason).with_error_kind(failure.kind);
            if let Some(log) = failure.log {
                done.results.insert("log".into(), log.into());
            }
            done
        }
    };
    reporter.finish(done).await
}

fn cloud_unsupported() -> Failure {
    Failure {
        kind: Some(crate::ErrorKind::Unsupported),
        reason: "CLOUD (qcow2) images are not supported here: making a bootable disk image \
                 needs root and loop devices (vmdb2), which this builder does not use; \
                 use ROOTFS images"
            .to_owned(),
        log: None,
    }
}

#[async_trait]
impl ImageBuilder for RootfsImageBuilder {
    async fn bootstrap(&self, request: Bootstrap, cancel: CancellationToken) -> Result<Done> {
        let queue = QueueName::new(request.progress_queue.clone())?;
        let reporter = Reporter {
            queues: &*self.queues,
            queue: &queue,
        };
        let result = self.make_base(&request, &reporter, &cancel).await;
        finish(&reporter, result).await
    }

    async fn build_image(&self, request: BuildImage, cancel: CancellationToken) -> Result<Done> {
        let queue = QueueName::new(request.progress_queue.clone())?;
        let reporter = Reporter {
            queues: &*self.queues,
            queue: &queue,
        };
        let result = self.build(&request, &reporter, &cancel).await;
        finish(&reporter, result).await
    }
}

impl RootfsImageBuilder {
    fn architecture(requested: Option<&str>) -> Result<String> {
        let arch = requested
            .map(str::to_owned)
            .unwrap_or_else(|| crate::archive::host_architecture().to_owned());
        crate::archive::deb::check_architecture(&arch)?;
        Ok(arch)
    }

    async fn make_base(
        &self,
        request: &Bootstrap,
        reporter: &Reporter<'_>,
        cancel: &CancellationToken,
    ) -> std::result::Result<Results, Failure> {
        if request.image_type == ImageType::Cloud {
            return Err(cloud_unsupported());
        }
        check_series(&request.series)?;
        let arch = Self::architecture(request.architecture.as_deref())?;
        let options = [
            "--mode=unshare".to_owned(),
            "--variant=minbase".to_owned(),
            "--include=ca-certificates,gpgv".to_owned(),
            "--skip=cleanup/apt/lists".to_owned(),
            format!("--architectures={arch}"),
        ];
        let recipe = format!(
            "mmdebstrap {} {} {}",
            options.join(" "),
            request.series,
            self.options.mirror
        );
        let digest = hex::encode(Sha256::digest(recipe.as_bytes()));
        let name = ObjectName::new(format!(
            "{}-{arch}.rootfs.{}.tar.zst",
            request.series,
            &digest[..12]
        ))?;
        let container = ContainerName::new(IMAGES_CONTAINER)?;
        self.store.ensure_container(&container, true).await?;

        // One bootstrap of a recipe at a time; the others then find its image.
        std::fs::create_dir_all(&self.options.cache_dir).map_err(Error::from)?;
        let lock = lock_file(self.options.cache_dir.join(format!(".{name}.lock"))).await?;
        if !request.refresh {
            if let Ok(info) = self.store.head(&container, &name).await {
                let mut results = Results::new();
                results.insert("url_list".into(), vec![info.url].into());
                results.insert("reused".into(), true.into());
                return Ok(results);
            }
        }
        reporter
            .phase(
                "bootstrap",
                format!(
                    "making a {} {arch} base image with mmdebstrap",
                    request.series
                ),
            )
            .await?;
        let work = WorkDir::new(&self.options.work_dir, "ubuntu-ci-image-")?;
        let tarball = work.path().join(name.as_str());
        let log = work.path().join("bootstrap.log");
        let mut command = Command::new("mmdebstrap");
        command
            .env("TMPDIR", work.path())
            .args(&options)
            .arg(&request.series)
            .arg(&tarball)
            .arg(&self.options.mirror);
        let outcome = self
            .supervised(command, &log, "bootstrap", reporter, cancel)
            .await?;
        if !outcome.succeeded() {
            return Err(Failure {
                kind: None,
                reason: format!(
                    "mmdebstrap could not make the {} {arch} base image ({}): {}",
                    request.series,
                    outcome.ending.describe(),
                    outcome.last_lines(10)
                ),
                log: None,
            });
        }
        reporter.phase("store", format!("storing {name}")).await?;
        let file = std::fs::File::open(&tarball).map_err(Error::from)?;
        let info = self
            .store
            .put(&container, &name, crate::store::Body::File(file))
            .await?;
        drop(lock);
        let mut results = Results::new();
        results.insert("url_list".into(), vec![info.url].into());
        results.insert("reused".into(), false.into());
        Ok(results)
    }

    async fn supervised(
        &self,
        command: Command,
        log: &Path,
        phase: &str,
        reporter: &Reporter<'_>,
        cancel: &CancellationToken,
    ) -> Result<Outcome> {
        let supervision = Supervision {
            phase: phase.to_owned(),
            timeout: self.options.timeout,
            grace: Duration::from_secs(15),
            ..Supervision::default()
        };
        run(command, log, reporter, &supervision, cancel).await
    }

    async fn build(
        &self,
        request: &BuildImage,
        reporter: &Reporter<'_>,
        cancel: &CancellationToken,
    ) -> std::result::Result<Results, Failure> {
        // Everything in the request is checked before anything is done.
        let base = &request.base_image;
        if base.image_type == ImageType::Cloud {
            return Err(cloud_unsupported());
        }
        check_series(&base.series)?;
        let series = base.series.clone();
        let arch = Self::architecture(request.architecture.as_deref())?;
        let base_url = match base.url_list.as_slice() {
            [one] => one.clone(),
            _ => {
                return Err(Error::invalid(format!(
                    "base_image.url_list: give one URL of the data store, not {}",
                    base.url_list.len()
                ))
                .into())
            }
        };
        let base_object = self.resolve(&base_url)?;
        let mut ppas = Vec::new();
        for text in &request.ppa_list {
            let ppa: PpaName = text.parse()?;
            if !ppas.contains(&ppa) {
                ppas.push(ppa);
            }
        }
        let mut wanted: Vec<String> = Vec::new();
        for name in &request.package_list {
            check_package_name(name)?;
            if !wanted.contains(name) {
                wanted.push(name.clone());
            }
        }

        // The version each PPA-carried package is pinned to: the highest one in the first
        // PPA (in `ppa_list` order) that carries the package.
        let mut pinned: BTreeMap<String, (String, PpaName)> = BTreeMap::new();
        for ppa in &ppas {
            if !self.archives.path(ppa).join("dists").join(&series).exists() {
                return Err(Error::not_found(format!(
                    "{ppa} has no {series} archive here (nothing published for {series})"
                ))
                .into());
            }
            let mut highest: BTreeMap<String, String> = BTreeMap::new();
            for package in self.archives.list(ppa, Some(&series)).await? {
                if (package.architecture == arch || package.architecture == "all")
                    && wanted.contains(&package.name)
                {
                    let entry = highest
                        .entry(package.name.clone())
                        .or_insert_with(|| package.version.clone());
                    if version::compare(&package.version, entry).is_gt() {
                        entry.clone_from(&package.version);
                    }
                }
            }
            for (name, version) in highest {
                pinned.entry(name).or_insert((version, ppa.clone()));
            }
        }

        let work = WorkDir::new(&self.options.work_dir, "ubuntu-ci-image-")?;
        let w = work.path();

        reporter
            .phase("fetch", format!("fetching the base image {base_url}"))
            .await?;
        let (tree, base_sha256) = self.prepare_base(&base_object.0, &base_object.1).await?;

        reporter
            .phase(
                "prepare",
                format!("adding {} PPAs as apt sources", ppas.len()),
            )
            .await?;
        // One sources file for all the PPAs: apt ignores files whose names hold a `+`,
        // which PPA names may.
        let mut sources = String::new();
        for ppa in &ppas {
            let snapshot = w.join("ppa").join(ppa.owner()).join(ppa.name());
            crate::archive::snapshot(&self.archives.path(ppa), &snapshot)?;
            let key = self.archives.public_key(ppa.owner()).await?;
            write_readable(
                &w.join("apt/keyrings").join(file_name(&key_file(ppa))),
                &key,
            )?;
            let location = format!("file:{PPA_MOUNT_ROOT}/{}/{}", ppa.owner(), ppa.name());
            sources.push_str(&sources_line(ppa, &location, &series));
            sources.push('\n');
        }
        if !ppas.is_empty() {
            write_readable(&w.join("apt/sources").join(SOURCES_FILE), &sources)?;
        }
        let install: Vec<String> = wanted
            .iter()
            .map(|name| match pinned.get(name) {
                Some((version, _)) => format!("{name}={version}"),
                None => name.clone(),
            })
            .collect();
        write_readable(&w.join("packages"), &lines(&install))?;
        let mut description = ImageDescription {
            image_type: ImageType::Rootfs,
            series: series.clone(),
            architecture: arch.clone(),
            base_image: base_url.clone(),
            base_sha256: base_sha256.clone(),
            ppa_list: ppas.iter().map(ToString::to_string).collect(),
            packages: BTreeMap::new(),
        };
        write_readable(&w.join("build.sh"), BUILD_SCRIPT)?;
        write_readable(&w.join("install.sh"), INSTALL_SCRIPT)?;
        std::fs::write(w.join("dev.tar"), dev_entries()?).map_err(Error::from)?;
        // The namespace's root writes only in these.
        std::fs::create_dir_all(w.join("lower")).map_err(Error::from)?;
        give_to_subordinate_root(&["upper", "overlay", "root", "out", "run"].map(|d| w.join(d)))
            .await?;

        reporter
            .phase(
                "install",
                format!(
                    "installing {} into a {series} {arch} image",
                    if wanted.is_empty() {
                        "nothing".to_owned()
                    } else {
                        wanted.join(", ")
                    }
                ),
            )
            .await?;
        // Named after the request's queue too, so a second build for the same ticket (a
        // retry) never replaces an image a test run may be reading.
        let image_name = match request.ticket_id {
            Some(id) => format!(
                "ticket.{id}.{series}-{arch}.{}.rootfs.tar.zst",
                reporter.queue
            ),
            None => format!("{}.{series}-{arch}.rootfs.tar.zst", reporter.queue),
        };
        let image = w.join("out/image.tar.zst");
        let log = w.join("image-build.log");
        let mut command = Command::new("unshare");
        command
            .current_dir(&tree)
            .env("UBUNTU_CI_WORK", w)
            .args(SUBORDINATE_ROOT)
            .args(["--mount", "--fork", "--kill-child", "--", "sh"])
            .arg(w.join("build.sh"));
        let outcome = self
            .supervised(command, &log, "install", reporter, cancel)
            .await?;

        let container = match request.ticket_id {
            Some(id) => format!("ticket.{id}"),
            None => format!("image.{}", reporter.queue),
        };
        let store = DataStore::open(self.store.clone(), &container, "images", true).await?;
        let log_url = self
            .keep(
                &store,
                request.ticket_id,
                &format!("{image_name}.log"),
                &log,
                ArtifactType::Log,
            )
            .await?;
        if !outcome.succeeded() {
            return Err(Failure {
                kind: None,
                reason: install_failure(&outcome, &wanted),
                log: Some(log_url),
            });
        }

        reporter
            .phase("verify", "checking the installed versions".to_owned())
            .await?;
        let installed = installed_packages(&image).await?;
        let manifest_path = w.join("manifest");
        write_readable(
            &manifest_path,
            &installed
                .iter()
                .map(|(name, version)| format!("{name}\t{version}\tii\n"))
                .collect::<String>(),
        )?;
        for name in &wanted {
            let Some(version) = installed.get(name) else {
                return Err(Failure {
                    kind: None,
                    reason: format!("{name} is not installed in the image"),
                    log: Some(log_url),
                });
            };
            if let Some((expected, ppa)) = pinned.get(name) {
                if version != expected {
                    return Err(Failure {
                        kind: None,
                        reason: format!(
                            "{name} {version} is installed, but {ppa} carries {expected}"
                        ),
                        log: Some(log_url),
                    });
                }
            }
            description.packages.insert(name.clone(), version.clone());
        }

        reporter
            .phase("store", format!("storing {image_name}"))
            .await?;
        let image_url = self
            .keep(
                &store,
                request.ticket_id,
                &image_name,
                &image,
                ArtifactType::Image,
            )
            .await?;
        let manifest_url = self
            .keep(
                &store,
                request.ticket_id,
                &format!("{image_name}.manifest"),
                &manifest_path,
                ArtifactType::Log,
            )
            .await?;
        let description_path = w.join("description.json");
        write_readable(
            &description_path,
            &serde_json::to_string_pretty(&description).map_err(|e| {
                Error::internal("an image description could not be written").with_source(e)
            })?,
        )?;
        store
            .put_file(
                &format!("{image_name}.json"),
                crate::store::Body::File(
                    std::fs::File::open(&description_path).map_err(Error::from)?,
                ),
            )
            .await?;
        let mut results = Results::new();
        results.insert("url_list".into(), vec![image_url].into());
        results.insert("manifest".into(), manifest_url.into());
        results.insert("log".into(), log_url.into());
        results.insert(
            "packages".into(),
            serde_json::to_value(&description.packages).unwrap_or_default(),
        );
        Ok(results)
    }

    /// The container and object of a URL of the data store.
    fn resolve(&self, text: &str) -> Result<(ContainerName, ObjectName)> {
        let url = url::Url::parse(text)
            .map_err(|e| Error::invalid(format!("base_image: bad URL {text:?}: {e}")))?;
        self.store.resolve_url(&url).map_err(|e| {
            Error::invalid(format!(
                "base_image: {text} is not in the configured data store: {}",
                e.message()
            ))
        })
    }

    /// The base image unpacked in the local cache (`<cache>/base/<sha256>/`, owned by the
    /// subordinate ids), fetched and unpacked when missing; returns the tree and the
    /// tarball's SHA-256.
    ///
    /// `<cache>/base` is the user's only (mode 0700): builds start in a tree (as their current
    /// folder) and mount it read-only, and nothing run in them reaches it by its path.
    async fn prepare_base(
        &self,
        container: &ContainerName,
        object: &ObjectName,
    ) -> Result<(PathBuf, String)> {
        let name = object.as_str();
        let Some((_, compression)) = [
            (".tar.zst", "--zstd"),
            (".tar.xz", "--xz"),
            (".tar.gz", "--gzip"),
            (".tar", "--no-auto-compress"),
        ]
        .into_iter()
        .find(|(ext, _)| name.ends_with(ext)) else {
            return Err(Error::invalid(format!(
                "base_image: {name} is not a root filesystem tarball (.tar, .tar.gz, .tar.xz \
                 or .tar.zst)"
            )));
        };
        let info = self.store.head(container, object).await.map_err(|e| {
            if e.kind() == crate::ErrorKind::NotFound {
                Error::not_found(format!(
                    "base_image: {container}/{name} not found in the data store"
                ))
            } else {
                e
            }
        })?;
        let dir = self.options.cache_dir.join("base");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::from(e).with_resource(dir.display().to_string()))?;
        set_mode(&dir, 0o700)?;
        if let Some(sha256) = &info.sha256 {
            let tree = dir.join(sha256);
            if tree.is_dir() {
                return Ok((tree, sha256.clone()));
            }
        }
        let tarball = tempfile::Builder::new()
            .prefix(".fetch-")
            .tempfile_in(&dir)?
            .into_temp_path();
        download(&*self.store, container, object, &tarball).await?;
        let path = tarball.to_path_buf();
        let sha256 = tokio::task::spawn_blocking(move || sha256_file(&path))
            .await
            .map_err(|e| Error::internal("hashing the base image failed").with_source(e))??;
        if let Some(expected) = &info.sha256 {
            if expected != &sha256 {
                return Err(Error::invalid(format!(
                    "base_image: {name} changed while it was fetched (SHA-256 {sha256}, \
                     expected {expected})"
                )));
            }
        }

        // One unpack of a base at a time; the others then find its tree.
        let tree = dir.join(&sha256);
        let _lock = lock_file(dir.join(format!(".{sha256}.lock"))).await?;
        if tree.is_dir() {
            return Ok((tree, sha256));
        }
        let staging = dir.join(format!(".unpack-{sha256}"));
        remove_in_background(staging.clone()).await?;
        give_to_subordinate_root(std::slice::from_ref(&staging)).await?;
        let source = std::fs::File::open(&tarball)?;
        // The staging folder is the current folder and the tarball the input: neither is
        // reachable by its path from the namespace.
        let mut command = Command::new("unshare");
        command
            .current_dir(&staging)
            .args(SUBORDINATE_ROOT)
            .args([
                "--",
                "tar",
                "--extract",
                compression,
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=security.capability",
                "--exclude=./dev/*",
                "--file=-",
            ])
            .stdin(source)
            .kill_on_drop(true);
        let output = command
            .output()
            .await
            .map_err(|e| Error::from(e).with_resource("unshare"))?;
        drop(command);
        if !output.status.success() {
            remove_in_background(staging).await?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            return Err(Error::invalid(format!(
                "base_image: {name} could not be unpacked: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )));
        }
        std::fs::rename(&staging, &tree)
            .map_err(|e| Error::from(e).with_resource(tree.display().to_string()))?;
        Ok((tree, sha256))
    }

    async fn keep(
        &self,
        store: &DataStore,
        ticket: Option<i64>,
        name: &str,
        path: &Path,
        kind: ArtifactType,
    ) -> Result<String> {
        keep_file(
            store,
            self.tickets.as_ref(),
            ticket.map(Owner::Ticket),
            name,
            path,
            kind,
        )
        .await
    }
}

/// The image build, run as the root of a user namespace mapped to the subordinate ids
/// (`unshare --map-auto`), in its own mount namespace, from the base's tree as its
/// current folder.
///
/// 1. the tree is bind-mounted read-only and an overlay puts the build's `upper` on it;
/// 2. the PPAs' keys and sources go in, their snapshots are bind-mounted read-only, and
///    `/dev`'s few nodes are bound from the host's;
/// 3. [`INSTALL_SCRIPT`] runs in a nested user namespace (mapping the same ids), mount
///    namespace and PID namespace: the mounts made here are locked there, so nothing a
///    package runs, even out of the chroot, can write to the shared base tree;
/// 4. after it, only host tools run: the mounts go, and `tar` packs the overlay (without
///    `/dev`, whose entries `dev.tar` holds) through `zstd` into `out/image.tar.zst`.
const BUILD_SCRIPT: &str = r#"#!/bin/sh
set -eu
work="$UBUNTU_CI_WORK"
root="$work/root"
# The base's tree is the current folder (its path is not reachable from here).
mount --no-canonicalize --bind . "$work/lower"
mount -o remount,bind,ro "$work/lower"
# Nothing keeps the tree as its folder: /proc/<pid>/cwd would lead past the read-only mount.
cd /
mount -t overlay overlay \
    -o "lowerdir=$work/lower,upperdir=$work/upper,workdir=$work/overlay,userxattr" "$root"
mkdir -p "$root/etc/apt/keyrings" "$root/etc/apt/sources.list.d" "$root/srv/ubuntu-ci-ppa"
if [ -d "$work/apt/keyrings" ]; then
    cp "$work"/apt/keyrings/* "$root/etc/apt/keyrings/"
    cp "$work"/apt/sources/* "$root/etc/apt/sources.list.d/"
fi
mounted=""
if [ -d "$work/ppa" ]; then
    for owner in $(ls "$work/ppa"); do
        for name in $(ls "$work/ppa/$owner"); do
            target="$root/srv/ubuntu-ci-ppa/$owner/$name"
            mkdir -p "$target"
            mount -o bind,ro "$work/ppa/$owner/$name" "$target"
            mounted="$target $mounted"
        done
    done
fi
mkdir -p "$root/dev"
for node in null zero full random urandom tty; do
    touch "$root/dev/$node"
    mount --bind "/dev/$node" "$root/dev/$node"
    mounted="$root/dev/$node $mounted"
done
mkdir -p "$root/dev/pts"
ln -sf pts/ptmx "$root/dev/ptmx"

# The install, in namespaces of its own; their id maps are written from here.
mkfifo "$work/run/go"
unshare --user --mount --pid --fork --kill-child -- \
    sh -c 'read go <"$1" && exec sh "$2" "$3"' sh "$work/run/go" "$work/install.sh" "$root" &
child=$!
trap 'kill -KILL "$child" 2>/dev/null || true' EXIT
tries=0
while [ "$(readlink "/proc/$child/ns/user")" = "$(readlink /proc/self/ns/user)" ]; do
    tries=$((tries + 1))
    if [ ! -d "/proc/$child" ] || [ "$tries" -gt 500 ]; then
        echo "E: the install's namespaces were not made" >&2
        exit 1
    fi
    sleep 0.01
done
read -r inside outside count </proc/self/uid_map
echo "0 0 $count" >"/proc/$child/uid_map"
read -r inside outside count </proc/self/gid_map
echo "0 0 $count" >"/proc/$child/gid_map"
echo go >"$work/run/go"
status=0
wait "$child" || status=$?
trap - EXIT
if [ "$status" -ne 0 ]; then
    exit "$status"
fi

echo "I: packing the image"
for target in $mounted; do umount "$target"; done
for node in null zero full random urandom tty; do rm -f "$root/dev/$node"; done
rm -f "$root/dev/ptmx"
rmdir "$root/dev/pts" 2>/dev/null || true
{
    cat "$work/dev.tar"
    tar --create --numeric-owner --one-file-system --xattrs \
        --xattrs-include=security.capability --exclude=./dev --directory "$root" . ||
        touch "$work/run/tar-failed"
} | zstd --quiet --threads=0 >"$work/out/image.tar.zst"
if [ -e "$work/run/tar-failed" ]; then
    echo "E: packing the image failed" >&2
    exit 1
fi
"#;

/// The install: `apt-get update`, the packages, `apt-get clean`, in the chroot of `$1`.
const INSTALL_SCRIPT: &str = r#"#!/bin/sh
set -eu
root="$1"
work="$UBUNTU_CI_WORK"
mount -t proc proc "$root/proc"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
export DEBIAN_FRONTEND=noninteractive
chroot "$root" apt-get update
set -f
packages=$(cat "$work/packages")
if [ -n "$packages" ]; then
    chroot "$root" apt-get install --yes --no-install-recommends $packages
fi
chroot "$root" apt-get clean
"#;

/// The tar entries of an image's `/dev` (as mmdebstrap makes them), without the end of the
/// archive: the packed tree follows them.
fn dev_entries() -> Result<Vec<u8>> {
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut builder = tar::Builder::new(Vec::new());
    let entry = |path: &str, kind: tar::EntryType, mode: u32| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        header.set_size(0);
        (header, path.to_owned())
    };
    let mut entries = vec![entry("./dev/", tar::EntryType::Directory, 0o755)];
    for (name, major, minor) in [
        ("console", 5, 1),
        ("full", 1, 7),
        ("null", 1, 3),
        ("ptmx", 5, 2),
        ("random", 1, 8),
        ("tty", 5, 0),
        ("urandom", 1, 9),
        ("zero", 1, 5),
    ] {
        let (mut header, path) = entry(&format!("./dev/{name}"), tar::EntryType::Char, 0o666);
        header.set_device_major(major)?;
        header.set_device_minor(minor)?;
        entries.push((header, path));
    }
    for dir in ["pts", "shm"] {
        entries.push(entry(
            &format!("./dev/{dir}/"),
            tar::EntryType::Directory,
            0o755,
        ));
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let (mut header, path) = entry(&format!("./dev/{name}"), tar::EntryType::Symlink, 0o777);
        header.set_link_name(target)?;
        entries.push((header, path));
    }
    for (mut header, path) in entries {
        // Named as GNU tar names what it packs (`./dev/null`): the tar crate would drop the
        // `./`, and tools that skip `./dev` when unpacking (autopkgtest) would then not.
        let name = &mut header.as_old_mut().name;
        let bytes = path.as_bytes();
        name.fill(0);
        name.get_mut(..bytes.len())
            .ok_or_else(|| Error::internal("a /dev entry's name is too long"))?
            .copy_from_slice(bytes);
        header.set_cksum();
        builder.append(&header, std::io::empty())?;
    }
    let mut bytes = builder.into_inner()?;
    // The end of an archive is two blocks of zeros.
    bytes.truncate(bytes.len().saturating_sub(1024));
    Ok(bytes)
}

/// `name → version` of the packages installed in the image tarball `image`, from its
/// `/var/lib/dpkg/status`.
async fn installed_packages(image: &Path) -> Result<BTreeMap<String, String>> {
    let output = Command::new("tar")
        .arg("--extract")
        .arg("--to-stdout")
        .arg(format!("--file={}", image.display()))
        .arg("./var/lib/dpkg/status")
        .output()
        .await
        .map_err(|e| Error::from(e).with_resource("tar"))?;
    if !output.status.success() {
        return Err(Error::internal(format!(
            "the image has no readable /var/lib/dpkg/status: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(parse_status(&String::from_utf8_lossy(&output.stdout)))
}

/// `name → version` of the packages dpkg's status file says are installed.
fn parse_status(text: &str) -> BTreeMap<String, String> {
    text.split("\n\n")
        .filter_map(|stanza| {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                    .map(str::trim)
            };
            (field("Status")? == "install ok installed")
                .then(|| Some((field("Package")?.to_owned(), field("Version")?.to_owned())))
                .flatten()
        })
        .collect()
}

/// The reason of a failed install, from the end of mmdebstrap's log.
fn install_failure(outcome: &Outcome, wanted: &[String]) -> String {
    match &outcome.ending {
        Ending::TimedOut => "the image build ran past its time limit and was ended".to_owned(),
        Ending::Cancelled => "the image build was cancelled".to_owned(),
        ending => {
            let missing: Vec<&str> = outcome
                .tail
                .iter()
                .filter_map(|l| l.strip_prefix("E: Unable to locate package "))
                .map(str::trim)
                .collect();
            if missing.is_empty() {
                format!(
                    "the image build failed ({}); the log says:\n{}",
                    ending.describe(),
                    outcome.last_lines(15)
                )
            } else {
                format!(
                    "no such package in the image's apt sources: {} (asked for {})",
                    missing.join(", "),
                    wanted.join(", ")
                )
            }
        }
    }
}

fn lines(items: &[String]) -> String {
    items.iter().map(|i| format!("{i}\n")).collect()
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Removes `path` (see [`remove_blocking`]) off the async threads.
async fn remove_in_background(path: PathBuf) -> Result<()> {
    tokio::task::spawn_blocking(move || {
        remove_blocking(&path).map_err(|e| Error::from(e).with_resource(path.display().to_string()))
    })
    .await
    .map_err(|e| Error::internal("a removal task failed").with_source(e))?
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_packages_come_from_dpkgs_status() {
        let text = "Package: hello-ci\nStatus: install ok installed\nVersion: 1.0-1\n\n\
                    Package: libc6\nStatus: install ok installed\nArchitecture: amd64\n\
                    Multi-Arch: same\nVersion: 2.36-9\nDescription: x\n y\n\n\
                    Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n";
        let installed = parse_status(text);
        assert_eq!(installed.get("hello-ci").map(String::as_str), Some("1.0-1"));
        assert_eq!(installed.get("libc6").map(String::as_str), Some("2.36-9"));
        assert!(!installed.contains_key("gone"), "removed, config left");
    }

    #[test]
    fn dev_entries_are_named_as_gnu_tar_names_them_and_leave_the_archive_open() {
        let bytes = dev_entries().unwrap();
        assert_eq!(bytes.len() % 512, 0);
        assert!(
            bytes[bytes.len() - 512..].iter().any(|b| *b != 0),
            "no end blocks"
        );
        let mut archive = bytes.clone();
        archive.extend_from_slice(&[0; 1024]);
        let mut archive = tar::Archive::new(archive.as_slice());
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
            if name == "./dev/null" {
                assert_eq!(entry.header().entry_type(), tar::EntryType::Char);
                assert_eq!(entry.header().device_major().unwrap(), Some(1));
                assert_eq!(entry.header().device_minor().unwrap(), Some(3));
                assert_eq!(entry.header().uid().unwrap(), 0);
            }
            names.push(name);
        }
        assert_eq!(names.first().map(String::as_str), Some("./dev/"));
        assert!(names.iter().all(|n| n.starts_with("./dev/")), "{names:?}");
        assert!(names.contains(&"./dev/ptmx".to_owned()));
    }

    #[test]
    fn a_missing_package_is_named() {
        let outcome = Outcome {
            ending: Ending::Exited(Some(1)),
            tail: vec![
                "Reading package lists...".to_owned(),
                "E: Unable to locate package no-such-pkg".to_owned(),
            ],
        };
        let reason = install_failure(&outcome, &["no-such-pkg".to_owned()]);
        assert!(
            reason.starts_with("no such package in the image's apt sources: no-such-pkg"),
            "{reason}"
        );
    }
}
