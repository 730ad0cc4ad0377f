//! The `Packages` and `Sources` indices of one series: their stanzas, how they are made
//! from a `.deb` or a `.dsc`, and how the archive reads its own indices back.
//!
//! An index is kept as the text of its stanzas, keyed by package, version and
//! architecture: publishing one package into a series of 10,000 re-renders nothing but
//! the new stanza, and the indices are written by concatenation, in chunks
//! ([`super::compress`]). Every stanza ends with a blank line, as `dpkg-scanpackages`
//! writes them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::compress::Chunked;
use crate::error::{Error, Result};
use crate::upload::checksums::FileDigests;

/// The only component a PPA has.
pub const COMPONENT: &str = "main";

/// Fields of a binary stanza that `dpkg-scanpackages` places after the file fields.
const AFTER_FILE_FIELDS: &[&str] = &[
    "Section",
    "Priority",
    "Multi-Arch",
    "Homepage",
    "Description",
    "Tag",
    "Task",
];

/// One stanza of an index, rendered, with what the archive needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stanza text, each line ending in `\n`, without the blank separator line.
    pub text: String,
    /// The source package it belongs to.
    pub source: String,
    /// Pool files it names, relative to the archive root.
    pub files: Vec<String>,
}

/// `(package, version)` of a source.
pub type SourceKey = (String, String);
/// `(package, version, architecture)` of a binary.
pub type BinaryKey = (String, String, String);

/// Everything published in one series.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesIndex {
    /// Source packages.
    pub sources: BTreeMap<SourceKey, Entry>,
    /// Binary packages, `all` ones once.
    pub binaries: BTreeMap<BinaryKey, Entry>,
}

impl SeriesIndex {
    /// `Sources`, in chunks.
    pub fn render_sources(&self) -> Chunked {
        Chunked::new(
            self.sources
                .iter()
                .map(|((name, _), entry)| (name.as_str(), entry.text.as_str())),
        )
    }

    /// `binary-<arch>/Packages`, in chunks: the packages of `arch` and those of `all`.
    pub fn render_packages(&self, arch: &str) -> Chunked {
        Chunked::new(
            self.binaries
                .iter()
                .filter(|((_, _, a), _)| a == arch || a == "all")
                .map(|((name, _, _), entry)| (name.as_str(), entry.text.as_str())),
        )
    }

    /// Architectures with binaries, `all` excepted.
    pub fn architectures(&self) -> impl Iterator<Item = &str> + '_ {
        self.binaries
            .keys()
            .map(|(_, _, arch)| arch.as_str())
            .filter(|arch| *arch != "all")
    }

    /// Reads the indices an archive wrote: `Sources` and every `Packages`.
    ///
    /// # Errors
    /// `Internal` when a stanza lacks the fields the archive always writes (the archive
    /// was changed behind its back).
    pub fn read(sources: &str, packages: &[String]) -> Result<SeriesIndex> {
        let mut index = SeriesIndex::default();
        for text in stanzas(sources) {
            let fields = key_fields(text);
            let name = fields.need("Package")?;
            let version = fields.need("Version")?;
            let directory = fields.need("Directory")?;
            let files = fields
                .files
                .iter()
                .map(|file| format!("{directory}/{file}"))
                .collect();
            index.sources.insert(
                (name.to_owned(), version.to_owned()),
                Entry {
                    text: format!("{text}\n"),
                    source: name.to_owned(),
                    files,
                },
            );
        }
        for packages in packages {
            for text in stanzas(packages) {
                let fields = key_fields(text);
                let name = fields.need("Package")?;
                let key = (
                    name.to_owned(),
                    fields.need("Version")?.to_owned(),
                    fields.need("Architecture")?.to_owned(),
                );
                if index.binaries.contains_key(&key) {
                    continue;
                }
                let source = fields
                    .source
                    .and_then(|s| s.split_whitespace().next())
                    .unwrap_or(name)
                    .to_owned();
                let filename = fields.need("Filename")?.to_owned();
                index.binaries.insert(
                    key,
                    Entry {
                        text: format!("{text}\n"),
                        source,
                        files: vec![filename],
                    },
                );
            }
        }
        Ok(index)
    }

    /// Every pool file the series names.
    pub fn pool_files(&self) -> impl Iterator<Item = &str> + '_ {
        self.sources
            .values()
            .chain(self.binaries.values())
            .flat_map(|entry| entry.files.iter().map(String::as_str))
    }
}

