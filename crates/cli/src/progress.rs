//! Progress on stderr for long commands: shown only when stderr is a terminal and not
//! `--quiet`, redrawn every 200 ms from the job's own counters. It never claims more than
//! it knows: with an unknown total (a streamed listing) it is a spinner with the count,
//! the rate and the elapsed time — no bar, no ETA; with a known total (an ids file, a
//! backfill file) a bar with an ETA. Rates are whole numbers with thousands separators,
//! and changed, unchanged, failed and rate-limited counts are shown as the job runs.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use guard::job::Progress;

/// Whether the number of items is known before the job starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    Known,
    Unknown,
}

pub struct Bar {
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// `n` with thousands separators: 12,345.
pub fn thousands(n: u64) -> String {
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

/// The counts line: `1,234 changed, 12 unchanged, 0 failed, 3 rate-limited, 1,180/s`.
fn counts(p: &Progress, rate_limited: u64, elapsed: Duration) -> String {
    let done = p.done.load(Ordering::Relaxed);
    let changed = p.changed.load(Ordering::Relaxed);
    let failed = p.failed.load(Ordering::Relaxed);
    let unchanged = done.saturating_sub(changed + failed);
    let rate = (done as f64 / elapsed.as_secs_f64().max(0.001)).round() as u64;
    format!(
        "{} changed, {} unchanged, {} failed, {} rate-limited, {}/s",
        thousands(changed),
        thousands(unchanged),
        thousands(failed),
        thousands(rate_limited),
        thousands(rate)
    )
}

impl Bar {
    /// Draws the progress of `progress` for items called `noun` (nothing when `quiet` or
    /// stderr is not a terminal); `rate_limited` reads the 429s seen so far.
    pub fn start(
        quiet: bool,
        noun: &'static str,
        total: Total,
        progress: Arc<Progress>,
        rate_limited: impl Fn() -> u64 + Send + 'static,
    ) -> Self {
        let (stop, mut rx) = tokio::sync::watch::channel(false);
        if quiet || !std::io::stderr().is_terminal() {
            return Bar { stop, task: None };
        }
        let (bar, template) = match total {
            Total::Known => (
                indicatif::ProgressBar::new(0),
                format!("{{bar:30}} {{human_pos}}/{{human_len}} {noun}  ETA {{eta}}  {{msg}}"),
            ),
            Total::Unknown => (
                indicatif::ProgressBar::new_spinner(),
                format!("{{spinner}} {{human_pos}} {noun}  {{elapsed}}  {{msg}}"),
            ),
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        let started = Instant::now();
        let task = tokio::spawn(async move {
            loop {
                if total == Total::Known {
                    bar.set_length(progress.total.load(Ordering::Relaxed));
                }
                bar.set_position(progress.done.load(Ordering::Relaxed));
                bar.set_message(counts(&progress, rate_limited(), started.elapsed()));
                bar.tick();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = rx.changed() => break,
                }
            }
            bar.finish_and_clear();
        });
        Bar {
            stop,
            task: Some(task),
        }
    }

    /// Stops drawing and clears the line.
    pub async fn finish(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_separated() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1234567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), s);
        }
    }
}
