//! The OpenPGP key that signs an owner's archives (`InRelease`, `Release.gpg`).
//!
//! Generated on first use: an Ed25519 key (the EdDSA of RFC 4880bis, which the `gpgv` apt
//! calls understands), able to certify and sign, without a passphrase and without expiry.
//! The secret key lives in `<root>/<owner>/.key/secret.asc`, readable by its owner only;
//! `public.asc` beside it is what users save for apt's `signed-by`. Two processes that
//! generate at once agree on one key: the first to link its file into place wins and the
//! other loads that one.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, Deserializable, DetachedSignature, KeyType,
    SecretKeyParamsBuilder, SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{SignatureConfig, SignatureType, Subpacket, SubpacketData};
use pgp::types::{KeyDetails, Password, Timestamp};

use crate::error::{Error, Result};

const SECRET_FILE: &str = "secret.asc";
const PUBLIC_FILE: &str = "public.asc";

/// An archive signing key.
pub struct SigningKey {
    key: SignedSecretKey,
    public_armored: String,
    fingerprint: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

fn pgp_error(what: &str, err: impl std::fmt::Display) -> Error {
    Error::internal(format!("{what}: {err}"))
}

impl SigningKey {
    /// The key kept in `dir`, generated (for `owner`) when there is none.
    ///
    /// # Errors
    /// I/O errors, or `Internal` when the stored key cannot be read.
    pub fn load_or_generate(dir: &Path, owner: &str) -> Result<SigningKey> {
        let secret_path = dir.join(SECRET_FILE);
        match fs::read_to_string(&secret_path) {
            Ok(text) => return SigningKey::from_armored(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::from(e).with_resource(secret_path.display().to_string())),
        }
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        let key = SigningKey::generate(owner)?;
        let secret = key
            .key
            .to_armored_string(ArmorOptions::default())
            .map_err(|e| pgp_error("cannot armour the new key", e))?;
        let mut tmp = tempfile::Builder::new().prefix(".new-").tempfile_in(dir)?;
        tmp.write_all(secret.as_bytes())?;
        tmp.as_file().sync_all()?;
        // The tempfile is 0600 already; link it in place only if no other process did.
        match fs::hard_link(tmp.path(), &secret_path) {
            Ok(()) => {
                let public_path = dir.join(PUBLIC_FILE);
                let mut public = tempfile::Builder::new().prefix(".new-").tempfile_in(dir)?;
                public.write_all(key.public_armored.as_bytes())?;
                fs::set_permissions(public.path(), fs::Permissions::from_mode(0o644))?;
                public
                    .persist(&public_path)
                    .map_err(|e| Error::from(e.error))?;
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                SigningKey::from_armored(&fs::read_to_string(&secret_path)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A new key for `owner`.
    ///
    /// # Errors
    /// `Internal` when generation fails.
    pub fn generate(owner: &str) -> Result<SigningKey> {
        let params = SecretKeyParamsBuilder::default()
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .primary_user_id(format!(
                "ubuntu-ci archive signing key ({owner}) <{owner}@ubuntu-ci.invalid>"
            ))
            .preferred_hash_algorithms(vec![HashAlgorithm::Sha512, HashAlgorithm::Sha256].into())
            .build()
            .map_err(|e| pgp_error("bad key parameters", e))?;
        let key = params
            .generate(rand::thread_rng())
            .map_err(|e| pgp_error("cannot generate a signing key", e))?;
        SigningKey::new(key)
    }

    /// The key in an armoured secret key block.
    ///
    /// # Errors
    /// `Internal` when the text holds no usable secret key.
    pub fn from_armored(text: &str) -> Result<SigningKey> {
        let (key, _) = SignedSecretKey::from_string(text)
            .map_err(|e| pgp_error("cannot read the archive signing key", e))?;
        key.verify_bindings()
            .map_err(|e| pgp_error("the archive signing key's self-signatures are bad", e))?;
        SigningKey::new(key)
    }

    fn new(key: SignedSecretKey) -> Result<SigningKey> {
        let public_armored = key
            .to_public_key()
            .to_armored_string(ArmorOptions::default())
            .map_err(|e| pgp_error("cannot armour the public key", e))?;
        let fingerprint = hex::encode_upper(key.primary_key.fingerprint().as_bytes());
        Ok(SigningKey {
            key,
            public_armored,
            fingerprint,
        })
    }

    /// The armoured public key (`-----BEGIN PGP PUBLIC KEY BLOCK-----`).
    pub fn public_armored(&self) -> &str {
        &self.public_armored
    }

    /// The fingerprint, upper-case hex.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// `text` clear-signed with SHA-512, as `gpg --clearsign` writes it (an `InRelease`).
    ///
    /// # Errors
    /// `Internal` when signing fails.
    pub fn clearsign(&self, text: &str) -> Result<String> {
        let signer = &self.key.primary_key;
        let mut config = SignatureConfig::v4(
            SignatureType::Text,
            signer.algorithm(),
            HashAlgorithm::Sha512,
        );
        let subpacket = |data| Subpacket::regular(data).map_err(|e| pgp_error("subpacket", e));
        config.hashed_subpackets = vec![
            subpacket(SubpacketData::SignatureCreationTime(Timestamp::now()))?,
            subpacket(SubpacketData::IssuerFingerprint(signer.fingerprint()))?,
        ];
        config.unhashed_subpackets = vec![subpacket(SubpacketData::IssuerKeyId(
            signer.legacy_key_id(),
        ))?];
        // Trailing blanks are not part of a signed text (RFC 9580 §7.1); the signer hashes the
        // text as given, so it must not hold any. Control files never do; the final newline
        // is written by the armour.
        let body: String = text
            .lines()
            .map(|line| line.trim_end_matches([' ', '\t']))
            .collect::<Vec<_>>()
            .join("\n");
        let message = CleartextSignedMessage::new(&body, config, signer, &Password::empty())
            .map_err(|e| pgp_error("cannot sign", e))?;
        message
            .to_armored_string(ArmorOptions::default())
            .map_err(|e| pgp_error("cannot armour the signature", e))
    }

    /// A detached armoured signature of `data` (a `Release.gpg`).
    ///
    /// # Errors
    /// `Internal` when signing fails.
    pub fn detached(&self, data: &[u8]) -> Result<String> {
        let signature = DetachedSignature::sign_binary_data(
            rand::thread_rng(),
            &self.key.primary_key,
            &Password::empty(),
            HashAlgorithm::Sha512,
            data,
        )
        .map_err(|e| pgp_error("cannot sign", e))?;
        signature
            .to_armored_string(ArmorOptions::default())
            .map_err(|e| pgp_error("cannot armour the signature", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_generated_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let key_dir = dir.path().join(".key");
        let first = SigningKey::load_or_generate(&key_dir, "ci-team").unwrap();
        let again = SigningKey::load_or_generate(&key_dir, "ci-team").unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert_eq!(first.fingerprint().len(), 40);
        let mode = fs::metadata(key_dir.join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the secret key is private");
        assert_eq!(
            fs::read_to_string(key_dir.join(PUBLIC_FILE)).unwrap(),
            first.public_armored()
        );
        let signed = first.clearsign("Origin: x\nLabel: y\n").unwrap();
        assert!(signed.contains("\nOrigin: x\nLabel: y\n-----BEGIN PGP SIGNATURE-----"));
    }

    #[test]
    fn racing_generators_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let key_dir = dir.path().join(".key");
        let fingerprints: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        SigningKey::load_or_generate(&key_dir, "ci-team")
                            .unwrap()
                            .fingerprint()
                            .to_owned()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(
            fingerprints.windows(2).all(|w| w[0] == w[1]),
            "{fingerprints:?}"
        );
    }
}
