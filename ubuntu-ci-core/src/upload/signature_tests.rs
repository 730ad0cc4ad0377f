//! Tests of upload signatures with keys and clear-signatures made by GnuPG at test time; every
//! verdict on a signed file is cross-checked with `gpgv`.
//!
//! The keys and all signed uploads are made once per test process (RSA key generation takes
//! seconds), then the temporary GnuPG home and its agent are removed; tests only read bytes.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use chrono::TimeZone;

use super::*;
use crate::upload::checksums::digest_bytes;
use crate::upload::validate_changes_blocking;
use crate::ErrorKind;

const ORIG: (&str, &[u8]) = ("tiny_1.0.orig.tar.gz", b"pretend upstream tarball");
const DEBIAN: (&str, &[u8]) = ("tiny_1.0-1.debian.tar.xz", b"pretend debian tarball");
const DSC_NAME: &str = "tiny_1.0-1.dsc";
const CHANGES_NAME: &str = "tiny_1.0-1_source.changes";

/// Who signs a control file of a test upload, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum By {
    Nobody,
    /// Ed25519 primary key, expires in a year.
    Ed,
    /// RSA 2048 primary key.
    Rsa,
    /// A signing subkey of a certify-only primary key.
    Subkey,
    /// A key that is not in the keyring.
    Stranger,
    /// Made in 2020 by a key that expired a day later.
    Expired,
    /// Made before the key was revoked.
    Revoked,
    /// Made by a signing subkey revoked afterwards.
    RevokedSubkey,
    /// The RSA key with `--digest-algo SHA1`.
    Sha1,
}

/// What a verifier says about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Good,
    BadSignature,
    UnknownKey,
    ExpiredKey,
    RevokedKey,
    WeakHash,
    NotSigned,
    /// gpgv could not check the signature for another reason (`ERRSIG`).
    Uncheckable,
}

#[derive(Debug, Clone)]
struct Key {
    fingerprint: String,
    /// The primary key, or the subkey that signs.
    signing_key: String,
    user_id: &'static str,
}

struct Upload {
    dsc: Vec<u8>,
    changes: Vec<u8>,
}

struct Fixture {
    keys: HashMap<By, Key>,
    /// `gpg --export` of every key but the stranger's, after the revocations.
    keyring_binary: Vec<u8>,
    /// `gpg --export --armor` of the same.
    keyring_armored: Vec<u8>,
    /// `gpg --export --armor` of the Ed25519 key, and of the RSA key.
    ed_armored: Vec<u8>,
    rsa_armored: Vec<u8>,
    /// `gpg --export` of the revoked key before its revocation.
    revoked_before_revocation: Vec<u8>,
    /// Uploads by (signer of the `.dsc`, signer of the `.changes`).
    uploads: HashMap<(By, By), Upload>,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(Fixture::create)
}

fn require_tool(tool: &str) {
    if let Err(err) = Command::new(tool).arg("--version").output() {
        panic!(
            "cannot run {tool} ({err}): the signature tests make their keys and signatures with \
             GnuPG and cross-check with gpgv; install gnupg and gpgv (scripts/test.sh does)"
        );
    }
}

/// A GnuPG home in a temporary directory; its agent is stopped on drop.
struct Gpg {
    home: tempfile::TempDir,
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "all"])
            .status();
    }
}

