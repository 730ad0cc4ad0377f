//! A throw-away GnuPG home with one signing key, to sign uploads as `debsign` does.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A GnuPG home with one Ed25519 key.
pub struct TestGpg {
    home: tempfile::TempDir,
    /// The key's fingerprint.
    pub fingerprint: String,
}

impl TestGpg {
    /// Generates a key for `uid` (`Name <email>`).
    pub fn new(uid: &str) -> TestGpg {
        let home = tempfile::Builder::new()
            .prefix("gpg-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let mut gpg = TestGpg {
            home,
            fingerprint: String::new(),
        };
        gpg.run(&["--quick-gen-key", uid, "ed25519", "sign", "0"]);
        let listing = gpg.run(&["--with-colons", "--list-keys", uid]);
        let fingerprint = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|rest| rest.split(':').find(|f| f.len() == 40))
            .expect("a fingerprint")
            .to_owned();
        gpg.fingerprint = fingerprint;
        gpg
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("gpg")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .output()
            .expect("gpg (install gnupg; scripts/test.sh does)");
        assert!(
            output.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Writes the public key (binary, as `gpg --export`) to `path`.
    pub fn export(&self, path: &Path) {
        self.run(&["--output", &path.display().to_string(), "--export"]);
    }

    /// Clear-signs `path` in place.
    pub fn clearsign(&self, path: &Path) {
        let signed = path.with_extension("signed");
        self.run(&[
            "--output",
            &signed.display().to_string(),
            "--clearsign",
            &path.display().to_string(),
        ]);
        std::fs::rename(&signed, path).expect("rename");
    }

    /// Signs an upload as `debsign` does: the `.dsc`, then the `.changes` with the `.dsc`'s
    /// new size and checksums.
    pub fn sign_upload(&self, changes: &Path) {
        let dir = changes.parent().expect("folder");
        let text = std::fs::read_to_string(changes).expect("read .changes");
        let dsc_name = text
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .find(|n| n.ends_with(".dsc"))
            .expect("a .dsc")
            .to_owned();
        let dsc: PathBuf = dir.join(&dsc_name);
        self.clearsign(&dsc);
        let bytes = std::fs::read(&dsc).expect("read .dsc");
        let size = bytes.len().to_string();
        let md5 = digest("md5sum", &dsc);
        let sha1 = digest("sha1sum", &dsc);
        let sha256 = digest("sha256sum", &dsc);
        let rewritten: Vec<String> = text
            .lines()
            .map(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                if !line.starts_with(' ') || words.last() != Some(&dsc_name.as_str()) {
                    return line.to_owned();
                }
                let hash = match words[0].len() {
                    32 => &md5,
                    40 => &sha1,
                    _ => &sha256,
                };
                let mut words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
                words[0].clone_from(hash);
                words[1].clone_from(&size);
                format!(" {}", words.join(" "))
            })
            .collect();
        std::fs::write(changes, rewritten.join("\n") + "\n").expect("write .changes");
        self.clearsign(changes);
    }
}

fn digest(tool: &str, path: &Path) -> String {
    let output = Command::new(tool).arg(path).output().expect(tool);
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_owned()
}

impl Drop for TestGpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "all"])
            .status();
    }
}
