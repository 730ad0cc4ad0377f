//! Size, MD5, SHA-1 and SHA-256 of a file, computed in one streaming pass.
//!
//! Debian upload files (`.changes`, `.dsc`) list up to three digests per file. Source
//! tarballs can be hundreds of megabytes, so each file is read exactly once through a fixed
//! buffer that feeds all hashers at the same time; memory use does not depend on file size.
//! [`Digester`] is the incremental core (usable while streaming to a store), the `digest_*`
//! functions wrap it for readers and files, and [`FileDigests::verify`] compares the result
//! with what an upload file claims.

use std::fmt;
use std::io::Read;
use std::path::Path;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{Error, Result};

/// Size of the read buffer: large enough to amortise system calls, small enough to ignore.
pub const BUFFER_SIZE: usize = 256 * 1024;

/// Incremental computation of size, MD5, SHA-1 and SHA-256 over one stream of bytes.
#[derive(Clone, Default)]
pub struct Digester {
    size: u64,
    md5: Md5,
    sha1: Sha1,
    sha256: Sha256,
}

impl Digester {
    /// A digester that has seen no bytes yet.
    pub fn new() -> Digester {
        Digester::default()
    }

    /// Feeds the next chunk of the stream.
    pub fn update(&mut self, chunk: &[u8]) {
        // usize always fits in u64 on supported targets; saturate rather than wrap anyway.
        self.size = self
            .size
            .saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
        self.md5.update(chunk);
        self.sha1.update(chunk);
        self.sha256.update(chunk);
    }

    /// Ends the stream and returns its size and digests.
    pub fn finish(self) -> FileDigests {
        FileDigests {
            size: self.size,
            md5: hex::encode(self.md5.finalize()),
            sha1: hex::encode(self.sha1.finalize()),
            sha256: hex::encode(self.sha256.finalize()),
        }
    }
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digester")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Size and lowercase hex digests of a whole file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileDigests {
    /// Length in bytes.
    pub size: u64,
    /// MD5, 32 lowercase hex digits.
    pub md5: String,
    /// SHA-1, 40 lowercase hex digits.
    pub sha1: String,
    /// SHA-256, 64 lowercase hex digits.
    pub sha256: String,
}

/// A digest algorithm used in Debian upload files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5 (the `Files` field).
    Md5,
    /// SHA-1 (the `Checksums-Sha1` field).
    Sha1,
    /// SHA-256 (the `Checksums-Sha256` field).
    Sha256,
}

impl Algorithm {
    /// Number of hex digits of a digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha1 => 40,
            Algorithm::Sha256 => 64,
        }
    }

    /// The field of a `.changes`/`.dsc` file that carries digests of this algorithm.
    pub fn field(self) -> &'static str {
        match self {
            Algorithm::Md5 => "Files",
            Algorithm::Sha1 => "Checksums-Sha1",
            Algorithm::Sha256 => "Checksums-Sha256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha1 => "SHA-1",
            Algorithm::Sha256 => "SHA-256",
        })
    }
}

/// What an upload file claims about a file; `None` means "not claimed, not checked".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpectedDigests<'a> {
    /// Claimed size in bytes.
    pub size: Option<u64>,
    /// Claimed MD5 in hex (any case).
    pub md5: Option<&'a str>,
    /// Claimed SHA-1 in hex (any case).
    pub sha1: Option<&'a str>,
    /// Claimed SHA-256 in hex (any case).
    pub sha256: Option<&'a str>,
}

/// The first claim that the computed digests contradict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The file has a different length.
    Size {
        /// Claimed size.
        expected: u64,
        /// Size read.
        actual: u64,
    },
    /// The file has a different digest.
    Digest {
        /// Which digest differs.
        algorithm: Algorithm,
        /// Claimed digest, as written in the upload file.
        expected: String,
        /// Computed digest, lowercase hex.
        actual: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Size { expected, actual } => {
                write!(f, "size mismatch (expected {expected} bytes, got {actual})")
            }
            Mismatch::Digest {
                algorithm,
                expected,
                actual,
            } => write!(
                f,
                "checksum mismatch ({algorithm}: expected {expected}, got {actual})"
            ),
        }
    }
}

