//! Reading a binary package's control data from the `.deb` itself.
//!
//! A `.deb` is an `ar` archive: `debian-binary` (`2.0\n`), then `control.tar` (plain, or
//! compressed with gzip, xz or zstd), then `data.tar.*`. The `control` file of the control
//! tarball is the package's stanza for the `Packages` index. The input comes from outside
//! the process, so every read is bounded and every malformation is an `InvalidInput` error
//! naming the file; nothing here panics.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Result};
use crate::upload::deb822::{self, Limits};
use crate::upload::{validate_package_name, DebianVersion};

/// Largest control tarball accepted, decompressed (real ones are a few kilobytes).
pub const MAX_CONTROL_TAR_BYTES: u64 = 16 * 1024 * 1024;
/// Largest `control` file accepted.
pub const MAX_CONTROL_BYTES: u64 = 1024 * 1024;

const AR_MAGIC: &[u8] = b"!<arch>\n";
const AR_HEADER_LEN: usize = 60;

/// The control data of a binary package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebControl {
    /// `Package`.
    pub package: String,
    /// `Version`.
    pub version: String,
    /// `Architecture` (`amd64`, `all`, …).
    pub architecture: String,
    /// The source package: `Source` without a `(version)`, else the package name.
    pub source: String,
    /// Every field in file order, values as parsed (see [`deb822::Field::value`]).
    pub fields: Vec<(String, String)>,
}

/// Reads the control data of the `.deb` at `path`.
///
/// # Errors
/// `InvalidInput` when the file is not an `ar` archive, is not a Debian binary package
/// (format 2.x), has no control member, the control tarball is corrupt or has no
/// `control` file, or the control file lacks `Package`, `Version` or `Architecture` or
/// holds values outside Debian policy.
pub fn read_control(path: &Path) -> Result<DebControl> {
    let file =
        File::open(path).map_err(|e| Error::from(e).with_resource(path.display().to_string()))?;
    let len = file.metadata().map_err(Error::from)?.len();
    let mut reader = BufReader::new(file);
    let control_bytes = read_control_bytes(&mut reader, len)?;
    parse_control(&control_bytes)
}

/// Reads the `control` file out of a `.deb` of `len` bytes.
fn read_control_bytes<R: Read + Seek>(reader: &mut R, len: u64) -> Result<Vec<u8>> {
    let mut magic = [0u8; 8];
    reader
        .read_exact(&mut magic)
        .map_err(|_| Error::invalid("not a Debian package: too short for an ar archive"))?;
    if magic != AR_MAGIC {
        return Err(Error::invalid(
            "not a Debian package: not an ar archive (no !<arch> magic)",
        ));
    }
    let mut offset = AR_MAGIC.len() as u64;
    let mut index = 0usize;
    while offset < len {
        let member = read_member_header(reader, offset, len)?;
        let data_start = offset.saturating_add(AR_HEADER_LEN as u64);
        match (index, member.name.as_str()) {
            (0, "debian-binary") => {
                let version = deb822::read_bounded(reader.take(member.size), 64)?;
                if !version.starts_with(b"2.") {
                    return Err(Error::invalid(format!(
                        "unsupported .deb format {:?} (debian-binary must be 2.x)",
                        String::from_utf8_lossy(&version).trim()
                    )));
                }
            }
            (0, other) => {
                return Err(Error::invalid(format!(
                    "not a Debian package: first ar member is {other:?}, not debian-binary"
                )));
            }
            (_, name) if name.starts_with("control.tar") => {
                let compression = Compression::of_member(name)?;
                reader.seek(SeekFrom::Start(data_start))?;
                return control_from_tar(reader.take(member.size), compression);
            }
            (_, name) if name.starts_with("data.tar") => {
                return Err(Error::invalid(
                    "not a Debian package: data.tar comes before any control.tar member",
                ));
            }
            // Members starting with `_` are reserved for tools; skip them as dpkg does.
            _ => {}
        }
        index += 1;
        // Members are padded to an even length.
        offset = data_start
            .saturating_add(member.size)
            .saturating_add(member.size % 2);
        reader.seek(SeekFrom::Start(offset))?;
    }
    Err(Error::invalid(
        "not a Debian package: no control.tar member",
    ))
}

struct MemberHeader {
    name: String,
    size: u64,
}

fn read_member_header<R: Read>(reader: &mut R, offset: u64, len: u64) -> Result<MemberHeader> {
    let mut header = [0u8; AR_HEADER_LEN];
    reader.read_exact(&mut header).map_err(|_| {
        Error::invalid(format!(
            "corrupt ar archive: truncated member header at byte {offset}"
        ))
    })?;
    if &header[58..60] != b"`\n" {
        return Err(Error::invalid(format!(
            "corrupt ar archive: bad member header at byte {offset}"
        )));
    }
    let name = std::str::from_utf8(&header[..16])
        .map_err(|_| Error::invalid("corrupt ar archive: member name is not text"))?
        .trim_end_matches(' ')
        .trim_end_matches('/')
        .to_owned();
    let size = std::str::from_utf8(&header[48..58])
        .ok()
        .and_then(|text| text.trim_end_matches(' ').parse::<u64>().ok())
        .ok_or_else(|| {
            Error::invalid(format!("corrupt ar archive: bad size of member {name:?}"))
        })?;
    let end = offset
        .saturating_add(AR_HEADER_LEN as u64)
        .saturating_add(size);
    if end > len {
        return Err(Error::invalid(format!(
            "corrupt ar archive: member {name:?} runs past the end of the file"
        )));
    }
    Ok(MemberHeader { name, size })
}

