//! Secrets kept encrypted in memory: customer session credentials are sealed with
//! AES-256-GCM (AWS-LC, through `aws-lc-rs`) under a key made at random once per process,
//! and opened only for the moment a request is signed ([`SealedCredentialsProvider`]).
//!
//! What this protects against: a read of the process's memory between requests (a heap
//! dump, a memory-disclosure bug that leaks a buffer, swap) finds ciphertext, not the
//! secret access key or the session token (`tests/sealed_memory.rs` searches the memory of
//! a running process for planted values). What it does not: the key lives in the same
//! process, so an attacker who can read all of its memory at will can find the key and
//! open the secrets; while a request is signed the plaintext exists for that moment (in
//! the SDK's signer and the request's `x-amz-security-token` header), and the EKS bearer
//! token of an analysis (a presigned URL embedding the session token) lives for that
//! analysis. See SECURITY.md, "Credentials in memory".

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials};
use aws_lc_rs::aead::{AES_256_GCM, Aad, Nonce, RandomizedNonceKey};
use secrecy::zeroize::{Zeroize, Zeroizing};

/// Binds every sealed value to its use here (AES-GCM associated data).
const AAD: &[u8] = b"crossguard sealed secret v1";

/// The per-process sealing key, made from 32 random bytes on first use; the bytes are
/// zeroized once AWS-LC holds the key.
fn key() -> &'static RandomizedNonceKey {
    static KEY: OnceLock<RandomizedNonceKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut bytes = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(bytes.as_mut()).expect("the system random source works");
        RandomizedNonceKey::new(&AES_256_GCM, bytes.as_ref()).expect("a 32-byte AES-256 key")
    })
}

/// A secret string held as AES-256-GCM ciphertext under the per-process key. Never
/// `Display`/`Serialize`; `Debug` prints nothing of it; cloning copies ciphertext only.
#[derive(Clone)]
pub struct Sealed {
    nonce: [u8; 12],
    /// Ciphertext followed by the 16-byte tag.
    ciphertext: Arc<[u8]>,
}

impl Sealed {
    /// Seal `plain`, then zeroize it.
    pub fn seal(mut plain: String) -> Sealed {
        let sealed = Sealed::seal_bytes(plain.as_bytes());
        plain.zeroize();
        sealed
    }

    fn seal_bytes(plain: &[u8]) -> Sealed {
        // Room for the tag up front: the buffer never reallocates while it holds plaintext.
        let mut buffer = Vec::with_capacity(plain.len() + AES_256_GCM.tag_len());
        buffer.extend_from_slice(plain);
        let nonce = key()
            .seal_in_place_append_tag(Aad::from(AAD), &mut buffer)
            .expect("AES-GCM sealing does not fail for short inputs");
        Sealed {
            nonce: *nonce.as_ref(),
            ciphertext: buffer.into(),
        }
    }

    /// The plaintext, in a buffer zeroized when dropped. Keep it only as long as needed.
    pub fn open(&self) -> Zeroizing<String> {
        let mut buffer = Zeroizing::new(self.ciphertext.to_vec());
        let len = key()
            .open_in_place(
                Nonce::assume_unique_for_key(self.nonce),
                Aad::from(AAD),
                buffer.as_mut_slice(),
            )
            .expect("a value sealed in this process opens with its key")
            .len();
        buffer.truncate(len);
        // Moves the bytes (no copy); the tag left in the spare capacity is not secret.
        let text =
            String::from_utf8(std::mem::take(&mut *buffer)).expect("only strings are sealed");
        Zeroizing::new(text)
    }
}

impl From<String> for Sealed {
    fn from(plain: String) -> Self {
        Sealed::seal(plain)
    }
}

impl From<&str> for Sealed {
    fn from(plain: &str) -> Self {
        Sealed::seal_bytes(plain.as_bytes())
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed([redacted])")
    }
}

/// An SDK credentials provider for one customer session that keeps the secret access key
/// and the session token sealed and opens them each time the SDK asks (once per request
/// when the client's identity cache is off, as it is for customer clients). The
/// [`Credentials`] it returns zeroize their strings when the signer drops them.
#[derive(Debug, Clone)]
pub struct SealedCredentialsProvider {
    access_key_id: String,
    secret_access_key: Sealed,
    session_token: Sealed,
    expiry: Option<SystemTime>,
}

impl SealedCredentialsProvider {
    /// A provider for these sealed credentials, valid until `expiry`.
    pub fn new(
        access_key_id: String,
        secret_access_key: Sealed,
        session_token: Sealed,
        expiry: Option<SystemTime>,
    ) -> Self {
        SealedCredentialsProvider {
            access_key_id,
            secret_access_key,
            session_token,
            expiry,
        }
    }

    /// Open the credentials for one signing.
    pub fn unsealed(&self) -> Credentials {
        // Moved out of the zeroizing buffers into Credentials, which zeroizes them itself.
        let secret = std::mem::take(&mut *self.secret_access_key.open());
        let token = std::mem::take(&mut *self.session_token.open());
        Credentials::new(
            self.access_key_id.clone(),
            secret,
            Some(token),
            self.expiry,
            "crossguard-sealed-session",
        )
    }
}

impl ProvideCredentials for SealedCredentialsProvider {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::ready(Ok(self.unsealed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_to_what_was_sealed_and_hold_only_ciphertext() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_string();
        let sealed = Sealed::from(secret.clone());
        assert_eq!(sealed.open().as_str(), secret);
        assert!(
            !sealed
                .ciphertext
                .windows(secret.len())
                .any(|w| w == secret.as_bytes()),
            "the sealed bytes are not the plaintext"
        );
        assert_eq!(sealed.ciphertext.len(), secret.len() + 16);
        // A fresh nonce per seal: the same secret never seals to the same bytes.
        let again = Sealed::from(secret.as_str());
        assert_ne!(sealed.ciphertext, again.ciphertext);
        assert_eq!(format!("{sealed:?}"), "Sealed([redacted])");
    }

    #[test]
    fn a_tampered_value_does_not_open() {
        let sealed = Sealed::from("token");
        let mut bytes = sealed.ciphertext.to_vec();
        bytes[0] ^= 1;
        let tampered = Sealed {
            nonce: sealed.nonce,
            ciphertext: bytes.into(),
        };
        let opened = std::panic::catch_unwind(|| tampered.open());
        assert!(opened.is_err(), "AES-GCM refuses a modified ciphertext");
    }

    #[test]
    fn the_provider_opens_the_credentials_for_each_signing() {
        let provider = SealedCredentialsProvider::new(
            "ASIAEXAMPLE".into(),
            Sealed::from("secret-key"),
            Sealed::from("session-token"),
            None,
        );
        let creds = provider.unsealed();
        assert_eq!(creds.access_key_id(), "ASIAEXAMPLE");
        assert_eq!(creds.secret_access_key(), "secret-key");
        assert_eq!(creds.session_token(), Some("session-token"));
    }
}