impl Gpg {
    fn new() -> Gpg {
        Gpg {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str], input: &[u8]) -> Vec<u8> {
        let mut child = Command::new("gpg")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run gpg: {err}"));
        child.stdin.take().unwrap().write_all(input).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "gpg {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// The fingerprints of the key with `user_id`: primary key first, then subkeys.
    fn fingerprints(&self, user_id: &str) -> Vec<String> {
        let listing = self.run(&["--with-colons", "--list-keys", user_id], b"");
        String::from_utf8(listing)
            .unwrap()
            .lines()
            .filter_map(|line| line.strip_prefix("fpr:"))
            .map(|rest| rest.trim_matches(':').to_owned())
            .collect()
    }

    fn generate(&self, user_id: &'static str, algorithm: &str, usage: &str, expire: &str) -> Key {
        self.generate_at(user_id, algorithm, usage, expire, &[])
    }

    fn generate_at(
        &self,
        user_id: &'static str,
        algorithm: &str,
        usage: &str,
        expire: &str,
        extra: &[&str],
    ) -> Key {
        let mut args = extra.to_vec();
        args.extend(["--quick-gen-key", user_id, algorithm, usage, expire]);
        self.run(&args, b"");
        let fingerprint = self.fingerprints(user_id).remove(0);
        Key {
            signing_key: fingerprint.clone(),
            fingerprint,
            user_id,
        }
    }

    /// A key whose primary key only certifies, with an Ed25519 signing subkey.
    fn generate_with_signing_subkey(&self, user_id: &'static str) -> Key {
        let mut key = self.generate(user_id, "ed25519", "cert", "never");
        self.run(
            &[
                "--quick-add-key",
                &key.fingerprint,
                "ed25519",
                "sign",
                "never",
            ],
            b"",
        );
        key.signing_key = self.fingerprints(user_id).remove(1);
        key
    }

    fn clearsign(&self, key: &Key, text: &[u8], extra: &[&str]) -> Vec<u8> {
        // The `!` makes gpg use exactly this (sub)key.
        let local_user = format!("{}!", key.signing_key);
        let mut args = extra.to_vec();
        args.extend(["--local-user", &local_user, "--clearsign"]);
        self.run(&args, text)
    }
}

fn dsc_text() -> String {
    let (mut sha256, mut md5) = (String::new(), String::new());
    for (name, bytes) in [ORIG, DEBIAN] {
        let digests = digest_bytes(bytes);
        sha256.push_str(&format!(" {} {} {name}\n", digests.sha256, digests.size));
        md5.push_str(&format!(" {} {} {name}\n", digests.md5, digests.size));
    }
    format!(
        "Format: 3.0 (quilt)\nSource: tiny\nBinary: tiny\nArchitecture: all\nVersion: 1.0-1\n\
         Maintainer: ubuntu-ci developers <ubuntu-ci@example.com>\n\
         Checksums-Sha256:\n{sha256}Files:\n{md5}"
    )
}

/// A `.changes` listing `dsc` as it will be stored (signed or not) and the two tarballs.
fn changes_text(dsc: &[u8]) -> String {
    let (mut sha256, mut md5) = (String::new(), String::new());
    for (name, bytes) in [(DSC_NAME, dsc), ORIG, DEBIAN] {
        let digests = digest_bytes(bytes);
        sha256.push_str(&format!(" {} {} {name}\n", digests.sha256, digests.size));
        md5.push_str(&format!(
            " {} {} misc optional {name}\n",
            digests.md5, digests.size
        ));
    }
    format!(
        "Format: 1.8\nDate: Mon, 01 Jan 2024 12:00:00 +0000\nSource: tiny\n\
         Architecture: source\nVersion: 1.0-1\nDistribution: unstable\nUrgency: medium\n\
         Maintainer: ubuntu-ci developers <ubuntu-ci@example.com>\n\
         Changes:\n tiny (1.0-1) unstable; urgency=medium\n .\n   * Test package.\n\
         Checksums-Sha256:\n{sha256}Files:\n{md5}"
    )
}

impl Fixture {
    fn create() -> Fixture {
        require_tool("gpg");
        require_tool("gpgv");
        let gpg = Gpg::new();
        let stranger_gpg = Gpg::new();
        let ed = gpg.generate("Ed Signer <ed@example.invalid>", "ed25519", "sign", "1y");
        let rsa = gpg.generate("Rsa Signer <rsa@example.invalid>", "rsa2048", "sign", "1y");
        let expired = gpg.generate_at(
            "Expired Signer <expired@example.invalid>",
            "ed25519",
            "sign",
            "1d",
            &["--faked-system-time", "20200101T000000"],
        );
        let revoked = gpg.generate(
            "Revoked Signer <revoked@example.invalid>",
            "ed25519",
            "sign",
            "never",
        );
        let subkey = gpg.generate_with_signing_subkey("Subkey Signer <subkey@example.invalid>");
        let revoked_subkey =
            gpg.generate_with_signing_subkey("Revoked Subkey <revoked-subkey@example.invalid>");
        let stranger = stranger_gpg.generate(
            "Stranger <stranger@example.invalid>",
            "ed25519",
            "sign",
            "never",
        );

        let sign = |by: By, text: &[u8]| -> Vec<u8> {
            match by {
                By::Nobody => text.to_vec(),
                By::Ed => gpg.clearsign(&ed, text, &[]),
                By::Rsa => gpg.clearsign(&rsa, text, &[]),
                By::Subkey => gpg.clearsign(&subkey, text, &[]),
                By::Stranger => stranger_gpg.clearsign(&stranger, text, &[]),
                By::Expired => {
                    gpg.clearsign(&expired, text, &["--faked-system-time", "20200101T010000"])
                }
                By::Revoked => gpg.clearsign(&revoked, text, &[]),
                By::RevokedSubkey => gpg.clearsign(&revoked_subkey, text, &[]),
                By::Sha1 => gpg.clearsign(&rsa, text, &["--digest-algo", "SHA1"]),
            }
        };
        let mut uploads = HashMap::new();
        let same = [
            By::Nobody,
            By::Ed,
            By::Rsa,
            By::Subkey,
            By::Stranger,
            By::Expired,
            By::Revoked,
            By::RevokedSubkey,
            By::Sha1,
        ];
        let mixed = [
            (By::Nobody, By::Ed),
            (By::Rsa, By::Ed),
            (By::Stranger, By::Ed),
        ];
        for (dsc_by, changes_by) in same.iter().map(|&by| (by, by)).chain(mixed) {
            // Signing the .dsc changes its checksums, which the .changes lists.
            let dsc = sign(dsc_by, dsc_text().as_bytes());
            let changes = sign(changes_by, changes_text(&dsc).as_bytes());
            uploads.insert((dsc_by, changes_by), Upload { dsc, changes });
        }

        let revoked_before_revocation = gpg.run(&["--export", &revoked.fingerprint], b"");
        let certificate = std::fs::read_to_string(
            gpg.home
                .path()
                .join(format!("openpgp-revocs.d/{}.rev", revoked.fingerprint)),
        )
        .unwrap();
        // gpg escapes the armour so that the certificate is not imported by accident.
        gpg.run(
            &["--import"],
            certificate.replace(":-----BEGIN", "-----BEGIN").as_bytes(),
        );
        gpg.run(
            &[
                "--command-fd",
                "0",
                "--status-fd",
                "2",
                "--edit-key",
                &revoked_subkey.fingerprint,
            ],
            b"key 1\nrevkey\ny\n0\n\ny\nsave\n",
        );
        // Keyring keys carry certifications by others; they must not count as self-signatures.
        let rsa_user = format!("{}!", rsa.fingerprint);
        gpg.run(
            &[
                "--yes",
                "--local-user",
                &rsa_user,
                "--quick-sign-key",
                &ed.fingerprint,
            ],
            b"",
        );

        Fixture {
            keyring_binary: gpg.run(&["--export"], b""),
            keyring_armored: gpg.run(&["--export", "--armor"], b""),
            ed_armored: gpg.run(&["--export", "--armor", &ed.fingerprint], b""),
            rsa_armored: gpg.run(&["--export", "--armor", &rsa.fingerprint], b""),
            revoked_before_revocation,
            keys: HashMap::from([
                (By::Ed, ed),
                (By::Rsa, rsa),
                (By::Subkey, subkey),
                (By::Stranger, stranger),
                (By::Expired, expired),
                (By::Revoked, revoked),
                (By::RevokedSubkey, revoked_subkey),
            ]),
            uploads,
        }
    }

