//! The archive of a PPA: a signed apt repository in the data dir that apt on any machine
//! accepts, over HTTP from `ubuntu-ci serve` or as a `file:` path.
//!
//! ```text
//! <root>/<owner>/<name>/
//!     key.asc                         the pool's public key (also at .../key.asc over HTTP)
//!     pool/main/h/hello/…             every published file, shared by all series
//!     dists/<series> -> .<series>.g7  the live generation of the series
//!     dists/.<series>.g7/
//!         Release  InRelease  Release.gpg
//!         main/source/Sources{,.gz,.xz}            + by-hash/SHA256/<sha256>
//!         main/binary-<arch>/Packages{,.gz,.xz}    + by-hash/SHA256/<sha256>
//! ```
//!
//! # Atomicity
//! A change builds a whole new generation beside the live one, pool files first, and then
//! swaps the series' symbolic link with one `rename`. At every instant the tree a reader
//! sees is consistent: each index names only files that are in the pool, and the Release
//! matches the indices beside it. A reader that fetches `InRelease` before a swap and an
//! index after it uses `by-hash/` (the Release says `Acquire-By-Hash: yes`, and apt does):
//! every generation keeps its predecessors' recent index files there. The previous
//! generation is kept until the next change; older ones are deleted.
//!
//! # Concurrency
//! Every change to a PPA holds its lock file (`<root>/<owner>/.locks/<name>.lock`, an
//! `flock`), so changes from any task or process serialise per PPA while different PPAs
//! proceed in parallel. Reads take no lock.
//!
//! # Incremental work
//! The live indices are the archive's state: a change reads them back as stanza texts,
//! edits the map, and writes the indices that changed; the indices it did not touch are
//! hard-linked, and their Release entries reused. Publishing one package re-reads no
//! `.deb` and re-hashes nothing in the pool.
//!
//! # Signing
//! Each owner's archives share one OpenPGP key ([`signing`]), generated on first use and kept
//! at `<root>/<owner>/.key/`.

pub mod compress;
pub mod deb;
pub mod http;
pub mod index;
pub mod service;
pub mod signing;
pub mod version;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ppa::{PpaCleaner, PpaName};
use crate::upload::checksums::{self, FileDigests};
use crate::upload::signature::UploadPolicy;
use crate::upload::ValidatedUpload;
pub use http::HttpArchives;
use index::{Entry, SeriesIndex, SourceFile, COMPONENT};
pub use service::ArchiveService;
use signing::SigningKey;

/// The series archives publish to unless told otherwise.
pub const DEFAULT_SERIES: &str = "bookworm";

/// By-hash files kept per index folder, newest first: enough for readers that started a
/// few changes ago.
const BY_HASH_KEEP: usize = 16;

/// How archives are laid out and labelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveOptions {
    /// The series publishes go to when none is named (`bookworm`).
    pub default_series: String,
    /// Architectures every series has a `binary-<arch>` index for, even when empty; others
    /// appear when a package of theirs is published.
    pub architectures: Vec<String>,
    /// The Release's `Origin`.
    pub origin: String,
}

impl Default for ArchiveOptions {
    fn default() -> ArchiveOptions {
        ArchiveOptions {
            default_series: DEFAULT_SERIES.to_owned(),
            architectures: vec![host_architecture().to_owned()],
            origin: "ubuntu-ci".to_owned(),
        }
    }
}

/// The Debian name of the architecture this program was built for.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// Checks a series name (`bookworm`, `noble`, `sid`).
///
/// # Errors
/// `InvalidInput` for anything but 1 to 64 of `a-z 0-9 . + -` starting with a letter or digit.
pub fn check_series(series: &str) -> Result<()> {
    let ok = !series.is_empty()
        && series.len() <= 64
        && series.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && series
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid series {series:?}: 1 to 64 of a-z 0-9 . + -, starting with a letter or digit"
        )))
    }
}

/// Where the sources line expects `ppa`'s key: `/etc/apt/keyrings/ubuntu-ci-<owner>.asc`.
/// The key is the owner's (all its PPAs are signed by it), and the name is one per owner:
/// no two owners share it, whatever their names.
pub fn key_file(ppa: &PpaName) -> String {
    format!("/etc/apt/keyrings/ubuntu-ci-{}.asc", ppa.owner())
}

/// The line a user puts in `/etc/apt/sources.list.d/` for `ppa` at `location` (its
/// `http://…/ppa/<owner>/<name>/` URL or `file:` path), with its key saved at
/// [`key_file`].
pub fn sources_line(ppa: &PpaName, location: &str, series: &str) -> String {
    format!(
        "deb [signed-by={}] {location} {series} {COMPONENT}",
        key_file(ppa)
    )
}

/// Something to publish.
#[derive(Debug, Clone)]
pub enum Publishable {
    /// A source package from a validated `.changes`.
    Source(Box<ValidatedUpload>),
    /// A binary package file.
    Deb(PathBuf),
}

/// A package in an archive.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct PublishedPackage {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// `source`, or the binary's architecture.
    pub architecture: String,
}

/// What a change did to an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublishReport {
    /// The archive.
    #[schema(value_type = String)]
    pub ppa: PpaName,
    /// The series changed.
    pub series: String,
    /// Packages added (or, for a copy, copied).
    pub published: Vec<PublishedPackage>,
    /// Packages that were already there, identical.
    pub unchanged: Vec<PublishedPackage>,
    /// Packages removed.
    pub removed: Vec<PublishedPackage>,
}

/// The archives of a pool's PPAs, under one root folder (the data dir's `ppa/`).
#[derive(Debug, Clone)]
pub struct Archives {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    options: ArchiveOptions,
    keys: Mutex<HashMap<String, Arc<SigningKey>>>,
    uploads: UploadPolicy,
}

