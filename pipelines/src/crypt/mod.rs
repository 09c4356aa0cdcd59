//! Encryption at rest for recording files: AES-256-GCM in fixed-size chunks that can be
//! rewritten in place.
//!
//! ```text
//! header (80 bytes): "CAPSENC1" | chunk length u32 LE | master key id (8)
//!                    | wrap nonce (12) | file key sealed by the master key (32 + 16)
//! chunk i at 80 + i * (12 + CHUNK_LEN + 16): nonce (12) | ciphertext | tag (16)
//! ```
//!
//! - **Each file has its own key**, random, sealed ("wrapped") by a master key. The header
//!   names the master key by its [`KeyId`], so a [`Keyring`] holding old master keys still
//!   opens files written before a rotation, and [`rewrap`] moves a file to the current key by
//!   rewriting its header only.
//! - **Chunks are independent.** Every chunk is sealed with its index as associated data (no
//!   reordering) and a fresh random nonce each time it is written: a muxer appends to the last
//!   chunk many times and seeks back to patch headers, and each write re-seals the chunk it
//!   touches ([`EncryptedWriter`]). Random access for reads and Range downloads is a chunk
//!   decryption ([`EncryptedReader`]).
//! - **A crash leaves a readable prefix.** Writes go straight to the file (no buffering), each
//!   one a whole sealed chunk, so a killed process leaves every chunk it wrote authentic. A
//!   last chunk torn by a power loss fails authentication and is left out of the plaintext
//!   ([`EncryptedReader::torn_tail`]); salvage then works on the prefix.
//! - Only the plaintext's length (to within a chunk) and the key id are visible on disk.

pub mod elements;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Length of a master key and of a file key: AES-256.
pub const KEY_LEN: usize = 32;
/// Plaintext bytes per chunk (the last chunk may hold fewer).
pub const CHUNK_LEN: usize = 16 * 1024;

const MAGIC: &[u8; 8] = b"CAPSENC1";
const TAG_LEN: usize = 16;
const HEADER_LEN: u64 = 80;
/// Bytes a chunk takes on disk beyond its plaintext.
const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
const SLOT_LEN: u64 = (CHUNK_LEN + OVERHEAD) as u64;
/// Associated data of the sealed file key.
const WRAP_AAD: &[u8] = b"CAPSENC1 file key";

/// The public name of a master key: the first 8 bytes of SHA-256 over a label and the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 8]);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({self})")
    }
}

struct MasterKey {
    id: KeyId,
    key: LessSafeKey,
}

impl MasterKey {
    fn new(bytes: &[u8; KEY_LEN]) -> Self {
        let mut label = b"capstan master key id\0".to_vec();
        label.extend_from_slice(bytes);
        let digest = ring::digest::digest(&ring::digest::SHA256, &label);
        let mut id = [0; 8];
        id.copy_from_slice(&digest.as_ref()[..8]);
        MasterKey {
            id: KeyId(id),
            key: aes_key(bytes),
        }
    }
}

/// The master keys: the current one, which new files are written with, and old ones that
/// files written before a rotation still name. Cheap to clone.
#[derive(Clone)]
pub struct Keyring {
    keys: Arc<Vec<MasterKey>>,
}

impl Keyring {
    /// A keyring writing with `current` and also opening files sealed by any of `old`.
    pub fn new(current: &[u8; KEY_LEN], old: &[[u8; KEY_LEN]]) -> Self {
        let keys = std::iter::once(current).chain(old).map(MasterKey::new);
        Keyring {
            keys: Arc::new(keys.collect()),
        }
    }

    /// The id of the key new files are sealed with.
    pub fn current(&self) -> KeyId {
        self.keys[0].id
    }

    /// Every key's id, the current one first.
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|k| k.id).collect()
    }

    fn find(&self, id: KeyId) -> Option<&MasterKey> {
        self.keys.iter().find(|k| k.id == id)
    }
}

impl PartialEq for Keyring {
    fn eq(&self, other: &Self) -> bool {
        self.ids() == other.ids()
    }
}

impl Eq for Keyring {}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("ids", &self.ids()).finish()
    }
}

/// Why an encrypted file could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: sealed by master key {id}, which is not configured (configured: {known})", path.display())]
    UnknownKey {
        path: PathBuf,
        id: KeyId,
        known: String,
    },
    #[error("{}: the file key does not open with master key {id}: the header is corrupt", path.display())]
    BadHeader { path: PathBuf, id: KeyId },
    #[error("{}: not an encrypted recording file", path.display())]
    NotEncrypted { path: PathBuf },
    #[error("{}: chunk {index} fails authentication: the file is corrupt", path.display())]
    BadChunk { path: PathBuf, index: u64 },
    #[error("{}: the file is encrypted and no encryption key is configured", path.display())]
    NoKeyring { path: PathBuf },
}

