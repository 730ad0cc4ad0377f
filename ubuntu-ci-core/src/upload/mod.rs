//! Validation of source package uploads: a `_source.changes` and the files it lists.
//!
//! A developer hands in the path of a `_source.changes`; the `.dsc`, the orig tarball and
//! the Debian tarball or diff sit beside it. Before anything is stored, [`validate_changes`]
//! checks the whole upload: both control files parse ([`Changes::parse`], [`Dsc::parse`],
//! pure functions), every listed name is a plain file name ([`validate_file_name`]), every
//! listed file exists beside the `.changes` as a regular file and matches its size and every
//! checksum given (each file read once, streaming, see [`checksums`]), the `.dsc` belongs to
//! the same source and version, and the files the `.dsc` needs are present. Validation only
//! reads; nothing on disk changes. Every rejection is an
//! [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error whose text names the
//! file, the field and the listed file, e.g.
//! `hello_2.10-3_source.changes: Checksums-Sha256: hello_2.10-3.dsc: checksum mismatch (…)`.

pub mod checksums;
pub mod deb822;
mod directory;
pub mod signature;
pub mod version;

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt::Display;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use checksums::{Algorithm, ExpectedDigests, FileDigests, Mismatch};
use deb822::{Limits, Paragraph, MAX_CONTROL_FILE_BYTES};
use directory::{LocateError, Located, UploadDir};
pub use version::{validate_package_name, DebianVersion};

/// Longest file name accepted, in bytes (the usual file system limit).
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// One file listed by a `.changes` or `.dsc`, with the checksums given for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Bare file name, checked by [`validate_file_name`].
    pub name: String,
    /// Size in bytes (never 0).
    pub size: u64,
    /// MD5 from `Files`, lowercase hex.
    pub md5: Option<String>,
    /// SHA-1 from `Checksums-Sha1`, lowercase hex.
    pub sha1: Option<String>,
    /// SHA-256 from `Checksums-Sha256`, lowercase hex.
    pub sha256: Option<String>,
}

/// A parsed `.changes` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Source package name (without the `(version)` a `Source` field may carry).
    pub source: String,
    /// The `Version` field.
    pub version: String,
    /// Version of the source package: the `(version)` after `Source` when present, else
    /// [`Changes::version`]. The `.dsc` must carry this version.
    pub source_version: String,
    /// Listed files in `Files` order, with checksums from all three lists.
    pub files: Vec<FileEntry>,
    /// The `Distribution` field (the target series).
    pub distribution: Option<String>,
    /// The words of the `Architecture` field (`source` for source uploads).
    pub architecture: Vec<String>,
    /// The `Maintainer` field.
    pub maintainer: Option<String>,
    /// The `Changed-By` field.
    pub changed_by: Option<String>,
    /// Every field as `(name, value)` in file order, names as written.
    pub fields: Vec<(String, String)>,
}

/// A parsed `.dsc` (source package description) file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsc {
    /// Source package name.
    pub source: String,
    /// The `Version` field (may carry an epoch).
    pub version: String,
    /// Binary packages built from this source (the `Binary` field).
    pub binaries: Vec<String>,
    /// Files of the source package, in `Files` order, with checksums from all three lists.
    pub files: Vec<FileEntry>,
    /// The source format (`3.0 (quilt)`, `3.0 (native)`, `1.0`).
    pub format: Option<String>,
    /// The words of the `Architecture` field (`any`, `all`, …).
    pub architecture: Vec<String>,
    /// Every field as `(name, value)` in file order, names as written.
    pub fields: Vec<(String, String)>,
}

/// A file of a validated upload: where to read it and what it must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedFile {
    /// The name to store it under (as listed).
    pub name: String,
    /// Where to read it: beside the `.changes`, or the target of a link within that directory.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 computed while validating, lowercase hex.
    pub sha256: String,
}

