//! The sealed object format: AES-256-GCM under a tenant's data key, in chunks (the STREAM
//! construction of Hoang, Reyhanitabar, Rogaway and Vizár, "Online Authenticated-Encryption
//! and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015), so that objects written in parts
//! are sealed as they are written and a reader detects truncated, reordered or dropped
//! chunks.
//!
//! Layout of a sealed object:
//!
//! ```text
//! magic "CGSE" | version 1 | key-id length (1 byte) | key id (ASCII) |
//! nonce prefix (7 random bytes) | chunk size (u32, big endian) | chunk 0 | chunk 1 | …
//! ```
//!
//! Chunk `i` is `AES-256-GCM(key, nonce = prefix ‖ i (u32 BE) ‖ last (0 or 1), aad, data)`:
//! every chunk but the last holds exactly `chunk size` plaintext bytes; the last holds 0 to
//! `chunk size` bytes and is marked in its nonce, so cutting the object at a chunk boundary
//! fails too. The associated data binds the header (key id, chunk size), the tenant, the
//! kind and the object key: an object copied to another tenant's prefix or renamed does not
//! open. No primitive here is our own: aws-lc-rs does AES-GCM and draws the random bytes.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

/// The first bytes of every sealed object ("crossguard sealed envelope"); no JSON or JSON
/// lines object (what crossguard wrote before encryption) starts with them.
pub const MAGIC: &[u8; 4] = b"CGSE";
/// The format version this build writes and reads.
pub const VERSION: u8 = 1;
/// Plaintext bytes per chunk: 64 KiB, so a chunk's 16-byte tag costs 0.02 % and a writer
/// buffers at most one chunk beyond what it uploads.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// AES-GCM tag length in bytes.
const TAG_LEN: usize = 16;
/// Length of the random nonce prefix (12-byte nonce minus a 4-byte counter and a flag).
const PREFIX_LEN: usize = 7;

/// A tenant's 256-bit data key, wiped from memory when dropped.
pub type KeyBytes = Zeroizing<[u8; 32]>;

/// A sealed object could not be opened (or a plaintext could not be sealed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The header is cut short or malformed.
    #[error("sealed object header is malformed: {0}")]
    Header(&'static str),
    /// A version this build does not read.
    #[error("sealed object format version {0} is not supported (this build reads {VERSION})")]
    Version(u8),
    /// Authentication failed: wrong key, another tenant's or another key's object, a moved
    /// or renamed object, or tampered, truncated or reordered chunks.
    #[error(
        "sealed object failed authentication at chunk {chunk}: wrong key, moved or renamed object, or tampered/truncated data"
    )]
    Open {
        /// The index of the chunk that did not open.
        chunk: u32,
    },
    /// The object is longer than the format allows (2^32 chunks).
    #[error("sealed object has too many chunks")]
    TooLong,
    /// The random number generator failed.
    #[error("drawing random bytes failed")]
    Random,
}

/// Whether `bytes` is a sealed object (starts with [`MAGIC`]).
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// The key id named in a sealed object's header.
pub fn key_id(bytes: &[u8]) -> Result<&str, EnvelopeError> {
    Header::parse(bytes).map(|(h, _)| h.key_id)
}

/// Associated data that binds a sealed object to where it belongs.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The tenant (CustomerAccount UID).
    pub tenant: &'a str,
    /// The kind of object (`reports`, `snapshots`, `audit`, `state`).
    pub kind: &'a str,
    /// The object key in the store.
    pub key: &'a str,
}

struct Header<'a> {
    key_id: &'a str,
    prefix: [u8; PREFIX_LEN],
    chunk_size: usize,
    len: usize,
}

