//! OpenPGP signatures of uploads: who signed a `.changes` and its `.dsc`.
//!
//! Uploaders clear-sign both control files (`debsign`). A [`Keyring`] holds the public keys of
//! the allowed uploaders as `gpg --export [--armor]` writes them. [`Keyring::verify_clearsigned`]
//! checks one clear-signed control file the way `gpgv` does, and more strictly: the signature
//! must be a text signature with SHA-256 or stronger, verify over the text, and come from a key
//! of the keyring that could sign when it was made and still can now (not expired, not
//! revoked, allowed to sign; a signing subkey also bound to its primary key by a
//! back-signature). What was verified is what gets parsed: nothing but whitespace may surround
//! the armour, and the fields of the signed text must equal the fields the deb822 parser reads
//! from the whole file. [`verify_upload`] applies a [`SignaturePolicy`] to both control files
//! of a [`ValidatedUpload`].
//!
//! A signature that is not acceptable (missing, bad, by an unknown, expired or revoked key,
//! with a weak hash) is an [`ErrorKind::Unauthorized`](crate::ErrorKind::Unauthorized) error
//! saying which, e.g. `the signature was made by key 0A1B…, which is not in the keyring of
//! allowed uploaders`; broken armour is [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey, SignedPublicSubKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{RevocationCode, Signature, SignatureType, SubpacketData};
use pgp::types::{KeyDetails, SignedUser, Tag, Timestamp};
use serde::{Deserialize, Serialize};

use super::checksums;
use super::deb822::{self, Limits, Paragraph, MAX_CONTROL_FILE_BYTES};
use super::{ValidatedFile, ValidatedUpload};
use crate::error::{Error, Result};

/// Largest keyring file read: the whole Debian keyring is a few tens of megabytes.
const MAX_KEYRING_BYTES: u64 = 256 * 1024 * 1024;

/// Most signatures accepted in one clear-signed file (each costs a public-key operation).
const MAX_SIGNATURES: usize = 16;

const SIGNED_MESSAGE_BEGIN: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const PUBLIC_KEY_BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
const PRIVATE_KEY_BEGIN: &str = "-----BEGIN PGP PRIVATE KEY BLOCK-----";

/// The OpenPGP public keys of the allowed uploaders (cheap to clone).
#[derive(Clone)]
pub struct Keyring {
    keys: Arc<[SignedPublicKey]>,
}

/// Who made an accepted signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signer {
    /// Fingerprint of the uploader's key (its primary key), upper-case hex.
    pub fingerprint: String,
    /// Fingerprint of the key that made the signature: the primary key or a signing subkey.
    pub signing_key_fingerprint: String,
    /// The key's primary user ID (`Name <email>`), when it has a valid one.
    pub user_id: Option<String>,
    /// When the signature was made, as the signature states.
    pub signed_at: DateTime<Utc>,
}

/// Whether uploads must be signed by a key of the uploaders' keyring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignaturePolicy {
    /// Both control files must carry a good signature by a key of the keyring.
    Require,
    /// Unsigned uploads pass; a signature that is present must still be good.
    AllowUnsigned,
}

/// What [`verify_upload`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum UploadSignature {
    /// Both control files carry a good signature by an allowed uploader.
    Signed {
        /// Who signed the `.changes` (the uploader).
        changes: Signer,
        /// Who signed the `.dsc` (the same person, or the one a sponsor uploads for).
        dsc: Signer,
    },
    /// Accepted under [`SignaturePolicy::AllowUnsigned`] without two verified signatures: a
    /// control file is unsigned, or no keyring is configured to check signatures against.
    Unsigned,
}

impl UploadSignature {
    /// The signer of the `.changes`, when the upload is signed.
    pub fn uploader(&self) -> Option<&Signer> {
        match self {
            UploadSignature::Signed { changes, .. } => Some(changes),
            UploadSignature::Unsigned => None,
        }
    }
}

impl SignaturePolicy {
    /// Every policy.
    pub const ALL: [SignaturePolicy; 2] =
        [SignaturePolicy::Require, SignaturePolicy::AllowUnsigned];

    /// The configuration name (`allow-unsigned`).
    pub fn as_str(self) -> &'static str {
        match self {
            SignaturePolicy::Require => "require",
            SignaturePolicy::AllowUnsigned => "allow-unsigned",
        }
    }
}

