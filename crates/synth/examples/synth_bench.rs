//! Generation speed: `cargo run --release -p dancu-synth --example synth_bench -- [PEOPLE] [THREADS]`.
//!
//! Prints one JSON line: `{"people":N,"seconds":S,"people_per_second":R,...}`. Households are
//! counted and dropped as they come (one thread streams [`dancu_synth::Generator`]; more threads
//! build independent chunks with [`dancu_synth::chunk`]), so the figure is generation alone, not
//! the cost of holding millions of records in memory.

use chrono::NaiveDate;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
    let today = NaiveDate::from_ymd_opt(2026, 1, 15).unwrap_or_default();
    // Load the administrative units and tables outside the timed part.
    let warm = dancu_synth::generate(0, 10, today);
    let started = Instant::now();
    let (people, households) = if threads == 1 {
        let (mut people, mut households) = (0, 0);
        for h in dancu_synth::Generator::new(1, today) {
            people += h.person_count();
            households += 1;
            if people >= n {
                break;
            }
        }
        (people, households)
    } else {
        let chunks = n.div_ceil(dancu_synth::CHUNK_PEOPLE) as u32;
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads as u32)
                .map(|t| {
                    s.spawn(move || {
                        let (mut people, mut households) = (0, 0);
                        for i in (t..chunks).step_by(threads) {
                            for h in dancu_synth::chunk(1, i, today) {
                                people += h.person_count();
                                households += 1;
                            }
                        }
                        (people, households)
                    })
                })
                .collect();
            workers
                .into_iter()
                .filter_map(|w| w.join().ok())
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
        })
    };
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"people\":{people},\"households\":{households},\"threads\":{threads},\"seconds\":{seconds:.3},\"people_per_second\":{:.0},\"warmup_households\":{}}}",
        people as f64 / seconds,
        warm.len()
    );
}