impl<'a> Header<'a> {
    fn parse(bytes: &'a [u8]) -> Result<(Header<'a>, &'a [u8]), EnvelopeError> {
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or(EnvelopeError::Header("no magic"))?;
        let (&version, rest) = rest
            .split_first()
            .ok_or(EnvelopeError::Header("cut short"))?;
        if version != VERSION {
            return Err(EnvelopeError::Version(version));
        }
        let (&id_len, rest) = rest
            .split_first()
            .ok_or(EnvelopeError::Header("cut short"))?;
        let id_len = usize::from(id_len);
        if rest.len() < id_len + PREFIX_LEN + 4 {
            return Err(EnvelopeError::Header("cut short"));
        }
        let key_id = std::str::from_utf8(&rest[..id_len])
            .map_err(|_| EnvelopeError::Header("key id is not UTF-8"))?;
        let rest = &rest[id_len..];
        let prefix: [u8; PREFIX_LEN] = rest[..PREFIX_LEN].try_into().expect("length checked");
        let size: [u8; 4] = rest[PREFIX_LEN..PREFIX_LEN + 4]
            .try_into()
            .expect("length checked");
        let chunk_size = u32::from_be_bytes(size) as usize;
        if chunk_size == 0 {
            return Err(EnvelopeError::Header("chunk size 0"));
        }
        let len = MAGIC.len() + 2 + id_len + PREFIX_LEN + 4;
        Ok((
            Header {
                key_id,
                prefix,
                chunk_size,
                len,
            },
            &rest[PREFIX_LEN + 4..],
        ))
    }
}

fn aad(header: &[u8], binding: Binding<'_>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + binding.key.len() + 80);
    aad.extend_from_slice(header);
    for part in [binding.tenant, binding.kind, binding.key] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

fn nonce(prefix: &[u8; PREFIX_LEN], index: u32, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[..PREFIX_LEN].copy_from_slice(prefix);
    n[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&index.to_be_bytes());
    n[NONCE_LEN - 1] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

fn aead_key(key: &KeyBytes) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.as_slice()).expect("32-byte AES-256 key"))
}

/// Seals a plaintext chunk by chunk: feed it with [`Sealer::push`], end with
/// [`Sealer::finish`]. Each call returns the sealed bytes ready to append to the object.
pub struct Sealer {
    key: LessSafeKey,
    prefix: [u8; PREFIX_LEN],
    aad: Vec<u8>,
    index: u32,
    /// Plaintext not yet sealed: at most one chunk, kept back so that the last chunk is
    /// only sealed (and marked last) by `finish`.
    pending: Zeroizing<Vec<u8>>,
    header: Option<Vec<u8>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("index", &self.index)
            .finish()
    }
}

impl Sealer {
    /// Start sealing an object under the data key `key` named `key_id`, bound to `binding`.
    pub fn new(
        key: &KeyBytes,
        key_id: &str,
        binding: Binding<'_>,
    ) -> Result<Sealer, EnvelopeError> {
        let id_len =
            u8::try_from(key_id.len()).map_err(|_| EnvelopeError::Header("key id too long"))?;
        let mut prefix = [0u8; PREFIX_LEN];
        aws_lc_rs::rand::fill(&mut prefix).map_err(|_| EnvelopeError::Random)?;
        let mut header = Vec::with_capacity(MAGIC.len() + 2 + key_id.len() + PREFIX_LEN + 4);
        header.extend_from_slice(MAGIC);
        header.push(VERSION);
        header.push(id_len);
        header.extend_from_slice(key_id.as_bytes());
        header.extend_from_slice(&prefix);
        header.extend_from_slice(&(CHUNK_SIZE as u32).to_be_bytes());
        Ok(Sealer {
            key: aead_key(key),
            prefix,
            aad: aad(&header, binding),
            index: 0,
            pending: Zeroizing::new(Vec::with_capacity(CHUNK_SIZE)),
            header: Some(header),
        })
    }

    fn seal_chunk(
        &mut self,
        data: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), EnvelopeError> {
        let start = out.len();
        out.extend_from_slice(data);
        let mut tail = out.split_off(start);
        self.key
            .seal_in_place_append_tag(
                nonce(&self.prefix, self.index, last),
                Aad::from(self.aad.as_slice()),
                &mut tail,
            )
            .map_err(|_| EnvelopeError::TooLong)?;
        out.extend_from_slice(&tail);
        self.index = self.index.checked_add(1).ok_or(EnvelopeError::TooLong)?;
        Ok(())
    }