impl From<CryptError> for io::Error {
    fn from(e: CryptError) -> Self {
        match e {
            CryptError::Io { source, .. } => source,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

fn aes_key(bytes: &[u8; KEY_LEN]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("32 bytes is an AES-256 key"))
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source works");
    bytes
}

/// The parsed header: the master key id, and the file key still sealed.
struct Header {
    id: KeyId,
    nonce: [u8; NONCE_LEN],
    sealed: [u8; KEY_LEN + TAG_LEN],
}

impl Header {
    fn seal(keyring: &Keyring, file_key: &[u8; KEY_LEN]) -> Self {
        let master = &keyring.keys[0];
        let nonce = random::<NONCE_LEN>();
        let mut sealed = [0; KEY_LEN + TAG_LEN];
        sealed[..KEY_LEN].copy_from_slice(file_key);
        let tag = master
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(WRAP_AAD),
                &mut sealed[..KEY_LEN],
            )
            .expect("sealing 32 bytes cannot fail");
        sealed[KEY_LEN..].copy_from_slice(tag.as_ref());
        Header {
            id: master.id,
            nonce,
            sealed,
        }
    }

    fn bytes(&self) -> [u8; HEADER_LEN as usize] {
        let mut out = [0; HEADER_LEN as usize];
        out[..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&(CHUNK_LEN as u32).to_le_bytes());
        out[12..20].copy_from_slice(&self.id.0);
        out[20..32].copy_from_slice(&self.nonce);
        out[32..].copy_from_slice(&self.sealed);
        out
    }

    /// `None` when the bytes are not an encrypted file's header.
    fn parse(bytes: &[u8; HEADER_LEN as usize]) -> Option<Self> {
        if &bytes[..8] != MAGIC || bytes[8..12] != (CHUNK_LEN as u32).to_le_bytes() {
            return None;
        }
        Some(Header {
            id: KeyId(bytes[12..20].try_into().ok()?),
            nonce: bytes[20..32].try_into().ok()?,
            sealed: bytes[32..].try_into().ok()?,
        })
    }

    fn read(file: &File) -> io::Result<Option<Self>> {
        let mut bytes = [0; HEADER_LEN as usize];
        match file.read_exact_at(&mut bytes, 0) {
            Ok(()) => Ok(Header::parse(&bytes)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Unseals the file key with whichever of the keyring's keys sealed it.
    fn file_key(&self, keyring: &Keyring, path: &Path) -> Result<[u8; KEY_LEN], CryptError> {
        let master = keyring
            .find(self.id)
            .ok_or_else(|| CryptError::UnknownKey {
                path: path.to_owned(),
                id: self.id,
                known: keyring
                    .ids()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let mut sealed = self.sealed;
        let key = master
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(self.nonce),
                Aad::from(WRAP_AAD),
                &mut sealed,
            )
            .map_err(|_| CryptError::BadHeader {
                path: path.to_owned(),
                id: self.id,
            })?;
        Ok(key.try_into().expect("a sealed 32-byte key"))
    }
}

/// The plaintext length of an encrypted file of `size` bytes on disk, assuming every chunk
/// is whole.
fn plain_len_of(size: u64) -> u64 {
    let body = size.saturating_sub(HEADER_LEN);
    let (slots, rest) = (body / SLOT_LEN, body % SLOT_LEN);
    slots * CHUNK_LEN as u64 + rest.saturating_sub(OVERHEAD as u64)
}

fn slot_offset(index: u64) -> u64 {
    HEADER_LEN + index * SLOT_LEN
}

fn chunk_aad(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Whether `path` starts with an encrypted file's header.
pub fn is_encrypted(path: &Path) -> io::Result<bool> {
    Ok(Header::read(&File::open(path)?)?.is_some())
}

/// The length of the media a file holds: its plaintext's for an encrypted file, its size for
/// another. No chunk is authenticated.
pub fn media_len(path: &Path) -> io::Result<u64> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    Ok(match Header::read(&file)? {
        Some(_) => plain_len_of(size),
        None => size,
    })
}

/// Writes an encrypted file at any offset, as a muxer writing to a seekable sink does.
pub struct EncryptedWriter {
    file: File,
    path: PathBuf,
    key: LessSafeKey,
    /// Where the next write goes.
    position: u64,
    /// Plaintext length so far.
    len: u64,
    /// The plaintext of the chunk written last, so appending does not read it back.
    last: Option<(u64, Vec<u8>)>,
}

impl EncryptedWriter {
    /// Creates (or truncates) `path` with a new file key sealed by the keyring's current key.
    pub fn create(path: &Path, keyring: &Keyring) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let file_key = random::<KEY_LEN>();
        file.write_all_at(&Header::seal(keyring, &file_key).bytes(), 0)?;
        Ok(EncryptedWriter {
            file,
            path: path.to_owned(),
            key: aes_key(&file_key),
            position: 0,
            len: 0,
            last: None,
        })
    }

    /// Moves the write position (the next write may overwrite media already written).
    pub fn seek(&mut self, position: u64) {
        self.position = position;
    }

    /// The plaintext length written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes `data` at the write position and moves it past; each chunk touched is sealed
    /// again and written at once.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let index = self.position / CHUNK_LEN as u64;
            let within = (self.position % CHUNK_LEN as u64) as usize;
            let n = data.len().min(CHUNK_LEN - within);
            let mut plain = self.chunk(index)?;
            if plain.len() < within + n {
                plain.resize(within + n, 0);
            }
            plain[within..within + n].copy_from_slice(&data[..n]);
            self.put_chunk(index, &plain)?;
            self.len = self.len.max(index * CHUNK_LEN as u64 + plain.len() as u64);
            self.last = Some((index, plain));
            self.position += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    /// The plaintext of chunk `index` as written so far (empty past the end).
    fn chunk(&mut self, index: u64) -> io::Result<Vec<u8>> {
        if let Some((last, plain)) = self.last.take() {
            if last == index {
                return Ok(plain);
            }
        }
        if index * (CHUNK_LEN as u64) >= self.len {
            return Ok(Vec::new());
        }
        let len = (self.len - index * CHUNK_LEN as u64).min(CHUNK_LEN as u64) as usize;
        Ok(open_chunk(&self.file, &self.key, &self.path, index, len)?)
    }

    fn put_chunk(&self, index: u64, plain: &[u8]) -> io::Result<()> {
        let nonce = random::<NONCE_LEN>();
        let mut slot = Vec::with_capacity(plain.len() + OVERHEAD);
        slot.extend_from_slice(&nonce);
        slot.extend_from_slice(plain);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(chunk_aad(index)),
                &mut slot[NONCE_LEN..],
            )
            .map_err(|_| io::Error::other("AES-GCM sealing failed"))?;
        slot.extend_from_slice(tag.as_ref());
        self.file.write_all_at(&slot, slot_offset(index))
    }
}

/// Reads and authenticates chunk `index`, `len` plaintext bytes long.
fn open_chunk(
    file: &File,
    key: &LessSafeKey,
    path: &Path,
    index: u64,
    len: usize,
) -> Result<Vec<u8>, CryptError> {
    let mut slot = vec![0; len + OVERHEAD];
    file.read_exact_at(&mut slot, slot_offset(index))
        .map_err(|source| CryptError::Io {
            path: path.to_owned(),
            source,
        })?;
    let nonce: [u8; NONCE_LEN] = slot[..NONCE_LEN].try_into().expect("12 bytes");
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(chunk_aad(index)),
            &mut slot[NONCE_LEN..],
        )
        .map_err(|_| CryptError::BadChunk {
            path: path.to_owned(),
            index,
        })?;
    Ok(plain.to_vec())
}

/// Reads an encrypted file's plaintext at any offset; also a [`Read`] + [`Seek`].
pub struct EncryptedReader {
    file: File,
    path: PathBuf,
    key: LessSafeKey,
    len: u64,
    torn_tail: bool,
    position: u64,
    /// The chunk read last.
    cached: Option<(u64, Vec<u8>)>,
}

impl EncryptedReader {
    /// Opens `path` with whichever of the keyring's keys sealed it. The last chunk is
    /// authenticated at once: when it is torn it is left out of the plaintext.
    pub fn open(path: &Path, keyring: &Keyring) -> Result<Self, CryptError> {
        let io = |source| CryptError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let header = Header::read(&file)
            .map_err(io)?
            .ok_or_else(|| CryptError::NotEncrypted {
                path: path.to_owned(),
            })?;
        let key = aes_key(&header.file_key(keyring, path)?);
        let size = file.metadata().map_err(io)?.len();
        let mut reader = EncryptedReader {
            file,
            path: path.to_owned(),
            key,
            len: plain_len_of(size),
            torn_tail: false,
            position: 0,
            cached: None,
        };
        if reader.len > 0 {
            let last = (reader.len - 1) / CHUNK_LEN as u64;
            if reader.chunk(last).is_err() {
                reader.len = last * CHUNK_LEN as u64;
                reader.torn_tail = true;
            }
        }
        Ok(reader)
    }

    /// The plaintext length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the plaintext is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the last chunk on disk failed authentication and was left out.
    pub fn torn_tail(&self) -> bool {
        self.torn_tail
    }

    /// Fills `buf` from plaintext offset `offset`; returns how many bytes (0 at the end).
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, CryptError> {
        let mut done = 0;
        while done < buf.len() && offset + (done as u64) < self.len {
            let at = offset + done as u64;
            let index = at / CHUNK_LEN as u64;
            let within = (at % CHUNK_LEN as u64) as usize;
            let chunk = self.chunk(index)?;
            let n = (chunk.len() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&chunk[within..within + n]);
            done += n;
        }
        Ok(done)
    }

    fn chunk(&mut self, index: u64) -> Result<&[u8], CryptError> {
        if self.cached.as_ref().is_none_or(|(i, _)| *i != index) {
            let start = index * CHUNK_LEN as u64;
            let len = (self.len.max(start) - start).min(CHUNK_LEN as u64) as usize;
            let plain = open_chunk(&self.file, &self.key, &self.path, index, len)?;
            self.cached = Some((index, plain));
        }
        Ok(&self.cached.as_ref().expect("just cached").1)
    }
}

impl Read for EncryptedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_at(self.position, buf)?;
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for EncryptedReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.position.checked_add_signed(d),
        };
        self.position = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.position)
    }
}

