//! A software authenticator for tests: it makes real P-256 credentials and signs real
//! assertions, with switches to misbehave. Compiled for this crate's unit tests and, with the
//! `soft-authenticator` feature, for other crates' tests (the HTTP integration tests drive the
//! passkey endpoints with it). It is never a way to log in: it only holds a key the way a
//! phone or a security key would.

use super::cbor::enc;
use crate::b64;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::Generate;
use rand::CryptoRng;
use sha2::{Digest, Sha256};

/// A software passkey authenticator (tests only).
#[derive(Debug, Clone)]
pub struct SoftAuthenticator {
    pub key: SigningKey,
    pub credential_id: Vec<u8>,
    pub rp_id: String,
    pub counter: u32,
    pub user_present: bool,
    pub user_verified: bool,
    /// When false the counter stays 0, as many synced passkeys do.
    pub counts: bool,
    /// Emit high-S signatures.
    pub high_s: bool,
    pub attestation_format: &'static str,
}

impl SoftAuthenticator {
    /// A new credential for the relying party `rp_id`.
    pub fn new(rng: &mut impl CryptoRng, rp_id: &str) -> Self {
        let mut id = vec![0u8; 16];
        rng.fill_bytes(&mut id);
        Self {
            key: SigningKey::generate_from_rng(rng),
            credential_id: id,
            rp_id: rp_id.to_owned(),
            counter: 0,
            user_present: true,
            user_verified: true,
            counts: true,
            high_s: false,
            attestation_format: "none",
        }
    }

    fn client_data(kind: &str, challenge: &[u8], origin: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "type": kind,
            "challenge": b64::encode(challenge),
            "origin": origin,
            "crossOrigin": false,
        }))
        // Serialising a `Value` made of strings and a bool cannot fail.
        .unwrap_or_default()
    }

    fn auth_data(&self, attested: bool) -> Vec<u8> {
        let mut d = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        let mut flags = 0u8;
        if self.user_present {
            flags |= 0x01;
        }
        if self.user_verified {
            flags |= 0x04;
        }
        if attested {
            flags |= 0x40;
        }
        d.push(flags);
        d.extend(self.counter.to_be_bytes());
        if attested {
            d.extend([0u8; 16]);
            d.extend((self.credential_id.len() as u16).to_be_bytes());
            d.extend(&self.credential_id);
            let point = self.key.verifying_key().to_sec1_point(false);
            let raw = point.as_bytes();
            enc::map(&mut d, 5);
            enc::int(&mut d, 1);
            enc::int(&mut d, 2);
            enc::int(&mut d, 3);
            enc::int(&mut d, -7);
            enc::int(&mut d, -1);
            enc::int(&mut d, 1);
            enc::int(&mut d, -2);
            enc::bytes(&mut d, &raw[1..33]);
            enc::int(&mut d, -3);
            enc::bytes(&mut d, &raw[33..65]);
        }
        d
    }

    /// `navigator.credentials.create`: (clientDataJSON, attestationObject).
    pub fn create(&mut self, challenge: &[u8], origin: &str) -> (Vec<u8>, Vec<u8>) {
        let cdj = Self::client_data("webauthn.create", challenge, origin);
        let ad = self.auth_data(true);
        let mut att = Vec::new();
        enc::map(&mut att, 3);
        enc::text(&mut att, "fmt");
        enc::text(&mut att, self.attestation_format);
        enc::text(&mut att, "attStmt");
        enc::map(&mut att, 0);
        enc::text(&mut att, "authData");
        enc::bytes(&mut att, &ad);
        (cdj, att)
    }

    /// `navigator.credentials.get`: (clientDataJSON, authenticatorData, DER signature).
    pub fn get(&mut self, challenge: &[u8], origin: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        if self.counts {
            self.counter += 1;
        }
        let cdj = Self::client_data("webauthn.get", challenge, origin);
        let ad = self.auth_data(false);
        let mut msg = ad.clone();
        msg.extend(Sha256::digest(&cdj));
        let mut sig: Signature = self.key.sign(&msg);
        if self.high_s {
            sig = sig.normalize_s();
            let (r, s) = sig.split_scalars();
            let neg = -*s;
            // r and −s are non-zero scalars, so this cannot fail; keep the low-S one if it did.
            sig = Signature::from_scalars(r.to_bytes(), neg.to_bytes()).unwrap_or(sig);
        }
        (cdj, ad, sig.to_der().as_bytes().to_vec())
    }
}
