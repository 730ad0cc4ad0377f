//! Configuration: where state lives and which backends to use.
//!
//! Defaults need nothing: state under `$XDG_DATA_HOME/ubuntu-ci` (or `~/.local/share/…`),
//! tickets in SQLite there, the data store in a folder there. A TOML file
//! (`$XDG_CONFIG_HOME/ubuntu-ci/config.toml`, or the one given) overrides the defaults, and
//! the frontends apply `UBUNTU_CI_*` variables and flags on top. [`Config::connect`] turns
//! the result into [`Services`]: the one place where configuration becomes backends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::archive::{ArchiveOptions, ArchiveService, Archives, HttpArchives};
use crate::builder::sbuild::{SbuildBuilder, SbuildOptions};
use crate::builder::SourceBuilder;
use crate::error::{Error, Result};
use crate::image::rootfs::{ImageOptions, RootfsImageBuilder};
use crate::image::ImageBuilder;
use crate::ppa::http::HttpPpaAssigner;
use crate::ppa::sql::SqlPpaPool;
use crate::ppa::{PoolOptions, PpaAssigner};
use crate::queue::memory::MemoryQueues;
use crate::queue::ProgressQueues;
use crate::runner::autopkgtest::{AutopkgtestRunner, RunnerOptions};
use crate::runner::TestRunner;
use crate::store::{open_store, ObjectStore, StoreOptions};
use crate::tickets::sql::SqlTicketSystem;
use crate::tickets::{open_ticket_system, TicketSystem, TicketSystemOptions};
use crate::upload::signature::{Keyring, SignaturePolicy, UploadPolicy};
use crate::workers::ThroughServer;

/// The default address of `ubuntu-ci serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";

/// Every setting, as read from the config file; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where local state lives (tickets database, data store, API token).
    pub data_dir: Option<PathBuf>,
    /// A `ubuntu-ci serve` to use instead of local state (`http://127.0.0.1:8000/`).
    pub server: Option<String>,
    /// The bearer token for the server's writes.
    pub token: Option<String>,
    /// The ticket system's URL (`sqlite://…`, `postgres://…`); default: SQLite in the data dir.
    pub tickets_url: Option<String>,
    /// The data store's URL (`file:///…`, `memory://`); default: `<data_dir>/store`.
    pub store_url: Option<String>,
    /// The address `serve` listens on.
    pub listen: Option<String>,
    /// The URL clients reach `serve` at, used in the URLs of stored objects
    /// (default: `http://<listen>/`).
    pub public_url: Option<String>,
    /// The default ticket owner (else `DEBEMAIL`, else the system file's `owner`).
    pub owner: Option<String>,
    /// The system-wide file's `owner`: a site's default, below each user's `DEBEMAIL`.
    #[serde(skip)]
    pub site_owner: Option<String>,
    /// The PPA pool and its archives (`[ppa]`).
    #[serde(default)]
    pub ppa: PpaConfig,
    /// Signatures of uploads (`[uploads]`).
    #[serde(default)]
    pub uploads: UploadsConfig,
    /// The local source builder (`[build]`).
    #[serde(default)]
    pub build: BuildConfig,
    /// The lander (`[lander]`).
    #[serde(default)]
    pub lander: LanderConfig,
    /// What `serve` lets clients hold (`[serve]`: connections, time limits, event
    /// streams).
    #[serde(default)]
    pub serve: ServeLimits,
}

/// How much of the server one client, or all of them, may hold.
/// The `[serve]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeLimits {
    /// Connections open at once; past it a new one gets a 503 and is closed.
    pub max_connections: usize,
    /// Seconds a client has to send a request's head, and that a connection may wait
    /// idle for its next request.
    pub header_timeout_secs: u64,
    /// Seconds a request's body may pause between two pieces.
    pub body_timeout_secs: u64,
    /// Event streams open at once, all clients together.
    pub max_event_streams: usize,
    /// Event streams one client address may hold at once.
    pub max_event_streams_per_client: usize,
    /// The largest object `PUT /store/…` takes, in bytes.
    pub max_object_bytes: u64,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: 1024,
            header_timeout_secs: 30,
            body_timeout_secs: 60,
            max_event_streams: 256,
            max_event_streams_per_client: 32,
            max_object_bytes: 32 * 1024 * 1024 * 1024,
        }
    }
}

impl ServeLimits {
    /// Checks that every limit lets something through.
    ///
    /// # Errors
    /// `InvalidInput` naming a limit of zero.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("max_connections", self.max_connections as u64),
            ("header_timeout_secs", self.header_timeout_secs),
            ("body_timeout_secs", self.body_timeout_secs),
            ("max_event_streams", self.max_event_streams as u64),
            (
                "max_event_streams_per_client",
                self.max_event_streams_per_client as u64,
            ),
            ("max_object_bytes", self.max_object_bytes),
        ] {
            if value == 0 {
                return Err(Error::invalid(format!("[serve] {name} must be at least 1")));
            }
        }
        Ok(())
    }
}