impl FromStr for SignaturePolicy {
    type Err = Error;
    fn from_str(text: &str) -> Result<SignaturePolicy> {
        SignaturePolicy::ALL
            .into_iter()
            .find(|policy| policy.as_str() == text)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown signature policy {text:?} (one of {})",
                    SignaturePolicy::ALL.map(SignaturePolicy::as_str).join(", ")
                ))
            })
    }
}

impl fmt::Display for SignaturePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.fingerprints().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// The keys in the file at `path`: binary or armoured, as `gpg --export [--armor]` writes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the file when it
    /// cannot be read, holds no public key, or holds a key that cannot be parsed.
    pub fn load(path: &Path) -> Result<Keyring> {
        Keyring::load_all(&[path])
    }

    /// The keys of all the files, merged (a key in several files gets all their signatures,
    /// so a revocation in one of them counts).
    ///
    /// # Errors
    ///
    /// As [`Keyring::load`], for each file; also when `paths` is empty.
    pub fn load_all<P: AsRef<Path>>(paths: &[P]) -> Result<Keyring> {
        if paths.is_empty() {
            return Err(Error::invalid("no keyring file given"));
        }
        let mut keys = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let in_file = |err: Error| err.with_resource(path.display().to_string());
            let file = std::fs::File::open(path).map_err(|err| {
                in_file(Error::invalid("cannot open the keyring").with_source(err))
            })?;
            let bytes = deb822::read_bounded(file, MAX_KEYRING_BYTES).map_err(in_file)?;
            keys.extend(parse_keys(&bytes).map_err(in_file)?);
        }
        Ok(Keyring::from_keys(keys))
    }

    /// The keys in `bytes`: binary or armoured, several keys, several armour blocks.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the bytes hold no
    /// public key or a key that cannot be parsed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Keyring> {
        Ok(Keyring::from_keys(parse_keys(bytes)?))
    }

    fn from_keys(keys: Vec<SignedPublicKey>) -> Keyring {
        Keyring {
            keys: merge_certificates(keys).into(),
        }
    }

    /// How many keys (certificates) the keyring holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the keyring holds no key (never, for a loaded one).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The fingerprints of the keys' primary keys, upper-case hex.
    pub fn fingerprints(&self) -> impl Iterator<Item = String> + '_ {
        self.keys
            .iter()
            .map(|key| fingerprint_hex(&key.primary_key))
    }

    /// Verifies a clear-signed control file (`.changes`, `.dsc`) as of `now`.
    ///
    /// Succeeds only when the fields of the signed text are exactly the fields
    /// [`deb822::parse`] reads from the whole of `bytes`, so a caller parsing the file reads
    /// signed fields only. With several signatures, each must be good or made by a key outside
    /// the keyring, and at least one must be good; the first good one is returned.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when `bytes` is not a
    /// control file (too large, not UTF-8, broken armour, text outside the armour) or its
    /// armour is inconsistent (a `Hash` header leaving out the signature's hash algorithm, more
    /// than 16 signatures).
    /// [`ErrorKind::Unauthorized`](crate::ErrorKind::Unauthorized) when the file is not signed,
    /// or the signature is bad, weak, or made by a key that is unknown, expired, revoked or
    /// not allowed to sign; the message says which.
    pub fn verify_clearsigned(&self, bytes: &[u8], now: DateTime<Utc>) -> Result<Signer> {
        // The parser checks size, UTF-8 and the shape of the armour, and refuses any text
        // outside it; it also reads what callers will read.
        let paragraphs = deb822::parse(bytes, &Limits::default())?;
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::internal("UTF-8 was checked by the control file parser"))?;
        // rpgp refuses some whitespace after the armour that the parser accepts.
        let armoured = clearsigned_part(text).ok_or_else(not_signed)?;
        let (message, _signature_headers) = CleartextSignedMessage::from_string(armoured)
            .map_err(|err| Error::invalid(format!("malformed clear-signed message: {err}")))?;
        if message.signatures().len() > MAX_SIGNATURES {
            return Err(Error::invalid(format!(
                "malformed clear-signed message: more than {MAX_SIGNATURES} signatures"
            )));
        }
        check_declared_hashes(armoured, message.signatures())?;
        let signed_text = message.signed_text();
        check_signed_fields(&signed_text, &paragraphs)?;
        self.check_signatures(message.signatures(), signed_text.as_bytes(), now)
    }

    fn check_signatures(
        &self,
        signatures: &[Signature],
        signed_text: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Signer> {
        let now = to_timestamp(now);
        let mut accepted = None;
        let mut unknown = None;
        for signature in signatures {
            match self.check_signature(signature, signed_text, now) {
                Ok(signer) => {
                    accepted.get_or_insert(signer);
                }
                Err(Rejection::UnknownKey(err)) => {
                    unknown.get_or_insert(err);
                }
                Err(Rejection::Refused(err)) => return Err(err),
            }
        }
        match (accepted, unknown) {
            (Some(signer), _) => Ok(signer),
            (None, Some(err)) => Err(err),
            (None, None) => Err(Error::unauthorized(
                "the PGP signature block holds no signature",
            )),
        }
    }

    fn check_signature(
        &self,
        signature: &Signature,
        signed_text: &[u8],
        now: Timestamp,
    ) -> Result<Signer, Rejection> {
        let issuer_fingerprints = signature.issuer_fingerprint();
        let issuer_key_ids = signature.issuer_key_id();
        let Some(issuer) = issuer_fingerprints
            .first()
            .map(|fingerprint| hex::encode_upper(fingerprint.as_bytes()))
            .or_else(|| issuer_key_ids.first().map(hex::encode_upper))
        else {
            return Err(refused(
                "the signature does not name the key that made it (no issuer)",
            ));
        };
        let is_issuer = |key: &dyn KeyDetails| {
            issuer_fingerprints
                .iter()
                .any(|fingerprint| **fingerprint == key.fingerprint())
                || issuer_key_ids.iter().any(|id| **id == key.legacy_key_id())
        };
        let mut candidates: Vec<(&SignedPublicKey, Component<'_>)> = Vec::new();
        for certificate in self.keys.iter() {
            if is_issuer(&certificate.primary_key) {
                candidates.push((certificate, Component::Primary));
            }
            for subkey in &certificate.public_subkeys {
                if is_issuer(&subkey.key) {
                    candidates.push((certificate, Component::Subkey(subkey)));
                }
            }
        }
        if candidates.is_empty() {
            return Err(Rejection::UnknownKey(Error::unauthorized(format!(
                "the signature was made by key {issuer}, which is not in the keyring of \
                 allowed uploaders"
            ))));
        }

        if signature.typ() != Some(SignatureType::Text) {
            return Err(refused(format!(
                "the signature is not a text signature (type {:?}); clear-sign the file \
                 (gpg --clearsign, debsign)",
                signature.typ()
            )));
        }
        match signature.hash_alg() {
            Some(
                HashAlgorithm::Sha256
                | HashAlgorithm::Sha384
                | HashAlgorithm::Sha512
                | HashAlgorithm::Sha3_256
                | HashAlgorithm::Sha3_512,
            ) => {}
            Some(weak) => {
                return Err(refused(format!(
                    "the signature uses the weak hash algorithm {weak}; sign with SHA-256 or \
                     stronger (gpg --digest-algo SHA512)"
                )))
            }
            None => return Err(refused("the signature names no hash algorithm")),
        }
        let Some(signed_at) = signature.created() else {
            return Err(refused("the signature has no creation time"));
        };
        if let Some(lifetime) = signature
            .signature_expiration_time()
            .filter(|lifetime| lifetime.as_secs() != 0)
        {
            let expires = seconds(signed_at) + u64::from(lifetime.as_secs());
            if seconds(now) >= expires {
                return Err(refused(format!(
                    "the signature expired on {}",
                    format_time(expires)
                )));
            }
        }

        let mut bad_signature = None;
        for (certificate, component) in candidates {
            let (verified, signing_key_fingerprint) = match component {
                Component::Primary => (
                    signature.verify(&certificate.primary_key, signed_text),
                    fingerprint_hex(&certificate.primary_key),
                ),
                Component::Subkey(subkey) => (
                    signature.verify(&subkey.key, signed_text),
                    fingerprint_hex(&subkey.key),
                ),
            };
            if verified.is_err() {
                bad_signature.get_or_insert(signing_key_fingerprint);
                continue;
            }
            check_key(certificate, component, signed_at, now).map_err(Rejection::Refused)?;
            return Ok(Signer {
                fingerprint: fingerprint_hex(&certificate.primary_key),
                signing_key_fingerprint,
                user_id: primary_user_id(certificate),
                signed_at: to_datetime(signed_at),
            });
        }
        Err(refused(format!(
            "bad signature: the file was changed after it was signed (signature by key {})",
            bad_signature.unwrap_or(issuer)
        )))
    }
}

/// Verifies the signatures of both control files of `upload` under `policy`, as of `now`.
///
/// The files are read again and must still be the ones validated. Under
/// [`SignaturePolicy::Require`] both must carry a good signature by a key of `keyring`. Under
/// [`SignaturePolicy::AllowUnsigned`] an unsigned file passes, but a signature that is present
/// is checked and a bad one refused; without a keyring no signature is checked. Runs on a
/// blocking thread, so it can be awaited from any task.
///
/// # Errors
///
/// [`ErrorKind::Unauthorized`](crate::ErrorKind::Unauthorized) as
/// [`Keyring::verify_clearsigned`], with the file's name as resource;
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when a file changed since it was
/// validated; [`ErrorKind::Unauthorized`](crate::ErrorKind::Unauthorized) also when signatures
/// are required but no keyring is configured.
pub async fn verify_upload(
    upload: &ValidatedUpload,
    keyring: Option<&Keyring>,
    policy: SignaturePolicy,
    now: DateTime<Utc>,
) -> Result<UploadSignature> {
    let files = ControlFiles::of(upload)?;
    let keyring = keyring.cloned();
    tokio::task::spawn_blocking(move || files.verify(keyring.as_ref(), policy, now))
        .await
        .map_err(|err| Error::internal("upload signature task failed").with_source(err))?
}

/// [`verify_upload`] on the current thread, for callers without an async runtime.
///
/// # Errors
///
/// As [`verify_upload`].
pub fn verify_upload_blocking(
    upload: &ValidatedUpload,
    keyring: Option<&Keyring>,
    policy: SignaturePolicy,
    now: DateTime<Utc>,
) -> Result<UploadSignature> {
    ControlFiles::of(upload)?.verify(keyring, policy, now)
}

/// The two signed files of an upload, as validated.
struct ControlFiles {
    changes: ValidatedFile,
    dsc: ValidatedFile,
}

impl ControlFiles {
    fn of(upload: &ValidatedUpload) -> Result<ControlFiles> {
        let changes = upload
            .files
            .iter()
            .find(|file| file.path == upload.changes_path)
            .ok_or_else(|| Error::internal("the validated upload lost its .changes"))?;
        let dsc = upload
            .files
            .iter()
            .find(|file| file.name.ends_with(".dsc"))
            .ok_or_else(|| Error::internal("the validated upload lost its .dsc"))?;
        Ok(ControlFiles {
            changes: changes.clone(),
            dsc: dsc.clone(),
        })
    }

    fn verify(
        &self,
        keyring: Option<&Keyring>,
        policy: SignaturePolicy,
        now: DateTime<Utc>,
    ) -> Result<UploadSignature> {
        if policy == SignaturePolicy::Require && keyring.is_none() {
            return Err(Error::unauthorized(
                "uploads must be signed, but no keyring of allowed uploaders is configured \
                 ([uploads] keyring)",
            ));
        }
        let changes = read_as_validated(&self.changes)?;
        let dsc = read_as_validated(&self.dsc)?;
        let Some(keyring) = keyring else {
            return Ok(UploadSignature::Unsigned);
        };
        let check = |file: &ValidatedFile, bytes: &[u8]| -> Result<Option<Signer>> {
            if policy == SignaturePolicy::AllowUnsigned && !is_clearsigned(bytes) {
                return Ok(None);
            }
            keyring
                .verify_clearsigned(bytes, now)
                .map(Some)
                .map_err(|err| err.with_resource(file.name.clone()))
        };
        let changes_signer = check(&self.changes, &changes)?;
        let dsc_signer = check(&self.dsc, &dsc)?;
        Ok(match (changes_signer, dsc_signer) {
            (Some(changes), Some(dsc)) => UploadSignature::Signed { changes, dsc },
            _ => UploadSignature::Unsigned,
        })
    }
}

/// Reads a validated file again, refusing it if it changed since validation.
fn read_as_validated(file: &ValidatedFile) -> Result<Vec<u8>> {
    let in_file = |err: Error| err.with_resource(file.name.clone());
    let opened = std::fs::File::open(&file.path)
        .map_err(|err| in_file(Error::invalid("cannot open file").with_source(err)))?;
    let bytes = deb822::read_bounded(opened, MAX_CONTROL_FILE_BYTES).map_err(in_file)?;
    if checksums::digest_bytes(&bytes).sha256 != file.sha256 {
        return Err(in_file(Error::invalid(
            "the file changed after the upload was validated; validate the upload again",
        )));
    }
    Ok(bytes)
}

fn not_signed() -> Error {
    Error::unauthorized(
        "not signed: the file has no OpenPGP clear-signature \
         (-----BEGIN PGP SIGNED MESSAGE-----); sign the upload with debsign",
    )
}

/// Whether the first line that is not blank opens a clear-signed message.
fn is_clearsigned(bytes: &[u8]) -> bool {
    // Not UTF-8: let the verifier say what is wrong with it.
    std::str::from_utf8(bytes).map_or(true, |text| clearsigned_part(text).is_some())
}

/// The clear-signed message, from its first line to the end of its last, when the first line
/// that is not blank opens one; the whitespace around it is left out.
fn clearsigned_part(text: &str) -> Option<&str> {
    let mut start = None;
    let mut end = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if !line.trim().is_empty() {
            if start.is_none() && line.trim_end() != SIGNED_MESSAGE_BEGIN {
                return None;
            }
            start.get_or_insert(offset);
            end = offset + line.len();
        }
        offset += line.len();
    }
    text.get(start?..end)
}