/// An upload that passed [`validate_changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedUpload {
    /// The `.changes` as given.
    pub changes_path: PathBuf,
    /// The parsed `.changes`.
    pub changes: Changes,
    /// The parsed `.dsc`.
    pub dsc: Dsc,
    /// Every file to store: the files listed in the `.changes`, in its order, then the
    /// `.changes` itself last.
    pub files: Vec<ValidatedFile>,
    /// Files the `.dsc` needs that the `.changes` does not list (an upload made with
    /// `-sd` leaves out the orig tarball), found beside it and verified; store them too when
    /// the builder must unpack the source without an archive holding them.
    pub dsc_only_files: Vec<ValidatedFile>,
    /// SHA-256 (hex) over the sorted `name size sha256` lines of the source package: the
    /// `.dsc` and the files it lists. The same source gives the same fingerprint whatever
    /// else the `.changes` lists (`-sa`/`-sd`, a `.buildinfo`) and wherever the files lie.
    pub fingerprint: String,
}

/// The bug a ticket for `uploads` is about when none is given: the first Launchpad bug any
/// of them fixes, else the first Debian bug any of them closes.
pub fn first_bug_fixed(uploads: &[&Changes]) -> Option<String> {
    uploads
        .iter()
        .find_map(|c| c.launchpad_bugs_fixed().into_iter().next())
        .or_else(|| {
            uploads
                .iter()
                .find_map(|c| c.debian_bugs_closed().into_iter().next())
        })
}

impl Changes {
    /// The bugs the upload says it fixes, as URLs: `Launchpad-Bugs-Fixed` first (Launchpad
    /// bug URLs), then `Closes` (Debian's bug tracker), each in field order. Words that are
    /// not bug numbers are skipped.
    pub fn bugs_fixed(&self) -> Vec<String> {
        let mut bugs = self.launchpad_bugs_fixed();
        bugs.extend(self.debian_bugs_closed());
        bugs
    }

    /// `Launchpad-Bugs-Fixed`, as Launchpad bug URLs.
    pub fn launchpad_bugs_fixed(&self) -> Vec<String> {
        self.bug_numbers("Launchpad-Bugs-Fixed")
            .into_iter()
            .map(crate::model::launchpad_bug_url)
            .collect()
    }

    /// `Closes`, as URLs of Debian's bug tracker.
    pub fn debian_bugs_closed(&self) -> Vec<String> {
        self.bug_numbers("Closes")
            .into_iter()
            .map(|n| format!("https://bugs.debian.org/{n}"))
            .collect()
    }

    /// The bug numbers of the field `name` (`#` before a number allowed; other words
    /// skipped).
    fn bug_numbers(&self, name: &str) -> Vec<u64> {
        self.fields
            .iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .flat_map(|(_, value)| value.split(|c: char| c.is_whitespace() || c == ','))
            .filter_map(|word| word.trim_start_matches('#').parse::<u64>().ok())
            .filter(|n| *n > 0)
            .collect()
    }

    /// Parses a `.changes` file (clear-signed or not); the signature is not verified.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the field: syntax
    /// or armour errors, `Source`, `Version` or `Files` missing or malformed, checksum lists
    /// disagreeing with `Files`, not exactly one `.dsc` listed, binary packages listed.
    pub fn parse(bytes: &[u8]) -> Result<Changes> {
        let paragraph = single_paragraph(bytes)?;
        let (source, paren_version) = split_source(required(&paragraph, "Source")?)?;
        validate_package_name(source).map_err(|err| field_error("Source", err.message()))?;
        let version = required(&paragraph, "Version")?;
        let parsed_version =
            DebianVersion::parse(version).map_err(|err| field_error("Version", err.message()))?;
        let source_version = match paren_version {
            Some(text) => {
                DebianVersion::parse(text).map_err(|err| field_error("Source", err.message()))?
            }
            None => parsed_version,
        };
        let files = parse_file_lists(&paragraph, ListFormat::Changes)?;

        if let Some(binary) = files.iter().find(|file| is_binary_package(&file.name)) {
            return Err(field_error(
                "Files",
                format!(
                    "{}: binary packages cannot be uploaded; upload a source-only .changes \
                     (dpkg-buildpackage -S)",
                    binary.name
                ),
            ));
        }
        let dscs: Vec<&str> = files
            .iter()
            .filter(|file| file.name.ends_with(".dsc"))
            .map(|file| file.name.as_str())
            .collect();
        match dscs.as_slice() {
            [] => {
                return Err(field_error(
                    "Files",
                    "lists no .dsc file; a source upload lists exactly one",
                ))
            }
            [dsc] => {
                let expected = format!("{source}_{}.dsc", source_version.without_epoch());
                if *dsc != expected {
                    return Err(field_error(
                        "Files",
                        format!(
                            "{dsc}: the .dsc of {source} {source_version} must be named {expected}"
                        ),
                    ));
                }
            }
            several => {
                return Err(field_error(
                    "Files",
                    format!(
                        "lists {} .dsc files ({}); a source upload lists exactly one",
                        several.len(),
                        several.join(", ")
                    ),
                ))
            }
        }

        Ok(Changes {
            source: source.to_owned(),
            version: version.to_owned(),
            source_version: source_version.to_string(),
            files,
            distribution: optional(&paragraph, "Distribution"),
            architecture: words(&paragraph, "Architecture"),
            maintainer: optional(&paragraph, "Maintainer"),
            changed_by: optional(&paragraph, "Changed-By"),
            fields: paragraph.to_pairs(),
        })
    }

