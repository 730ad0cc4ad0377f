//! Compressing indices in chunks, so that a change recompresses only what changed.
//!
//! A gzip file may be a sequence of members, which every reader (`gzip -d`, zlib's
//! `gzread` that apt uses) reads as the concatenation of their contents; an xz stream is a
//! sequence of independently compressed blocks followed by an index of their sizes (apt
//! reads only the first of several concatenated xz streams, so the blocks of all chunks are
//! put into one stream with one index). The archive tests prove apt reads both whole.
//! An index is cut into chunks at
//! content-defined points: after a stanza whose key hashes to 0 modulo [`CUT_EVERY`], or
//! when a chunk passes [`MAX_CHUNK`]. Inserting or removing a package changes the chunk it
//! falls in (at most two, when it moves a cut) and leaves the others byte for byte, so
//! their compressed form is taken from a cache kept beside the archive
//! (`<archive>/.cache/<index>/<sha256>.{gz,xz}`), and entries the new index does not use
//! are deleted.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A stanza starts a new chunk after one whose key hash is 0 modulo this: chunks hold about
/// this many stanzas.
pub const CUT_EVERY: u64 = 128;
/// A chunk is cut once it holds this many bytes, whatever the stanzas.
pub const MAX_CHUNK: usize = 256 * 1024;

/// An index's text in chunks.
#[derive(Debug, Default)]
pub struct Chunked {
    chunks: Vec<String>,
}

impl Chunked {
    /// Chunks built from `(key, stanza)` pairs in index order; each stanza is followed by the
    /// blank line that separates stanzas.
    pub fn new<'a>(stanzas: impl Iterator<Item = (&'a str, &'a str)>) -> Chunked {
        let mut chunks = Vec::new();
        let mut current = String::new();
        for (key, text) in stanzas {
            current.push_str(text);
            current.push('\n');
            if cut_after(key) || current.len() >= MAX_CHUNK {
                chunks.push(std::mem::take(&mut current));
            }
        }
        if !current.is_empty() {
            chunks.push(current);
        }
        Chunked { chunks }
    }

    /// The whole text.
    pub fn text(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.chunks.iter().map(String::len).sum());
        for chunk in &self.chunks {
            out.extend_from_slice(chunk.as_bytes());
        }
        out
    }

    /// The gzip and xz forms, compressing only chunks missing from `cache` (a folder, made
    /// if needed); cache entries this index does not use any more are removed.
    ///
    /// # Errors
    /// I/O errors of the cache or the compressors.
    pub fn compress(&self, cache: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
        fs::create_dir_all(cache)?;
        let mut gz = Vec::new();
        let mut blocks = Vec::with_capacity(self.chunks.len());
        let mut used = HashSet::new();
        for chunk in &self.chunks {
            let key = hex::encode(Sha256::digest(chunk.as_bytes()));
            let gz_name = format!("{key}.gz");
            gz.extend_from_slice(&cached(cache, &gz_name, || gzip(chunk.as_bytes()))?);
            let xz_name = format!("{key}.xzblock");
            let block = cached(cache, &xz_name, || XzBlock::compress(chunk.as_bytes()))?;
            blocks.push(XzBlock::from_cached(&block)?);
            used.insert(gz_name);
            used.insert(xz_name);
        }
        if self.chunks.is_empty() {
            // An empty index still compresses to a valid (empty) file.
            gz = gzip(b"")?;
        }
        let xz = xz_stream(&blocks);
        for entry in fs::read_dir(cache)? {
            let entry = entry?;
            let name = entry.file_name();
            if !name.to_str().is_some_and(|n| used.contains(n)) {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok((gz, xz))
    }
}

/// The cached bytes `name`, made by `make` when missing.
fn cached(cache: &Path, name: &str, make: impl FnOnce() -> io::Result<Vec<u8>>) -> Result<Vec<u8>> {
    let path = cache.join(name);
    match fs::read(&path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let bytes = make()?;
            store(&path, &bytes)?;
            Ok(bytes)
        }
        Err(e) => Err(e.into()),
    }
}