/// The `[lander]` section: time limits, worker health and concurrency of the lander.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanderConfig {
    /// A worker call running longer is ended and its step FAILS (default: none, the
    /// workers' own time limits only).
    pub step_timeout_secs: Option<u64>,
    /// The workers' heartbeat period (default 60).
    pub heartbeat_secs: Option<u64>,
    /// A worker silent for this many heartbeat periods is declared dead (default 10).
    pub heartbeat_misses: Option<u32>,
    /// How many times a call to a dead worker is made again before its step FAILS
    /// (default 2).
    pub step_retries: Option<u32>,
    /// Source builds at once (default: one per core).
    pub builds: Option<usize>,
    /// Image builds at once (default: one per two cores).
    pub images: Option<usize>,
    /// Test runs at once (default: one per core).
    pub tests: Option<usize>,
}

impl Config {
    /// The lander's options for `series`: the `[lander]` section's settings, with as
    /// many requests holding a PPA at once as the `[ppa]` pool has PPAs at most.
    ///
    /// # Errors
    /// As [`LanderConfig::options`] and [`PpaConfig::pool_options`].
    pub fn lander_options(&self, series: &str) -> Result<crate::lander::LanderOptions> {
        let mut options = self.lander.options(series)?;
        options.limits.ppas = usize::try_from(self.ppa.pool_options()?.max).unwrap_or(1);
        Ok(options)
    }

    /// A lander on `services`, this machine's (with local archives), for `series` (by
    /// default the configured one) with [`Config::lander_options`].
    ///
    /// # Errors
    /// `Unsupported` for services through a server (its lander runs the requests); as
    /// [`crate::archive::Archives::series`] and [`Config::lander_options`].
    pub fn lander(
        &self,
        services: &Services,
        series: Option<&str>,
    ) -> Result<crate::lander::Lander> {
        let Some(archives) = services.archives.local() else {
            return Err(Error::unsupported(
                "the services are a server's: its lander runs the requests",
            ));
        };
        let series = archives.series(series)?;
        Ok(crate::lander::Lander::new(
            services.clone(),
            self.lander_options(&series)?,
        ))
    }
}

impl LanderConfig {
    /// The lander's options for `series`, with this section's settings.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed series or a zero time, count or bound.
    pub fn options(&self, series: &str) -> Result<crate::lander::LanderOptions> {
        let mut options = crate::lander::LanderOptions::new(series)?;
        let positive = |name: &str, value: u64| {
            if value == 0 {
                Err(Error::invalid(format!("[lander] {name} must be above 0")))
            } else {
                Ok(value)
            }
        };
        if let Some(secs) = self.step_timeout_secs {
            options.step_timeout = Some(Duration::from_secs(positive("step_timeout_secs", secs)?));
        }
        if let Some(secs) = self.heartbeat_secs {
            options.heartbeat = Duration::from_secs(positive("heartbeat_secs", secs)?);
        }
        if let Some(misses) = self.heartbeat_misses {
            positive("heartbeat_misses", u64::from(misses))?;
            options.heartbeat_misses = misses;
        }
        if let Some(retries) = self.step_retries {
            options.step_retries = retries;
        }
        for (name, value, slot) in [
            ("builds", self.builds, &mut options.limits.builds),
            ("images", self.images, &mut options.limits.images),
            ("tests", self.tests, &mut options.limits.tests),
        ] {
            if let Some(value) = value {
                positive(name, value as u64)?;
                *slot = value;
            }
        }
        Ok(options)
    }
}

/// The `[build]` section: how the local builder builds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// The Debian mirror chroots are made from (`http://deb.debian.org/debian`).
    pub mirror: Option<String>,
    /// Seconds one sbuild run may take before it is ended (10800).
    pub timeout_secs: Option<u64>,
    /// Seconds after which a chroot tarball is made again (604800: 7 days).
    pub chroot_max_age_secs: Option<u64>,
    /// Seconds making a chroot may take (3600).
    pub chroot_timeout_secs: Option<u64>,
    /// Where chroot tarballs are kept (`<data dir>/chroots`).
    pub chroot_dir: Option<PathBuf>,
    /// Where builds make their temporary folders (`$TMPDIR`); it must be reachable from the
    /// build's user namespace.
    pub work_dir: Option<PathBuf>,
    /// Seconds one image build (or base image bootstrap) may take (3600).
    pub image_timeout_secs: Option<u64>,
    /// Seconds one test run (autopkgtest as a whole) may take (10800).
    pub test_timeout_secs: Option<u64>,
}