impl Archives {
    /// Archives under `root`, created on first use.
    pub fn new(root: PathBuf, options: ArchiveOptions) -> Archives {
        Archives {
            inner: Arc::new(Inner {
                root,
                options,
                keys: Mutex::new(HashMap::new()),
                uploads: UploadPolicy::allow_unsigned(),
            }),
        }
    }

    /// These archives holding published `.changes` to `policy` (by default, unsigned
    /// uploads pass).
    #[must_use]
    pub fn with_upload_policy(self, policy: UploadPolicy) -> Archives {
        let inner = Inner {
            root: self.inner.root.clone(),
            options: self.inner.options.clone(),
            keys: Mutex::new(HashMap::new()),
            uploads: policy,
        };
        Archives {
            inner: Arc::new(inner),
        }
    }

    /// The signature rule for published `.changes`.
    pub fn upload_policy(&self) -> &UploadPolicy {
        &self.inner.uploads
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The options.
    pub fn options(&self) -> &ArchiveOptions {
        &self.inner.options
    }

    /// The folder of `ppa`'s archive: the `file:` URL apt reads.
    pub fn path(&self, ppa: &PpaName) -> PathBuf {
        self.inner.root.join(ppa.owner()).join(ppa.name())
    }

    /// The series `series` names, or the default one, checked.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed series.
    pub fn series(&self, series: Option<&str>) -> Result<String> {
        let series = series.unwrap_or(&self.inner.options.default_series);
        check_series(series)?;
        Ok(series.to_owned())
    }

    /// Publishes `items` into `series` of `ppa` in one change: either all of them appear or
    /// none does. A series given is the caller's choice, whatever the uploads'
    /// `Distribution` says (a Debian upload for `unstable` tested on bookworm); with `None`,
    /// the default series, and a `.changes` must then target it (or one of its pockets,
    /// `bookworm-security`) so that nothing lands in a series by accident.
    ///
    /// Every source is held to the archives' [`UploadPolicy`](crate::upload::signature::UploadPolicy)
    /// first, whoever publishes it.
    ///
    /// # Errors
    /// `InvalidInput` for a broken `.deb`, or (no series given) a `.changes` whose
    /// `Distribution` is not the default series; `Unauthorized` for a source the signature
    /// policy refuses; `Conflict` when a pool file of the same name already holds other
    /// content.
    pub async fn publish(
        &self,
        ppa: &PpaName,
        series: Option<&str>,
        items: Vec<Publishable>,
    ) -> Result<PublishReport> {
        let chosen = series.is_some();
        let series = self.series(series)?;
        for item in &items {
            if !chosen {
                check_distribution(item, &series)?;
            }
            // The signature policy on every path into an archive: `ppa publish`, the
            // API's publish, the builder's, a retry's.
            if let Publishable::Source(upload) = item {
                self.upload_policy().check(upload).await.map_err(|e| {
                    let name = upload
                        .changes_path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    e.with_resource(name)
                })?;
            }
        }
        let this = self.clone();
        let ppa = ppa.clone();
        blocking(move || this.publish_blocking(&ppa, &series, &items)).await
    }

    /// Removes from `series` the source package `name` (only `version`, when given) and the
    /// binaries built from it, and binary packages called `name`.
    ///
    /// # Errors
    /// `NotFound` when nothing matches.
    pub async fn remove(
        &self,
        ppa: &PpaName,
        series: Option<&str>,
        name: &str,
        version: Option<&str>,
    ) -> Result<PublishReport> {
        let series = self.series(series)?;
        let this = self.clone();
        let ppa = ppa.clone();
        let name = name.to_owned();
        let version = version.map(str::to_owned);
        blocking(move || {
            let _lock = this.lock(&ppa)?;
            let mut state = this.read_state(&ppa, &series)?;
            let removed = select(&state.index, &name, version.as_deref());
            if removed.is_empty() {
                return Err(not_published(&ppa, &series, &name, version.as_deref()));
            }
            let mut report = this.report(&ppa, &series);
            for key in &removed {
                key.remove_from(&mut state.index);
                report.removed.push(key.package());
            }
            this.write_generation(&ppa, &series, &state, &removed_arches(&removed))?;
            this.collect_pool_garbage(&ppa)?;
            Ok(report)
        })
        .await
    }

    /// Copies the source package `name` (only `version`, when given) and the binaries built
    /// from it, from `series` of `from` into the same series of `to` (the lander's copy from a
    /// build PPA into the archive PPA). Files identical in both are left; a file of the same
    /// name with other content in `to` is a conflict and nothing is copied.
    ///
    /// # Errors
    /// `NotFound` when `from` has no such package; `Conflict` as above; `InvalidInput` when
    /// `from` and `to` are the same.
    pub async fn copy(
        &self,
        from: &PpaName,
        to: &PpaName,
        series: Option<&str>,
        name: &str,
        version: Option<&str>,
    ) -> Result<PublishReport> {
        if from == to {
            return Err(Error::invalid(format!("cannot copy {from} into itself")));
        }
        let series = self.series(series)?;
        let this = self.clone();
        let (from, to) = (from.clone(), to.clone());
        let name = name.to_owned();
        let version = version.map(str::to_owned);
        blocking(move || this.copy_blocking(&from, &to, &series, &name, version.as_deref())).await
    }

    /// Every package published in `series` of `ppa`, sources and binaries, sorted.
    ///
    /// # Errors
    /// I/O errors reading the archive.
    pub async fn list(&self, ppa: &PpaName, series: Option<&str>) -> Result<Vec<PublishedPackage>> {
        let series = self.series(series)?;
        let this = self.clone();
        let ppa = ppa.clone();
        blocking(move || {
            let state = this.read_state(&ppa, &series)?;
            let mut packages: Vec<PublishedPackage> =
                state
                    .index
                    .sources
                    .keys()
                    .map(|(name, version)| PublishedPackage {
                        name: name.clone(),
                        version: version.clone(),
                        architecture: "source".to_owned(),
                    })
                    .chain(state.index.binaries.keys().map(|(name, version, arch)| {
                        PublishedPackage {
                            name: name.clone(),
                            version: version.clone(),
                            architecture: arch.clone(),
                        }
                    }))
                    .collect();
            packages.sort();
            Ok(packages)
        })
        .await
    }

    /// The source package that built `binary` (for `arch`, or `all`; at `version`, else its
    /// highest version) in `series` of `ppa`, when that source is published there too: its
    /// name, version and `.dsc` file.
    ///
    /// # Errors
    /// I/O errors reading the archive.
    pub async fn source_of(
        &self,
        ppa: &PpaName,
        series: Option<&str>,
        binary: &str,
        arch: &str,
        version: Option<&str>,
    ) -> Result<Option<(String, String, PathBuf)>> {
        let series = self.series(series)?;
        let this = self.clone();
        let (ppa, binary, arch) = (ppa.clone(), binary.to_owned(), arch.to_owned());
        let wanted = version.map(str::to_owned);
        blocking(move || {
            let state = this.read_state(&ppa, &series)?;
            // The binary of `version`, else the highest version published.
            let Some(((_, version, _), entry)) = state
                .index
                .binaries
                .iter()
                .filter(|((name, v, a), _)| {
                    *name == binary
                        && (*a == arch || a == "all")
                        && wanted.as_ref().is_none_or(|w| w == v)
                })
                .max_by(|((_, a, _), _), ((_, b, _), _)| version::compare(a, b))
            else {
                return Ok(None);
            };
            // `Source: name (version)` when the source's version differs from the binary's.
            let source_version = entry
                .text
                .lines()
                .find_map(|l| l.strip_prefix("Source:"))
                .and_then(|v| v.split_once('('))
                .and_then(|(_, v)| v.strip_suffix(')'))
                .map_or_else(|| version.clone(), |v| v.trim().to_owned());
            let key = (entry.source.clone(), source_version);
            let Some(source) = state.index.sources.get(&key) else {
                return Ok(None);
            };
            Ok(source
                .files
                .iter()
                .find(|f| f.ends_with(".dsc"))
                .map(|dsc| (key.0.clone(), key.1.clone(), this.path(&ppa).join(dsc))))
        })
        .await
    }

    /// Makes `series` of `ppa` a valid, empty archive if it is not one yet, so apt can read
    /// it before anything is published.
    ///
    /// # Errors
    /// I/O or signing errors.
    pub async fn ensure(&self, ppa: &PpaName, series: Option<&str>) -> Result<()> {
        let series = self.series(series)?;
        let this = self.clone();
        let ppa = ppa.clone();
        blocking(move || {
            let _lock = this.lock(&ppa)?;
            let state = this.read_state(&ppa, &series)?;
            if state.generation.is_none() {
                this.write_generation(&ppa, &series, &state, &BTreeSet::new())?;
            }
            Ok(())
        })
        .await
    }

    /// The armoured public key that signs `owner`'s archives (generated on first use).
    ///
    /// # Errors
    /// I/O or key generation errors.
    pub async fn public_key(&self, owner: &str) -> Result<String> {
        let this = self.clone();
        let owner = owner.to_owned();
        blocking(move || Ok(this.signing_key(&owner)?.public_armored().to_owned())).await
    }

    // ---- the blocking work, under the PPA's lock ----

    fn publish_blocking(
        &self,
        ppa: &PpaName,
        series: &str,
        items: &[Publishable],
    ) -> Result<PublishReport> {
        // Everything is read and checked before the archive changes.
        let mut prepared = Vec::with_capacity(items.len());
        for item in items {
            prepared.push(prepare(item)?);
        }
        let _lock = self.lock(ppa)?;
        let archive = self.path(ppa);
        let mut state = self.read_state(ppa, series)?;
        let mut report = self.report(ppa, series);
        let mut placements = Vec::new();
        let mut touched = BTreeSet::new();
        for Prepared { key, entry, files } in prepared {
            let package = key.package();
            let mut all_present = true;
            for file in files {
                match pool_state(&archive.join(&file.pool_path), &file.digests)? {
                    PoolState::Identical => {}
                    PoolState::Absent => {
                        all_present = false;
                        placements.push(file);
                    }
                    PoolState::Different(found) => {
                        return Err(pool_conflict(&file.pool_path, ppa, &found, &file.digests))
                    }
                }
            }
            if all_present && key.entry_in(&state.index) == Some(&entry) {
                report.unchanged.push(package);
                continue;
            }
            touched.extend(key.arches());
            key.insert_into(&mut state.index, entry);
            report.published.push(package);
        }
        // Several items may share a pool file (an orig tarball): place each once.
        let mut placed = BTreeSet::new();
        for file in placements {
            if placed.insert(file.pool_path.clone()) {
                place(&archive, &file)?;
            }
        }
        if !report.published.is_empty() || state.generation.is_none() {
            self.write_generation(ppa, series, &state, &touched)?;
        }
        Ok(report)
    }

    fn copy_blocking(
        &self,
        from: &PpaName,
        to: &PpaName,
        series: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<PublishReport> {
        // Two locks, always taken in name order, so two opposite copies cannot deadlock.
        let (_first, _second) = if from < to {
            (self.lock(from)?, self.lock(to)?)
        } else {
            let second = self.lock(to)?;
            (self.lock(from)?, second)
        };
        let source = self.read_state(from, series)?;
        let keys = select(&source.index, name, version);
        if keys.is_empty() {
            return Err(not_published(from, series, name, version));
        }
        let (from_dir, to_dir) = (self.path(from), self.path(to));
        let mut state = self.read_state(to, series)?;
        let mut report = self.report(to, series);
        let mut links = Vec::new();
        let mut touched = BTreeSet::new();
        for key in keys {
            let Some(entry) = key.entry_in(&source.index).cloned() else {
                continue;
            };
            let mut all_present = true;
            for file in &entry.files {
                let (src, dst) = (from_dir.join(file), to_dir.join(file));
                let digests = checksums::digest_file_blocking(&src)?;
                match pool_state(&dst, &digests)? {
                    PoolState::Identical => {}
                    PoolState::Absent => {
                        all_present = false;
                        links.push((src, dst));
                    }
                    PoolState::Different(found) => {
                        return Err(pool_conflict(file, to, &found, &digests))
                    }
                }
            }
            let package = key.package();
            if all_present && key.entry_in(&state.index) == Some(&entry) {
                report.unchanged.push(package);
                continue;
            }
            touched.extend(key.arches());
            key.insert_into(&mut state.index, entry);
            report.published.push(package);
        }
        for (src, dst) in links {
            link_or_copy(&src, &dst)?;
        }
        if !report.published.is_empty() || state.generation.is_none() {
            self.write_generation(to, series, &state, &touched)?;
        }
        Ok(report)
    }

    fn report(&self, ppa: &PpaName, series: &str) -> PublishReport {
        PublishReport {
            ppa: ppa.clone(),
            series: series.to_owned(),
            published: Vec::new(),
            unchanged: Vec::new(),
            removed: Vec::new(),
        }
    }

    fn lock(&self, ppa: &PpaName) -> Result<File> {
        let dir = self.inner.root.join(ppa.owner()).join(".locks");
        fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.lock", ppa.name()));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()
            .map_err(|e| Error::from(e).with_resource(path.display().to_string()))?;
        Ok(file)
    }

    fn signing_key(&self, owner: &str) -> Result<Arc<SigningKey>> {
        let mut keys = self
            .inner
            .keys
            .lock()
            .map_err(|_| Error::internal("the signing key cache is poisoned"))?;
        if let Some(key) = keys.get(owner) {
            return Ok(Arc::clone(key));
        }
        let dir = self.inner.root.join(owner).join(".key");
        let key = Arc::new(SigningKey::load_or_generate(&dir, owner)?);
        keys.insert(owner.to_owned(), Arc::clone(&key));
        Ok(key)
    }

    /// The live state of `series`: its generation and indices.
    fn read_state(&self, ppa: &PpaName, series: &str) -> Result<State> {
        let dists = self.path(ppa).join("dists");
        let generation = match fs::read_link(dists.join(series)) {
            Ok(target) => Some(
                target
                    .to_str()
                    .and_then(|t| parse_generation(series, t))
                    .ok_or_else(|| {
                        Error::internal(format!(
                            "dists/{series} of {ppa} points at {}, not a generation",
                            target.display()
                        ))
                    })?,
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let Some(number) = generation else {
            return Ok(State::default());
        };
        let dir = dists.join(generation_name(series, number));
        let sources = read_text(&dir.join(COMPONENT).join("source/Sources"))?;
        let mut packages = Vec::new();
        let mut arches = Vec::new();
        for entry in fs::read_dir(dir.join(COMPONENT))? {
            let entry = entry?;
            let name = entry.file_name();
            if let Some(arch) = name.to_str().and_then(|n| n.strip_prefix("binary-")) {
                packages.push(read_text(&entry.path().join("Packages"))?);
                arches.push(arch.to_owned());
            }
        }
        let index = SeriesIndex::read(&sources, &packages)?;
        let release = read_text(&dir.join("Release"))?;
        Ok(State {
            generation: Some(number),
            index,
            arches,
            release_entries: parse_release_entries(&release),
        })
    }

    /// Writes the next generation of `series` from `state` and makes it live. Indices of
    /// architectures not in `touched` (`source` for Sources, `all` for every binary index)
    /// are hard-linked from the live generation.
    fn write_generation(
        &self,
        ppa: &PpaName,
        series: &str,
        state: &State,
        touched: &BTreeSet<String>,
    ) -> Result<()> {
        let archive = self.path(ppa);
        let dists = archive.join("dists");
        fs::create_dir_all(&dists)?;
        let key = self.signing_key(ppa.owner())?;
        write_atomically(&archive.join("key.asc"), key.public_armored().as_bytes())?;

        let next = state.generation.map_or(1, |n| n.saturating_add(1));
        let previous = state
            .generation
            .map(|n| dists.join(generation_name(series, n)));
        let staging = dists.join(format!(
            ".{series}.g{next}.tmp-{:08x}",
            rand::random::<u32>()
        ));
        let result: Result<()> = (|| {
            let mut arches: BTreeSet<String> =
                self.inner.options.architectures.iter().cloned().collect();
            arches.extend(state.index.architectures().map(str::to_owned));
            // An architecture emptied by a removal keeps its (empty) index: apt may be
            // configured for it.
            arches.extend(state.arches.iter().cloned());

            let mut jobs: Vec<IndexJob> = Vec::new();
            let changed = |what: &str| {
                previous.is_none() || touched.contains(what) || touched.contains("all")
            };
            let source_dir = format!("{COMPONENT}/source");
            let cache = |path: &str| {
                archive
                    .join(".cache")
                    .join(series)
                    .join(path.replace('/', "_"))
            };
            let path = format!("{source_dir}/Sources");
            jobs.push(IndexJob {
                cache: cache(&path),
                path,
                fresh: (changed("source") || !state.release_has(&source_dir))
                    .then(|| state.index.render_sources()),
            });
            for arch in &arches {
                let dir = format!("{COMPONENT}/binary-{arch}");
                let fresh = changed(arch) || !state.release_has(&dir);
                let path = format!("{dir}/Packages");
                jobs.push(IndexJob {
                    cache: cache(&path),
                    path,
                    fresh: fresh.then(|| state.index.render_packages(arch)),
                });
            }
            let entries =
                write_indices(&staging, previous.as_deref(), jobs, &state.release_entries)?;
            let release = release_text(&self.inner.options.origin, ppa, series, &arches, &entries);
            fs::write(staging.join("Release"), &release)?;
            fs::write(staging.join("InRelease"), key.clearsign(&release)?)?;
            fs::write(
                staging.join("Release.gpg"),
                key.detached(release.as_bytes())?,
            )?;
            let final_dir = dists.join(generation_name(series, next));
            if final_dir.exists() {
                // Left by a change that crashed before going live.
                fs::remove_dir_all(&final_dir)?;
            }
            fs::rename(&staging, &final_dir)?;
            let link_tmp = dists.join(format!(".{series}.link-{:08x}", rand::random::<u32>()));
            std::os::unix::fs::symlink(generation_name(series, next), &link_tmp)?;
            fs::rename(&link_tmp, dists.join(series))?;
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        result?;
        // Generations before the previous one are no longer read by anyone.
        for entry in fs::read_dir(&dists)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let stale = match name
                .strip_prefix('.')
                .and_then(|n| parse_generation(series, n))
            {
                Some(n) => n.saturating_add(1) < next,
                None => name.starts_with(&format!(".{series}.g")) && name.contains(".tmp-"),
            };
            if stale {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }

    /// Deletes pool files that no series of `ppa` names any more.
    fn collect_pool_garbage(&self, ppa: &PpaName) -> Result<()> {
        let archive = self.path(ppa);
        let mut named = BTreeSet::new();
        if let Ok(entries) = fs::read_dir(archive.join("dists")) {
            for entry in entries {
                let entry = entry?;
                let Some(series) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if series.starts_with('.') {
                    continue;
                }
                let state = self.read_state(ppa, &series)?;
                named.extend(state.index.pool_files().map(str::to_owned));
            }
        }
        remove_unnamed(&archive, &archive.join("pool"), &named)
    }
}

#[async_trait]
impl PpaCleaner for Archives {
    async fn clean(&self, ppa: &PpaName) -> Result<()> {
        let this = self.clone();
        let ppa = ppa.clone();
        blocking(move || {
            let _lock = this.lock(&ppa)?;
            let dir = this.path(&ppa);
            // Renamed away first, so a reader never sees a half-deleted archive: to a hidden
            // name, which no PPA can have (a PPA name starts with a letter or digit).
            let owner_dir = dir
                .parent()
                .ok_or_else(|| Error::internal("a PPA folder without a parent"))?;
            let doomed = owner_dir.join(format!(
                "{CLEANING_PREFIX}{:08x}-{}",
                rand::random::<u32>(),
                ppa.name()
            ));
            match fs::rename(&dir, &doomed) {
                Ok(()) => fs::remove_dir_all(&doomed).map_err(Error::from),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::from(e)),
            }
            .map_err(|e| e.with_resource(dir.display().to_string()))?;
            // What an earlier cleaning of this PPA left when its process died between
            // rename and delete: `.cleaning-<8 hex>-<this name>` exactly.
            if let Ok(entries) = fs::read_dir(owner_dir) {
                for entry in entries.flatten() {
                    if cleaning_of(&entry.file_name().to_string_lossy()) == Some(ppa.name()) {
                        let _ = fs::remove_dir_all(entry.path());
                    }
                }
            }
            Ok(())
        })
        .await
    }
}

/// Where a PPA's archive goes while it is deleted: hidden, out of every PPA's name space.
const CLEANING_PREFIX: &str = ".cleaning-";

/// The PPA whose cleaning left the folder `name` behind, if it is one.
fn cleaning_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(CLEANING_PREFIX)?;
    let (random, ppa) = rest.split_at_checked(8)?;
    if !random.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    ppa.strip_prefix('-')
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal("an archive task failed").with_source(e))?
}

#[derive(Debug, Default)]
struct State {
    generation: Option<u64>,
    index: SeriesIndex,
    /// Architectures with a binary index in the live generation.
    arches: Vec<String>,
    /// The live Release's entries: path → (size, md5, sha256).
    release_entries: BTreeMap<String, ReleaseEntry>,
}

impl State {
    fn release_has(&self, dir: &str) -> bool {
        self.release_entries
            .contains_key(&format!("{dir}/{}", index_name(dir)))
    }
}

fn index_name(dir: &str) -> &'static str {
    if dir.ends_with("/source") {
        "Sources"
    } else {
        "Packages"
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ReleaseEntry {
    size: u64,
    md5: String,
    sha256: String,
}

fn generation_name(series: &str, number: u64) -> String {
    format!(".{series}.g{number}")
}

/// The number of generation `name` (`.bookworm.g7` or `bookworm.g7`) of `series`.
fn parse_generation(series: &str, name: &str) -> Option<u64> {
    let name = name.strip_prefix('.').unwrap_or(name);
    name.strip_prefix(series)?.strip_prefix(".g")?.parse().ok()
}

fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::from(e).with_resource(path.display().to_string()))
}

/// What identifies a published package in a series' index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Source(index::SourceKey),
    Binary(index::BinaryKey),
}

impl Key {
    fn package(&self) -> PublishedPackage {
        match self {
            Key::Source((name, version)) => PublishedPackage {
                name: name.clone(),
                version: version.clone(),
                architecture: "source".to_owned(),
            },
            Key::Binary((name, version, arch)) => PublishedPackage {
                name: name.clone(),
                version: version.clone(),
                architecture: arch.clone(),
            },
        }
    }

    /// The indices a change to this package touches: `source`, or its architecture.
    fn arches(&self) -> impl Iterator<Item = String> {
        let arch = match self {
            Key::Source(_) => "source".to_owned(),
            Key::Binary((_, _, arch)) => arch.clone(),
        };
        std::iter::once(arch)
    }

    fn entry_in<'a>(&self, index: &'a SeriesIndex) -> Option<&'a Entry> {
        match self {
            Key::Source(key) => index.sources.get(key),
            Key::Binary(key) => index.binaries.get(key),
        }
    }