/// A recording file opened for reading its media, encrypted or not.
pub enum MediaFile {
    Plain { file: File, len: u64 },
    Encrypted(Box<EncryptedReader>),
}

impl MediaFile {
    /// Opens `path`: an encrypted file needs the keyring that sealed it, another is read as is.
    pub fn open(path: &Path, keyring: Option<&Keyring>) -> Result<Self, CryptError> {
        let io = |source| CryptError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        if Header::read(&file).map_err(io)?.is_none() {
            let len = file.metadata().map_err(io)?.len();
            return Ok(MediaFile::Plain { file, len });
        }
        let keyring = keyring.ok_or_else(|| CryptError::NoKeyring {
            path: path.to_owned(),
        })?;
        Ok(MediaFile::Encrypted(Box::new(EncryptedReader::open(
            path, keyring,
        )?)))
    }

    /// The media's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            MediaFile::Plain { len, .. } => *len,
            MediaFile::Encrypted(reader) => reader.len(),
        }
    }

    /// Whether the media is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` from media offset `offset`; returns how many bytes (0 at the end).
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MediaFile::Plain { file, .. } => file.read_at(buf, offset),
            MediaFile::Encrypted(reader) => Ok(reader.read_at(offset, buf)?),
        }
    }

    /// Reads exactly `len` bytes from `offset` (less only at the end of the media).
    pub fn read_range(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; len];
        let mut done = 0;
        while done < len {
            let n = self.read_at(offset + done as u64, &mut buf[done..])?;
            if n == 0 {
                break;
            }
            done += n;
        }
        buf.truncate(done);
        Ok(buf)
    }
}

