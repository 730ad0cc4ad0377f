//! A private apt: its own configuration, lists, cache and (empty) dpkg status under a
//! temporary folder, so tests run the real `apt-get` against an archive without reading or
//! changing anything of the host's apt.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// An apt configuration of its own.
pub struct PrivateApt {
    root: tempfile::TempDir,
}

impl PrivateApt {
    /// An apt whose only sources are `sources` (sources.list lines).
    pub fn new(sources: &str) -> PrivateApt {
        let root = tempfile::tempdir().expect("tempdir");
        let base = root.path();
        for dir in [
            "etc/apt/apt.conf.d",
            "etc/apt/preferences.d",
            "etc/apt/sources.list.d",
            "etc/apt/trusted.gpg.d",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/lib/dpkg",
            "var/log/apt",
            "keys",
            "work",
        ] {
            std::fs::create_dir_all(base.join(dir)).expect("mkdir");
        }
        std::fs::write(base.join("var/lib/dpkg/status"), "").expect("status");
        std::fs::write(base.join("etc/apt/sources.list"), sources).expect("sources");
        let conf = format!(
            "Dir \"{root}/\";\n\
             Dir::State::status \"{root}/var/lib/dpkg/status\";\n\
             Dir::Etc::Parts \"{root}/etc/apt/apt.conf.d\";\n\
             Dir::Etc::Main \"{root}/etc/apt/apt.conf\";\n\
             APT::Architecture \"amd64\";\n\
             APT::Architectures {{ \"amd64\"; }};\n\
             APT::Sandbox::User \"root\";\n\
             Acquire::Languages \"none\";\n\
             Acquire::Retries \"0\";\n\
             Debug::NoLocking \"true\";\n",
            root = base.display()
        );
        std::fs::write(base.join("apt.conf"), conf).expect("apt.conf");
        PrivateApt { root }
    }

    /// Replaces the sources.list.
    pub fn set_sources(&self, sources: &str) {
        std::fs::write(self.root.path().join("etc/apt/sources.list"), sources).expect("sources");
    }

    /// Where keys for `signed-by` go.
    pub fn key_path(&self, name: &str) -> PathBuf {
        self.root.path().join("keys").join(name)
    }

    /// The folder `apt-get source` downloads into.
    pub fn work_dir(&self) -> PathBuf {
        self.root.path().join("work")
    }

    /// Where `install --download-only` puts packages.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.path().join("var/cache/apt/archives")
    }

    /// Runs `apt-get ARGS` with this configuration.
    pub fn apt_get(&self, args: &[&str]) -> Output {
        self.command("apt-get", args)
    }

    /// Runs `apt-cache ARGS` with this configuration.
    pub fn apt_cache(&self, args: &[&str]) -> Output {
        self.command("apt-cache", args)
    }

    fn command(&self, program: &str, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .env("APT_CONFIG", self.root.path().join("apt.conf"))
            .env("LC_ALL", "C")
            .current_dir(self.work_dir())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    /// Runs `apt-get ARGS` and fails the test, with apt's output, unless it succeeds
    /// without a warning.
    pub fn apt_get_ok(&self, args: &[&str]) -> String {
        let output = self.apt_get(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success() && !stderr.contains("W: ") && !stderr.contains("E: "),
            "apt-get {args:?} failed:\n{stdout}\n{stderr}"
        );
        stdout
    }
}

/// Parses deb822 stanzas into field maps (names as written, continuation lines joined).
pub fn stanzas(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut fields = std::collections::BTreeMap::new();
        let mut last: Option<String> = None;
        for line in block.lines() {
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(name) = &last {
                    let value: &mut String = fields.get_mut(name).expect("field");
                    value.push('\n');
                    value.push_str(line);
                }
            } else if let Some((name, value)) = line.split_once(':') {
                fields.insert(name.to_owned(), value.trim().to_owned());
                last = Some(name.to_owned());
            }
        }
        out.push(fields);
    }
    out
}

/// Builds a binary package with `dpkg-deb` in `dir`, its control compressed with
/// `compression` (`gzip`, `xz`, `zstd`); returns the `.deb`.
pub fn build_deb(dir: &Path, control: &str, compression: &str) -> PathBuf {
    let fields = stanzas(control);
    let fields = fields.first().expect("a control stanza");
    let name = format!(
        "{}_{}_{}.deb",
        fields["Package"], fields["Version"], fields["Architecture"]
    );
    let tree = tempfile::tempdir().expect("tempdir");
    let debian = tree.path().join("DEBIAN");
    std::fs::create_dir_all(&debian).expect("mkdir");
    std::fs::write(debian.join("control"), control).expect("control");
    let doc = tree.path().join("usr/share/doc").join(&fields["Package"]);
    std::fs::create_dir_all(&doc).expect("mkdir");
    std::fs::write(doc.join("README"), "built by the ubuntu-ci tests\n").expect("readme");
    let deb = dir.join(name);
    let output = Command::new("dpkg-deb")
        .arg(format!("-Z{compression}"))
        .arg("--root-owner-group")
        .arg("--build")
        .arg(tree.path())
        .arg(&deb)
        .output()
        .expect("run dpkg-deb");
    assert!(
        output.status.success(),
        "dpkg-deb: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    deb
}