    fn insert_into(&self, index: &mut SeriesIndex, entry: Entry) {
        match self {
            Key::Source(key) => {
                index.sources.insert(key.clone(), entry);
            }
            Key::Binary(key) => {
                index.binaries.insert(key.clone(), entry);
            }
        }
    }

    fn remove_from(&self, index: &mut SeriesIndex) {
        match self {
            Key::Source(key) => {
                index.sources.remove(key);
            }
            Key::Binary(key) => {
                index.binaries.remove(key);
            }
        }
    }
}

fn removed_arches(keys: &[Key]) -> BTreeSet<String> {
    keys.iter().flat_map(Key::arches).collect()
}

/// The source `name` (at `version`) with the binaries built from it, and binaries called
/// `name` (at `version`).
fn select(index: &SeriesIndex, name: &str, version: Option<&str>) -> Vec<Key> {
    let mut keys = Vec::new();
    for (name_version, _) in index.sources.iter() {
        if name_version.0 == name && version.is_none_or(|v| v == name_version.1) {
            keys.push(Key::Source(name_version.clone()));
        }
    }
    for (key, entry) in &index.binaries {
        let built_from =
            entry.source == name && version.is_none_or(|v| v == source_version_of(entry, &key.1));
        let called = key.0 == name && version.is_none_or(|v| v == key.1);
        if built_from || called {
            keys.push(Key::Binary(key.clone()));
        }
    }
    keys
}