impl FileDigests {
    /// Checks every claim of `expected`: size first, then MD5, SHA-1 and SHA-256.
    ///
    /// Hex digits compare case-insensitively.
    pub fn verify(&self, expected: &ExpectedDigests<'_>) -> std::result::Result<(), Mismatch> {
        if let Some(size) = expected.size {
            if size != self.size {
                return Err(Mismatch::Size {
                    expected: size,
                    actual: self.size,
                });
            }
        }
        let claims = [
            (Algorithm::Md5, expected.md5, &self.md5),
            (Algorithm::Sha1, expected.sha1, &self.sha1),
            (Algorithm::Sha256, expected.sha256, &self.sha256),
        ];
        for (algorithm, claim, actual) in claims {
            if let Some(claim) = claim {
                if !claim.eq_ignore_ascii_case(actual) {
                    return Err(Mismatch::Digest {
                        algorithm,
                        expected: claim.to_owned(),
                        actual: actual.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Digests bytes already in memory.
pub fn digest_bytes(bytes: &[u8]) -> FileDigests {
    let mut digester = Digester::new();
    digester.update(bytes);
    digester.finish()
}

/// Digests everything `reader` yields, in constant memory.
///
/// MD5 runs on one thread and SHA-1 with SHA-256 on another while this one reads: the
/// three digests of a large file cost about the time of the slowest, not of their sum.
pub fn digest_reader(mut reader: impl Read) -> std::io::Result<FileDigests> {
    use std::sync::mpsc::sync_channel;
    use std::sync::Arc;

    // A few chunks in flight per hashing thread bound the memory to a few MiB.
    let (to_md5, md5_chunks) = sync_channel::<Arc<Vec<u8>>>(4);
    let (to_sha, sha_chunks) = sync_channel::<Arc<Vec<u8>>>(4);
    std::thread::scope(|scope| {
        let md5 = scope.spawn(move || {
            let mut md5 = Md5::new();
            for chunk in md5_chunks {
                md5.update(chunk.as_slice());
            }
            md5
        });
        let sha = scope.spawn(move || {
            let (mut sha1, mut sha256) = (Sha1::new(), Sha256::new());
            for chunk in sha_chunks {
                sha1.update(chunk.as_slice());
                sha256.update(chunk.as_slice());
            }
            (sha1, sha256)
        });
        let mut size = 0u64;
        let read = loop {
            let mut buffer = vec![0u8; BUFFER_SIZE];
            let n = match reader.read(&mut buffer) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => break Err(err),
            };
            buffer.truncate(n);
            size = size.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
            let chunk = Arc::new(buffer);
            // A hashing thread only stops early by panicking; its join reports that below.
            if to_md5.send(chunk.clone()).is_err() || to_sha.send(chunk).is_err() {
                break Ok(());
            }
        };
        drop((to_md5, to_sha));
        let joined = |_| std::io::Error::other("a hashing thread failed");
        let md5 = md5.join().map_err(joined)?;
        let (sha1, sha256) = sha.join().map_err(joined)?;
        read?;
        Ok(FileDigests {
            size,
            md5: hex::encode(md5.finalize()),
            sha1: hex::encode(sha1.finalize()),
            sha256: hex::encode(sha256.finalize()),
        })
    })
}

/// Digests everything an async `reader` yields, reading through one [`BUFFER_SIZE`] buffer.
///
/// Hashing runs on the calling task; for local files prefer [`digest_file`], which moves
/// both reading and hashing off the async executor.
pub async fn digest_async_reader<R: AsyncRead + Unpin>(
    mut reader: R,
) -> std::io::Result<FileDigests> {
    let mut digester = Digester::new();
    let mut buffer = vec![0u8; BUFFER_SIZE];
    loop {
        let n = reader.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        digester.update(buffer.get(..n).unwrap_or_default());
    }
    Ok(digester.finish())
}

/// Digests the file at `path` without blocking the async executor.
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the path when it cannot
/// be opened or read.
pub async fn digest_file(path: &Path) -> Result<FileDigests> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || digest_file_blocking(&owned))
        .await
        .map_err(|err| Error::internal("digest task failed").with_source(err))?
}

/// Digests the file at `path` on the current thread.
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the path when it cannot
/// be opened or read.
pub fn digest_file_blocking(path: &Path) -> Result<FileDigests> {
    let resource = || path.display().to_string();
    let file = std::fs::File::open(path).map_err(|err| {
        Error::invalid("cannot open file")
            .with_source(err)
            .with_resource(resource())
    })?;
    digest_reader(file).map_err(|err| {
        Error::invalid("cannot read file")
            .with_source(err)
            .with_resource(resource())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC_MD5: &str = "900150983cd24fb0d6963f7d28e17f72";
    const ABC_SHA1: &str = "a9993e364706816aba3e25717850c26c9cd0d89d";
    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn known_vectors() {
        let d = digest_bytes(b"abc");
        assert_eq!(d.size, 3);
        assert_eq!(d.md5, ABC_MD5);
        assert_eq!(d.sha1, ABC_SHA1);
        assert_eq!(d.sha256, ABC_SHA256);

        let empty = digest_bytes(b"");
        assert_eq!(empty.size, 0);
        assert_eq!(
            empty.sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    /// A reader that hands out at most `step` bytes per call, as pipes and sockets do.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn chunking_does_not_change_the_result() {
        // Larger than two buffers, and not a multiple of the buffer size.
        let data: Vec<u8> = (0..(2 * BUFFER_SIZE + 12_345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let whole = digest_bytes(&data);
        let streamed = digest_reader(data.as_slice()).unwrap();
        let trickled = digest_reader(Trickle {
            data: &data,
            step: 1000,
        })
        .unwrap();
        assert_eq!(whole, streamed);
        assert_eq!(whole, trickled);
        assert_eq!(whole.size, data.len() as u64);
    }

    #[tokio::test]
    async fn file_sync_and_async_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data: Vec<u8> = (0..(BUFFER_SIZE + 7)).map(|i| (i % 256) as u8).collect();
        std::fs::write(&path, &data).unwrap();

        let from_file = digest_file(&path).await.unwrap();
        let from_blocking = digest_file_blocking(&path).unwrap();
        let from_async_reader = digest_async_reader(tokio::fs::File::open(&path).await.unwrap())
            .await
            .unwrap();
        assert_eq!(from_file, digest_bytes(&data));
        assert_eq!(from_file, from_blocking);
        assert_eq!(from_file, from_async_reader);
    }

    #[tokio::test]
    async fn missing_file_is_invalid_input_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.tar.xz");
        let err = digest_file(&path).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("nope.tar.xz"), "{err}");
    }

    #[test]
    fn verify_reports_the_first_wrong_claim() {
        let d = digest_bytes(b"abc");
        let all = ExpectedDigests {
            size: Some(3),
            md5: Some(ABC_MD5),
            sha1: Some(&ABC_SHA1.to_uppercase()),
            sha256: Some(ABC_SHA256),
        };
        assert_eq!(d.verify(&all), Ok(()));
        assert_eq!(d.verify(&ExpectedDigests::default()), Ok(()));

        let wrong_size = ExpectedDigests {
            size: Some(4),
            ..all
        };
        assert_eq!(
            d.verify(&wrong_size),
            Err(Mismatch::Size {
                expected: 4,
                actual: 3
            })
        );

        let bad = "0".repeat(64);
        let wrong_sha256 = ExpectedDigests {
            sha256: Some(&bad),
            ..all
        };
        let mismatch = d.verify(&wrong_sha256).unwrap_err();
        assert_eq!(
            mismatch.to_string(),
            format!("checksum mismatch (SHA-256: expected {bad}, got {ABC_SHA256})")
        );
        assert!(matches!(
            mismatch,
            Mismatch::Digest {
                algorithm: Algorithm::Sha256,
                ..
            }
        ));
    }
}
