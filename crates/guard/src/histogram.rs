//! Call latencies for a job's report, in constant memory.

use std::time::Duration;

/// Latencies in a log-bucketed histogram: constant memory however many calls.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

const BUCKET_GROWTH: f64 = 1.02;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; 1200],
            count: 0,
        }
    }
}

impl Histogram {
    pub(crate) fn record(&mut self, d: Duration) {
        let us = d.as_micros().max(1) as f64;
        let i = (us.ln() / BUCKET_GROWTH.ln()) as usize;
        let last = self.buckets.len() - 1;
        self.buckets[i.min(last)] += 1;
        self.count += 1;
    }

    pub(crate) fn percentile_ms(&self, p: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let want = (p * self.count as f64).ceil() as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                return BUCKET_GROWTH.powi(i as i32 + 1) / 1000.0;
            }
        }
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_are_close() {
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.percentile_ms(0.5);
        let p99 = h.percentile_ms(0.99);
        assert!((49.0..=52.0).contains(&p50), "{p50}");
        assert!((98.0..=102.0).contains(&p99), "{p99}");
    }
}