/// The version of the source a binary stanza was built from: `Source: x (v)`, else its own.
fn source_version_of<'a>(entry: &'a Entry, version: &'a str) -> &'a str {
    entry
        .text
        .lines()
        .find_map(|line| line.strip_prefix("Source:"))
        .and_then(|value| value.split_once('('))
        .and_then(|(_, rest)| rest.split_once(')'))
        .map_or(version, |(v, _)| v.trim())
}

fn not_published(ppa: &PpaName, series: &str, name: &str, version: Option<&str>) -> Error {
    let what = match version {
        Some(v) => format!("{name} {v}"),
        None => name.to_owned(),
    };
    Error::not_found(format!("{what} is not published in {ppa} {series}"))
}

/// A file bound for the pool.
#[derive(Debug)]
struct PoolFile {
    from: PathBuf,
    pool_path: String,
    digests: FileDigests,
}

/// A package read and checked, ready to go into the archive.
#[derive(Debug)]
struct Prepared {
    key: Key,
    entry: Entry,
    files: Vec<PoolFile>,
}

/// Refuses a source upload whose `.changes` targets another distribution than the default
/// `series` (or a pocket of it) it would be published to.
fn check_distribution(item: &Publishable, series: &str) -> Result<()> {
    let Publishable::Source(upload) = item else {
        return Ok(());
    };
    let target = upload.changes.distribution.as_deref().unwrap_or_default();
    let pocket_of = |d: &str| {
        d.strip_prefix(series)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    };
    if target.split_whitespace().any(pocket_of) {
        return Ok(());
    }
    let changes_name = upload
        .changes_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Err(Error::invalid(format!(
        "the .changes targets {}, and no series was given: name one to publish it there \
         (--series {series} for the default series, or the series it names)",
        if target.is_empty() {
            "no distribution"
        } else {
            target
        }
    ))
    .with_resource(changes_name))
}

