//! The status line of `-f` and `-e` runs on a terminal: refreshed in place once a second on
//! stderr, `streamsql: 2 pipelines running · 48,210 events/s · watermark lag 1.3 s · 12 late rows`.
//! Off with `--quiet` or when stderr is not a terminal; other output clears it first
//! ([`crate::stdio`]), and it is removed before the end-of-run report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::console::{Board, now_millis, watermark};

/// Redraws the status line every second until aborted.
pub async fn refresh(board: Arc<Board>) {
    let mut last: Option<(Instant, u64)> = None;
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticks.tick().await;
        let pipelines = board.snapshot();
        let now = Instant::now();
        let rows: u64 = pipelines.iter().map(|p| p.control.metrics().rows_in).sum();
        let rate = last.map(|(at, before)| rows.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64());
        last = Some((now, rows));
        let running = pipelines.iter().filter(|p| p.running).count();
        let late: u64 = pipelines.iter().map(|p| p.control.metrics().late_rows).sum();
        let wall = now_millis();
        let lag = pipelines.iter().filter(|p| p.running).filter_map(|p| watermark(&p.control)).map(|w| wall - w).max();
        crate::stdio::write_status(&line(running, rate, lag, late));
    }
}

/// `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The status line's text.
fn line(running: usize, rate: Option<f64>, lag_ms: Option<i64>, late: u64) -> String {
    let rate = rate.map_or_else(|| "- events/s".to_string(), |r| format!("{} events/s", thousands(r.round() as u64)));
    let lag = match lag_ms {
        Some(ms) if ms.abs() < 100_000 => format!("watermark lag {:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("watermark lag {} s", thousands((ms / 1000).unsigned_abs())),
        None => "no watermark yet".to_string(),
    };
    format!(
        "streamsql: {running} pipeline{} running · {rate} · {lag} · {} late row{}",
        if running == 1 { "" } else { "s" },
        thousands(late),
        if late == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_reads_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(
            line(2, Some(48210.4), Some(1300), 12),
            "streamsql: 2 pipelines running · 48,210 events/s · watermark lag 1.3 s · 12 late rows"
        );
        assert_eq!(
            line(1, None, None, 1),
            "streamsql: 1 pipeline running · - events/s · no watermark yet · 1 late row"
        );
        assert!(line(1, Some(1.0), Some(7_200_000), 0).contains("watermark lag 7,200 s"));
    }
}
