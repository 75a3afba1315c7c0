//! A token bucket: `limit` requests of burst, refilled at `limit` per second.
//!
//! It reports what the `RateLimit-*` headers carry: the limit, the whole tokens left, and
//! the seconds until the bucket is full again (rounded up), and on refusal the seconds
//! until one token is back (rounded up, at least 1, as `Retry-After` is an integer).

use std::time::Instant;

#[derive(Debug)]
pub(crate) struct Bucket {
    limit: f64,
    tokens: f64,
    last: Instant,
}

/// What one attempt to take a token found.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Take {
    Granted {
        limit: u32,
        remaining: u32,
        reset_secs: u64,
    },
    Refused {
        limit: u32,
        retry_after_secs: u64,
    },
}

impl Bucket {
    pub(crate) fn new(limit: u32) -> Self {
        Bucket {
            limit: f64::from(limit),
            tokens: f64::from(limit),
            last: Instant::now(),
        }
    }

    pub(crate) fn take(&mut self, now: Instant) -> Take {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.limit).min(self.limit);
        let limit = self.limit as u32;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            let reset = ((self.limit - self.tokens) / self.limit).ceil() as u64;
            Take::Granted {
                limit,
                remaining: self.tokens.floor() as u32,
                reset_secs: reset,
            }
        } else {
            let wait = (1.0 - self.tokens) / self.limit;
            Take::Refused {
                limit,
                retry_after_secs: (wait.ceil() as u64).max(1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refuse_then_refill() {
        let t0 = Instant::now();
        let mut b = Bucket::new(5);
        for i in 0..5 {
            match b.take(t0) {
                Take::Granted { remaining, .. } => assert_eq!(remaining, 4 - i),
                Take::Refused { .. } => panic!("refused within the burst"),
            }
        }
        assert!(matches!(
            b.take(t0),
            Take::Refused {
                retry_after_secs: 1,
                ..
            }
        ));
        assert!(matches!(
            b.take(t0 + Duration::from_millis(250)),
            Take::Granted { .. }
        ));
    }
}