/// Refuses signatures whose hash algorithm the `Hash` armour headers leave out: gpg hashes the
/// text only with the algorithms named there, so such a signature fails for it.
fn check_declared_hashes(armoured: &str, signatures: &[Signature]) -> Result<()> {
    // The headers follow the first line, up to the first blank line.
    let declared: Vec<String> = armoured
        .lines()
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.strip_prefix("Hash:"))
        .flat_map(|names| names.split(','))
        .map(|name| name.trim().to_ascii_uppercase())
        .collect();
    if declared.is_empty() {
        return Ok(());
    }
    for algorithm in signatures.iter().filter_map(Signature::hash_alg) {
        if !declared.contains(&algorithm.to_string().to_ascii_uppercase()) {
            return Err(Error::invalid(format!(
                "malformed clear-signed message: the signature uses {algorithm}, but the Hash \
                 armour header names {}",
                declared.join(", ")
            )));
        }
    }
    Ok(())
}

/// Refuses a file whose signed text does not give exactly the fields read from the whole file.
fn check_signed_fields(signed_text: &str, file_paragraphs: &[Paragraph]) -> Result<()> {
    let fields = |paragraphs: &[Paragraph]| -> Vec<Vec<(String, String)>> {
        paragraphs.iter().map(Paragraph::to_pairs).collect()
    };
    let differs = match deb822::parse_str(&signed_text.replace("\r\n", "\n"), &Limits::default()) {
        Ok(signed) => fields(&signed) != fields(file_paragraphs),
        Err(_) => true,
    };
    if differs {
        return Err(Error::unauthorized(
            "the signed text does not hold the fields read from the file; \
             fields outside the signature are not accepted",
        ));
    }
    Ok(())
}

