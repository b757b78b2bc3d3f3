//! A deterministic synthetic population of Vietnam (dân cư giả lập) for demos, tests and
//! benchmarks.
//!
//! This crate owns the *shape* of a believable population: households (hộ gia đình) of realistic
//! size and make-up, whose members have names drawn by the national shares of family names,
//! middle and given names by sex, ethnic groups and religions by region, an age pyramid like
//! Vietnam's, birth registrations in communes of the right scheme, personal ID numbers that agree
//! with them, legacy CMND numbers, chip-card histories under the age rules, and a few registered
//! deaths. Every record it produces passes the rules of [`dancu_domain`]: IDs agree with sex and
//! date of birth, names parse back to themselves, addresses validate, and
//! [`dancu_domain::event::apply`] accepts each record as an import.
//!
//! What it must not do: any I/O (no files, network, clock or system randomness: the seed and
//! "today" are parameters), or any rule of the register beyond what the domain crate states. It
//! is never a source of truth: the data is invented, and the shares it uses are approximations
//! chosen to look right, not statistics.
//!
//! # Determinism and chunks
//! The population of a seed is a sequence of **chunks**: chunk `i` holds households until it has
//! at least [`CHUNK_PEOPLE`] records, drawn from its own random stream, so [`chunk`] can build any
//! chunk alone (on any thread) and the concatenation of chunks `0, 1, 2, …` is exactly what
//! [`Generator`] streams and [`generate`] returns. ID serials are split between chunks (see
//! [`MAX_CHUNKS`]), so IDs are unique across all chunks of a seed.
//!
//! ```
//! use chrono::NaiveDate;
//! let today = NaiveDate::from_ymd_opt(2026, 1, 15).unwrap();
//! let people = dancu_synth::generate(42, 1_000, today);
//! assert!(people.iter().map(|h| h.people().count()).sum::<usize>() >= 1_000);
//! assert_eq!(people, dancu_synth::generate(42, 1_000, today));
//! ```

mod household;
mod places;
mod serial;
mod tables;

use chrono::NaiveDate;
use dancu_domain::event::Household;
use dancu_domain::person::Person;
use household::ChunkGen;

pub use serial::MAX_CHUNKS;

/// Records (living members and deceased) after which a chunk ends; a chunk holds this many or a
/// few more, up to one household's worth.
pub const CHUNK_PEOPLE: usize = 10_000;

/// One generated household: the household record and its members' records, plus the records of
/// people of the household who have died (a late spouse or parent) and so are no longer members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthHousehold {
    /// The household: its number, address and members with their relationship to the head (the
    /// head first).
    pub household: Household,
    /// Living members, in the order of `household.members`.
    pub members: Vec<Person>,
    /// Dead people related to the members (vital status dead, residence closed, cards marked
    /// holder deceased); not members of the household.
    pub deceased: Vec<Person>,
}

impl SynthHousehold {
    /// Every record of the household: members, then the deceased.
    pub fn people(&self) -> impl Iterator<Item = &Person> {
        self.members.iter().chain(&self.deceased)
    }

    /// Number of records (members and deceased).
    pub fn person_count(&self) -> usize {
        self.members.len() + self.deceased.len()
    }
}

/// Streams the households of one seed, chunk after chunk (see the crate documentation).
#[derive(Debug)]
pub struct Generator {
    seed: u64,
    today: NaiveDate,
    chunk: u32,
    in_chunk: usize,
    current: Option<ChunkGen>,
}

impl Generator {
    /// A generator for `seed`, with ages, cards and residences as they stand on `today`.
    pub fn new(seed: u64, today: NaiveDate) -> Self {
        Self {
            seed,
            today,
            chunk: 0,
            in_chunk: 0,
            current: None,
        }
    }

    /// The next household; `None` once [`MAX_CHUNKS`] chunks have been produced.
    pub fn next_household(&mut self) -> Option<SynthHousehold> {
        if self.in_chunk >= CHUNK_PEOPLE {
            self.chunk += 1;
            self.in_chunk = 0;
            self.current = None;
        }
        if self.chunk >= MAX_CHUNKS {
            return None;
        }
        let (seed, chunk, today) = (self.seed, self.chunk, self.today);
        let generator = self
            .current
            .get_or_insert_with(|| ChunkGen::new(seed, chunk, today));
        let household = generator.next_household();
        self.in_chunk += household.person_count();
        Some(household)
    }

    /// The households as an iterator (endless in practice: it stops after [`MAX_CHUNKS`] chunks).
    pub fn households(&mut self) -> impl Iterator<Item = SynthHousehold> + '_ {
        std::iter::from_fn(move || self.next_household())
    }
}

impl Iterator for Generator {
    type Item = SynthHousehold;
    fn next(&mut self) -> Option<SynthHousehold> {
        self.next_household()
    }
}

/// Chunk `index` of `seed`: the same households as the stream of [`Generator`] holds at that
/// position, built without generating the chunks before it. Empty for `index >= MAX_CHUNKS`.
pub fn chunk(seed: u64, index: u32, today: NaiveDate) -> Vec<SynthHousehold> {
    if index >= MAX_CHUNKS {
        return Vec::new();
    }
    let mut generator = ChunkGen::new(seed, index, today);
    let mut out = Vec::with_capacity(CHUNK_PEOPLE / 3);
    let mut people = 0;
    while people < CHUNK_PEOPLE {
        let household = generator.next_household();
        people += household.person_count();
        out.push(household);
    }
    out
}

/// The first households of `seed` holding at least `n_people` records (fewer than `n_people`
/// plus one household's worth). At most `MAX_CHUNKS × CHUNK_PEOPLE` (~78 million) records exist
/// per seed.
pub fn generate(seed: u64, n_people: usize, today: NaiveDate) -> Vec<SynthHousehold> {
    let mut out = Vec::new();
    let mut people = 0;
    let mut generator = Generator::new(seed, today);
    while people < n_people {
        let Some(household) = generator.next_household() else {
            break;
        };
        people += household.person_count();
        out.push(household);
    }
    out
}

/// The same households as [`generate`], built on `threads` threads (chunks are independent).
pub fn generate_parallel(
    seed: u64,
    n_people: usize,
    today: NaiveDate,
    threads: usize,
) -> Vec<SynthHousehold> {
    let chunks = n_people.div_ceil(CHUNK_PEOPLE).min(MAX_CHUNKS as usize);
    let threads = threads.clamp(1, chunks.max(1));
    let mut parts: Vec<Vec<Vec<SynthHousehold>>> = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..chunks)
                        .step_by(threads)
                        .map(|i| chunk(seed, i as u32, today))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // A worker only panics if generation itself has a bug; pass that panic on.
        parts = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect();
    });
    let mut by_index: Vec<Option<Vec<SynthHousehold>>> = (0..chunks).map(|_| None).collect();
    for (t, part) in parts.into_iter().enumerate() {
        for (k, households) in part.into_iter().enumerate() {
            by_index[t + k * threads] = Some(households);
        }
    }
    let mut out = Vec::new();
    let mut people = 0;
    for households in by_index.into_iter().flatten() {
        for household in households {
            if people >= n_people {
                return out;
            }
            people += household.person_count();
            out.push(household);
        }
    }
    out
}

#[cfg(test)]
mod tests;