/// Seals the file key of `path` with the keyring's current master key, rewriting only the
/// header. Returns false when it already was.
pub fn rewrap(path: &Path, keyring: &Keyring) -> Result<bool, CryptError> {
    let io = |source| CryptError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let header = Header::read(&file)
        .map_err(io)?
        .ok_or_else(|| CryptError::NotEncrypted {
            path: path.to_owned(),
        })?;
    if header.id == keyring.current() {
        return Ok(false);
    }
    let file_key = header.file_key(keyring, path)?;
    let header = Header::seal(keyring, &file_key).bytes();
    file.write_all_at(&header, 0).map_err(io)?;
    file.sync_data().map_err(io)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(seed: u8) -> Keyring {
        Keyring::new(&[seed; KEY_LEN], &[])
    }

    fn read_all(path: &Path, keys: &Keyring) -> Vec<u8> {
        let mut reader = EncryptedReader::open(path, keys).unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        out
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn appends_and_seeks_back_like_a_muxer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.webm.part");
        let keys = keyring(1);
        let mut expect = Vec::new();
        let mut w = EncryptedWriter::create(&path, &keys).unwrap();
        for size in [1, 40, 16_000, 700, 40_000, 3] {
            let data = pattern(size);
            w.write(&data).unwrap();
            expect.extend_from_slice(&data);
        }
        // Patch a header across a chunk boundary, then go on appending at the end.
        let patch = [0xAB; 100];
        w.seek(CHUNK_LEN as u64 - 50);
        w.write(&patch).unwrap();
        expect[CHUNK_LEN - 50..CHUNK_LEN + 50].copy_from_slice(&patch);
        w.seek(expect.len() as u64);
        w.write(b"tail").unwrap();
        expect.extend_from_slice(b"tail");
        assert_eq!(w.len(), expect.len() as u64);
        assert_eq!(media_len(&path).unwrap(), expect.len() as u64);
        assert_eq!(read_all(&path, &keys), expect);
        let disk = std::fs::read(&path).unwrap();
        assert!(!disk.windows(64).any(|w| w == &expect[100..164]));
    }

    #[test]
    fn random_access_reads_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        let keys = keyring(2);
        let data = pattern(3 * CHUNK_LEN + 123);
        let mut w = EncryptedWriter::create(&path, &keys).unwrap();
        w.write(&data).unwrap();
        let mut file = MediaFile::open(&path, Some(&keys)).unwrap();
        assert_eq!(file.len(), data.len() as u64);
        for (offset, len) in [
            (0, 10),
            (CHUNK_LEN - 3, 9),
            (2 * CHUNK_LEN, CHUNK_LEN + 500),
        ] {
            let got = file.read_range(offset as u64, len).unwrap();
            let end = (offset + len).min(data.len());
            assert_eq!(got, data[offset..end], "{offset}+{len}");
        }
    }

    #[test]
    fn a_torn_last_chunk_leaves_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let keys = keyring(3);
        let data = pattern(2 * CHUNK_LEN + 5000);
        EncryptedWriter::create(&path, &keys)
            .unwrap()
            .write(&data)
            .unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(size - 100).unwrap();
        let reader = EncryptedReader::open(&path, &keys).unwrap();
        assert!(reader.torn_tail());
        assert_eq!(read_all(&path, &keys), data[..2 * CHUNK_LEN]);
    }

    #[test]
    fn tampering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d");
        let keys = keyring(4);
        EncryptedWriter::create(&path, &keys)
            .unwrap()
            .write(&pattern(3 * CHUNK_LEN))
            .unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut byte = [0];
        file.read_exact_at(&mut byte, slot_offset(1) + 40).unwrap();
        file.write_all_at(&[byte[0] ^ 1], slot_offset(1) + 40)
            .unwrap();
        let mut reader = EncryptedReader::open(&path, &keys).unwrap();
        let mut buf = vec![0; 3 * CHUNK_LEN];
        let err = reader.read_at(0, &mut buf).unwrap_err();
        assert!(
            matches!(err, CryptError::BadChunk { index: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn rotation_keeps_old_files_readable_and_rewrap_moves_them() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = ([5; KEY_LEN], [6; KEY_LEN]);
        let path = dir.path().join("e");
        let data = pattern(5000);
        EncryptedWriter::create(&path, &Keyring::new(&old, &[]))
            .unwrap()
            .write(&data)
            .unwrap();
        let alone = Keyring::new(&new, &[]);
        let err = EncryptedReader::open(&path, &alone).err().unwrap();
        assert!(matches!(err, CryptError::UnknownKey { .. }), "{err}");
        let rotated = Keyring::new(&new, &[old]);
        assert_eq!(read_all(&path, &rotated), data);
        assert!(rewrap(&path, &rotated).unwrap());
        assert!(!rewrap(&path, &rotated).unwrap());
        assert_eq!(read_all(&path, &alone), data);
    }

    #[test]
    fn plain_files_pass_through() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.webm");
        std::fs::write(&path, b"\x1aE\xdf\xa3 plain").unwrap();
        assert!(!is_encrypted(&path).unwrap());
        let mut file = MediaFile::open(&path, None).unwrap();
        assert_eq!(file.read_range(0, 100).unwrap(), b"\x1aE\xdf\xa3 plain");
        let sealed = dir.path().join("g");
        EncryptedWriter::create(&sealed, &keyring(7))
            .unwrap()
            .write(b"x")
            .unwrap();
        let err = MediaFile::open(&sealed, None).err().unwrap();
        assert!(matches!(err, CryptError::NoKeyring { .. }), "{err}");
    }

    #[test]
    fn key_ids_are_stable_and_distinct() {
        let a = Keyring::new(&[1; KEY_LEN], &[[2; KEY_LEN]]);
        let b = Keyring::new(&[1; KEY_LEN], &[]);
        assert_eq!(a.current(), b.current());
        assert_ne!(a.ids()[0], a.ids()[1]);
        assert_eq!(a.current().to_string().len(), 16);
    }
}
