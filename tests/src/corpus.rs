//! The corpus of real Debian uploads: the bookworm source packages pinned in
//! `tests/corpus/debian-sources.txt`, fetched once by `scripts/fetch-debian-sources.sh` into
//! `target/debian-sources/` (cached there), each with a `_source.changes` made for it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::repo_root;

/// One real upload of the corpus.
#[derive(Debug, Clone)]
pub struct DebianSource {
    /// The source package's name.
    pub name: String,
    /// Its version, as Debian writes it (with its epoch).
    pub version: String,
    /// Its `_source.changes`, beside the files it lists.
    pub changes: PathBuf,
    /// What the manifest says it covers.
    pub covers: String,
}

/// Every upload of the corpus, fetched first when it is not cached. Panics with the
/// script's output when the Debian mirror cannot be reached: these tests need real uploads.
pub fn debian_sources() -> &'static [DebianSource] {
    static SOURCES: OnceLock<Vec<DebianSource>> = OnceLock::new();
    SOURCES.get_or_init(|| {
        let root = repo_root();
        let output = Command::new("bash")
            .arg(root.join("scripts/fetch-debian-sources.sh"))
            .output()
            .expect("run scripts/fetch-debian-sources.sh");
        assert!(
            output.status.success(),
            "scripts/fetch-debian-sources.sh failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let manifest = std::fs::read_to_string(root.join("tests/corpus/debian-sources.txt"))
            .expect("the manifest");
        manifest
            .lines()
            .filter_map(|line| {
                let (entry, covers) = line.split_once('#').unwrap_or((line, ""));
                let mut words = entry.split_whitespace();
                let (name, version) = (words.next()?, words.next()?);
                let without_epoch = ubuntu_ci_core::upload::version::DebianVersion::parse(version)
                    .expect("a Debian version in the manifest")
                    .without_epoch();
                let changes = root
                    .join("target/debian-sources")
                    .join(name)
                    .join(format!("{name}_{without_epoch}_source.changes"));
                assert!(changes.exists(), "{} was not made", changes.display());
                Some(DebianSource {
                    name: name.to_owned(),
                    version: version.to_owned(),
                    changes,
                    covers: covers.trim().to_owned(),
                })
            })
            .collect()
    })
}

/// The corpus's upload of `name`.
pub fn debian_source(name: &str) -> &'static DebianSource {
    debian_sources()
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{name} is not in tests/corpus/debian-sources.txt"))
}