/// Why a signature was not accepted: a key outside the keyring may sit beside a good
/// signature, anything else may not.
enum Rejection {
    UnknownKey(Error),
    Refused(Error),
}

fn refused(message: impl Into<String>) -> Rejection {
    Rejection::Refused(Error::unauthorized(message))
}

/// The part of a certificate that made a data signature.
#[derive(Clone, Copy)]
enum Component<'a> {
    Primary,
    Subkey(&'a SignedPublicSubKey),
}

/// Checks that the key that made a good signature was valid for it, then and now.
///
/// rpgp's `verify` checks only the cryptography; revocation, expiry, key flags and subkey
/// bindings are checked here from the self-signatures that verify (third-party
/// certifications, common on keyring keys, are ignored).
fn check_key(
    certificate: &SignedPublicKey,
    component: Component<'_>,
    signed_at: Timestamp,
    now: Timestamp,
) -> Result<()> {
    let primary = &certificate.primary_key;
    let name = describe_key(certificate);
    if let Some(revocation) = certificate
        .details
        .revocation_signatures
        .iter()
        .find(|sig| {
            sig.typ() == Some(SignatureType::KeyRevocation) && sig.verify_key(primary).is_ok()
        })
    {
        return Err(Error::unauthorized(format!(
            "key {name} was revoked ({})",
            revocation_reason(revocation)
        )));
    }
    let Some(self_signature) = newest_self_signature(certificate) else {
        return Err(Error::unauthorized(format!(
            "key {name} has no valid self-signature"
        )));
    };
    check_created_before(&name, primary.created_at(), signed_at)?;
    check_expiry(&name, primary.created_at(), self_signature, signed_at, now)?;

    match component {
        Component::Primary => {
            if has_key_flags(self_signature) && !self_signature.key_flags().sign() {
                return Err(Error::unauthorized(format!(
                    "key {name} is not allowed to make signatures (its key flags lack signing)"
                )));
            }
        }
        Component::Subkey(subkey) => {
            let name = format!("subkey {} of key {name}", fingerprint_hex(&subkey.key));
            if let Some(revocation) = subkey.signatures.iter().find(|sig| {
                sig.typ() == Some(SignatureType::SubkeyRevocation)
                    && sig.verify_subkey_binding(primary, &subkey.key).is_ok()
            }) {
                return Err(Error::unauthorized(format!(
                    "signing {name} was revoked ({})",
                    revocation_reason(revocation)
                )));
            }
            let Some(binding) = subkey
                .signatures
                .iter()
                .filter(|sig| sig.typ() == Some(SignatureType::SubkeyBinding))
                .filter(|sig| sig.verify_subkey_binding(primary, &subkey.key).is_ok())
                .max_by_key(|sig| sig.created())
            else {
                return Err(Error::unauthorized(format!(
                    "{name} is not bound to its primary key by a valid signature"
                )));
            };
            if !binding.key_flags().sign() {
                return Err(Error::unauthorized(format!(
                    "{name} is not allowed to make signatures (its key flags lack signing)"
                )));
            }
            // Without the subkey's back-signature anyone could bind someone else's signing key.
            let back_signed = binding.embedded_signature().is_some_and(|back| {
                back.verify_primary_key_binding(&subkey.key, primary)
                    .is_ok()
            });
            if !back_signed {
                return Err(Error::unauthorized(format!(
                    "{name} has no valid back-signature (primary key binding)"
                )));
            }
            check_created_before(&name, subkey.key.created_at(), signed_at)?;
            check_expiry(&name, subkey.key.created_at(), binding, signed_at, now)?;
        }
    }
    Ok(())
}

