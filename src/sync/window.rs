//! Rate windows: at most so many of something per peer in each window.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use super::Time;

/// Counts per key in fixed windows.
#[derive(Debug)]
pub struct RateWindow<K> {
    counts: HashMap<K, (Time, u32)>,
    window: Duration,
    max: u32,
}

impl<K: Eq + Hash> RateWindow<K> {
    /// At most `max` per `window`.
    pub fn new(window: Duration, max: u32) -> Self {
        Self {
            counts: HashMap::new(),
            window,
            max,
        }
    }

    /// Takes one for `key` at `now`; false when its window is used up.
    pub fn take(&mut self, key: K, now: Time) -> bool {
        let w = self.counts.entry(key).or_insert((now, 0));
        if now.since(w.0) >= self.window {
            *w = (now, 0);
        }
        if w.1 >= self.max {
            return false;
        }
        w.1 += 1;
        true
    }

    /// Forgets `key` (a peer gone).
    pub fn forget(&mut self, key: &K) {
        self.counts.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_refuses_past_its_count_until_it_turns() {
        let mut w = RateWindow::new(Duration::from_secs(1), 2);
        let t = Time::ZERO;
        assert!(w.take(1, t));
        assert!(w.take(1, t));
        assert!(!w.take(1, t + Duration::from_millis(999)));
        assert!(w.take(2, t));
        assert!(w.take(1, t + Duration::from_secs(1)));
    }
}