    fn key(&self, by: By) -> &Key {
        &self.keys[&by]
    }

    fn upload(&self, dsc_by: By, changes_by: By) -> &Upload {
        &self.uploads[&(dsc_by, changes_by)]
    }

    fn keyring(&self) -> Keyring {
        Keyring::from_bytes(&self.keyring_binary).unwrap()
    }
}

/// An upload written to a temporary directory, with the binary keyring beside it for gpgv.
struct Staged {
    dir: tempfile::TempDir,
    changes: PathBuf,
    dsc: PathBuf,
    keyring: PathBuf,
}

fn stage(upload: &Upload) -> Staged {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [ORIG, DEBIAN] {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let dsc = dir.path().join(DSC_NAME);
    std::fs::write(&dsc, &upload.dsc).unwrap();
    let changes = dir.path().join(CHANGES_NAME);
    std::fs::write(&changes, &upload.changes).unwrap();
    let keyring = dir.path().join("keyring.gpg");
    std::fs::write(&keyring, &fixture().keyring_binary).unwrap();
    Staged {
        dir,
        changes,
        dsc,
        keyring,
    }
}

impl Staged {
    fn validate(&self) -> ValidatedUpload {
        validate_changes_blocking(&self.changes).unwrap()
    }

    /// Our verdict on `file`, asserted to be gpgv's.
    fn cross_check(&self, file: &Path) -> Verdict {
        let bytes = std::fs::read(file).unwrap();
        let ours = fixture().keyring().verify_clearsigned(&bytes, Utc::now());
        let verdict = verdict_of(&ours);
        let theirs = gpgv(self.dir.path(), &self.keyring, file);
        assert_eq!(
            verdict,
            theirs,
            "{}: we say {ours:?}, gpgv says {theirs:?}",
            file.display()
        );
        verdict
    }
}

fn verdict_of(result: &Result<Signer>) -> Verdict {
    let err = match result {
        Ok(_) => return Verdict::Good,
        Err(err) => err,
    };
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    let message = err.message();
    if message.starts_with("bad signature:") {
        Verdict::BadSignature
    } else if message.contains("which is not in the keyring of allowed uploaders") {
        Verdict::UnknownKey
    } else if message.contains(" expired on ") {
        Verdict::ExpiredKey
    } else if message.contains(" was revoked ") {
        Verdict::RevokedKey
    } else if message.contains("weak hash algorithm") {
        Verdict::WeakHash
    } else if message.starts_with("not signed:") {
        Verdict::NotSigned
    } else {
        panic!("no verdict for {err}")
    }
}

/// gpgv's verdict, from its status lines (it exits 0 for expired and revoked keys).
fn gpgv(home: &Path, keyring: &Path, file: &Path) -> Verdict {
    let output = Command::new("gpgv")
        .arg("--homedir")
        .arg(home)
        .args(["--status-fd", "1", "--weak-digest", "SHA1", "--keyring"])
        .arg(keyring)
        .arg(file)
        .output()
        .unwrap_or_else(|err| panic!("cannot run gpgv: {err}"));
    let status = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<Vec<&str>> = status
        .lines()
        .filter_map(|line| line.strip_prefix("[GNUPG:] "))
        .map(|line| line.split(' ').collect())
        .collect();
    let has = |keyword: &str| lines.iter().any(|words| words[0] == keyword);
    let errsig_code = lines
        .iter()
        .find(|words| words[0] == "ERRSIG")
        .and_then(|words| words.get(6).copied());
    if has("BADSIG") {
        Verdict::BadSignature
    } else if has("EXPKEYSIG") {
        Verdict::ExpiredKey
    } else if has("REVKEYSIG") {
        Verdict::RevokedKey
    } else if has("NO_PUBKEY") {
        Verdict::UnknownKey
    } else if errsig_code == Some("5") {
        // "Invalid digest algorithm": refused by --weak-digest.
        Verdict::WeakHash
    } else if errsig_code.is_some() {
        Verdict::Uncheckable
    } else if has("GOODSIG") && has("VALIDSIG") {
        Verdict::Good
    } else if has("NODATA") {
        Verdict::NotSigned
    } else {
        panic!(
            "no verdict from gpgv on {}: {status}{}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        )
    }
}

/// Checks an upload both of whose files `by` signed and that must be refused: by us and gpgv
/// alike, file by file, and by [`verify_upload_blocking`] under either policy.
fn assert_refused(by: By, verdict: Verdict, message: &str) {
    let f = fixture();
    let staged = stage(f.upload(by, by));
    assert_eq!(staged.cross_check(&staged.dsc), verdict, "{by:?}");
    assert_eq!(staged.cross_check(&staged.changes), verdict, "{by:?}");
    let upload = staged.validate();
    for policy in SignaturePolicy::ALL {
        let err =
            verify_upload_blocking(&upload, Some(&f.keyring()), policy, Utc::now()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        assert_eq!(err.resource(), Some(CHANGES_NAME), "{err}");
        assert!(
            err.message().contains(message),
            "{by:?} under {policy}: {err}"
        );
    }
}

#[test]
fn good_signatures_by_ed25519_rsa_and_signing_subkeys_are_accepted() {
    let f = fixture();
    for by in [By::Ed, By::Rsa, By::Subkey] {
        let key = f.key(by);
        let staged = stage(f.upload(by, by));
        assert_eq!(staged.cross_check(&staged.dsc), Verdict::Good, "{by:?}");
        assert_eq!(staged.cross_check(&staged.changes), Verdict::Good, "{by:?}");
        let upload = staged.validate();
        let armored = Keyring::from_bytes(&f.keyring_armored).unwrap();
        for keyring in [f.keyring(), armored] {
            for policy in SignaturePolicy::ALL {
                let result =
                    verify_upload_blocking(&upload, Some(&keyring), policy, Utc::now()).unwrap();
                let UploadSignature::Signed { changes, dsc } = &result else {
                    panic!("{by:?} under {policy}: {result:?}");
                };
                // Signed one after the other: the second may be a second later.
                let signer = |s: &Signer| {
                    (
                        s.fingerprint.clone(),
                        s.signing_key_fingerprint.clone(),
                        s.user_id.clone(),
                    )
                };
                assert_eq!(signer(changes), signer(dsc));
                assert!((changes.signed_at - dsc.signed_at).num_seconds().abs() <= 60);
                assert_eq!(result.uploader(), Some(changes));
                assert_eq!(changes.fingerprint, key.fingerprint);
                assert_eq!(changes.signing_key_fingerprint, key.signing_key);
                assert_eq!(changes.user_id.as_deref(), Some(key.user_id));
                let age = Utc::now() - changes.signed_at;
                assert!(
                    age >= chrono::Duration::zero() && age < chrono::Duration::hours(1),
                    "signed at {}",
                    changes.signed_at
                );
            }
        }
    }
    let subkey = f.key(By::Subkey);
    assert_ne!(
        subkey.fingerprint, subkey.signing_key,
        "the subkey signed, the primary key is reported"
    );
}

#[tokio::test]
async fn verify_upload_runs_from_async_code_and_reports_each_signer() {
    let f = fixture();
    let staged = stage(f.upload(By::Rsa, By::Ed));
    let upload = staged.validate();
    let result = verify_upload(
        &upload,
        Some(&f.keyring()),
        SignaturePolicy::Require,
        Utc::now(),
    )
    .await
    .unwrap();
    let UploadSignature::Signed { changes, dsc } = result else {
        panic!("{result:?}");
    };
    assert_eq!(changes.fingerprint, f.key(By::Ed).fingerprint);
    assert_eq!(dsc.fingerprint, f.key(By::Rsa).fingerprint);
}

#[test]
fn a_key_outside_the_keyring_is_refused() {
    assert_refused(
        By::Stranger,
        Verdict::UnknownKey,
        &format!(
            "the signature was made by key {}, which is not in the keyring of allowed uploaders",
            fixture().key(By::Stranger).fingerprint
        ),
    );
}

#[test]
fn content_changed_after_signing_is_refused() {
    let f = fixture();
    let ed = &f.key(By::Ed).fingerprint;
    let good = f.upload(By::Ed, By::Ed);
    let changes = String::from_utf8(good.changes.clone()).unwrap();
    let tampered = changes.replacen("Urgency: medium", "Urgency: mediun", 1);
    assert_ne!(tampered, changes);
    let staged = stage(&Upload {
        dsc: good.dsc.clone(),
        changes: tampered.into_bytes(),
    });
    assert_eq!(staged.cross_check(&staged.dsc), Verdict::Good);
    assert_eq!(staged.cross_check(&staged.changes), Verdict::BadSignature);
    let err = verify_upload_blocking(
        &staged.validate(),
        Some(&f.keyring()),
        SignaturePolicy::AllowUnsigned,
        Utc::now(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{CHANGES_NAME}: bad signature: the file was changed after it was signed \
             (signature by key {ed})"
        )
    );

    // One byte of the .dsc: validation already refuses its checksum, the signature is bad too.
    let dsc = String::from_utf8(good.dsc.clone()).unwrap();
    std::fs::write(&staged.dsc, dsc.replacen("Binary: tiny", "Binary: tinx", 1)).unwrap();
    assert_eq!(staged.cross_check(&staged.dsc), Verdict::BadSignature);
}

#[test]
fn an_expired_key_is_refused_now_but_was_good_while_valid() {
    assert_refused(
        By::Expired,
        Verdict::ExpiredKey,
        "expired on 2020-01-02 00:00:00 UTC",
    );
    let f = fixture();
    let message = &f.upload(By::Expired, By::Expired).changes;
    let err = f
        .keyring()
        .verify_clearsigned(message, Utc::now())
        .unwrap_err();
    assert!(
        err.message().starts_with(&format!(
            "key {} (Expired Signer <expired@example.invalid>) expired on",
            f.key(By::Expired).fingerprint
        )),
        "{err}"
    );
    let while_valid = Utc.with_ymd_and_hms(2020, 1, 1, 1, 30, 0).unwrap();
    let signer = f
        .keyring()
        .verify_clearsigned(message, while_valid)
        .unwrap();
    assert_eq!(signer.fingerprint, f.key(By::Expired).fingerprint);

    // The Ed25519 key expires in a year: a signature it makes now is refused two years on.
    let good = &f.upload(By::Ed, By::Ed).changes;
    let later = Utc::now() + chrono::Duration::days(730);
    let err = f.keyring().verify_clearsigned(good, later).unwrap_err();
    assert_eq!(verdict_of(&Err(err)), Verdict::ExpiredKey);
}

#[test]
fn a_revoked_key_is_refused() {
    let f = fixture();
    assert_refused(
        By::Revoked,
        Verdict::RevokedKey,
        &format!(
            "key {} (Revoked Signer <revoked@example.invalid>) was revoked (no reason given)",
            f.key(By::Revoked).fingerprint
        ),
    );
}

#[test]
fn a_revoked_signing_subkey_is_refused() {
    let f = fixture();
    let key = f.key(By::RevokedSubkey);
    assert_refused(
        By::RevokedSubkey,
        Verdict::RevokedKey,
        &format!(
            "signing subkey {} of key {} (Revoked Subkey <revoked-subkey@example.invalid>) \
             was revoked",
            key.signing_key, key.fingerprint
        ),
    );
}

#[test]
fn a_sha1_signature_is_refused() {
    assert_refused(
        By::Sha1,
        Verdict::WeakHash,
        "the signature uses the weak hash algorithm SHA1; sign with SHA-256 or stronger",
    );
}

#[test]
fn unsigned_uploads_pass_only_when_allowed() {
    let f = fixture();
    let keyring = f.keyring();
    let staged = stage(f.upload(By::Nobody, By::Nobody));
    assert_eq!(staged.cross_check(&staged.dsc), Verdict::NotSigned);
    assert_eq!(staged.cross_check(&staged.changes), Verdict::NotSigned);
    let upload = staged.validate();

    let err = verify_upload_blocking(
        &upload,
        Some(&keyring),
        SignaturePolicy::Require,
        Utc::now(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_eq!(err.resource(), Some(CHANGES_NAME));
    assert!(err.message().starts_with("not signed:"), "{err}");

    for keyring in [Some(&keyring), None] {
        let result =
            verify_upload_blocking(&upload, keyring, SignaturePolicy::AllowUnsigned, Utc::now());
        assert_eq!(result.unwrap(), UploadSignature::Unsigned);
    }
}

#[test]
fn requiring_signatures_without_a_keyring_names_the_setting() {
    let staged = stage(fixture().upload(By::Ed, By::Ed));
    let err = verify_upload_blocking(
        &staged.validate(),
        None,
        SignaturePolicy::Require,
        Utc::now(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(
        err.message()
            .contains("no keyring of allowed uploaders is configured ([uploads] keyring)"),
        "{err}"
    );
}

#[test]
fn a_signed_changes_with_an_unsigned_dsc() {
    let f = fixture();
    let staged = stage(f.upload(By::Nobody, By::Ed));
    assert_eq!(staged.cross_check(&staged.changes), Verdict::Good);
    assert_eq!(staged.cross_check(&staged.dsc), Verdict::NotSigned);
    let upload = staged.validate();
    let err = verify_upload_blocking(
        &upload,
        Some(&f.keyring()),
        SignaturePolicy::Require,
        Utc::now(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_eq!(err.resource(), Some(DSC_NAME));
    assert!(err.message().starts_with("not signed:"), "{err}");

    let result = verify_upload_blocking(
        &upload,
        Some(&f.keyring()),
        SignaturePolicy::AllowUnsigned,
        Utc::now(),
    );
    assert_eq!(result.unwrap(), UploadSignature::Unsigned);
}

#[test]
fn a_bad_signature_is_refused_even_when_unsigned_uploads_are_allowed() {
    let f = fixture();
    let staged = stage(f.upload(By::Stranger, By::Ed));
    assert_eq!(staged.cross_check(&staged.changes), Verdict::Good);
    assert_eq!(staged.cross_check(&staged.dsc), Verdict::UnknownKey);
    let err = verify_upload_blocking(
        &staged.validate(),
        Some(&f.keyring()),
        SignaturePolicy::AllowUnsigned,
        Utc::now(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_eq!(err.resource(), Some(DSC_NAME));
    assert!(
        err.message()
            .contains("not in the keyring of allowed uploaders"),
        "{err}"
    );
}

#[test]
fn nothing_but_whitespace_may_surround_the_signed_message() {
    let f = fixture();
    let keyring = f.keyring();
    let staged = stage(f.upload(By::Ed, By::Ed));
    let good = String::from_utf8(f.upload(By::Ed, By::Ed).changes.clone()).unwrap();
    let other = String::from_utf8(f.upload(By::Rsa, By::Rsa).changes.clone()).unwrap();
    let file = staged.dir.path().join("variant.changes");
    std::fs::write(&file, format!("\n \n{good}\n\t\n")).unwrap();
    assert_eq!(staged.cross_check(&file), Verdict::Good);

    for (what, text, expected) in [
        (
            "text after the signature",
            format!("{good}Distribution: evil\n"),
            "text after the end of the PGP signature",
        ),
        (
            "text before the signed message",
            format!("Distribution: evil\n\n{good}"),
            "does not start with -----BEGIN PGP SIGNED MESSAGE-----",
        ),
        (
            "a second signed message",
            format!("{good}{other}"),
            "text after the end of the PGP signature",
        ),
    ] {
        let err = keyring
            .verify_clearsigned(text.as_bytes(), Utc::now())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
        assert!(err.message().contains(expected), "{what}: {err}");
        // gpgv checks the signatures only, not what a parser of the whole file would read:
        // this is how unsigned fields get smuggled in.
        std::fs::write(&file, &text).unwrap();
        assert_eq!(
            gpgv(staged.dir.path(), &staged.keyring, &file),
            Verdict::Good,
            "{what}"
        );
    }
}

#[test]
fn the_signed_fields_must_be_the_fields_read_from_the_file() {
    let file = deb822::parse(b"Source: tiny\nVersion: 1.0-1\n", &Limits::default()).unwrap();
    check_signed_fields("Source: tiny\r\nVersion: 1.0-1", &file).unwrap();
    for signed in [
        "Source: tiny",
        "Source: tiny\r\nVersion: 1.0-2",
        "Source: tiny\r\n\r\nVersion: 1.0-1",
        "not a control file",
    ] {
        let err = check_signed_fields(signed, &file).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
        assert!(
            err.message()
                .contains("does not hold the fields read from the file"),
            "{err}"
        );
    }
}

#[test]
fn hostile_input_is_refused_without_panicking() {
    let keyring = fixture().keyring();
    let good = String::from_utf8(fixture().upload(By::Ed, By::Ed).changes.clone()).unwrap();
    let (head, _) = good.split_once("-----BEGIN PGP SIGNATURE-----").unwrap();
    let too_large = vec![b'a'; usize::try_from(MAX_CONTROL_FILE_BYTES).unwrap() + 1];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("too large", too_large, "larger than the limit"),
        ("not UTF-8", b"Source: \xff\n".to_vec(), "not valid UTF-8"),
        (
            "garbage signature",
            format!(
                "{head}-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCgAdFiEE+abc/def=\n=AbCd\n\
                 -----END PGP SIGNATURE-----\n"
            )
            .into_bytes(),
            "malformed clear-signed message",
        ),
        (
            "an armour header other than Hash",
            good.replacen(
                "-----BEGIN PGP SIGNED MESSAGE-----\n",
                "-----BEGIN PGP SIGNED MESSAGE-----\nComment: hello\n",
                1,
            )
            .into_bytes(),
            "malformed clear-signed message",
        ),
    ];
    for (what, bytes, expected) in cases {
        let err = keyring.verify_clearsigned(&bytes, Utc::now()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
        assert!(err.message().contains(expected), "{what}: {err}");
    }
}

#[test]
fn a_hash_header_that_leaves_out_the_signature_hash_is_refused() {
    let f = fixture();
    let good = String::from_utf8(f.upload(By::Ed, By::Ed).changes.clone()).unwrap();
    let header = good
        .lines()
        .find(|line| line.starts_with("Hash: "))
        .unwrap()
        .to_owned();
    let other = if header == "Hash: SHA384" {
        "Hash: SHA512"
    } else {
        "Hash: SHA384"
    };
    let staged = stage(&Upload {
        dsc: f.upload(By::Ed, By::Ed).dsc.clone(),
        changes: good.replacen(&header, other, 1).into_bytes(),
    });
    let err = f
        .keyring()
        .verify_clearsigned(&std::fs::read(&staged.changes).unwrap(), Utc::now())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.message().contains("but the Hash armour header names"),
        "{err}"
    );
    assert_eq!(
        gpgv(staged.dir.path(), &staged.keyring, &staged.changes),
        Verdict::Uncheckable,
        "gpgv refuses it too (signature digest conflict)"
    );
}

#[test]
fn a_file_changed_after_validation_is_refused() {
    let f = fixture();
    let staged = stage(f.upload(By::Ed, By::Ed));
    let upload = staged.validate();
    std::fs::write(&staged.changes, &f.upload(By::Rsa, By::Rsa).changes).unwrap();
    let err = verify_upload_blocking(
        &upload,
        Some(&f.keyring()),
        SignaturePolicy::Require,
        Utc::now(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.resource(), Some(CHANGES_NAME));
    assert!(
        err.message()
            .contains("changed after the upload was validated"),
        "{err}"
    );
}

#[test]
fn keyrings_load_armored_binary_and_concatenated() {
    let f = fixture();
    let binary = Keyring::from_bytes(&f.keyring_binary).unwrap();
    let armored = Keyring::from_bytes(&f.keyring_armored).unwrap();
    assert_eq!(binary.len(), 6, "every key but the stranger's");
    let mut expected: Vec<String> = [
        By::Ed,
        By::Rsa,
        By::Subkey,
        By::Expired,
        By::Revoked,
        By::RevokedSubkey,
    ]
    .iter()
    .map(|&by| f.key(by).fingerprint.clone())
    .collect();
    expected.sort();
    let mut fingerprints: Vec<String> = binary.fingerprints().collect();
    fingerprints.sort();
    assert_eq!(fingerprints, expected);
    assert_eq!(
        armored.fingerprints().collect::<Vec<_>>(),
        binary.fingerprints().collect::<Vec<_>>()
    );
    let debug = format!("{binary:?}");
    assert!(debug.starts_with("Keyring { keys: ["), "{debug}");
    assert!(debug.contains(&f.key(By::Ed).fingerprint), "{debug}");

    // `cat ed.asc rsa.asc`
    let concatenated = [f.ed_armored.as_slice(), b"\n", f.rsa_armored.as_slice()].concat();
    let keyring = Keyring::from_bytes(&concatenated).unwrap();
    assert_eq!(
        keyring.fingerprints().collect::<Vec<_>>(),
        [
            f.key(By::Ed).fingerprint.as_str(),
            f.key(By::Rsa).fingerprint.as_str()
        ]
    );

    let dir = tempfile::tempdir().unwrap();
    let ed_file = dir.path().join("ed.asc");
    let all_file = dir.path().join("all.gpg");
    std::fs::write(&ed_file, &f.ed_armored).unwrap();
    std::fs::write(&all_file, &f.keyring_binary).unwrap();
    assert_eq!(Keyring::load(&ed_file).unwrap().len(), 1);
    let merged = Keyring::load_all(&[ed_file, all_file]).unwrap();
    assert_eq!(merged.len(), 6, "a key in two files is one key");
    let signer = merged
        .verify_clearsigned(&f.upload(By::Ed, By::Ed).changes, Utc::now())
        .unwrap();
    assert_eq!(signer.fingerprint, f.key(By::Ed).fingerprint);
}

#[test]
fn a_revocation_in_one_keyring_file_counts_for_all() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let before = dir.path().join("before.gpg");
    let after = dir.path().join("after.gpg");
    std::fs::write(&before, &f.revoked_before_revocation).unwrap();
    std::fs::write(&after, &f.keyring_binary).unwrap();
    let message = &f.upload(By::Revoked, By::Revoked).changes;

    let unrevoked = Keyring::load(&before).unwrap();
    let signer = unrevoked.verify_clearsigned(message, Utc::now()).unwrap();
    assert_eq!(signer.fingerprint, f.key(By::Revoked).fingerprint);
    for files in [[&before, &after], [&after, &before]] {
        let keyring = Keyring::load_all(&files).unwrap();
        let err = keyring.verify_clearsigned(message, Utc::now()).unwrap_err();
        assert_eq!(verdict_of(&Err(err)), Verdict::RevokedKey, "{files:?}");
    }
}

#[test]
fn keyring_errors_say_what_is_wrong() {
    let no_key = "holds no OpenPGP public key";
    for (what, bytes, expected) in [
        ("empty", &b""[..], no_key),
        ("text", &b"just some text\n"[..], no_key),
        ("binary garbage", &b"\x99\x00\x01garbage"[..], "cannot read"),
        (
            "a secret key",
            &b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nabc\n-----END PGP PRIVATE KEY BLOCK-----\n"
                [..],
            "holds a secret key, not a public key",
        ),
    ] {
        let err = Keyring::from_bytes(bytes).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
        assert!(err.message().contains(expected), "{what}: {err}");
    }

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.gpg");
    let err = Keyring::load(&missing).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.resource(), Some(missing.display().to_string().as_str()));
    assert!(err.message().contains("cannot open the keyring"), "{err}");

    let empty = dir.path().join("empty.asc");
    std::fs::write(&empty, "").unwrap();
    let err = Keyring::load(&empty).unwrap_err();
    assert_eq!(err.resource(), Some(empty.display().to_string().as_str()));
    assert!(err.message().contains(no_key), "{err}");

    let err = Keyring::load_all::<PathBuf>(&[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn policies_have_configuration_names() {
    for (policy, name) in [
        (SignaturePolicy::Require, "require"),
        (SignaturePolicy::AllowUnsigned, "allow-unsigned"),
    ] {
        assert_eq!(policy.to_string(), name);
        assert_eq!(name.parse::<SignaturePolicy>().unwrap(), policy);
        assert_eq!(
            serde_json::to_string(&policy).unwrap(),
            format!("\"{name}\"")
        );
        assert_eq!(
            serde_json::from_str::<SignaturePolicy>(&format!("\"{name}\"")).unwrap(),
            policy
        );
    }
    let err = "optional".parse::<SignaturePolicy>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        err.message(),
        "unknown signature policy \"optional\" (one of require, allow-unsigned)"
    );
}