fn prepare(item: &Publishable) -> Result<Prepared> {
    match item {
        Publishable::Deb(path) => {
            let resource = || path.display().to_string();
            let control = deb::read_control(path).map_err(|e| e.with_resource(resource()))?;
            let digests = checksums::digest_file_blocking(path)?;
            let dir = index::pool_dir(&control.source);
            let pool_path = format!(
                "{dir}/{}",
                index::deb_file_name(&control.package, &control.version, &control.architecture)
            );
            let text = index::binary_stanza(&control.fields, &pool_path, &digests);
            Ok(Prepared {
                key: Key::Binary((control.package, control.version, control.architecture)),
                entry: Entry {
                    text,
                    source: control.source,
                    files: vec![pool_path.clone()],
                },
                files: vec![PoolFile {
                    from: path.clone(),
                    pool_path,
                    digests,
                }],
            })
        }
        Publishable::Source(upload) => {
            let dsc_name = upload
                .changes
                .dsc()
                .map(|e| e.name.clone())
                .ok_or_else(|| Error::internal("a validated upload without a .dsc"))?;
            let dir = index::pool_dir(&upload.dsc.source);
            let mut names = vec![dsc_name];
            names.extend(upload.dsc.files.iter().map(|f| f.name.clone()));
            let mut files = Vec::with_capacity(names.len());
            let mut listed = Vec::with_capacity(names.len());
            for name in names {
                let validated = upload
                    .files
                    .iter()
                    .chain(&upload.dsc_only_files)
                    .find(|f| f.name == name)
                    .ok_or_else(|| {
                        Error::invalid(format!("{name}, listed in the .dsc, is not in the upload"))
                    })?;
                let digests = checksums::digest_file_blocking(&validated.path)?;
                if digests.sha256 != validated.sha256 {
                    return Err(Error::conflict(format!(
                        "{name} changed on disk after it was validated"
                    )));
                }
                listed.push(SourceFile {
                    name: name.clone(),
                    digests: digests.clone(),
                });
                files.push(PoolFile {
                    from: validated.path.clone(),
                    pool_path: format!("{dir}/{name}"),
                    digests,
                });
            }
            let text = index::source_stanza(&upload.dsc.fields, &dir, &listed);
            Ok(Prepared {
                key: Key::Source((upload.dsc.source.clone(), upload.dsc.version.clone())),
                entry: Entry {
                    text,
                    source: upload.dsc.source.clone(),
                    files: files.iter().map(|f| f.pool_path.clone()).collect(),
                },
                files,
            })
        }
    }
}

