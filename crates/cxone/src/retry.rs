//! Backoff between attempts: full jitter (a uniform wait between zero and an exponential
//! ceiling), as AWS recommends, so that many clients retrying at once spread out.

use std::time::Duration;

use crate::settings::RetryPolicy;

/// The wait before attempt `attempt + 1`, `attempt` counting from 1.
pub(crate) fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let ceiling = policy
        .base_delay
        .saturating_mul(1u32 << exp)
        .min(policy.max_delay);
    ceiling.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_grow_and_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            deadline: Duration::from_secs(60),
        };
        for _ in 0..200 {
            assert!(backoff(&p, 1) <= Duration::from_millis(100));
            assert!(backoff(&p, 3) <= Duration::from_millis(400));
            assert!(backoff(&p, 30) <= Duration::from_millis(1000));
        }
    }
}