    /// The one `.dsc` listed (always present after [`Changes::parse`]).
    pub fn dsc(&self) -> Option<&FileEntry> {
        self.files.iter().find(|file| file.name.ends_with(".dsc"))
    }
}

impl Dsc {
    /// Parses a `.dsc` file (clear-signed or not); the signature is not verified.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the field: syntax
    /// or armour errors, `Source`, `Version` or `Files` missing or malformed, checksum lists
    /// disagreeing with `Files`, an invalid name in `Binary`.
    pub fn parse(bytes: &[u8]) -> Result<Dsc> {
        let paragraph = single_paragraph(bytes)?;
        let source = required(&paragraph, "Source")?;
        validate_package_name(source).map_err(|err| field_error("Source", err.message()))?;
        let version = required(&paragraph, "Version")?;
        DebianVersion::parse(version).map_err(|err| field_error("Version", err.message()))?;
        let files = parse_file_lists(&paragraph, ListFormat::Dsc)?;
        let binaries: Vec<String> = paragraph
            .get("Binary")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        for binary in &binaries {
            validate_package_name(binary).map_err(|err| field_error("Binary", err.message()))?;
        }
        Ok(Dsc {
            source: source.to_owned(),
            version: version.to_owned(),
            binaries,
            files,
            format: optional(&paragraph, "Format"),
            architecture: words(&paragraph, "Architecture"),
            fields: paragraph.to_pairs(),
        })
    }
}

/// Checks that `name` is a plain file name as Debian uploads use them.
///
/// Accepted: 1 to 255 bytes of `A-Z a-z 0-9 . _ + ~ -`, not starting with `.` or `-`
/// (`hello_2.10-3.dsc`, `foo_1.0~rc1+dfsg.orig.tar.xz`). Refused, with a message saying
/// why: paths (`/`), `.` and `..`, control characters, hidden files, names that tools would
/// take for options, anything else outside that alphabet.
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) quoting the name.
pub fn validate_file_name(name: &str) -> Result<()> {
    let fail = |why: &str| {
        Error::invalid(format!(
            "invalid file name {}: {why}",
            version::quoted(name)
        ))
    };
    if name.is_empty() {
        return Err(fail("empty"));
    }
    if name.len() > MAX_FILE_NAME_BYTES {
        return Err(fail(&format!("longer than {MAX_FILE_NAME_BYTES} bytes")));
    }
    if name.contains(['/', '\\']) {
        return Err(fail("contains a path separator (a path, not a file name)"));
    }
    if name == "." || name == ".." {
        return Err(fail("refers to a directory"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(fail(&format!("contains {}", version::describe_char(c))));
    }
    if name.starts_with('-') {
        return Err(fail("starts with '-' (tools would take it for an option)"));
    }
    if name.starts_with('.') {
        return Err(fail("starts with '.' (a hidden file)"));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '~' | '-')))
    {
        return Err(fail(&format!(
            "contains {} (allowed: A-Z a-z 0-9 . _ + ~ -)",
            version::describe_char(c)
        )));
    }
    Ok(())
}

/// Validates the upload described by the `.changes` at `path`; see the module documentation.
///
/// Runs on a blocking thread, so it can be awaited from any task.
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for anything wrong with the
/// upload, including listed files missing from disk. The error's resource is the control
/// file concerned (the `.changes` or the `.dsc`), its message names the field and the
/// listed file.
pub async fn validate_changes(path: &Path) -> Result<ValidatedUpload> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || validate_changes_blocking(&path))
        .await
        .map_err(|err| Error::internal("upload validation task failed").with_source(err))?
}