impl BuildConfig {
    /// The builder's options for `data_dir`: the configured values over the defaults.
    ///
    /// # Errors
    /// `InvalidInput` for a zero time or a mirror that is not an http(s) or file URL.
    pub fn sbuild_options(&self, data_dir: &Path) -> Result<SbuildOptions> {
        let mut options = SbuildOptions::new(data_dir);
        if let Some(mirror) = &self.mirror {
            let url = url::Url::parse(mirror)
                .map_err(|e| Error::invalid(format!("[build] mirror {mirror:?}: {e}")))?;
            if !matches!(url.scheme(), "http" | "https" | "file") {
                return Err(Error::invalid(format!(
                    "[build] mirror {mirror:?}: not an http(s) or file URL"
                )));
            }
            options.mirror.clone_from(mirror);
        }
        for (name, value, field) in [
            ("timeout_secs", self.timeout_secs, &mut options.timeout),
            (
                "chroot_max_age_secs",
                self.chroot_max_age_secs,
                &mut options.chroot_max_age,
            ),
            (
                "chroot_timeout_secs",
                self.chroot_timeout_secs,
                &mut options.chroot_timeout,
            ),
        ] {
            match value {
                Some(0) => {
                    return Err(Error::invalid(format!("[build] {name} must be above 0")));
                }
                Some(secs) => *field = Duration::from_secs(secs),
                None => {}
            }
        }
        if let Some(dir) = &self.chroot_dir {
            options.chroot_dir.clone_from(dir);
        }
        if let Some(dir) = &self.work_dir {
            options.work_dir.clone_from(dir);
        }
        Ok(options)
    }

    /// The image builder's options for `data_dir`: the mirror and work folder of the
    /// builder, and `image_timeout_secs`.
    ///
    /// # Errors
    /// As [`BuildConfig::sbuild_options`]; `InvalidInput` for a zero timeout.
    pub fn image_options(&self, data_dir: &Path) -> Result<ImageOptions> {
        let build = self.sbuild_options(data_dir)?;
        let mut options = ImageOptions::new(data_dir);
        options.mirror = build.mirror;
        options.work_dir = build.work_dir;
        match self.image_timeout_secs {
            Some(0) => return Err(Error::invalid("[build] image_timeout_secs must be above 0")),
            Some(secs) => options.timeout = Duration::from_secs(secs),
            None => {}
        }
        Ok(options)
    }

    /// The test runner's options: the builder's work folder, and `test_timeout_secs`.
    ///
    /// # Errors
    /// As [`BuildConfig::sbuild_options`]; `InvalidInput` for a zero timeout.
    pub fn runner_options(&self, data_dir: &Path) -> Result<RunnerOptions> {
        let build = self.sbuild_options(data_dir)?;
        let mut options = RunnerOptions {
            work_dir: build.work_dir,
            ..RunnerOptions::default()
        };
        match self.test_timeout_secs {
            Some(0) => return Err(Error::invalid("[build] test_timeout_secs must be above 0")),
            Some(secs) => options.timeout = Duration::from_secs(secs),
            None => {}
        }
        Ok(options)
    }
}

/// The `[uploads]` section: whether source uploads must be signed, and by whom.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadsConfig {
    /// `require` or `allow-unsigned`; the default is `require` for `ubuntu-ci serve` and
    /// `allow-unsigned` for the local CLI.
    pub signatures: Option<SignaturePolicy>,
    /// Keyring files (`gpg --export [--armor]`) of the allowed uploaders.
    pub keyring: Option<Vec<PathBuf>>,
}

impl UploadsConfig {
    /// The policy: the configured one, else `default`, with the keyring loaded.
    ///
    /// # Errors
    /// What reading a keyring file reports.
    pub fn policy(&self, default: SignaturePolicy) -> Result<UploadPolicy> {
        let keyring = match &self.keyring {
            Some(paths) if !paths.is_empty() => Some(Keyring::load_all(paths)?),
            _ => None,
        };
        Ok(UploadPolicy {
            policy: self.signatures.unwrap_or(default),
            keyring,
        })
    }
}

/// The `[ppa]` section: the pool of build PPAs and the archives they publish.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PpaConfig {
    /// Owner of the pool's PPAs (`ci-team`).
    pub owner: Option<String>,
    /// PPAs made up front (4).
    pub size: Option<u32>,
    /// Most PPAs the pool grows to (16).
    pub max: Option<u32>,
    /// Seconds `ppa get` waits for a free PPA (600).
    pub wait_secs: Option<u64>,
    /// Seconds a reservation lasts unrenewed (21600).
    pub lease_secs: Option<u64>,
    /// The series published to when none is named (`bookworm`).
    pub series: Option<String>,
    /// Architectures every archive has an index for (the host's).
    pub architectures: Option<Vec<String>>,
}

impl PpaConfig {
    /// The pool's options: the configured values over the defaults.
    ///
    /// # Errors
    /// `InvalidInput` for values [`PoolOptions::validate`] refuses.
    pub fn pool_options(&self) -> Result<PoolOptions> {
        let defaults = PoolOptions::default();
        let options = PoolOptions {
            owner: self.owner.clone().unwrap_or(defaults.owner),
            size: self.size.unwrap_or(defaults.size),
            max: self.max.unwrap_or(defaults.max.max(self.size.unwrap_or(0))),
            wait: self.wait_secs.map_or(defaults.wait, Duration::from_secs),
            lease: self.lease_secs.map_or(defaults.lease, Duration::from_secs),
        };
        options.validate()?;
        Ok(options)
    }