/// The stanzas of an index, without their trailing newline.
fn stanzas(text: &str) -> impl Iterator<Item = &str> {
    text.split("\n\n")
        .map(|s| s.trim_matches('\n'))
        .filter(|s| !s.is_empty())
}

#[derive(Default)]
struct KeyFields<'a> {
    package: Option<&'a str>,
    version: Option<&'a str>,
    architecture: Option<&'a str>,
    filename: Option<&'a str>,
    directory: Option<&'a str>,
    source: Option<&'a str>,
    files: Vec<&'a str>,
}

impl<'a> KeyFields<'a> {
    fn need(&self, name: &str) -> Result<&'a str> {
        let value = match name {
            "Package" => self.package,
            "Version" => self.version,
            "Architecture" => self.architecture,
            "Filename" => self.filename,
            "Directory" => self.directory,
            _ => None,
        };
        value.ok_or_else(|| {
            Error::internal(format!(
                "the archive's index has a stanza without {name}; was it edited by hand?"
            ))
        })
    }
}

/// Picks the fields the archive keys on out of one of its own stanzas.
fn key_fields(text: &str) -> KeyFields<'_> {
    let mut fields = KeyFields::default();
    let mut in_files = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(' ') {
            if in_files {
                if let Some(name) = rest.split_whitespace().nth(2) {
                    fields.files.push(name);
                }
            }
            continue;
        }
        in_files = false;
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name {
            "Package" => fields.package = Some(value),
            "Version" => fields.version = Some(value),
            "Architecture" => fields.architecture = Some(value),
            "Filename" => fields.filename = Some(value),
            "Directory" => fields.directory = Some(value),
            "Source" => fields.source = Some(value),
            "Files" => in_files = true,
            _ => {}
        }
    }
    fields
}

/// Writes `name: value` as a control file does: continuation lines start with a space and
/// an empty line is ` .`.
pub fn render_field(out: &mut String, name: &str, value: &str) {
    let mut lines = value.split('\n');
    let first = lines.next().unwrap_or_default();
    if first.is_empty() {
        let _ = writeln!(out, "{name}:");
    } else {
        let _ = writeln!(out, "{name}: {first}");
    }
    for line in lines {
        if line.is_empty() {
            out.push_str(" .\n");
        } else {
            let _ = writeln!(out, " {line}");
        }
    }
}

/// The pool folder of a source package: `pool/main/h/hello/`, `pool/main/libf/libfoo/`.
pub fn pool_dir(source: &str) -> String {
    let prefix = if source.len() > 3 && source.starts_with("lib") {
        &source[..4]
    } else {
        &source[..source.len().min(1)]
    };
    format!("pool/{COMPONENT}/{prefix}/{source}")
}

/// The pool name of a binary package: `<package>_<version without epoch>_<arch>.deb`.
pub fn deb_file_name(package: &str, version: &str, arch: &str) -> String {
    let version = version.split_once(':').map_or(version, |(_, rest)| rest);
    format!("{package}_{version}_{arch}.deb")
}

