//! Shared helpers for the end-to-end tests: a server on a free loopback port, the
//! `ubuntu-ci` binary, the example package built into a temporary folder.

pub mod apt;
pub mod corpus;
pub mod fakes;
pub mod gpg;
pub mod workers;

use std::path::{Path, PathBuf};
use std::process::Command;

use ubuntu_ci_core::config::{Config, Services};
use ubuntu_ci_core::server::{self, ServerState};

/// The test token of in-process servers.
pub const TOKEN: &str = "test-token-0123456789";

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A running in-process server over local state in a temporary data dir.
pub struct TestServer {
    /// The server's base URL (`http://127.0.0.1:PORT/`).
    pub url: url::Url,
    /// Its services, to look behind the API.
    pub services: Services,
    /// The data dir.
    pub data_dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    /// Starts a server on a free port with SQLite and the filesystem store.
    pub async fn start() -> TestServer {
        TestServer::start_with(|state| state).await
    }

    /// Starts a server whose state `adjust` changes first.
    pub async fn start_with(adjust: impl FnOnce(ServerState) -> ServerState) -> TestServer {
        let data_dir = tempfile::tempdir().expect("tempdir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = url::Url::parse(&format!("http://{}/", listener.local_addr().expect("addr")))
            .expect("url");
        let config = Config {
            data_dir: Some(data_dir.path().to_path_buf()),
            ..Config::default()
        };
        let services = config
            .connect(Some(url.join("store/").expect("join")))
            .await
            .expect("services");
        let state = adjust(ServerState::new(
            services.clone(),
            TOKEN.into(),
            url.clone(),
        ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = server::serve(listener, state, async {
                let _ = stopped.await;
            })
            .await;
        });
        TestServer {
            url,
            services,
            data_dir,
            stop: Some(stop),
        }
    }

    /// The absolute URL of `path`.
    pub fn at(&self, path: &str) -> String {
        self.url
            .join(path.trim_start_matches('/'))
            .expect("join")
            .to_string()
    }

    /// The server's services as a client sees them (HTTP backends).
    pub async fn client(&self, token: Option<&str>) -> Services {
        Config {
            server: Some(self.url.to_string()),
            token: token.map(str::to_owned),
            ..Config::default()
        }
        .connect(None)
        .await
        .expect("client services")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The `.changes` files of the example package, built by its script into `dir`.
pub fn build_example_package(dir: &Path) -> PathBuf {
    let script = repo_root().join("examples/packages/build-source.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(dir)
        .status()
        .expect("run build-source.sh");
    assert!(status.success(), "{} failed", script.display());
    let changes = std::fs::read_dir(dir)
        .expect("read out dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("_source.changes"))
        .expect("a _source.changes");
    changes
}

/// The `ubuntu-ci` binary of this build, brought up to date once per test process (with
/// the features this crate was built with), so a test never runs a stale binary.
pub fn ubuntu_ci_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("current_exe");
            // target/<profile>/deps/<test> → target/<profile>/ubuntu-ci
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("test binary in target/<profile>/deps");
            let mut build = Command::new(env!("CARGO"));
            build
                .args(["build", "--quiet", "-p", "ubuntu-ci-cli"])
                .current_dir(repo_root());
            if cfg!(feature = "postgres") {
                build.args(["--features", "ubuntu-ci-cli/postgres"]);
            }
            if profile_dir
                .file_name()
                .is_some_and(|name| name == "release")
            {
                build.arg("--release");
            }
            let status = build.status().expect("cargo build");
            assert!(status.success(), "cargo build -p ubuntu-ci-cli failed");
            profile_dir.join("ubuntu-ci")
        })
        .clone()
}

/// A `Command` for `ubuntu-ci` with a private data dir and no outside configuration.
pub fn ubuntu_ci(data_dir: &Path) -> Command {
    let mut command = Command::new(ubuntu_ci_binary());
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env("XDG_CONFIG_HOME", data_dir.join("config"))
        // No system-wide file either: the tests' configuration is their own.
        .env(
            "UBUNTU_CI_SYSTEM_CONFIG",
            data_dir.join("config/system.toml"),
        )
        .env_remove("UBUNTU_CI_CONFIG")
        .env_remove("UBUNTU_CI_SERVER")
        .env_remove("UBUNTU_CI_TOKEN")
        .env_remove("UBUNTU_CI_JSON")
        .env_remove("UBUNTU_CI_DATA_DIR");
    command
}

/// `ubuntu-ci serve` in a child process on a free port, killed on drop.
pub struct ServedProcess {
    /// The process.
    pub child: std::process::Child,
    /// Its URL (`http://127.0.0.1:PORT/`).
    pub url: String,
    /// What it printed on stderr before listening (its warnings).
    pub warnings: String,
}

impl Drop for ServedProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `ubuntu-ci serve --no-lander` on `data_dir` with `token` (the tickets made
/// through it are not built); its stderr goes to `<data_dir>/serve.log`.
pub fn serve_process(data_dir: &Path, token: &str) -> ServedProcess {
    serve_with(data_dir, token, &["--no-lander"])
}

/// As [`serve_process`], with the server's lander running the tickets handed to it.
pub fn serve_process_with_lander(data_dir: &Path, token: &str) -> ServedProcess {
    serve_with(data_dir, token, &[])
}

fn serve_with(data_dir: &Path, token: &str, extra: &[&str]) -> ServedProcess {
    use std::io::BufRead;
    std::fs::create_dir_all(data_dir).expect("data dir");
    let log = data_dir.join("serve.log");
    let mut child = ubuntu_ci(data_dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("UBUNTU_CI_TOKEN", token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("serve.log"))
        .spawn()
        .expect("spawn serve");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("serve prints its URL");
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .expect("URL at the end of the line")
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    let warnings = std::fs::read_to_string(&log).unwrap_or_default();
    ServedProcess {
        child,
        url,
        warnings,
    }
}

/// Every transition of `ticket`, oldest first.
pub async fn transitions(
    services: &Services,
    ticket: i64,
) -> Vec<ubuntu_ci_core::model::Transition> {
    use ubuntu_ci_core::model::{PageRequest, TransitionFilter, Uri};
    services
        .tickets
        .list_transitions(
            TransitionFilter {
                ticket: Some(Uri::new(ticket)),
            },
            PageRequest {
                limit: PageRequest::MAX_LIMIT,
                offset: 0,
            },
        )
        .await
        .expect("transitions")
        .objects
}