/// [`validate_changes`] on the current thread, for callers without an async runtime.
///
/// # Errors
///
/// As [`validate_changes`].
pub fn validate_changes_blocking(path: &Path) -> Result<ValidatedUpload> {
    let changes_name = path
        .file_name()
        .and_then(OsStr::to_str)
        .ok_or_else(|| {
            Error::invalid("the path does not end in a UTF-8 file name")
                .with_resource(path.display().to_string())
        })?
        .to_owned();
    let in_changes = |err: Error| err.with_resource(changes_name.clone());
    validate_file_name(&changes_name).map_err(in_changes)?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };

    let changes_bytes = read_changes(path).map_err(in_changes)?;
    let changes = Changes::parse(&changes_bytes).map_err(in_changes)?;
    let upload_dir = UploadDir::new(dir).map_err(in_changes)?;

    let mut files = Vec::with_capacity(changes.files.len().saturating_add(1));
    let mut computed: HashMap<&str, FileDigests> = HashMap::new();
    let mut dsc_bytes = None;
    for entry in &changes.files {
        if entry.name == changes_name {
            return Err(in_changes(field_error(
                "Files",
                format!("{}: the .changes lists itself", entry.name),
            )));
        }
        let located = locate(&upload_dir, &entry.name).map_err(in_changes)?;
        check_size_early(entry, &located).map_err(in_changes)?;
        let digests = if entry.name.ends_with(".dsc") {
            // The .dsc is needed twice (checksums and parsing) but read only once.
            let bytes = read_located_bounded(&located, &entry.name).map_err(in_changes)?;
            let digests = checksums::digest_bytes(&bytes);
            dsc_bytes = Some(bytes);
            digests
        } else {
            digest_located(&located, &entry.name).map_err(in_changes)?
        };
        check_entry(entry, &digests).map_err(in_changes)?;
        files.push(ValidatedFile {
            name: entry.name.clone(),
            path: located.path,
            size: digests.size,
            sha256: digests.sha256.clone(),
        });
        computed.insert(entry.name.as_str(), digests);
    }

    let (dsc_name, dsc_bytes) = match (changes.dsc(), dsc_bytes) {
        (Some(entry), Some(bytes)) => (entry.name.clone(), bytes),
        _ => return Err(Error::internal("the .changes lost its .dsc").with_resource(changes_name)),
    };
    let in_dsc = |err: Error| err.with_resource(dsc_name.clone());
    let dsc = Dsc::parse(&dsc_bytes).map_err(in_dsc)?;
    check_dsc_matches(&dsc, &changes).map_err(in_dsc)?;

    let mut dsc_only_files = Vec::new();
    for entry in &dsc.files {
        if entry.name == dsc_name || entry.name == changes_name {
            return Err(in_dsc(field_error(
                "Files",
                format!("{}: a .dsc cannot list its own control files", entry.name),
            )));
        }
        if let Some(digests) = computed.get(entry.name.as_str()) {
            check_entry(entry, digests).map_err(in_dsc)?;
            continue;
        }
        let located = locate(&upload_dir, &entry.name).map_err(in_dsc)?;
        check_size_early(entry, &located).map_err(in_dsc)?;
        let digests = digest_located(&located, &entry.name).map_err(in_dsc)?;
        check_entry(entry, &digests).map_err(in_dsc)?;
        dsc_only_files.push(ValidatedFile {
            name: entry.name.clone(),
            path: located.path,
            size: digests.size,
            sha256: digests.sha256,
        });
    }

    // The source package is the .dsc and what it lists; uploads of it made with -sa or -sd,
    // or with another .buildinfo, are the same content.
    let source_files: Vec<&ValidatedFile> = files
        .iter()
        .chain(&dsc_only_files)
        .filter(|f| f.name == dsc_name || dsc.files.iter().any(|e| e.name == f.name))
        .collect();
    let fingerprint = fingerprint(&source_files);
    let changes_digests = checksums::digest_bytes(&changes_bytes);
    files.push(ValidatedFile {
        name: changes_name,
        path: path.to_path_buf(),
        size: changes_digests.size,
        sha256: changes_digests.sha256,
    });
    Ok(ValidatedUpload {
        changes_path: path.to_path_buf(),
        changes,
        dsc,
        files,
        dsc_only_files,
        fingerprint,
    })
}