#[derive(Debug, Clone, Copy)]
enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    fn of_member(name: &str) -> Result<Compression> {
        match name {
            "control.tar" => Ok(Compression::None),
            "control.tar.gz" => Ok(Compression::Gzip),
            "control.tar.xz" => Ok(Compression::Xz),
            "control.tar.zst" => Ok(Compression::Zstd),
            other => Err(Error::invalid(format!(
                "unsupported control member {other:?} (control.tar, .gz, .xz or .zst)"
            ))),
        }
    }
}

fn control_from_tar(member: impl Read, compression: Compression) -> Result<Vec<u8>> {
    let corrupt = |err: std::io::Error| {
        Error::invalid(format!("corrupt control tarball: {err}")).with_source(err)
    };
    let decompressed: Box<dyn Read> = match compression {
        Compression::None => Box::new(member),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(member)),
        Compression::Xz => Box::new(xz2::read::XzDecoder::new(member)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(member)
                .map_err(|err| Error::invalid(format!("corrupt control tarball: {err}")))?,
        ),
    };
    // Bounded, so a decompression bomb stops at the limit.
    let bounded = LimitedReader {
        inner: decompressed,
        left: MAX_CONTROL_TAR_BYTES,
    };
    let mut archive = tar::Archive::new(bounded);
    for entry in archive.entries().map_err(corrupt)? {
        let entry = entry.map_err(corrupt)?;
        let is_control = {
            let path = entry.path().map_err(corrupt)?;
            let path = path.to_string_lossy();
            path == "./control" || path == "control"
        };
        if is_control {
            if !entry.header().entry_type().is_file() {
                return Err(Error::invalid(
                    "the control tarball's control is not a regular file",
                ));
            }
            return deb822::read_bounded(entry, MAX_CONTROL_BYTES)
                .map_err(|e| Error::invalid(format!("control file: {}", e.message())));
        }
    }
    Err(Error::invalid("the control tarball has no control file"))
}

/// A reader that fails once more than `left` bytes were asked of it.
struct LimitedReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        let read64 = read as u64;
        if read64 > self.left {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("larger than {MAX_CONTROL_TAR_BYTES} bytes decompressed"),
            ));
        }
        self.left -= read64;
        Ok(read)
    }
}

/// Parses and checks a binary package's `control` file.
///
/// # Errors
/// `InvalidInput` naming the field.
pub fn parse_control(bytes: &[u8]) -> Result<DebControl> {
    let paragraphs = deb822::parse(bytes, &Limits::default())
        .map_err(|e| Error::invalid(format!("control file: {}", e.message())))?;
    let paragraph = match paragraphs.as_slice() {
        [one] => one,
        [] => return Err(Error::invalid("control file: empty")),
        _ => return Err(Error::invalid("control file: more than one paragraph")),
    };
    let required = |name: &str| -> Result<String> {
        let value = paragraph.get(name).map(str::trim).unwrap_or_default();
        if value.is_empty() || value.contains('\n') {
            return Err(Error::invalid(format!(
                "control file: {name} is missing or not one line"
            )));
        }
        Ok(value.to_owned())
    };
    let package = required("Package")?;
    validate_package_name(&package)
        .map_err(|e| Error::invalid(format!("control file: Package: {}", e.message())))?;
    let version = required("Version")?;
    DebianVersion::parse(&version)
        .map_err(|e| Error::invalid(format!("control file: Version: {}", e.message())))?;
    let architecture = required("Architecture")?;
    check_architecture(&architecture)
        .map_err(|e| Error::invalid(format!("control file: Architecture: {}", e.message())))?;
    let source = match paragraph.get("Source").map(str::trim) {
        None | Some("") => package.clone(),
        Some(value) => {
            let name = value.split_whitespace().next().unwrap_or_default();
            validate_package_name(name)
                .map_err(|e| Error::invalid(format!("control file: Source: {}", e.message())))?;
            name.to_owned()
        }
    };
    Ok(DebControl {
        package,
        version,
        architecture,
        source,
        fields: paragraph.to_pairs(),
    })
}