fn check_created_before(name: &str, created: Timestamp, signed_at: Timestamp) -> Result<()> {
    if signed_at.as_secs() < created.as_secs() {
        return Err(Error::unauthorized(format!(
            "the signature was made on {}, before key {name} was created ({})",
            format_time(seconds(signed_at)),
            format_time(seconds(created))
        )));
    }
    Ok(())
}

/// Refuses a key that had expired when it signed, or has expired since.
fn check_expiry(
    name: &str,
    created: Timestamp,
    self_signature: &Signature,
    signed_at: Timestamp,
    now: Timestamp,
) -> Result<()> {
    let Some(lifetime) = self_signature
        .key_expiration_time()
        .filter(|lifetime| lifetime.as_secs() != 0)
    else {
        return Ok(());
    };
    let expires = seconds(created) + u64::from(lifetime.as_secs());
    if seconds(signed_at) >= expires {
        return Err(Error::unauthorized(format!(
            "key {name} expired on {}, before the signature was made ({})",
            format_time(expires),
            format_time(seconds(signed_at))
        )));
    }
    if seconds(now) >= expires {
        return Err(Error::unauthorized(format!(
            "key {name} expired on {}",
            format_time(expires)
        )));
    }
    Ok(())
}

/// The newest self-signature over the primary key: a direct-key signature or a user ID
/// self-certification.
fn newest_self_signature(certificate: &SignedPublicKey) -> Option<&Signature> {
    let primary = &certificate.primary_key;
    let direct = certificate
        .details
        .direct_signatures
        .iter()
        .filter(|sig| sig.typ() == Some(SignatureType::Key) && sig.verify_key(primary).is_ok());
    let certifications = certificate.details.users.iter().flat_map(|user| {
        user.signatures.iter().filter(|sig| {
            is_self_certification(sig)
                && sig
                    .verify_certification(primary, Tag::UserId, &user.id)
                    .is_ok()
        })
    });
    direct.chain(certifications).max_by_key(|sig| sig.created())
}