    /// The archives' options.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed series or architecture.
    pub fn archive_options(&self) -> Result<ArchiveOptions> {
        let mut options = ArchiveOptions::default();
        if let Some(series) = &self.series {
            crate::archive::check_series(series)?;
            options.default_series.clone_from(series);
        }
        if let Some(arches) = &self.architectures {
            for arch in arches {
                crate::archive::deb::check_architecture(arch)?;
            }
            options.architectures.clone_from(arches);
        }
        Ok(options)
    }
}

impl Config {
    /// The default config file: `$XDG_CONFIG_HOME/ubuntu-ci/config.toml`.
    pub fn default_path() -> Option<PathBuf> {
        xdg_dir("XDG_CONFIG_HOME", ".config").map(|d| d.join("ubuntu-ci").join("config.toml"))
    }

    /// The system-wide config file, read under the user's: `/etc/ubuntu-ci/config.toml`,
    /// or the file `UBUNTU_CI_SYSTEM_CONFIG` names.
    pub fn system_path() -> PathBuf {
        std::env::var_os("UBUNTU_CI_SYSTEM_CONFIG")
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(SYSTEM_CONFIG), PathBuf::from)
    }

    /// Reads the system-wide file ([`Config::system_path`]), then `path` (or the user's
    /// default file when `path` is `None`) over it: a key set in both takes the second
    /// one's value, section by section. A missing system or default file counts as empty;
    /// a missing named file is an error.
    ///
    /// # Errors
    /// `InvalidInput` for malformed TOML or unknown keys (naming the file); `NotFound` for
    /// a named file that does not exist.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let user = match path {
            Some(path) => Some((path.to_path_buf(), true)),
            None => Config::default_path().map(|path| (path, false)),
        };
        Config::load_files(&Config::system_path(), user)
    }

    /// [`Config::load`] of these files: `system`, then `user` (required or not) over it.
    fn load_files(system: &Path, user: Option<(PathBuf, bool)>) -> Result<Config> {
        let mut merged = read_table(system, false)?.unwrap_or_default();
        // The site's owner is a default below each user's DEBEMAIL, not above it.
        let site_owner = match merged.remove("owner") {
            Some(toml::Value::String(owner)) => Some(owner),
            _ => None,
        };
        let user = match user {
            Some((path, required)) => read_table(&path, required)?,
            None => None,
        };
        if let Some(user) = user {
            merge_tables(&mut merged, user);
        }
        let config: Config =
            toml::Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    Error::invalid(format!("bad configuration: {}", e.message()))
                })?;
        Ok(Config {
            site_owner,
            ..config
        })
    }

    /// Overrides settings with the `UBUNTU_CI_*` environment variables that are set:
    /// `DATA_DIR`, `SERVER`, `TOKEN`, `TICKETS_URL`, `STORE_URL`, `LISTEN`, `PUBLIC_URL`,
    /// `OWNER`. Empty values are ignored.
    #[must_use]
    pub fn with_env(self) -> Config {
        self.with_vars(|name| std::env::var(name).ok())
    }

    fn with_vars(mut self, var: impl Fn(&str) -> Option<String>) -> Config {
        let get = |name: &str| var(&format!("UBUNTU_CI_{name}")).filter(|v| !v.is_empty());
        if let Some(v) = get("DATA_DIR") {
            self.data_dir = Some(PathBuf::from(v));
        }
        for (name, field) in [
            ("SERVER", &mut self.server),
            ("TOKEN", &mut self.token),
            ("TICKETS_URL", &mut self.tickets_url),
            ("STORE_URL", &mut self.store_url),
            ("LISTEN", &mut self.listen),
            ("PUBLIC_URL", &mut self.public_url),
            ("OWNER", &mut self.owner),
        ] {
            if let Some(v) = get(name) {
                *field = Some(v);
            }
        }
        self
    }

    /// Parses a config file's text.
    ///
    /// # Errors
    /// `InvalidInput` for malformed TOML or unknown keys.
    pub fn parse(text: &str) -> Result<Config> {
        toml::from_str(text)
            .map_err(|e| Error::invalid(format!("bad configuration: {}", e.message())))
    }

    /// The data dir: the configured one, else `$XDG_DATA_HOME/ubuntu-ci`.
    ///
    /// # Errors
    /// `InvalidInput` when neither is set and there is no home directory.
    pub fn data_dir(&self) -> Result<PathBuf> {
        let dir = match &self.data_dir {
            Some(dir) => dir.clone(),
            None => xdg_dir("XDG_DATA_HOME", ".local/share")
                .map(|d| d.join("ubuntu-ci"))
                .ok_or_else(|| {
                    Error::invalid("no data dir: set --data-dir, UBUNTU_CI_DATA_DIR or HOME")
                })?,
        };
        // Absolute, so that URLs made from it (sqlite://, file://) name the same place from
        // any working directory.
        std::path::absolute(&dir)
            .map_err(|e| Error::from(e).with_resource(dir.display().to_string()))
    }

    /// The address `serve` listens on.
    pub fn listen(&self) -> &str {
        self.listen.as_deref().unwrap_or(DEFAULT_LISTEN)
    }

    /// The default ticket owner: the configured one, else `DEBEMAIL`.
    pub fn default_owner(&self) -> Option<String> {
        self.owner
            .clone()
            .or_else(|| {
                std::env::var("DEBEMAIL")
                    .ok()
                    .and_then(|v| crate::model::person_address("DEBEMAIL", &v).ok())
            })
            .or_else(|| self.site_owner.clone())
    }

    /// `given`, else the default owner; `InvalidInput` saying where one is set when there
    /// is none.
    ///
    /// # Errors
    /// `InvalidInput` when neither is there.
    pub fn owner_or_default(&self, given: Option<String>) -> Result<String> {
        given.or_else(|| self.default_owner()).ok_or_else(|| {
            Error::invalid(
                "owner: none given, and none configured (owner in the configuration, \
                 UBUNTU_CI_OWNER or DEBEMAIL)",
            )
        })
    }

    /// The local ticket system's URL (never the server).
    pub fn local_tickets_url(&self) -> Result<String> {
        match &self.tickets_url {
            Some(url) => Ok(url.clone()),
            None => sqlite_url(&self.data_dir()?.join("tickets.db")),
        }
    }

    /// The local data store's URL (never the server).
    pub fn local_store_url(&self) -> Result<String> {
        match &self.store_url {
            Some(url) => Ok(url.clone()),
            None => {
                let dir = self.data_dir()?.join("store");
                url::Url::from_directory_path(&dir)
                    .map(String::from)
                    .map_err(|()| {
                        Error::invalid("the data dir cannot be written as a file: URL")
                            .with_resource(dir.display().to_string())
                    })
            }
        }
    }

    /// The URL clients reach `serve` at: `public_url`, else `http://<address>/` (the address
    /// it listens on); always ending in `/`.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed `public_url`.
    pub fn serve_url(&self, address: std::net::SocketAddr) -> Result<url::Url> {
        match self.configured_public_url()? {
            Some(url) => Ok(url),
            None => url::Url::parse(&format!("http://{address}/"))
                .map_err(|e| Error::invalid(format!("listen address {address}: {e}"))),
        }
    }

    /// The base URL of served store objects (`<public_url>store/`), when `public_url` is set.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed `public_url`.
    pub fn store_public_url(&self) -> Result<Option<url::Url>> {
        self.configured_public_url()?
            .map(|base| {
                base.join("store/")
                    .map_err(|e| Error::invalid(format!("public_url: {e}")))
            })
            .transpose()
    }

    fn configured_public_url(&self) -> Result<Option<url::Url>> {
        let Some(text) = &self.public_url else {
            return Ok(None);
        };
        let base = url::Url::parse(text)
            .map_err(|e| Error::invalid(format!("public_url: bad URL {text:?}: {e}")))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(Error::invalid(format!(
                "public_url: {text:?} is not an http(s) URL"
            )));
        }
        Ok(Some(crate::wire::as_base(base)))
    }

    /// Opens the data store alone (for commands that need no tickets): the server's when
    /// `server` is set, else the local one.
    ///
    /// # Errors
    /// As [`open_store`].
    pub fn connect_store(&self) -> Result<Arc<dyn ObjectStore>> {
        match &self.server {
            Some(server) => open_store(
                server,
                &StoreOptions {
                    public_url: None,
                    token: self.token.clone(),
                },
            ),
            None => open_store(
                &self.local_store_url()?,
                &StoreOptions {
                    public_url: self.store_public_url()?,
                    token: None,
                },
            ),
        }
    }

    /// The absolute URL of a resource URI on the configured server (`/api/v1/ticket/1/` →
    /// `http://host/prefix/api/v1/ticket/1/`), or the URI itself without a server.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed server URL.
    pub fn resource_url(&self, uri: &str) -> Result<String> {
        match &self.server {
            Some(server) => crate::wire::resource_url(server, uri),
            None => Ok(uri.to_owned()),
        }
    }

    /// Opens the services this configuration names: through the server when `server` is
    /// set, else the local ones. `public_url` is the base of stored objects' URLs for a
    /// local store served by `serve` (None: `file:` URLs).
    ///
    /// # Errors
    /// As [`open_ticket_system`] and [`open_store`].
    pub async fn connect(&self, public_url: Option<url::Url>) -> Result<Services> {
        if let Some(server) = &self.server {
            return self.connect_server(server).await;
        }
        // A configured public URL (the server's) names local objects too, so that files
        // stored by a local command are served at the URLs recorded for them.
        let public_url = match public_url {
            Some(url) => Some(url),
            None => self.store_public_url()?,
        };
        private_data_dir(&self.data_dir()?)?;
        let tickets_url = self.local_tickets_url()?;
        if tickets_url.starts_with("http://") || tickets_url.starts_with("https://") {
            // Tickets on a server: the PPAs are that server's too.
            let mut services = self.connect_server(&tickets_url).await?;
            services.store = self.open_local_store(public_url)?;
            return Ok(services);
        }
        let db = SqlTicketSystem::connect(&tickets_url).await?;
        let uploads = self.uploads.policy(SignaturePolicy::AllowUnsigned)?;
        let archives = Archives::new(self.data_dir()?.join("ppa"), self.ppa.archive_options()?)
            .with_upload_policy(uploads.clone());
        let ppas =
            SqlPpaPool::new(&db, self.ppa.pool_options()?, Arc::new(archives.clone())).await?;
        let requests = crate::lander::store::SqlRequestStore::new(&db);
        let tickets: Arc<dyn TicketSystem> = Arc::new(db);
        let store = self.open_local_store(public_url)?;
        let queues: Arc<dyn ProgressQueues> = Arc::new(MemoryQueues::default());
        let data_dir = self.data_dir()?;
        let builder = SbuildBuilder::new(
            store.clone(),
            Some(tickets.clone()),
            archives.clone(),
            queues.clone(),
            self.build.sbuild_options(&data_dir)?,
        );
        let images = RootfsImageBuilder::new(
            store.clone(),
            Some(tickets.clone()),
            archives.clone(),
            queues.clone(),
            self.build.image_options(&data_dir)?,
        );
        let tests = AutopkgtestRunner::new(
            store.clone(),
            Some(tickets.clone()),
            archives.clone(),
            queues.clone(),
            self.build.runner_options(&data_dir)?,
        );
        Ok(Services {
            tickets,
            store,
            ppas: Arc::new(ppas),
            archives: Arc::new(archives),
            uploads,
            queues,
            builder: Arc::new(builder),
            images: Arc::new(images),
            tests: Arc::new(tests),
            requests: Some(Arc::new(requests)),
        })
    }

    async fn connect_server(&self, server: &str) -> Result<Services> {
        let tickets = open_ticket_system(
            server,
            &TicketSystemOptions {
                token: self.token.clone(),
            },
        )
        .await?;
        let store = open_store(
            server,
            &StoreOptions {
                public_url: None,
                token: self.token.clone(),
            },
        )?;
        let ppas = HttpPpaAssigner::new(server, self.token.clone())?;
        let archives = HttpArchives::new(server, self.token.clone(), Arc::clone(&store))?;
        Ok(Services {
            tickets,
            store,
            ppas: Arc::new(ppas),
            archives: Arc::new(archives),
            // The client checks what it can; the server applies its own policy to what it
            // publishes.
            uploads: self.uploads.policy(SignaturePolicy::AllowUnsigned)?,
            queues: Arc::new(MemoryQueues::default()),
            builder: Arc::new(ThroughServer),
            images: Arc::new(ThroughServer),
            tests: Arc::new(ThroughServer),
            requests: None,
        })
    }

    fn open_local_store(&self, public_url: Option<url::Url>) -> Result<Arc<dyn ObjectStore>> {
        open_store(
            &self.local_store_url()?,
            &StoreOptions {
                public_url,
                token: None,
            },
        )
    }
}