enum PoolState {
    Absent,
    Identical,
    /// Holds other content, with this SHA-256.
    Different(String),
}

fn pool_state(path: &Path, digests: &FileDigests) -> Result<PoolState> {
    match fs::metadata(path) {
        Ok(meta) if meta.len() != digests.size => Ok(PoolState::Different(
            checksums::digest_file_blocking(path)?.sha256,
        )),
        Ok(_) => {
            let found = checksums::digest_file_blocking(path)?;
            if found.sha256 == digests.sha256 {
                Ok(PoolState::Identical)
            } else {
                Ok(PoolState::Different(found.sha256))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(PoolState::Absent),
        Err(e) => Err(e.into()),
    }
}

/// A pool name of `ppa` already taken by other content (its SHA-256 is `found`).
fn pool_conflict(pool_path: &str, ppa: &PpaName, found: &str, wanted: &FileDigests) -> Error {
    Error::conflict(format!(
        "{pool_path} already holds other content in {ppa} (sha256 {found}, not {}): \
         publish it under a new version",
        wanted.sha256
    ))
}

/// Copies a file into the pool under a temporary name, checks it, and renames it in place.
fn place(archive: &Path, file: &PoolFile) -> Result<()> {
    let target = archive.join(&file.pool_path);
    let dir = target
        .parent()
        .ok_or_else(|| Error::internal("a pool path without a folder"))?;
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".place-")
        .tempfile_in(dir)?;
    let mut source = File::open(&file.from)?;
    io::copy(&mut source, tmp.as_file_mut())?;
    tmp.as_file().sync_data()?;
    let copied = checksums::digest_file_blocking(tmp.path())?;
    if copied.sha256 != file.digests.sha256 {
        return Err(Error::conflict(format!(
            "{} changed while it was published",
            file.from.display()
        )));
    }
    set_readable(tmp.path())?;
    tmp.persist(&target)
        .map_err(|e| Error::from(e.error).with_resource(target.display().to_string()))?;
    Ok(())
}

fn set_readable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))?;
    Ok(())
}