fn is_self_certification(signature: &Signature) -> bool {
    matches!(
        signature.typ(),
        Some(
            SignatureType::CertGeneric
                | SignatureType::CertPersona
                | SignatureType::CertCasual
                | SignatureType::CertPositive
        )
    )
}

/// The user ID marked primary, else the first, among those not revoked by the key itself.
fn primary_user_id(certificate: &SignedPublicKey) -> Option<String> {
    let primary = &certificate.primary_key;
    let valid: Vec<(&SignedUser, bool)> = certificate
        .details
        .users
        .iter()
        .filter_map(|user| {
            let newest = user
                .signatures
                .iter()
                .filter(|sig| {
                    (is_self_certification(sig) || sig.typ() == Some(SignatureType::CertRevocation))
                        && sig
                            .verify_certification(primary, Tag::UserId, &user.id)
                            .is_ok()
                })
                .max_by_key(|sig| sig.created())?;
            is_self_certification(newest).then_some((user, newest.is_primary()))
        })
        .collect();
    let (user, _) = valid
        .iter()
        .find(|(_, is_primary)| *is_primary)
        .or_else(|| valid.first())?;
    Some(String::from_utf8_lossy(user.id.id()).into_owned())
}

fn has_key_flags(signature: &Signature) -> bool {
    signature.config().is_some_and(|config| {
        config
            .hashed_subpackets()
            .any(|packet| matches!(packet.data, SubpacketData::KeyFlags(_)))
    })
}

