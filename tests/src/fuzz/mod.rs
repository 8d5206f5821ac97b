//! A fuzzer for everything a user or a client can send the SQL front end.
//!
//! ```text
//!  sql-fuzz (supervisor) ──spawns──▶ sql-fuzz --worker (child, one per job)
//!      ▲   reads "start i" / "ok i ..." / "panic i ..." lines          │
//!      │                                                               ▼
//!      │      case(seed, i) = generated script | mutated script ─▶ case::run_script
//!      │                                                         (fresh Session, planning only)
//!      └─ child died during case i  → abort (stack overflow, OOM kill, std::process::abort)
//!         no answer for 10 s         → hang: the child is killed
//!         then: restart after case i, reduce case i (reduce.rs), save it (regressions.rs)
//! ```
//!
//! Every case is a pure function of `(seed, index)`, so a finding is reproduced by its seed and
//! index alone (`sql-fuzz --seed S --print-case I`). Start reading at [`case`], then
//! [`supervise`].
//!
//! - [`generate`]: scripts from the grammar, over a model of the declared tables.
//! - [`mutate`]: token-level mutations of valid scripts ([`corpus`] and generated ones).
//! - [`case::run_script`]: one script, planned statement by statement in a fresh session.
//! - [`worker`]: the child's loop; [`supervise`]: the parent, its counts and findings.
//! - [`reduce`]: shrinks a finding to a small script that still fails the same way.
//! - [`regressions`]: found cases kept as `tests/fuzz-regressions/*.sql`, replayed by the tests.

pub mod case;
pub mod corpus;
pub mod generate;
pub mod mutate;
pub mod reduce;
pub mod regressions;
pub mod supervise;
pub mod worker;

use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

/// One fuzz case: a script and how many statements were generated for it.
#[derive(Debug, Clone)]
pub struct Case {
    pub sql: String,
    /// Statements generated (for a mutated script, those of the script before mutation).
    pub statements: usize,
}

/// The directory file tables of generated scripts point at; planning never opens them.
pub fn scratch_dir() -> String {
    std::env::temp_dir().join("streamsql-fuzz").to_string_lossy().into_owned()
}

/// The random generator of case `index` of `seed`: cases are independent of each other.
fn case_rng(seed: u64, index: u64) -> SmallRng {
    // splitmix64 of both, so neighbouring seeds and indices give unrelated streams.
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    SmallRng::seed_from_u64(z ^ (z >> 31))
}

/// Case `index` of `seed`: a script from the grammar (about 60%), or a mutated valid script.
pub fn case(seed: u64, index: u64) -> Case {
    let mut rng = case_rng(seed, index);
    let dir = scratch_dir();
    let generated = generate::Generator::new(&mut rng, &dir).script();
    if rng.random_bool(0.6) {
        return Case { sql: generated.text(), statements: generated.statements.len() };
    }
    let corpus = corpus::scripts(&dir);
    let base =
        if rng.random_bool(0.5) { generated.text() } else { corpus.choose(&mut rng).cloned().unwrap_or_default() };
    let donor = corpus.choose(&mut rng).cloned().unwrap_or_default();
    let statements = count_statements(&base);
    Case { sql: mutate::mutate(&mut rng, &base, &donor), statements }
}

/// Statements in a valid script: its `;` tokens (outside strings and comments).
fn count_statements(sql: &str) -> usize {
    mutate::tokens(sql).iter().filter(|t| **t == ";").count().max(1)
}