/// One xz block with the sizes the stream index records for it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct XzBlock {
    /// Block header, compressed data and check, without the block padding.
    unpadded: u64,
    uncompressed: u64,
    /// The block as it appears in a stream, padding included.
    bytes: Vec<u8>,
}

const XZ_MAGIC: &[u8] = &[0xFD, b'7', b'z', b'X', b'Z', 0x00];
/// Stream flags: CRC64 checks, as [`XzBlock::compress`] makes blocks.
const XZ_FLAGS: [u8; 2] = [0x00, 0x04];

impl XzBlock {
    /// Compresses `bytes` into one block, returned in the cache's form: the two sizes as
    /// little-endian u64, then the block.
    fn compress(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let stream = xz(bytes)?;
        let block = XzBlock::from_stream(&stream)?;
        let mut out = Vec::with_capacity(block.bytes.len() + 16);
        out.extend_from_slice(&block.unpadded.to_le_bytes());
        out.extend_from_slice(&block.uncompressed.to_le_bytes());
        out.extend_from_slice(&block.bytes);
        Ok(out)
    }

    fn from_cached(bytes: &[u8]) -> Result<XzBlock> {
        let corrupt =
            || Error::internal("a cached xz block is corrupt; delete the archive's .cache");
        let unpadded = u64::from_le_bytes(
            bytes
                .get(..8)
                .ok_or_else(corrupt)?
                .try_into()
                .map_err(|_| corrupt())?,
        );
        let uncompressed = u64::from_le_bytes(
            bytes
                .get(8..16)
                .ok_or_else(corrupt)?
                .try_into()
                .map_err(|_| corrupt())?,
        );
        Ok(XzBlock {
            unpadded,
            uncompressed,
            bytes: bytes.get(16..).ok_or_else(corrupt)?.to_vec(),
        })
    }

    /// The single block of a stream made by [`xz`], with its sizes read from the stream's
    /// index.
    fn from_stream(stream: &[u8]) -> io::Result<XzBlock> {
        let bad = |what: &str| io::Error::other(format!("unexpected xz stream layout: {what}"));
        let len = stream.len();
        if len < 24 || &stream[..6] != XZ_MAGIC || stream[6..8] != XZ_FLAGS {
            return Err(bad("header"));
        }
        let footer = &stream[len - 12..];
        let backward = u32::from_le_bytes([footer[4], footer[5], footer[6], footer[7]]);
        let index_len = (usize::try_from(backward).map_err(|_| bad("index size"))? + 1) * 4;
        let index_start = len
            .checked_sub(12 + index_len)
            .filter(|start| *start >= 12)
            .ok_or_else(|| bad("index size"))?;
        let index = &stream[index_start..len - 12];
        let mut at = 1; // the index indicator, 0x00
        let records = read_varint(index, &mut at).ok_or_else(|| bad("index"))?;
        if index[0] != 0 || records != 1 {
            return Err(bad("not one block"));
        }
        let unpadded = read_varint(index, &mut at).ok_or_else(|| bad("index"))?;
        let uncompressed = read_varint(index, &mut at).ok_or_else(|| bad("index"))?;
        Ok(XzBlock {
            unpadded,
            uncompressed,
            bytes: stream[12..index_start].to_vec(),
        })
    }
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..63).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7F) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn crc32(bytes: &[u8]) -> [u8; 4] {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum().to_le_bytes()
}

/// One xz stream of `blocks`, with its index and footer (the .xz file format, §2).
fn xz_stream(blocks: &[XzBlock]) -> Vec<u8> {
    let mut out = Vec::with_capacity(blocks.iter().map(|b| b.bytes.len()).sum::<usize>() + 64);
    out.extend_from_slice(XZ_MAGIC);
    out.extend_from_slice(&XZ_FLAGS);
    out.extend_from_slice(&crc32(&XZ_FLAGS));
    for block in blocks {
        out.extend_from_slice(&block.bytes);
    }
    let mut index = vec![0u8];
    write_varint(&mut index, blocks.len() as u64);
    for block in blocks {
        write_varint(&mut index, block.unpadded);
        write_varint(&mut index, block.uncompressed);
    }
    while !index.len().is_multiple_of(4) {
        index.push(0);
    }
    let index_crc = crc32(&index);
    index.extend_from_slice(&index_crc);
    out.extend_from_slice(&index);
    let backward = u32::try_from(index.len() / 4 - 1).unwrap_or(u32::MAX);
    let mut footer = backward.to_le_bytes().to_vec();
    footer.extend_from_slice(&XZ_FLAGS);
    out.extend_from_slice(&crc32(&footer));
    out.extend_from_slice(&footer);
    out.extend_from_slice(b"YZ");
    out
}