/// An error about `field`: `Field: message`.
fn field_error(field: &str, message: impl Display) -> Error {
    Error::invalid(format!("{field}: {message}"))
}

fn single_paragraph(bytes: &[u8]) -> Result<Paragraph> {
    if bytes.is_empty() {
        return Err(Error::invalid("file is empty"));
    }
    let mut paragraphs = deb822::parse(bytes, &Limits::default())?;
    match paragraphs.len() {
        0 => Err(Error::invalid("file holds no fields")),
        1 => paragraphs
            .pop()
            .ok_or_else(|| Error::internal("paragraph vanished")),
        n => Err(Error::invalid(format!(
            "expected one paragraph, found {n} (the second starts at line {})",
            paragraphs.get(1).map_or(0, Paragraph::line)
        ))),
    }
}

fn required<'a>(paragraph: &'a Paragraph, field: &str) -> Result<&'a str> {
    match paragraph.get(field) {
        None => Err(field_error(field, "required field is missing")),
        Some(value) if value.trim().is_empty() => {
            Err(field_error(field, "required field is empty"))
        }
        Some(value) => Ok(value.trim()),
    }
}

fn optional(paragraph: &Paragraph, field: &str) -> Option<String> {
    paragraph
        .get(field)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

fn words(paragraph: &Paragraph, field: &str) -> Vec<String> {
    paragraph
        .get(field)
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Splits a `.changes` `Source` value `name` or `name (version)`.
fn split_source(value: &str) -> Result<(&str, Option<&str>)> {
    let Some((name, rest)) = value.split_once(char::is_whitespace) else {
        return Ok((value, None));
    };
    let version = rest
        .trim()
        .strip_prefix('(')
        .and_then(|inner| inner.strip_suffix(')'))
        .map(str::trim)
        .ok_or_else(|| {
            field_error(
                "Source",
                format!(
                    "expected \"name\" or \"name (version)\", found {}",
                    version::quoted(value)
                ),
            )
        })?;
    Ok((name, Some(version)))
}

fn is_binary_package(name: &str) -> bool {
    [".deb", ".udeb", ".ddeb"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListFormat {
    /// `md5 size section priority name`
    Changes,
    /// `md5 size name`
    Dsc,
}

/// Reads `Files` and the `Checksums-*` lists into one entry per file, checking that the
/// lists name the same files with the same sizes.
fn parse_file_lists(paragraph: &Paragraph, format: ListFormat) -> Result<Vec<FileEntry>> {
    let files_field = paragraph
        .field("Files")
        .ok_or_else(|| field_error("Files", "required field is missing"))?;
    let mut entries: Vec<FileEntry> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (line, text) in files_field.entries() {
        let tokens: Vec<&str> = text.split_whitespace().collect();
        let (md5, size, name) = match (format, tokens.as_slice()) {
            (ListFormat::Changes, [md5, size, _, _, name])
            | (ListFormat::Dsc, [md5, size, name]) => (*md5, *size, *name),
            _ => {
                let layout = match format {
                    ListFormat::Changes => "md5 size section priority name",
                    ListFormat::Dsc => "md5 size name",
                };
                return Err(field_error(
                    "Files",
                    format!(
                        "line {line}: expected \"{layout}\", found {} words",
                        tokens.len()
                    ),
                ));
            }
        };
        validate_file_name(name).map_err(|err| field_error("Files", err.message()))?;
        let md5 = parse_digest(md5, Algorithm::Md5)
            .map_err(|why| field_error("Files", format!("{name}: {why}")))?;
        let size =
            parse_size(size).map_err(|why| field_error("Files", format!("{name}: {why}")))?;
        if size == 0 {
            return Err(field_error("Files", format!("{name}: empty file (size 0)")));
        }
        if index.insert(name, entries.len()).is_some() {
            return Err(field_error("Files", format!("{name}: listed twice")));
        }
        entries.push(FileEntry {
            name: name.to_owned(),
            size,
            md5: Some(md5),
            sha1: None,
            sha256: None,
        });
    }
    if entries.is_empty() {
        return Err(field_error("Files", "lists no files"));
    }

    for algorithm in [Algorithm::Sha1, Algorithm::Sha256] {
        let field_name = algorithm.field();
        let Some(field) = paragraph.field(field_name) else {
            continue;
        };
        let mut seen: HashSet<&str> = HashSet::new();
        for (line, text) in field.entries() {
            let tokens: Vec<&str> = text.split_whitespace().collect();
            let [digest, size, name] = tokens.as_slice() else {
                return Err(field_error(
                    field_name,
                    format!(
                        "line {line}: expected \"{} size name\", found {} words",
                        algorithm.to_string().to_lowercase(),
                        tokens.len()
                    ),
                ));
            };
            validate_file_name(name).map_err(|err| field_error(field_name, err.message()))?;
            let digest = parse_digest(digest, algorithm)
                .map_err(|why| field_error(field_name, format!("{name}: {why}")))?;
            let size = parse_size(size)
                .map_err(|why| field_error(field_name, format!("{name}: {why}")))?;
            let Some(entry) = index.get(name).and_then(|&i| entries.get_mut(i)) else {
                return Err(field_error(
                    field_name,
                    format!("{name}: not listed in Files"),
                ));
            };
            if !seen.insert(name) {
                return Err(field_error(field_name, format!("{name}: listed twice")));
            }
            if entry.size != size {
                return Err(field_error(
                    field_name,
                    format!(
                        "{name}: size {size} differs from the size in Files ({})",
                        entry.size
                    ),
                ));
            }
            match algorithm {
                Algorithm::Sha1 => entry.sha1 = Some(digest),
                Algorithm::Sha256 => entry.sha256 = Some(digest),
                Algorithm::Md5 => entry.md5 = Some(digest),
            }
        }
        if let Some(absent) = entries
            .iter()
            .find(|entry| !seen.contains(entry.name.as_str()))
        {
            return Err(field_error(
                field_name,
                format!("{}: listed in Files but missing here", absent.name),
            ));
        }
    }
    Ok(entries)
}

fn parse_digest(text: &str, algorithm: Algorithm) -> std::result::Result<String, String> {
    if text.len() == algorithm.hex_len() && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!(
            "invalid {algorithm} checksum {} (expected {} hex digits)",
            version::quoted(text),
            algorithm.hex_len()
        ))
    }
}

fn parse_size(text: &str) -> std::result::Result<u64, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(size) = text.parse::<u64>() {
            return Ok(size);
        }
    }
    Err(format!("invalid size {}", version::quoted(text)))
}