fn link_or_copy(src: &Path, dst: &Path) -> Result<()> {
    if let Some(dir) = dst.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = dst.with_file_name(format!(".link-{:08x}", rand::random::<u32>()));
    if fs::hard_link(src, &tmp).is_err() {
        fs::copy(src, &tmp)?;
    }
    fs::rename(&tmp, dst)?;
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    if fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    let dir = path
        .parent()
        .ok_or_else(|| Error::internal("a path without a folder"))?;
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".write-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    set_readable(tmp.path())?;
    tmp.persist(path)
        .map_err(|e| Error::from(e.error).with_resource(path.display().to_string()))?;
    Ok(())
}

/// Removes files under `dir` that `named` (paths relative to `archive`) does not hold, and
/// folders left empty.
fn remove_unnamed(archive: &Path, dir: &Path, named: &BTreeSet<String>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            remove_unnamed(archive, &path, named)?;
            let _ = fs::remove_dir(&path);
        } else {
            let relative = path
                .strip_prefix(archive)
                .ok()
                .and_then(Path::to_str)
                .unwrap_or_default();
            if !named.contains(relative) {
                fs::remove_file(&path)?;
            }
        }
    }
    Ok(())
}

/// One index to write into a new generation.
struct IndexJob {
    /// `main/binary-amd64/Packages`.
    path: String,
    /// Its new content, or `None` when it did not change.
    fresh: Option<compress::Chunked>,
    /// Its compressed chunks.
    cache: PathBuf,
}

/// Writes each index (`Sources`/`Packages`) with its `.gz` and `.xz` and by-hash copies into
/// the staging generation: fresh text when given, else hard links from `previous`.
/// Returns the Release entries of every file written.
fn write_indices(
    staging: &Path,
    previous: Option<&Path>,
    jobs: Vec<IndexJob>,
    old_entries: &BTreeMap<String, ReleaseEntry>,
) -> Result<BTreeMap<String, ReleaseEntry>> {
    let results: Vec<Result<Vec<(String, ReleaseEntry)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| scope.spawn(move || write_index(staging, previous, job, old_entries)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::internal("an index writer panicked")))
            })
            .collect()
    });
    let mut entries = BTreeMap::new();
    for result in results {
        entries.extend(result?);
    }
    Ok(entries)
}