/// The backends a frontend works with.
#[derive(Debug, Clone)]
pub struct Services {
    /// The ticket system.
    pub tickets: Arc<dyn TicketSystem>,
    /// The data store.
    pub store: Arc<dyn ObjectStore>,
    /// The PPA pool.
    pub ppas: Arc<dyn PpaAssigner>,
    /// The PPAs' archives.
    pub archives: Arc<dyn ArchiveService>,
    /// The signature rule source uploads are held to.
    pub uploads: UploadPolicy,
    /// The progress queues the builders report on.
    pub queues: Arc<dyn ProgressQueues>,
    /// The source builder (sbuild on this machine; through a server: not yet).
    pub builder: Arc<dyn SourceBuilder>,
    /// The image builder (mmdebstrap on this machine; through a server: not yet).
    pub images: Arc<dyn ImageBuilder>,
    /// The test runner (autopkgtest on this machine; through a server: not yet).
    pub tests: Arc<dyn TestRunner>,
    /// Where landers keep their requests (beside the tickets; none through a server).
    pub requests: Option<Arc<dyn crate::lander::store::RequestStore>>,
}

impl Services {
    /// The PPA of `ticket` (see [`PpaAssigner::get_ppa`]), its archive made readable by
    /// apt for the default series before anything is published.
    ///
    /// # Errors
    /// As [`PpaAssigner::get_ppa`] and [`ArchiveService::prepare`].
    pub async fn ready_ppa(&self, ticket: i64) -> Result<crate::ppa::Ppa> {
        let ppa = self.ppas.get_ppa(ticket).await?;
        self.archives.prepare(&ppa.name, None).await?;
        Ok(ppa)
    }
}