fn read_changes(path: &Path) -> Result<Vec<u8>> {
    let metadata = std::fs::metadata(path).map_err(|err| {
        let message = if err.kind() == std::io::ErrorKind::NotFound {
            "file not found"
        } else {
            "cannot inspect file"
        };
        Error::invalid(message).with_source(err)
    })?;
    if !metadata.is_file() {
        return Err(Error::invalid("not a regular file"));
    }
    // Cheap early answer; the bounded read is what actually enforces the limit.
    if metadata.len() > MAX_CONTROL_FILE_BYTES {
        return Err(Error::invalid(format!(
            "file is larger than the limit of {MAX_CONTROL_FILE_BYTES} bytes"
        )));
    }
    let file = std::fs::File::open(path)
        .map_err(|err| Error::invalid("cannot open file").with_source(err))?;
    deb822::read_bounded(file, MAX_CONTROL_FILE_BYTES)
}

fn locate(dir: &UploadDir, name: &str) -> Result<Located> {
    dir.locate(name).map_err(|err| match err {
        LocateError::Missing => {
            field_error("Files", format!("{name}: not found in {}", dir.display()))
        }
        LocateError::Unusable(why) => field_error("Files", format!("{name}: {why}")),
    })
}

/// Refuses a size mismatch before reading a possibly huge file.
fn check_size_early(entry: &FileEntry, located: &Located) -> Result<()> {
    let actual = located.metadata.len();
    if actual != entry.size {
        let mismatch = Mismatch::Size {
            expected: entry.size,
            actual,
        };
        return Err(field_error("Files", format!("{}: {mismatch}", entry.name)));
    }
    Ok(())
}