fn write_index(
    staging: &Path,
    previous: Option<&Path>,
    job: IndexJob,
    old_entries: &BTreeMap<String, ReleaseEntry>,
) -> Result<Vec<(String, ReleaseEntry)>> {
    let path = job.path.as_str();
    let variants = [path.to_owned(), format!("{path}.gz"), format!("{path}.xz")];
    let dir = staging
        .join(path)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let by_hash = dir.join("by-hash/SHA256");
    fs::create_dir_all(&by_hash)?;
    let mut entries = Vec::with_capacity(3);
    match (job.fresh, previous) {
        (None, Some(previous)) => {
            for name in &variants {
                let entry = old_entries.get(name).cloned().ok_or_else(|| {
                    Error::internal(format!("the live Release does not list {name}"))
                })?;
                let file = staging.join(name);
                fs::hard_link(previous.join(name), &file)?;
                let hashed = by_hash.join(&entry.sha256);
                if !hashed.exists() {
                    fs::hard_link(&file, &hashed)?;
                }
                entries.push((name.clone(), entry));
            }
        }
        (fresh, _) => {
            let chunked = fresh.unwrap_or_default();
            let plain = chunked.text();
            let (gz, xz) = chunked.compress(&job.cache)?;
            for (name, bytes) in variants.iter().zip([plain, gz, xz]) {
                let bytes: Vec<u8> = bytes;
                let entry = release_digests(&bytes);
                let file = staging.join(name);
                fs::write(&file, &bytes)?;
                let hashed = by_hash.join(&entry.sha256);
                if !hashed.exists() {
                    fs::hard_link(&file, &hashed)?;
                }
                entries.push((name.clone(), entry));
            }
        }
    }
    // Keep the previous generation's recent by-hash files, for readers mid-update.
    if let Some(previous) = previous {
        let old = previous
            .join(path)
            .parent()
            .map(|d| d.join("by-hash/SHA256"));
        if let Some(old) = old {
            keep_recent_by_hash(&old, &by_hash)?;
        }
    }
    Ok(entries)
}

fn keep_recent_by_hash(old: &Path, new: &Path) -> Result<()> {
    let Ok(listing) = fs::read_dir(old) else {
        return Ok(());
    };
    let mut files: Vec<(SystemTime, PathBuf, std::ffi::OsString)> = Vec::new();
    for entry in listing {
        let entry = entry?;
        let meta = entry.metadata()?;
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        files.push((modified, entry.path(), entry.file_name()));
    }
    files.sort_by_key(|file| std::cmp::Reverse(file.0));
    let present = fs::read_dir(new)?.count();
    for (_, path, name) in files.into_iter().take(BY_HASH_KEEP.saturating_sub(present)) {
        let target = new.join(name);
        if !target.exists() {
            fs::hard_link(path, target)?;
        }
    }
    Ok(())
}

/// What a Release lists of a file: size, MD5 and SHA-256 (no SHA-1), the two hashes on two
/// threads.
fn release_digests(bytes: &[u8]) -> ReleaseEntry {
    use sha2::Digest as _;
    let (md5, sha256) = std::thread::scope(|scope| {
        let md5 = scope.spawn(|| hex::encode(md5::Md5::digest(bytes)));
        let sha256 = hex::encode(sha2::Sha256::digest(bytes));
        (md5.join().unwrap_or_default(), sha256)
    });
    ReleaseEntry {
        size: bytes.len() as u64,
        md5,
        sha256,
    }
}

fn parse_release_entries(release: &str) -> BTreeMap<String, ReleaseEntry> {
    let mut md5: HashMap<&str, &str> = HashMap::new();
    let mut sha256: HashMap<&str, (u64, &str)> = HashMap::new();
    let mut section = "";
    for line in release.lines() {
        if let Some(rest) = line.strip_prefix(' ') {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            if let [hash, size, path] = parts[..] {
                match section {
                    "MD5Sum" => {
                        md5.insert(path, hash);
                    }
                    "SHA256" => {
                        sha256.insert(path, (size.parse().unwrap_or(0), hash));
                    }
                    _ => {}
                }
            }
        } else {
            section = line.split(':').next().unwrap_or_default();
        }
    }
    sha256
        .into_iter()
        .filter_map(|(path, (size, sha))| {
            md5.get(path).map(|m| {
                (
                    path.to_owned(),
                    ReleaseEntry {
                        size,
                        md5: (*m).to_owned(),
                        sha256: sha.to_owned(),
                    },
                )
            })
        })
        .collect()
}

fn release_text(
    origin: &str,
    ppa: &PpaName,
    series: &str,
    arches: &BTreeSet<String>,
    entries: &BTreeMap<String, ReleaseEntry>,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S UTC");
    let _ = writeln!(out, "Origin: {origin}");
    let _ = writeln!(out, "Label: {ppa}");
    let _ = writeln!(out, "Suite: {series}");
    let _ = writeln!(out, "Codename: {series}");
    let _ = writeln!(out, "Date: {date}");
    let arch_list: Vec<&str> = arches.iter().map(String::as_str).collect();
    let _ = writeln!(out, "Architectures: {}", arch_list.join(" "));
    let _ = writeln!(out, "Components: {COMPONENT}");
    let _ = writeln!(out, "Description: {ppa} ({series}), published by ubuntu-ci");
    let _ = writeln!(out, "Acquire-By-Hash: yes");
    let _ = writeln!(out, "MD5Sum:");
    for (path, entry) in entries {
        let _ = writeln!(out, " {} {:>16} {path}", entry.md5, entry.size);
    }
    let _ = writeln!(out, "SHA256:");
    for (path, entry) in entries {
        let _ = writeln!(out, " {} {:>16} {path}", entry.sha256, entry.size);
    }
    out
}

/// Copies the tree `from` into `to` as hard links (copies across file systems), symbolic
/// links as they are, leaving out hidden caches; folders are made world-readable. A build
/// or an image build bind-mounts such a snapshot: it cannot change while they read it, and
/// it is reachable from their user namespace when the data dir is not.
///
/// # Errors
/// What reading `from` or writing `to` reports.
pub fn snapshot(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    crate::fsutil::set_mode(to, 0o755)?;
    for entry in std::fs::read_dir(from)
        .map_err(|e| Error::from(e).with_resource(from.display().to_string()))?
    {
        let entry = entry?;
        let name = entry.file_name();
        if name == ".cache" {
            continue;
        }
        let (source, target) = (entry.path(), to.join(&name));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&source)?, &target)?;
        } else if kind.is_dir() {
            snapshot(&source, &target)?;
        } else if std::fs::hard_link(&source, &target).is_err() {
            std::fs::copy(&source, &target)?;
            crate::fsutil::set_mode(&target, 0o644)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
