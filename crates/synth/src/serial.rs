//! The six-digit serial of a personal ID (`RRRRRR`), unique across independently generated chunks.
//!
//! IDs only collide when place code, century/sex digit and birth year (a *bucket*) and the serial
//! are all equal. The serial space of a bucket (10⁶ values) is split between chunks by
//! interleaving: the `c`-th person of a bucket in chunk `i` takes slot `c · MAX_CHUNKS + i`, so
//! no two chunks can ever take the same slot, and a chunk never needs to know what the others
//! did. A keyed bijection of `[0, 10⁶)` then turns the slot into the serial, so serials look
//! random instead of counting up.

use dancu_domain::person::Sex;

/// Slots a chunk may use in one bucket (place, sex, birth year).
pub(crate) const SLOTS_PER_CHUNK: u32 = 128;

/// The most chunks one seed can give: every chunk owns [`SLOTS_PER_CHUNK`] of the 10⁶ serials of
/// each bucket.
pub const MAX_CHUNKS: u32 = 1_000_000 / SLOTS_PER_CHUNK;

const SERIALS: u32 = 1_000_000;
const PLACES: usize = dancu_domain::id::PLACE_CODES.len();
const FIRST_YEAR: i32 = 1900;
const YEARS: usize = 500;

/// Hands out serials for one chunk.
#[derive(Debug, Clone)]
pub(crate) struct SerialAllocator {
    chunk: u32,
    key: u64,
    used: Vec<u8>,
}

impl SerialAllocator {
    pub(crate) fn new(seed: u64, chunk: u32) -> Self {
        Self {
            chunk,
            key: mix(seed ^ 0x5EED_1D5E_C0DE_0001),
            used: vec![0; PLACES * 2 * YEARS],
        }
    }

    /// A fresh serial for a person registered at place index `place` (into
    /// [`dancu_domain::id::PLACE_CODES`]) with this sex and birth year; `None` when this chunk has
    /// used up its share of the bucket (never in practice: a chunk holds ~10,000 people, far below
    /// 128 per bucket).
    pub(crate) fn take(&mut self, place: usize, sex: Sex, year: i32) -> Option<u32> {
        let y = usize::try_from(year - FIRST_YEAR)
            .ok()
            .filter(|y| *y < YEARS)?;
        if place >= PLACES || self.chunk >= MAX_CHUNKS {
            return None;
        }
        let bucket = (place * 2 + usize::from(sex == Sex::Female)) * YEARS + y;
        let count = self.used.get_mut(bucket)?;
        if u32::from(*count) >= SLOTS_PER_CHUNK {
            return None;
        }
        let slot = u32::from(*count) * MAX_CHUNKS + self.chunk;
        *count += 1;
        Some(permute(slot, mix(self.key ^ bucket as u64)))
    }
}

/// SplitMix64 finaliser: a cheap, well-mixing 64-bit hash.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A four-round Feistel network on 20 bits: a bijection of `[0, 2²⁰)`.
fn feistel(v: u32, key: u64) -> u32 {
    let (mut left, mut right) = (v >> 10, v & 0x3FF);
    for round in 0..4u64 {
        let f = mix(key ^ (round << 40) ^ u64::from(right)) as u32 & 0x3FF;
        (left, right) = (right, left ^ f);
    }
    (left << 10) | right
}

/// A bijection of `[0, 10⁶)`: the Feistel network, re-applied until the value falls in range
/// (cycle walking). It terminates because `x` itself lies on the cycle and is in range.
fn permute(x: u32, key: u64) -> u32 {
    let mut v = x;
    loop {
        v = feistel(v, key);
        if v < SERIALS {
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_bijection_of_a_million() {
        let mut seen = vec![false; SERIALS as usize];
        for x in 0..SERIALS {
            let y = permute(x, 42) as usize;
            assert!(!seen[y], "{x} collides");
            seen[y] = true;
        }
    }

    #[test]
    fn chunks_never_share_a_serial_in_a_bucket() {
        let mut a = SerialAllocator::new(7, 0);
        let mut b = SerialAllocator::new(7, MAX_CHUNKS - 1);
        let mut all = std::collections::HashSet::new();
        for _ in 0..SLOTS_PER_CHUNK {
            assert!(all.insert(a.take(0, Sex::Male, 1990).unwrap()));
            assert!(all.insert(b.take(0, Sex::Male, 1990).unwrap()));
        }
        assert_eq!(a.take(0, Sex::Male, 1990), None);
        assert!(a.take(0, Sex::Female, 1990).is_some());
        assert!(all.iter().all(|s| *s < SERIALS));
        assert_eq!(
            SerialAllocator::new(7, MAX_CHUNKS).take(0, Sex::Male, 1990),
            None
        );
    }
}
