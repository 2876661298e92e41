//! Bandwidth caps: a token bucket per direction, holding at most one
//! second of the rate. Transfers take tokens after the fact and may leave
//! the bucket in debt (a chunk or a batch is never cut); nothing more goes
//! out, or is asked for, until the debt is paid back.

use super::Time;

/// One direction's cap.
#[derive(Debug)]
pub struct Bucket {
    /// Bytes per second; `None` for no cap.
    rate: Option<u64>,
    tokens: f64,
    last: Time,
}

impl Bucket {
    /// A full bucket for `rate` bytes per second (0 counts as no cap: a
    /// node that may send nothing would be no node).
    pub fn new(rate: Option<u64>, now: Time) -> Self {
        let rate = rate.filter(|r| *r > 0);
        Self {
            rate,
            tokens: rate.unwrap_or(0) as f64,
            last: now,
        }
    }

    fn refill(&mut self, now: Time) {
        if let Some(rate) = self.rate {
            let elapsed = now.since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate as f64).min(rate as f64);
        }
        self.last = now;
    }

    /// Whether anything may go now.
    pub fn open(&mut self, now: Time) -> bool {
        self.refill(now);
        self.rate.is_none() || self.tokens > 0.0
    }

    /// Bytes that may go now without debt (`usize::MAX` with no cap).
    pub fn allowance(&mut self, now: Time) -> usize {
        self.refill(now);
        match self.rate {
            None => usize::MAX,
            Some(_) => self.tokens.max(0.0) as usize,
        }
    }

    /// Counts `bytes` that went.
    pub fn take(&mut self, bytes: u64, now: Time) {
        self.refill(now);
        if self.rate.is_some() {
            self.tokens -= bytes as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Bucket, Time};
    use std::time::Duration;

    #[test]
    fn a_bucket_holds_a_second_and_pays_back_debt() {
        let t0 = Time::ZERO;
        let mut b = Bucket::new(Some(1000), t0);
        assert!(b.open(t0));
        assert_eq!(b.allowance(t0), 1000);
        b.take(3000, t0);
        assert!(!b.open(t0));
        assert!(!b.open(t0 + Duration::from_millis(1900)));
        assert!(b.open(t0 + Duration::from_millis(2100)));
        // Idle for long: never more than one second's worth.
        assert_eq!(b.allowance(t0 + Duration::from_secs(60)), 1000);
        let mut free = Bucket::new(None, t0);
        free.take(u64::MAX / 2, t0);
        assert!(free.open(t0));
        assert_eq!(free.allowance(t0), usize::MAX);
    }
}