fn revocation_reason(revocation: &Signature) -> String {
    let code = match revocation.revocation_reason_code() {
        None | Some(RevocationCode::NoReason) => None,
        Some(RevocationCode::KeySuperseded) => Some("key superseded".to_owned()),
        Some(RevocationCode::KeyCompromised) => Some("key compromised".to_owned()),
        Some(RevocationCode::KeyRetired) => Some("key retired".to_owned()),
        Some(RevocationCode::CertUserIdInvalid) => Some("user ID no longer valid".to_owned()),
        Some(other) => Some(format!("reason code {}", u8::from(*other))),
    };
    let text = revocation
        .revocation_reason_string()
        .map(|text| String::from_utf8_lossy(text).trim().to_owned())
        .filter(|text| !text.is_empty());
    match (code, text) {
        (None, None) => "no reason given".to_owned(),
        (Some(code), None) => format!("reason: {code}"),
        (None, Some(text)) => format!("reason: {text:?}"),
        (Some(code), Some(text)) => format!("reason: {code}, {text:?}"),
    }
}

/// `FINGERPRINT (user id)`, for messages.
fn describe_key(certificate: &SignedPublicKey) -> String {
    let fingerprint = fingerprint_hex(&certificate.primary_key);
    match primary_user_id(certificate) {
        Some(user_id) => format!("{fingerprint} ({user_id})"),
        None => fingerprint,
    }
}

fn fingerprint_hex(key: &impl KeyDetails) -> String {
    hex::encode_upper(key.fingerprint().as_bytes())
}

/// Reads every key of a keyring file's bytes, binary or armoured.
fn parse_keys(bytes: &[u8]) -> Result<Vec<SignedPublicKey>> {
    const NO_KEY: &str = "holds no OpenPGP public key (expected what gpg --export or \
                          gpg --export --armor writes)";
    // A binary OpenPGP packet starts with its tag byte, whose high bit is always set.
    if bytes.first().is_some_and(|byte| byte & 0x80 != 0) {
        let keys = SignedPublicKey::from_bytes_many(bytes)
            .map_err(|err| Error::invalid(format!("cannot read the keyring: {err}")))?;
        let keys = collect_keys(keys, 0)?;
        if keys.is_empty() {
            return Err(Error::invalid(NO_KEY));
        }
        return Ok(keys);
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::invalid(format!("{NO_KEY}: neither binary nor ASCII armour")))?;
    let mut keys = Vec::new();
    // rpgp reads one armour block at a time; `cat a.asc b.asc` gives several.
    for start in armour_blocks(text, PUBLIC_KEY_BEGIN) {
        let block = text.get(start..).unwrap_or_default();
        let (block_keys, _headers) = SignedPublicKey::from_armor_many(block.as_bytes())
            .map_err(|err| Error::invalid(format!("cannot read the armoured keyring: {err}")))?;
        let parsed = collect_keys(block_keys, keys.len())?;
        keys.extend(parsed);
    }
    if keys.is_empty() {
        if armour_blocks(text, PRIVATE_KEY_BEGIN).next().is_some() {
            return Err(Error::invalid(
                "holds a secret key, not a public key; export the public key with \
                 gpg --export --armor",
            ));
        }
        return Err(Error::invalid(NO_KEY));
    }
    Ok(keys)
}

/// Byte offsets of the lines that start with `begin`.
fn armour_blocks<'a>(text: &'a str, begin: &'a str) -> impl Iterator<Item = usize> + 'a {
    text.match_indices(begin)
        .map(|(offset, _)| offset)
        .filter(move |&offset| offset == 0 || text.as_bytes().get(offset - 1) == Some(&b'\n'))
}

fn collect_keys(
    keys: impl Iterator<Item = pgp::errors::Result<SignedPublicKey>>,
    before: usize,
) -> Result<Vec<SignedPublicKey>> {
    let mut collected = Vec::new();
    for key in keys {
        let key = key.map_err(|err| {
            Error::invalid(format!(
                "cannot read key {} of the keyring: {err}",
                before + collected.len() + 1
            ))
        })?;
        collected.push(key);
    }
    Ok(collected)
}