/// The `sqlite://` URL of a database file; characters that URLs give a meaning to (`%`, `?`,
/// `#`) are percent-encoded, as sqlx decodes them.
fn sqlite_url(path: &Path) -> Result<String> {
    const ESCAPED: &percent_encoding::AsciiSet =
        &percent_encoding::CONTROLS.add(b'%').add(b'?').add(b'#');
    let text = path.to_str().ok_or_else(|| {
        Error::invalid("the data dir's path is not UTF-8").with_resource(path.display().to_string())
    })?;
    Ok(format!(
        "sqlite://{}",
        percent_encoding::utf8_percent_encode(text, ESCAPED)
    ))
}

fn xdg_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(dir) if Path::new(&dir).is_absolute() => Some(PathBuf::from(dir)),
        _ => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|home| PathBuf::from(home).join(fallback)),
    }
}

/// Makes the data dir (mode 0700) or takes away what group and others may do in it: it
/// holds the API token, the tickets and the private containers' objects, which other
/// local users have no business reading.
fn private_data_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let resource = || dir.display().to_string();
    std::fs::create_dir_all(dir).map_err(|e| Error::from(e).with_resource(resource()))?;
    let mode = std::fs::metadata(dir)
        .map_err(|e| Error::from(e).with_resource(resource()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))
            .map_err(|e| Error::from(e).with_resource(resource()))?;
    }
    Ok(())
}