fn cut_after(key: &str) -> bool {
    // FNV-1a: stable across runs and builds, unlike the standard hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash.is_multiple_of(CUT_EVERY)
}

fn store(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir: PathBuf = path
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| Error::internal("a cache path without a folder"))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".chunk-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| Error::from(e.error))?;
    Ok(())
}

/// gzip at the strongest level (chunks are small).
pub fn gzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::best(),
    );
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// xz at preset 6 with a dictionary no larger than the chunk needs (the encoder's memory
/// grows with the dictionary, not with the ratio reached on small inputs).
pub fn xz(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut options = xz2::stream::LzmaOptions::new_preset(6).map_err(io::Error::other)?;
    let dict = u32::try_from(bytes.len().next_power_of_two())
        .unwrap_or(u32::MAX)
        .clamp(64 * 1024, 8 * 1024 * 1024);
    options.dict_size(dict);
    let mut filters = xz2::stream::Filters::new();
    filters.lzma2(&options);
    let stream = xz2::stream::Stream::new_stream_encoder(&filters, xz2::stream::Check::Crc64)
        .map_err(io::Error::other)?;
    let mut encoder =
        xz2::write::XzEncoder::new_stream(Vec::with_capacity(bytes.len() / 5), stream);
    encoder.write_all(bytes)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn stanzas(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| {
                let key = format!("pkg{i:05}");
                let text = format!("Package: {key}\nVersion: 1\nDescription: x\n");
                (key, text)
            })
            .collect()
    }

    fn chunked(list: &[(String, String)]) -> Chunked {
        Chunked::new(list.iter().map(|(k, t)| (k.as_str(), t.as_str())))
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn unxz(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        // A single-stream decoder, as apt reads: every block must be in the one stream.
        xz2::read::XzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn chunks_decompress_to_the_whole_text_and_one_insert_recompresses_little() {
        let dir = tempfile::tempdir().unwrap();
        let mut list = stanzas(2000);
        let first = chunked(&list);
        assert!(first.chunks.len() > 4, "{} chunks", first.chunks.len());
        let (gz, xz) = first.compress(dir.path()).unwrap();
        assert_eq!(gunzip(&gz), first.text());
        assert_eq!(unxz(&xz), first.text());
        let cached = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(cached, first.chunks.len() * 2);
        let status = std::process::Command::new("xz")
            .args(["--test", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child.stdin.take().unwrap().write_all(&xz)?;
                child.wait()
            });
        if let Ok(status) = status {
            assert!(status.success(), "xz --test accepts the stream");
        }

        list.insert(1000, ("pkg00999a".into(), "Package: pkg00999a\n".into()));
        let second = chunked(&list);
        let before: HashSet<String> = first.chunks.iter().cloned().collect();
        let changed = second
            .chunks
            .iter()
            .filter(|c| !before.contains(*c))
            .count();
        assert!(changed <= 2, "{changed} chunks changed");
        let (gz, xz) = second.compress(dir.path()).unwrap();
        assert_eq!(unxz(&xz), second.text());
        assert_eq!(gunzip(&gz), second.text());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            second.chunks.len() * 2,
            "unused cache entries are removed"
        );
    }

    #[test]
    fn an_empty_index_compresses_to_valid_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let (gz, xz) = Chunked::default().compress(dir.path()).unwrap();
        assert!(gunzip(&gz).is_empty());
        assert!(unxz(&xz).is_empty());
    }
}