/// Merges certificates with the same primary key, so that no copy hides another's revocation.
fn merge_certificates(keys: Vec<SignedPublicKey>) -> Vec<SignedPublicKey> {
    let mut merged: Vec<SignedPublicKey> = Vec::with_capacity(keys.len());
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    for key in keys {
        let fingerprint = key.primary_key.fingerprint().as_bytes().to_vec();
        match index.get(&fingerprint).and_then(|&i| merged.get_mut(i)) {
            Some(existing) => merge_into(existing, key),
            None => {
                index.insert(fingerprint, merged.len());
                merged.push(key);
            }
        }
    }
    merged
}

fn merge_into(into: &mut SignedPublicKey, from: SignedPublicKey) {
    let details = &mut into.details;
    details
        .revocation_signatures
        .extend(from.details.revocation_signatures);
    details
        .direct_signatures
        .extend(from.details.direct_signatures);
    for user in from.details.users {
        match details.users.iter_mut().find(|known| known.id == user.id) {
            Some(known) => known.signatures.extend(user.signatures),
            None => details.users.push(user),
        }
    }
    details.user_attributes.extend(from.details.user_attributes);
    for subkey in from.public_subkeys {
        let fingerprint = subkey.key.fingerprint();
        match into
            .public_subkeys
            .iter_mut()
            .find(|known| known.key.fingerprint() == fingerprint)
        {
            Some(known) => known.signatures.extend(subkey.signatures),
            None => into.public_subkeys.push(subkey),
        }
    }
}

fn seconds(timestamp: Timestamp) -> u64 {
    u64::from(timestamp.as_secs())
}

fn to_timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp::from_secs(u32::try_from(time.timestamp().max(0)).unwrap_or(u32::MAX))
}

fn to_datetime(timestamp: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(i64::from(timestamp.as_secs()), 0).unwrap_or_default()
}

fn format_time(seconds: u64) -> String {
    i64::try_from(seconds)
        .ok()
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        .map_or_else(
            || format!("{seconds} seconds after 1970"),
            |time| time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
}

#[cfg(test)]
#[path = "signature_tests.rs"]
mod tests;

/// The rule uploads are held to: a [`SignaturePolicy`] and the keyring of allowed uploaders.
#[derive(Debug, Clone)]
pub struct UploadPolicy {
    /// Whether signatures are required.
    pub policy: SignaturePolicy,
    /// The allowed uploaders' keys, when configured.
    pub keyring: Option<Keyring>,
}

impl UploadPolicy {
    /// Unsigned uploads pass; signatures are not checked (no keyring).
    pub fn allow_unsigned() -> UploadPolicy {
        UploadPolicy {
            policy: SignaturePolicy::AllowUnsigned,
            keyring: None,
        }
    }

    /// Checks `upload` against the policy now.
    ///
    /// # Errors
    /// As [`verify_upload`].
    pub async fn check(&self, upload: &ValidatedUpload) -> Result<UploadSignature> {
        verify_upload(upload, self.keyring.as_ref(), self.policy, Utc::now()).await
    }

    /// A problem with the policy itself, for a warning at start-up: signatures required
    /// without a keyring to check them against.
    pub fn problem(&self) -> Option<String> {
        (self.policy == SignaturePolicy::Require && self.keyring.is_none()).then(|| {
            "uploads must be signed (signatures = \"require\") but no keyring of allowed \
             uploaders is configured: every source upload will be refused; set [uploads] \
             keyring, or signatures = \"allow-unsigned\""
                .to_owned()
        })
    }
}

impl UploadSignature {
    /// One line for the ticket: who signed `upload`, or that it is unsigned and why that
    /// was allowed.
    pub fn describe(&self, upload: &ValidatedUpload, policy: SignaturePolicy) -> String {
        let what = format!("{} {}", upload.changes.source, upload.changes.version);
        match self {
            UploadSignature::Signed { changes, dsc } => {
                let who = |s: &Signer| match &s.user_id {
                    Some(uid) => format!("{uid} ({})", s.fingerprint),
                    None => s.fingerprint.clone(),
                };
                if changes.fingerprint == dsc.fingerprint {
                    format!("{what}: signed by {}", who(changes))
                } else {
                    format!(
                        "{what}: .changes signed by {}, .dsc signed by {}",
                        who(changes),
                        who(dsc)
                    )
                }
            }
            UploadSignature::Unsigned => format!(
                "{what}: signatures not verified (signature policy {policy}); the upload is \
                 accepted unsigned"
            ),
        }
    }
}