/// The `Packages` stanza of a binary package: its control fields with the pool file's
/// name, size and checksums, in `dpkg-scanpackages` order.
pub fn binary_stanza(
    control: &[(String, String)],
    filename: &str,
    digests: &FileDigests,
) -> String {
    let mut out = String::new();
    let mut file_fields_written = false;
    let write_file_fields = |out: &mut String| {
        let _ = writeln!(out, "Filename: {filename}");
        let _ = writeln!(out, "Size: {}", digests.size);
        let _ = writeln!(out, "MD5sum: {}", digests.md5);
        let _ = writeln!(out, "SHA1: {}", digests.sha1);
        let _ = writeln!(out, "SHA256: {}", digests.sha256);
    };
    for (name, value) in control {
        if matches!(
            name.to_ascii_lowercase().as_str(),
            "filename" | "size" | "md5sum" | "sha1" | "sha256" | "sha512"
        ) {
            continue;
        }
        if !file_fields_written
            && AFTER_FILE_FIELDS
                .iter()
                .any(|after| after.eq_ignore_ascii_case(name))
        {
            write_file_fields(&mut out);
            file_fields_written = true;
        }
        render_field(&mut out, name, value);
    }
    if !file_fields_written {
        write_file_fields(&mut out);
    }
    out
}

/// One file of a source package as published: its name and checksums.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// File name (the `.dsc` first).
    pub name: String,
    /// What it holds.
    pub digests: FileDigests,
}

/// The `.dsc` fields a `Sources` stanza takes over (lower-case), besides `Vcs-*`.
const SOURCES_FIELDS: &[&str] = &[
    "binary",
    "version",
    "maintainer",
    "uploaders",
    "original-maintainer",
    "build-depends",
    "build-depends-indep",
    "build-depends-arch",
    "build-conflicts",
    "build-conflicts-indep",
    "build-conflicts-arch",
    "architecture",
    "standards-version",
    "format",
    "homepage",
    "testsuite",
    "testsuite-triggers",
    "package-list",
    "dgit",
    "rules-requires-root",
    "priority",
    "section",
];