    /// Add plaintext; returns the sealed bytes of every chunk completed (empty while the
    /// pending chunk fills; the header comes with the first output).
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let mut out = self.header.take().unwrap_or_default();
        while !bytes.is_empty() {
            if self.pending.len() == CHUNK_SIZE {
                let chunk = std::mem::take(&mut *self.pending);
                let chunk = Zeroizing::new(chunk);
                self.seal_chunk(&chunk, false, &mut out)?;
                self.pending.reserve(CHUNK_SIZE);
            }
            let take = (CHUNK_SIZE - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        Ok(out)
    }

    /// Seal what is pending as the last chunk; returns the remaining sealed bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, EnvelopeError> {
        let mut out = self.header.take().unwrap_or_default();
        let last = std::mem::take(&mut *self.pending);
        let last = Zeroizing::new(last);
        self.seal_chunk(&last, true, &mut out)?;
        Ok(out)
    }
}

/// Seal `plaintext` in one go (what [`Sealer`] produces for the same input).
pub fn seal(
    key: &KeyBytes,
    key_id: &str,
    binding: Binding<'_>,
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let mut sealer = Sealer::new(key, key_id, binding)?;
    let mut out =
        Vec::with_capacity(plaintext.len() + (plaintext.len() / CHUNK_SIZE + 1) * TAG_LEN + 64);
    out.extend(sealer.push(plaintext)?);
    out.extend(sealer.finish()?);
    Ok(out)
}

