//! Backoff between attempts: full jitter (a uniform wait between zero and an exponential
//! ceiling), as AWS recommends, so that many clients retrying at once spread out.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

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

/// A second 401 after a fresh token: the tenant refuses the token itself.
pub(crate) fn token_rejected(e: Error) -> Error {
    match e {
        Error::Api {
            method,
            path,
            problem,
            request_id,
            ..
        } => Error::TokenRejected {
            method,
            path,
            detail: problem.to_string(),
            request_id,
        },
        other => other,
    }
}

/// How long to wait before attempt `attempt + 1`, or the error to give up with: a
/// `Retry-After` beyond the deadline, the attempts used up, or a backoff past the deadline.
pub(crate) fn delay(
    policy: &RetryPolicy,
    method: &str,
    path: &str,
    start: Instant,
    attempt: u32,
    err: Error,
    wait: Option<(Duration, String)>,
) -> Result<Duration> {
    let remaining = policy.deadline.saturating_sub(start.elapsed());
    if let Some((wait, text)) = &wait
        && *wait > remaining
    {
        return Err(Error::RetryAfterBeyondDeadline {
            method: method.to_string(),
            path: path.to_string(),
            status: err.status().unwrap_or(429),
            retry_after: text.clone(),
            remaining,
            request_id: err.request_id().unwrap_or("none").to_string(),
        });
    }
    let delay = wait
        .map(|(w, _)| w)
        .unwrap_or_else(|| crate::retry::backoff(policy, attempt));
    if attempt >= policy.max_attempts || delay > remaining {
        return Err(if attempt == 1 {
            err
        } else {
            Error::GaveUp {
                attempts: attempt,
                elapsed: start.elapsed(),
                last: Box::new(err),
            }
        });
    }
    tracing::debug!(%method, %path, attempt, ?delay, request_id = err.request_id().unwrap_or("-"), error = %err, "retrying");
    Ok(delay)
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
