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

/// Writes a small but complete `.deb` (control and data tarballs, gzip) without running
/// `dpkg-deb`: fast enough to fill an archive with thousands of packages.
pub fn write_minimal_deb(dir: &Path, package: &str, version: &str, arch: &str) -> PathBuf {
    use std::io::Write;
    let control = format!(
        "Package: {package}\nVersion: {version}\nArchitecture: {arch}\n\
         Maintainer: Bench <bench@example.com>\nInstalled-Size: 1\nSection: misc\n\
         Priority: optional\nDescription: generated package {package}\n \
         A package made by the ubuntu-ci tests and benchmarks.\n"
    );
    let tar_gz = |name: &str, content: &[u8]| {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, name, content)
            .expect("tar entry");
        let tar = builder.into_inner().expect("tar");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).expect("gzip");
        gz.finish().expect("gzip")
    };
    let members: [(&str, Vec<u8>); 3] = [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", tar_gz("./control", control.as_bytes())),
        (
            "data.tar.gz",
            tar_gz(
                &format!("./usr/share/doc/{package}/README"),
                format!("{package} {version}\n").as_bytes(),
            ),
        ),
    ];
    let mut deb = b"!<arch>\n".to_vec();
    for (name, data) in members {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            0,
            0,
            0,
            "100644",
            data.len()
        );
        deb.extend_from_slice(header.as_bytes());
        deb.extend_from_slice(&data);
        if data.len() % 2 == 1 {
            deb.push(b'\n');
        }
    }
    let path = dir.join(format!("{package}_{version}_{arch}.deb"));
    std::fs::write(&path, deb).expect("write deb");
    path
}
