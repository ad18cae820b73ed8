//! The rotation budget: how often one identity may rotate a credential.
//!
//! Any holder of a current credential can rotate it, and every rotation adds an entry (about
//! 1.4 KB) to the log for good, so without a limit one client could grow the log without
//! bound. The budget is per identity, shared by all its devices: a least interval between two
//! rotations and a most number in any 24 hours (a sliding window). It is decided from the
//! rotation times of the identity's own log entries (kept in its state record, so a restart or
//! a rebuild from the log gives the same answer), in the sequencer, in log order: two racing
//! rotations cannot both take the last one. A refusal is 429 with `Retry-After`.

/// The sliding window of the daily count.
pub const WINDOW: u64 = 86_400;
/// Most rotations a day a setting may allow (it bounds what each identity record keeps).
pub const MAX_PER_DAY: u32 = 1_000;

/// How often one identity may rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationBudget {
    /// Least seconds between two rotations; 0 for no least interval.
    pub min_interval: u64,
    /// Most rotations in any [`WINDOW`]; at least 1, at most [`MAX_PER_DAY`].
    pub per_day: u32,
}

impl RotationBudget {
    /// Seconds to wait (at least 1) before the identity whose rotations happened at `recent`
    /// (Unix seconds, oldest first) may rotate again, or `None` if it may rotate at `now`.
    pub fn wait(&self, recent: &[u64], now: u64) -> Option<u64> {
        let interval_wait = recent
            .last()
            .map(|last| last.saturating_add(self.min_interval))
            .filter(|allowed| *allowed > now)
            .map(|allowed| allowed - now);
        let in_window: Vec<u64> = recent
            .iter()
            .copied()
            .filter(|t| t.saturating_add(WINDOW) > now)
            .collect();
        let per_day = self.per_day.max(1) as usize;
        let window_wait = (in_window.len() >= per_day).then(|| {
            // The rotation whose leaving the window brings the count below the limit.
            let leaving = in_window[in_window.len() - per_day];
            leaving.saturating_add(WINDOW) - now
        });
        match (interval_wait, window_wait) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0).max(b.unwrap_or(0)).max(1)),
        }
    }
}

/// Adds a rotation at `time` to `recent` and forgets those that left the window before it,
/// keeping at most [`MAX_PER_DAY`] (the newest).
pub fn record(recent: &mut Vec<u64>, time: u64) {
    recent.push(time);
    recent.retain(|t| t.saturating_add(WINDOW) > time);
    if recent.len() > MAX_PER_DAY as usize {
        let excess = recent.len() - MAX_PER_DAY as usize;
        recent.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_interval_then_daily_count() {
        let budget = RotationBudget {
            min_interval: 60,
            per_day: 3,
        };
        assert_eq!(budget.wait(&[], 1_000), None);
        assert_eq!(budget.wait(&[1_000], 1_010), Some(50));
        assert_eq!(budget.wait(&[1_000], 1_060), None);
        // Three in the window: the next waits until the oldest leaves it.
        let recent = [1_000, 2_000, 3_000];
        assert_eq!(budget.wait(&recent, 4_000), Some(1_000 + WINDOW - 4_000));
        assert_eq!(budget.wait(&recent, 1_000 + WINDOW), None);
        // A lowered limit waits for enough of them to leave.
        let lowered = RotationBudget {
            min_interval: 0,
            per_day: 1,
        };
        assert_eq!(lowered.wait(&recent, 4_000), Some(3_000 + WINDOW - 4_000));
        // Never a zero wait.
        assert_eq!(budget.wait(&[1_000], 1_000), Some(60));
    }

    #[test]
    fn record_keeps_only_the_window() {
        let mut recent = vec![];
        record(&mut recent, 10);
        record(&mut recent, 20);
        record(&mut recent, 20 + WINDOW - 5);
        assert_eq!(recent, [20, 20 + WINDOW - 5]);
        for t in 0..(MAX_PER_DAY as u64 + 5) {
            record(&mut recent, 30 + WINDOW + t);
        }
        assert_eq!(recent.len(), MAX_PER_DAY as usize);
        assert_eq!(recent.last(), Some(&(30 + WINDOW + MAX_PER_DAY as u64 + 4)));
    }
}
