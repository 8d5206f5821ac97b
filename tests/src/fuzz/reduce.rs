//! Shrinking a finding: removes spans of tokens (halving their length, as delta debugging does;
//! a token keeps the whitespace after it) while the script still fails the same way, within a
//! time budget. Works for aborts and hangs as well as panics, since every candidate runs in a
//! [`Probe`]'s worker.

use std::time::{Duration, Instant};

use super::mutate::tokens;
use super::supervise::{Kind, Probe, Verdict, signature};

/// The smallest script found in `budget` that fails like `sql` (same kind, same signature).
pub fn reduce(probe: &mut Probe, sql: &str, kind: Kind, detail: &str, budget: Duration) -> std::io::Result<String> {
    let started = Instant::now();
    let wanted = signature(kind, detail);
    let mut fails_the_same = |candidate: &str| -> std::io::Result<bool> {
        Ok(match probe.run(candidate)? {
            Verdict::Failed(k, d) => k == kind && signature(k, &d) == wanted,
            Verdict::Passed => false,
        })
    };
    let mut best = units(sql);
    let mut chunk = best.len().div_ceil(2).max(1);
    while started.elapsed() < budget {
        let mut removed_any = false;
        let mut at = 0;
        while at < best.len() && started.elapsed() < budget {
            let end = (at + chunk).min(best.len());
            let candidate: String = best[..at].iter().chain(&best[end..]).map(String::as_str).collect();
            if !candidate.trim().is_empty() && fails_the_same(&candidate)? {
                best.drain(at..end);
                removed_any = true;
            } else {
                at += chunk;
            }
        }
        if chunk == 1 && !removed_any {
            break;
        }
        if !removed_any {
            chunk = chunk.div_ceil(2);
        }
    }
    Ok(best.concat())
}

/// The tokens of `sql`, each with the whitespace after it, so removing some never glues two
/// words together.
fn units(sql: &str) -> Vec<String> {
    let mut units: Vec<String> = Vec::new();
    for token in tokens(sql) {
        match units.last_mut() {
            Some(last) if token.trim().is_empty() => last.push_str(token),
            _ => units.push(token.to_string()),
        }
    }
    units
}

#[cfg(test)]
mod tests {
    use super::units;

    #[test]
    fn units_keep_the_space_after_each_token() {
        assert_eq!(units("SELECT a ,\n b"), ["SELECT ", "a ", ",\n ", "b"]);
        assert_eq!(units("  x"), ["  ", "x"]);
    }
}