fn read_located_bounded(located: &Located, name: &str) -> Result<Vec<u8>> {
    let file = located
        .open()
        .map_err(|why| field_error("Files", format!("{name}: {why}")))?;
    deb822::read_bounded(file, MAX_CONTROL_FILE_BYTES)
        .map_err(|err| field_error("Files", format!("{name}: {err}")))
}

fn digest_located(located: &Located, name: &str) -> Result<FileDigests> {
    let file = located
        .open()
        .map_err(|why| field_error("Files", format!("{name}: {why}")))?;
    checksums::digest_reader(file)
        .map_err(|err| field_error("Files", format!("{name}: cannot read: {err}")))
}

/// The `.dsc` a `.changes` lists (`entry`), read into memory: checked against the
/// `.changes`' size and checksums, parsed, and matched with it (name and version); every
/// file it lists must be listed by the `.changes` too, with the same size and checksums
/// (the files themselves are checked when they are fetched to build).
///
/// # Errors
/// `InvalidInput` naming the `.dsc`, as [`validate_changes`] would.
pub(crate) fn check_dsc_bytes(changes: &Changes, entry: &FileEntry, bytes: &[u8]) -> Result<Dsc> {
    let in_dsc = |err: Error| err.with_resource(entry.name.clone());
    check_entry(entry, &checksums::digest_bytes(bytes)).map_err(in_dsc)?;
    let dsc = Dsc::parse(bytes).map_err(in_dsc)?;
    check_dsc_matches(&dsc, changes).map_err(in_dsc)?;
    for file in &dsc.files {
        if file.name == entry.name || file.name.ends_with(".changes") {
            return Err(in_dsc(field_error(
                "Files",
                format!("{}: a .dsc cannot list its own control files", file.name),
            )));
        }
        let Some(listed) = changes.files.iter().find(|f| f.name == file.name) else {
            return Err(in_dsc(field_error(
                "Files",
                format!(
                    "{}: the .dsc lists it, the .changes does not (make the upload with \
                     dpkg-genchanges -sa)",
                    file.name
                ),
            )));
        };
        let agree = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => true,
        };
        if listed.size != file.size
            || !agree(&listed.md5, &file.md5)
            || !agree(&listed.sha1, &file.sha1)
            || !agree(&listed.sha256, &file.sha256)
        {
            return Err(in_dsc(field_error(
                "Files",
                format!(
                    "{}: the .dsc and the .changes give it different sizes or checksums",
                    file.name
                ),
            )));
        }
    }
    Ok(dsc)
}

/// Compares what a list claims about a file with what was read; the error names the field
/// holding the wrong claim.
fn check_entry(entry: &FileEntry, digests: &FileDigests) -> Result<()> {
    let expected = ExpectedDigests {
        size: Some(entry.size),
        md5: entry.md5.as_deref(),
        sha1: entry.sha1.as_deref(),
        sha256: entry.sha256.as_deref(),
    };
    digests.verify(&expected).map_err(|mismatch| {
        let field = match &mismatch {
            Mismatch::Size { .. } => "Files",
            Mismatch::Digest { algorithm, .. } => algorithm.field(),
        };
        field_error(field, format!("{}: {mismatch}", entry.name))
    })
}

fn check_dsc_matches(dsc: &Dsc, changes: &Changes) -> Result<()> {
    if dsc.source != changes.source {
        return Err(field_error(
            "Source",
            format!(
                "{} does not match the .changes ({})",
                dsc.source, changes.source
            ),
        ));
    }
    let dsc_version = DebianVersion::parse(&dsc.version)?;
    let changes_version = DebianVersion::parse(&changes.source_version)?;
    // A .dsc may leave out the epoch the .changes carries; the file names never have it.
    let same = dsc_version == changes_version
        || (!dsc_version.has_epoch() && dsc_version.eq_ignoring_epoch(&changes_version));
    if !same {
        return Err(field_error(
            "Version",
            format!(
                "{} does not match the .changes ({})",
                dsc.version, changes.source_version
            ),
        ));
    }
    Ok(())
}

fn fingerprint(files: &[&ValidatedFile]) -> String {
    let mut lines: Vec<String> = files
        .iter()
        .map(|file| format!("{} {} {}\n", file.name, file.size, file.sha256))
        .collect();
    lines.sort();
    let mut hasher = Sha256::new();
    for line in &lines {
        hasher.update(line.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests;
