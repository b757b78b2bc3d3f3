//! Signed checkpoints (tree heads): the hub signs, with an ES256 (P-256, SHA-256) key, the
//! tree size, the Merkle root over that many records and the time. A verifier holding the
//! public key can then prove that records were not changed, removed or reordered since.
//!
//! Signed bytes: `"dancu/audit-checkpoint/v1\n" || size u64 || root [32] || time ms i64`
//! (big-endian). The stored form is those 48 bytes of content plus the 64-byte `r || s`
//! signature.

use super::merkle::Hash;
use chrono::{DateTime, Utc};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

const CONTEXT: &[u8] = b"dancu/audit-checkpoint/v1\n";
/// Length of [`Checkpoint::to_bytes`].
pub const CHECKPOINT_BYTES: usize = 8 + 32 + 8 + 64;

/// A signed tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Number of records covered (seqs `0..tree_size`).
    pub tree_size: u64,
    /// Merkle root over their chain hashes.
    pub root: Hash,
    /// When it was made (millisecond precision is signed).
    pub time: DateTime<Utc>,
    /// ES256 signature, `r || s`.
    pub signature: [u8; 64],
}

fn signed_bytes(tree_size: u64, root: &Hash, time: DateTime<Utc>) -> Vec<u8> {
    let mut v = Vec::with_capacity(CONTEXT.len() + 48);
    v.extend_from_slice(CONTEXT);
    v.extend_from_slice(&tree_size.to_be_bytes());
    v.extend_from_slice(root);
    v.extend_from_slice(&time.timestamp_millis().to_be_bytes());
    v
}

impl Checkpoint {
    /// Signs a tree head. The time is truncated to milliseconds, as signed.
    pub fn sign(tree_size: u64, root: Hash, time: DateTime<Utc>, key: &SigningKey) -> Self {
        let time = DateTime::<Utc>::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time);
        let sig: Signature = key.sign(&signed_bytes(tree_size, &root, time));
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&sig.to_bytes());
        Self {
            tree_size,
            root,
            time,
            signature,
        }
    }

    /// Whether `key` signed exactly this content.
    pub fn verify_signature(&self, key: &VerifyingKey) -> bool {
        let Ok(sig) = Signature::from_slice(&self.signature) else {
            return false;
        };
        key.verify(&signed_bytes(self.tree_size, &self.root, self.time), &sig)
            .is_ok()
    }

    /// Fixed-length stored form.
    pub fn to_bytes(&self) -> [u8; CHECKPOINT_BYTES] {
        let mut b = [0u8; CHECKPOINT_BYTES];
        b[..8].copy_from_slice(&self.tree_size.to_be_bytes());
        b[8..40].copy_from_slice(&self.root);
        b[40..48].copy_from_slice(&self.time.timestamp_millis().to_be_bytes());
        b[48..].copy_from_slice(&self.signature);
        b
    }

    /// Parses [`Checkpoint::to_bytes`]; `None` for a wrong length or an impossible time.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != CHECKPOINT_BYTES {
            return None;
        }
        let mut size = [0u8; 8];
        size.copy_from_slice(&b[..8]);
        let mut root = [0u8; 32];
        root.copy_from_slice(&b[8..40]);
        let mut ms = [0u8; 8];
        ms.copy_from_slice(&b[40..48]);
        let time = DateTime::<Utc>::from_timestamp_millis(i64::from_be_bytes(ms))?;
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&b[48..]);
        Some(Self {
            tree_size: u64::from_be_bytes(size),
            root,
            time,
            signature,
        })
    }
}

/// When the writer should sign the next checkpoint. Records after the last checkpoint can be
/// cut from the end without detection, so this cadence bounds that window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Sign after this many new records.
    pub every_records: u64,
    /// Sign when there are new records and this much time has passed.
    pub every: chrono::TimeDelta,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            every_records: 10_000,
            every: chrono::TimeDelta::minutes(1),
        }
    }
}

impl CheckpointPolicy {
    /// Whether a checkpoint is due for a log of `log_size` records at `now`.
    pub fn due(&self, log_size: u64, last: Option<&Checkpoint>, now: DateTime<Utc>) -> bool {
        let (covered, at) = last.map_or((0, None), |c| (c.tree_size, Some(c.time)));
        let new = log_size.saturating_sub(covered);
        new > 0 && (new >= self.every_records || at.is_none_or(|t| now - t >= self.every))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use p256::elliptic_curve::Generate;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn signs_verifies_round_trips_and_rejects_changes() {
        let key = SigningKey::generate_from_rng(&mut StdRng::seed_from_u64(1));
        let other = SigningKey::generate_from_rng(&mut StdRng::seed_from_u64(2));
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let c = Checkpoint::sign(10, [7; 32], t, &key);
        assert!(c.verify_signature(key.verifying_key()));
        assert!(!c.verify_signature(other.verifying_key()));
        let back = Checkpoint::from_bytes(&c.to_bytes()).unwrap();
        assert_eq!(back, c);
        let mut bigger = c.clone();
        bigger.tree_size = 11;
        assert!(!bigger.verify_signature(key.verifying_key()));
        let mut later = c.clone();
        later.time = t + chrono::TimeDelta::seconds(1);
        assert!(!later.verify_signature(key.verifying_key()));
    }

    #[test]
    fn checkpoints_fall_due_by_count_or_time() {
        let key = SigningKey::generate_from_rng(&mut StdRng::seed_from_u64(1));
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let p = CheckpointPolicy {
            every_records: 100,
            every: chrono::TimeDelta::minutes(1),
        };
        assert!(!p.due(0, None, t));
        assert!(p.due(1, None, t));
        let c = Checkpoint::sign(50, [0; 32], t, &key);
        assert!(!p.due(50, Some(&c), t + chrono::TimeDelta::hours(1)));
        assert!(!p.due(60, Some(&c), t + chrono::TimeDelta::seconds(59)));
        assert!(p.due(60, Some(&c), t + chrono::TimeDelta::seconds(60)));
        assert!(p.due(150, Some(&c), t));
    }
}