/// Open a sealed object with the data key its header names (see [`key_id`]).
pub fn open(key: &KeyBytes, binding: Binding<'_>, sealed: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let (header, mut body) = Header::parse(sealed)?;
    let aad = aad(&sealed[..header.len], binding);
    let key = aead_key(key);
    let mut out = Vec::with_capacity(body.len());
    let mut index: u32 = 0;
    let full = header.chunk_size + TAG_LEN;
    loop {
        let last = body.len() <= full;
        let (chunk, rest) = body.split_at(body.len().min(full));
        let mut buf = chunk.to_vec();
        let plain = key
            .open_in_place(
                nonce(&header.prefix, index, last),
                Aad::from(aad.as_slice()),
                &mut buf,
            )
            .map_err(|_| EnvelopeError::Open { chunk: index })?;
        out.extend_from_slice(plain);
        if last {
            return Ok(out);
        }
        body = rest;
        index = index.checked_add(1).ok_or(EnvelopeError::TooLong)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> KeyBytes {
        Zeroizing::new([b; 32])
    }
    const AT: Binding<'static> = Binding {
        tenant: "uid-a",
        kind: "reports",
        key: "tenants/uid-a/reports/ns/prod/20261123T120000Z.json",
    };

    fn sealed_in_parts(plain: &[u8], parts: &[usize]) -> Vec<u8> {
        let mut s = Sealer::new(&key(1), "k1", AT).unwrap();
        let mut out = Vec::new();
        let mut rest = plain;
        for &p in parts {
            let (a, b) = rest.split_at(p.min(rest.len()));
            out.extend(s.push(a).unwrap());
            rest = b;
        }
        out.extend(s.push(rest).unwrap());
        out.extend(s.finish().unwrap());
        out
    }

    #[test]
    fn round_trips_at_every_chunk_boundary_and_in_any_parts() {
        for len in [
            0,
            1,
            CHUNK_SIZE - 1,
            CHUNK_SIZE,
            CHUNK_SIZE + 1,
            3 * CHUNK_SIZE,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let one = seal(&key(1), "k1", AT, &plain).unwrap();
            assert!(is_sealed(&one));
            assert_eq!(key_id(&one).unwrap(), "k1");
            assert_eq!(open(&key(1), AT, &one).unwrap(), plain, "len {len}");
            let parts = sealed_in_parts(&plain, &[7, CHUNK_SIZE, 1]);
            assert_eq!(parts.len(), one.len());
            assert_eq!(
                open(&key(1), AT, &parts).unwrap(),
                plain,
                "len {len} in parts"
            );
        }
    }

    #[test]
    fn the_plaintext_does_not_appear_and_nonces_differ() {
        let plain = b"{\"secret\":\"demo-planted-secret\"}";
        let a = seal(&key(1), "k1", AT, plain).unwrap();
        let b = seal(&key(1), "k1", AT, plain).unwrap();
        assert!(!a.windows(plain.len()).any(|w| w == plain));
        assert_ne!(a, b, "a fresh random nonce prefix per object");
    }

    #[test]
    fn a_moved_renamed_or_rekeyed_object_does_not_open() {
        let sealed = seal(&key(1), "k1", AT, b"report").unwrap();
        let moved = Binding {
            tenant: "uid-b",
            key: "tenants/uid-b/reports/ns/prod/20261123T120000Z.json",
            ..AT
        };
        let renamed = Binding {
            key: "tenants/uid-a/reports/ns/prod/20261124T120000Z.json",
            ..AT
        };
        let other_kind = Binding {
            kind: "snapshots",
            ..AT
        };
        for b in [moved, renamed, other_kind] {
            assert_eq!(
                open(&key(1), b, &sealed),
                Err(EnvelopeError::Open { chunk: 0 })
            );
        }
        assert_eq!(
            open(&key(2), AT, &sealed),
            Err(EnvelopeError::Open { chunk: 0 })
        );
        // The key id is authenticated too: pointing the header at another key fails.
        let mut relabelled = sealed.clone();
        relabelled[6] = b'x';
        assert!(open(&key(1), AT, &relabelled).is_err());
    }

    #[test]
    fn truncation_reordering_and_tampering_are_detected() {
        let plain: Vec<u8> = (0..3 * CHUNK_SIZE + 10).map(|i| (i % 253) as u8).collect();
        let sealed = seal(&key(1), "k1", AT, &plain).unwrap();
        let header = MAGIC.len() + 2 + 2 + PREFIX_LEN + 4;
        let full = CHUNK_SIZE + TAG_LEN;
        // Cut at a chunk boundary: the new last chunk was not sealed as last.
        let cut = &sealed[..header + 2 * full];
        assert_eq!(
            open(&key(1), AT, cut),
            Err(EnvelopeError::Open { chunk: 1 })
        );
        // Cut inside a chunk.
        assert!(open(&key(1), AT, &sealed[..sealed.len() - 1]).is_err());
        // Header only.
        assert!(open(&key(1), AT, &sealed[..header]).is_err());
        // Two chunks swapped.
        let mut swapped = sealed[..header].to_vec();
        swapped.extend_from_slice(&sealed[header + full..header + 2 * full]);
        swapped.extend_from_slice(&sealed[header..header + full]);
        swapped.extend_from_slice(&sealed[header + 2 * full..]);
        assert_eq!(
            open(&key(1), AT, &swapped),
            Err(EnvelopeError::Open { chunk: 0 })
        );
        // A chunk dropped.
        let mut dropped = sealed[..header + full].to_vec();
        dropped.extend_from_slice(&sealed[header + 2 * full..]);
        assert_eq!(
            open(&key(1), AT, &dropped),
            Err(EnvelopeError::Open { chunk: 1 })
        );
        // One bit flipped.
        let mut flipped = sealed.clone();
        flipped[header + 5] ^= 1;
        assert_eq!(
            open(&key(1), AT, &flipped),
            Err(EnvelopeError::Open { chunk: 0 })
        );
        // Another version.
        let mut v2 = sealed.clone();
        v2[4] = 2;
        assert_eq!(open(&key(1), AT, &v2), Err(EnvelopeError::Version(2)));
    }
}