/// Checks one Debian architecture name (`amd64`, `all`, `linux-any` is not one).
///
/// # Errors
/// `InvalidInput` for anything but `[a-z0-9]` words joined by `-`.
pub fn check_architecture(arch: &str) -> Result<()> {
    let ok = !arch.is_empty()
        && arch.len() <= 32
        && arch.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && !arch.ends_with('-')
        && arch
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && arch != "any"
        && arch != "source";
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{arch:?} is not an architecture name (a-z 0-9 -, such as amd64 or all)"
        )))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a `.deb` in memory: `members` after `debian-binary`.
    pub(crate) fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = AR_MAGIC.to_vec();
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
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(data);
            if data.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }

    pub(crate) fn control_tar(control: &str) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(control.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "./control", control.as_bytes())
            .unwrap();
        builder.into_inner().unwrap()
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn read(bytes: &[u8]) -> Result<DebControl> {
        let mut cursor = std::io::Cursor::new(bytes);
        let control = read_control_bytes(&mut cursor, bytes.len() as u64)?;
        parse_control(&control)
    }

    const CONTROL: &str = "Package: tiny\nSource: tinysrc (1.0-1)\nVersion: 1.0-1+b1\nArchitecture: all\nMaintainer: T <t@example.com>\nDescription: a tiny package\n Longer.\n .\n More.\n";

    #[test]
    fn control_is_read_from_each_compression() {
        let tar = control_tar(CONTROL);
        let xz = {
            use std::io::Write;
            let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(&tar).unwrap();
            e.finish().unwrap()
        };
        for (name, data) in [
            ("control.tar", tar.clone()),
            ("control.tar.gz", gzip(&tar)),
            ("control.tar.xz", xz),
        ] {
            let deb = ar(&[
                ("debian-binary", b"2.0\n"),
                (name, &data),
                ("data.tar.gz", &gzip(b"")),
            ]);
            let control = read(&deb).unwrap();
            assert_eq!(control.package, "tiny", "{name}");
            assert_eq!(control.source, "tinysrc");
            assert_eq!(control.version, "1.0-1+b1");
            assert_eq!(control.architecture, "all");
            assert_eq!(
                control.fields.last().unwrap().1,
                "a tiny package\nLonger.\n\nMore."
            );
        }
    }

    #[test]
    fn broken_packages_are_refused_with_the_reason() {
        let tar = control_tar(CONTROL);
        let good_control = gzip(&tar);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"PK\x03\x04 not an ar".to_vec(), "not an ar archive"),
            (b"!<ar".to_vec(), "too short"),
            (ar(&[("debian-binary", b"2.0\n")]), "no control.tar member"),
            (ar(&[("foo", b"x")]), "first ar member"),
            (
                ar(&[("debian-binary", b"3.0\n")]),
                "debian-binary must be 2.x",
            ),
            (
                ar(&[("debian-binary", b"2.0\n"), ("data.tar.gz", b"x")]),
                "data.tar comes before",
            ),
            (
                ar(&[("debian-binary", b"2.0\n"), ("control.tar.bz2", b"x")]),
                "unsupported control member",
            ),
            (
                ar(&[("debian-binary", b"2.0\n"), ("control.tar.gz", b"garbage")]),
                "corrupt control tarball",
            ),
            (
                ar(&[
                    ("debian-binary", b"2.0\n"),
                    ("control.tar.gz", &gzip(&control_tar("Package: xx\n"))[..]),
                ]),
                "Version is missing",
            ),
            (
                ar(&[
                    ("debian-binary", b"2.0\n"),
                    (
                        "control.tar.gz",
                        &gzip(&control_tar(
                            "Package: Bad_Name\nVersion: 1\nArchitecture: all\n",
                        ))[..],
                    ),
                ]),
                "Package:",
            ),
            (
                ar(&[
                    ("debian-binary", b"2.0\n"),
                    (
                        "control.tar.gz",
                        &gzip(&control_tar(
                            "Package: ok\nVersion: 1 2\nArchitecture: all\n",
                        ))[..],
                    ),
                ]),
                "Version:",
            ),
            (
                ar(&[
                    ("debian-binary", b"2.0\n"),
                    (
                        "control.tar.gz",
                        &gzip(&control_tar(
                            "Package: ok\nVersion: 1\nArchitecture: ../x\n",
                        ))[..],
                    ),
                ]),
                "Architecture:",
            ),
        ];
        for (deb, expected) in cases {
            let err = read(&deb).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
            assert!(err.message().contains(expected), "{expected}: {err}");
        }
        // A member claiming more bytes than the file has.
        let mut deb = ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", &good_control),
        ]);
        deb.truncate(deb.len() - 10);
        assert!(read(&deb)
            .unwrap_err()
            .message()
            .contains("runs past the end"));
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; (MAX_CONTROL_TAR_BYTES + 1024 * 1024) as usize];
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(zeros.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "./big", &zeros[..])
            .unwrap();
        let tar = builder.into_inner().unwrap();
        let deb = ar(&[("debian-binary", b"2.0\n"), ("control.tar.gz", &gzip(&tar))]);
        let err = read(&deb).unwrap_err();
        assert!(err.message().contains("decompressed"), "{err}");
    }
}