/// The `Sources` stanza of a source package, as `dpkg-scansources` writes it: `Package`
/// from the `.dsc`'s `Source`, the fields a `Sources` stanza carries, the pool `Directory`,
/// and checksum lists naming the `.dsc` and its files.
pub fn source_stanza(
    dsc_fields: &[(String, String)],
    directory: &str,
    files: &[SourceFile],
) -> String {
    let mut out = String::new();
    if let Some((_, name)) = dsc_fields
        .iter()
        .find(|(field, _)| field.eq_ignore_ascii_case("Source"))
    {
        render_field(&mut out, "Package", name);
    }
    // Only the fields a Sources stanza carries (as apt-ftparchive writes them): `Package`
    // comes from `Source` alone, so that a `Package` field of the .dsc cannot rename what is
    // published, nor anything else take the place of what the archive writes.
    for (name, value) in dsc_fields {
        let lower = name.to_ascii_lowercase();
        if SOURCES_FIELDS.contains(&lower.as_str()) || lower.starts_with("vcs-") {
            render_field(&mut out, name, value);
        }
    }
    let _ = writeln!(out, "Directory: {directory}");
    let list = |out: &mut String, field: &str, hash: fn(&FileDigests) -> &str| {
        let _ = writeln!(out, "{field}:");
        for file in files {
            let _ = writeln!(
                out,
                " {} {} {}",
                hash(&file.digests),
                file.digests.size,
                file.name
            );
        }
    };
    list(&mut out, "Checksums-Sha1", |d| &d.sha1);
    list(&mut out, "Checksums-Sha256", |d| &d.sha256);
    list(&mut out, "Files", |d| &d.md5);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::checksums::digest_bytes;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn pool_dirs_follow_debian() {
        assert_eq!(pool_dir("hello"), "pool/main/h/hello");
        assert_eq!(pool_dir("libfoo"), "pool/main/libf/libfoo");
        assert_eq!(pool_dir("lib"), "pool/main/l/lib");
        assert_eq!(deb_file_name("a", "1:2.0-1", "amd64"), "a_2.0-1_amd64.deb");
    }

    #[test]
    fn binary_stanzas_put_file_fields_where_dpkg_does_and_read_back() {
        let control = pairs(&[
            ("Package", "tiny"),
            ("Source", "tinysrc (1.0-1)"),
            ("Version", "1.0-1+b1"),
            ("Architecture", "all"),
            ("Size", "999"),
            ("Description", "short\nlong\n\nmore"),
        ]);
        let digests = digest_bytes(b"deb");
        let text = binary_stanza(
            &control,
            "pool/main/t/tinysrc/tiny_1.0-1+b1_all.deb",
            &digests,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[4],
            "Filename: pool/main/t/tinysrc/tiny_1.0-1+b1_all.deb"
        );
        assert_eq!(lines[5], "Size: 3", "the control's own Size is dropped");
        assert_eq!(&lines[9..], ["Description: short", " long", " .", " more"]);

        let index = SeriesIndex::read("", &[text.clone(), text.clone()]).unwrap();
        let entry = &index.binaries[&("tiny".into(), "1.0-1+b1".into(), "all".into())];
        assert_eq!(entry.source, "tinysrc");
        assert_eq!(entry.text, text);
        let rendered = index.render_packages("amd64").text();
        assert_eq!(String::from_utf8(rendered).unwrap(), format!("{text}\n"));
        assert_eq!(index.architectures().count(), 0);
    }

    #[test]
    fn source_stanzas_list_the_dsc_first_and_read_back() {
        let dsc = pairs(&[
            ("Format", "3.0 (quilt)"),
            ("Source", "hello"),
            ("Version", "1.0-1"),
            ("Files", "\nx 1 hello_1.0.orig.tar.gz"),
        ]);
        let files = [
            SourceFile {
                name: "hello_1.0-1.dsc".into(),
                digests: digest_bytes(b"dsc"),
            },
            SourceFile {
                name: "hello_1.0.orig.tar.gz".into(),
                digests: digest_bytes(b"orig"),
            },
        ];
        let text = source_stanza(&dsc, "pool/main/h/hello", &files);
        assert!(text.starts_with("Package: hello\nFormat: 3.0 (quilt)\nVersion: 1.0-1\n"));
        let index = SeriesIndex::read(&text, &[]).unwrap();
        let entry = &index.sources[&("hello".into(), "1.0-1".into())];
        assert_eq!(
            entry.files,
            [
                "pool/main/h/hello/hello_1.0-1.dsc",
                "pool/main/h/hello/hello_1.0.orig.tar.gz"
            ]
        );
        let rendered = index.render_sources().text();
        assert_eq!(String::from_utf8(rendered).unwrap(), format!("{text}\n"));
    }

    /// A `.dsc` with a `Package` field (or any field a `Sources` stanza does not carry)
    /// cannot rename what is published: the stanza names it by its `Source` alone.
    #[test]
    fn a_package_field_of_the_dsc_does_not_rename_the_source() {
        let dsc = pairs(&[
            ("Format", "3.0 (native)"),
            ("Source", "hello"),
            ("Package", "evil"),
            ("Version", "1.0"),
            ("Directory", "pool/main/e/evil"),
            ("Vcs-Git", "https://salsa.debian.org/x/hello.git"),
            ("X-Injected", "yes"),
        ]);
        let files = [SourceFile {
            name: "hello_1.0.dsc".into(),
            digests: digest_bytes(b"dsc"),
        }];
        let text = source_stanza(&dsc, "pool/main/h/hello", &files);
        assert_eq!(text.matches("Package:").count(), 1, "{text}");
        assert!(text.starts_with("Package: hello\n"), "{text}");
        assert!(
            !text.contains("evil") && !text.contains("X-Injected"),
            "{text}"
        );
        assert!(text.contains("Vcs-Git: https://salsa.debian.org/x/hello.git\n"));
        let index = SeriesIndex::read(&text, &[]).unwrap();
        assert!(index.sources.contains_key(&("hello".into(), "1.0".into())));
    }

    #[test]
    fn a_hand_edited_index_is_an_internal_error() {
        let err = SeriesIndex::read("", &["Package: x\nVersion: 1\n".into()]).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Internal);
    }
}