/// The system-wide config file.
pub const SYSTEM_CONFIG: &str = "/etc/ubuntu-ci/config.toml";

/// The TOML table of the file at `path`, checked as a whole configuration on its own (so
/// that an error names the file it is in); `None` for a missing file that is not
/// `required`.
fn read_table(path: &Path, required: bool) -> Result<Option<toml::Table>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => return Err(Error::from(e).with_resource(path.display().to_string())),
    };
    let resource = || path.display().to_string();
    Config::parse(&text).map_err(|e| e.with_resource(resource()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        Error::invalid(format!("bad configuration: {}", e.message())).with_resource(resource())
    })?;
    Ok(Some(table))
}

/// Puts `over`'s keys into `base`: tables are merged key by key, other values replaced.
fn merge_tables(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(value)) => {
                merge_tables(inner, value);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_data_dir_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for (data, made) in [
            (dir.path().join("new"), false),
            (dir.path().join("old"), true),
        ] {
            if made {
                std::fs::create_dir(&data).unwrap();
                std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            let config = Config {
                data_dir: Some(data.clone()),
                ..Config::default()
            };
            config.connect(None).await.unwrap();
            let mode = std::fs::metadata(&data).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", data.display());
        }
    }

    #[test]
    fn the_system_file_is_read_under_the_users() {
        let dir = tempfile::tempdir().unwrap();
        let system = dir.path().join("system.toml");
        let user = dir.path().join("user.toml");
        std::fs::write(
            &system,
            "owner = \"ci@example.com\"\nserver = \"http://ci:8000/\"\n[lander]\nbuilds = 4\ntests = 2\n",
        )
        .unwrap();
        std::fs::write(&user, "owner = \"jane@example.com\"\n[lander]\ntests = 1\n").unwrap();
        let config = Config::load_files(&system, Some((user.clone(), true))).unwrap();
        assert_eq!(config.owner.as_deref(), Some("jane@example.com"));
        assert_eq!(config.site_owner.as_deref(), Some("ci@example.com"));
        assert_eq!(config.server.as_deref(), Some("http://ci:8000/"));
        assert_eq!(config.lander.builds, Some(4), "kept from the system file");
        assert_eq!(config.lander.tests, Some(1), "the user's value wins");
        // The site's owner is below each user's own (their DEBEMAIL, here none set in the
        // user file): it is the default only when the user names none.
        let absent = dir.path().join("absent.toml");
        let site_only = Config::load_files(&system, Some((absent.clone(), false))).unwrap();
        assert_eq!(site_only.owner, None);
        assert_eq!(site_only.site_owner.as_deref(), Some("ci@example.com"));
        assert!(Config::load_files(&system, Some((absent, true))).is_err());
        // A bad file is named in the error; a missing optional one is empty.
        std::fs::write(&system, "colour = 1\n").unwrap();
        let err = read_table(&system, false).unwrap_err();
        assert!(err.to_string().contains("system.toml"), "{err}");
        assert!(read_table(&dir.path().join("absent"), false)
            .unwrap()
            .is_none());
        assert!(read_table(&dir.path().join("absent"), true).is_err());
    }

    #[test]
    fn config_files_are_strict_toml() {
        let config = Config::parse(
            "data_dir = \"/srv/ci\"\nserver = \"http://ci:8000/\"\nowner = \"dev@example.com\"\n",
        )
        .unwrap();
        assert_eq!(config.data_dir.as_deref(), Some(Path::new("/srv/ci")));
        assert_eq!(config.server.as_deref(), Some("http://ci:8000/"));
        assert_eq!(
            config.local_tickets_url().unwrap(),
            "sqlite:///srv/ci/tickets.db"
        );
        assert_eq!(config.local_store_url().unwrap(), "file:///srv/ci/store/");
        let odd = Config {
            data_dir: Some(PathBuf::from("/tmp/h#x?y%z")),
            ..Config::default()
        };
        assert_eq!(
            odd.local_tickets_url().unwrap(),
            "sqlite:///tmp/h%23x%3Fy%25z/tickets.db"
        );
        assert_eq!(
            url::Url::parse(&odd.local_store_url().unwrap())
                .unwrap()
                .to_file_path()
                .unwrap(),
            PathBuf::from("/tmp/h#x?y%z/store")
        );
        let relative = Config {
            data_dir: Some(PathBuf::from("rel")),
            ..Config::default()
        };
        assert!(relative.data_dir().unwrap().is_absolute());
        assert!(Config::parse("colour = 1").is_err());
        assert!(Config::parse("data_dir = [").is_err());
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let file =
            Config::parse("owner = \"file@example.com\"\nlisten = \"0.0.0.0:80\"\n").unwrap();
        let config = file.with_vars(|name| match name {
            "UBUNTU_CI_OWNER" => Some("env@example.com".into()),
            "UBUNTU_CI_TICKETS_URL" => Some("postgres://db/ci".into()),
            "UBUNTU_CI_LISTEN" => Some(String::new()),
            _ => None,
        });
        assert_eq!(config.owner.as_deref(), Some("env@example.com"));
        assert_eq!(config.tickets_url.as_deref(), Some("postgres://db/ci"));
        assert_eq!(config.listen(), "0.0.0.0:80", "empty variables are ignored");
    }

    #[test]
    fn a_named_missing_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/ubuntu-ci.toml"))).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::NotFound);
    }

    #[test]
    fn the_build_section_sets_the_builders_options() {
        let config = Config::parse(
            "[build]\nmirror = \"http://mirror.example/debian\"\ntimeout_secs = 600\n\
             chroot_max_age_secs = 3600\nwork_dir = \"/var/tmp\"\n",
        )
        .unwrap();
        let options = config.build.sbuild_options(Path::new("/srv/ci")).unwrap();
        assert_eq!(options.mirror, "http://mirror.example/debian");
        assert_eq!(options.timeout, Duration::from_secs(600));
        assert_eq!(options.chroot_max_age, Duration::from_secs(3600));
        assert_eq!(options.chroot_timeout, Duration::from_secs(3600), "default");
        assert_eq!(options.chroot_dir, Path::new("/srv/ci/chroots"));
        assert_eq!(options.work_dir, Path::new("/var/tmp"));
        for bad in [
            "[build]\ntimeout_secs = 0\n",
            "[build]\nmirror = \"ftp://mirror.example/debian\"\n",
            "[build]\nmirror = \"not a url\"\n",
        ] {
            let config = Config::parse(bad).unwrap();
            let err = config
                .build
                .sbuild_options(Path::new("/srv/ci"))
                .unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{bad}");
        }
        assert!(
            Config::parse("[build]\ntimeout = 5\n").is_err(),
            "unknown key"
        );
    }

    #[test]
    fn the_lander_section_sets_the_landers_options() {
        let config = Config::parse(
            "[lander]\nstep_timeout_secs = 3600\nheartbeat_secs = 30\nheartbeat_misses = 4\n\
             step_retries = 0\nbuilds = 3\nimages = 2\ntests = 5\n",
        )
        .unwrap();
        let options = config.lander.options("bookworm").unwrap();
        assert_eq!(options.step_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(options.silence_limit(), Duration::from_secs(120));
        assert_eq!(options.step_retries, 0);
        assert_eq!(
            options.limits,
            crate::lander::StepLimits {
                builds: 3,
                images: 2,
                tests: 5,
                ppas: 16
            }
        );
        let defaults = Config::default().lander.options("bookworm").unwrap();
        assert_eq!(defaults.silence_limit(), Duration::from_secs(600));
        assert_eq!(defaults.step_retries, 2);
        assert_eq!(defaults.step_timeout, None);
        for bad in [
            "[lander]\nheartbeat_secs = 0\n",
            "[lander]\nbuilds = 0\n",
            "[lander]\nstep_timeout_secs = 0\n",
        ] {
            let err = Config::parse(bad)
                .unwrap()
                .lander
                .options("bookworm")
                .unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{bad}");
        }
        assert!(
            Config::parse("[lander]\nretries = 1\n").is_err(),
            "unknown key"
        );
    }

    #[test]
    fn debemail_may_carry_a_name() {
        // default_owner reads DEBEMAIL through the owner rule of the model.
        for (value, owner) in [
            ("Jane Dev <jane@example.com>", Some("jane@example.com")),
            ("jane@example.com", Some("jane@example.com")),
            ("Jane Dev <jane@example.com", None),
            ("", None),
        ] {
            assert_eq!(
                crate::model::person_address("DEBEMAIL", value)
                    .ok()
                    .as_deref(),
                owner,
                "{value}"
            );
        }
    }
}
