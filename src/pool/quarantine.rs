//! Poison-asset quarantine. An asset whose reads kill workers (by their own fault, not
//! an outside SIGKILL) `threshold` times within `window` is quarantined for `duration`:
//! its reads fail fast instead of taking more workers down.
//!
//! An asset whose reads keep running past the read timeout is as costly (each such read
//! holds a worker for the whole timeout, then the worker is SIGKILLed and replaced: a
//! decompression bomb, a header that makes GDAL decode one block a million times), so
//! these deadline kills count too, against their own `timeout_threshold` in the same
//! window (0 turns this off). Only kills where the *read timeout* expired count: a
//! client's own deadline says nothing about the asset, nor does a worker stopped from
//! outside (SIGSTOP) when its deadline passed. The threshold is above the two
//! kills one request can cost (a read that times out is retried once on another worker),
//! so one slow read, even retried, never quarantines an asset; a stalled network that
//! times out several reads of the same asset within the window does, which sheds the
//! load those reads would put on the workers until the quarantine ends.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Why and until when an asset is quarantined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// How long the quarantine still lasts.
    pub remaining: Duration,
    /// What the crashes were.
    pub reason: String,
}

#[derive(Debug, Default)]
struct Record {
    crashes: Vec<Instant>,
    timeouts: Vec<Instant>,
    until: Option<(Instant, String)>,
}

/// Crash and deadline-kill history and quarantines, by asset key (its path).
#[derive(Debug)]
pub struct Quarantine {
    threshold: usize,
    /// Read-timeout kills that quarantine; 0 = they never do.
    timeout_threshold: usize,
    window: Duration,
    duration: Duration,
    records: Mutex<HashMap<String, Record>>,
}

impl Quarantine {
    /// A quarantine that triggers after `threshold` crashes, or `timeout_threshold`
    /// read-timeout kills (0 = never), within `window` and lasts `duration`.
    #[must_use]
    pub fn new(threshold: usize, timeout_threshold: usize, window: Duration, duration: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            timeout_threshold,
            window,
            duration,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` is quarantined at `now`.
    pub fn check(&self, key: &str, now: Instant) -> Option<Quarantined> {
        let mut records = self.records.lock().ok()?;
        let record = records.get_mut(key)?;
        match &record.until {
            Some((until, reason)) if *until > now => {
                Some(Quarantined { remaining: *until - now, reason: reason.clone() })
            }
            Some(_) => {
                record.until = None;
                record.crashes.clear();
                record.timeouts.clear();
                None
            }
            None => None,
        }
    }

    /// Records a crash caused by reading `key`; returns true if this crash put the asset
    /// in quarantine.
    pub fn record_crash(&self, key: &str, now: Instant, what: &str) -> bool {
        let Ok(mut records) = self.records.lock() else { return false };
        let record = records.entry(key.to_owned()).or_default();
        record.crashes.retain(|t| now.duration_since(*t) <= self.window);
        record.crashes.push(now);
        if record.crashes.len() >= self.threshold && record.until.is_none() {
            let reason = format!(
                "reading it crashed {} workers within {} s (last: {what})",
                record.crashes.len(),
                self.window.as_secs()
            );
            record.until = Some((now + self.duration, reason));
            return true;
        }
        false
    }

    /// Records a worker SIGKILLed because its read of `key` ran past `read_timeout` (not
    /// a client's shorter deadline); returns true if this kill put the asset in
    /// quarantine.
    pub fn record_timeout(&self, key: &str, now: Instant, read_timeout: Duration) -> bool {
        if self.timeout_threshold == 0 {
            return false;
        }
        let Ok(mut records) = self.records.lock() else { return false };
        let record = records.entry(key.to_owned()).or_default();
        record.timeouts.retain(|t| now.duration_since(*t) <= self.window);
        record.timeouts.push(now);
        if record.timeouts.len() >= self.timeout_threshold && record.until.is_none() {
            let reason = format!(
                "reading it ran past the {:?} read timeout {} times within {} s",
                read_timeout,
                record.timeouts.len(),
                self.window.as_secs()
            );
            record.until = Some((now + self.duration, reason));
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_crashes_in_the_window_quarantine_the_asset_for_the_duration() {
        let q = Quarantine::new(2, 3, Duration::from_secs(60), Duration::from_secs(300));
        let t0 = Instant::now();
        assert!(!q.record_crash("a.tif", t0, "SIGSEGV"));
        assert_eq!(q.check("a.tif", t0), None);
        assert!(q.record_crash("a.tif", t0 + Duration::from_secs(1), "SIGABRT"));
        let hit = q.check("a.tif", t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(hit.remaining, Duration::from_secs(299));
        assert!(hit.reason.contains("crashed 2 workers within 60 s (last: SIGABRT)"), "{}", hit.reason);
        assert_eq!(q.check("b.tif", t0), None, "other assets are unaffected");
        assert_eq!(q.check("a.tif", t0 + Duration::from_secs(302)), None, "quarantine expires");
    }

    #[test]
    fn crashes_further_apart_than_the_window_do_not_add_up() {
        let q = Quarantine::new(2, 3, Duration::from_secs(10), Duration::from_secs(300));
        let t0 = Instant::now();
        assert!(!q.record_crash("a.tif", t0, "x"));
        assert!(!q.record_crash("a.tif", t0 + Duration::from_secs(11), "x"));
        assert_eq!(q.check("a.tif", t0 + Duration::from_secs(12)), None);
    }

    #[test]
    fn read_timeouts_quarantine_at_their_own_threshold_within_the_window() {
        let q = Quarantine::new(2, 3, Duration::from_secs(60), Duration::from_secs(300));
        let t0 = Instant::now();
        let timeout = Duration::from_secs(10);
        assert!(!q.record_timeout("a.tif", t0, timeout));
        assert!(!q.record_timeout("a.tif", t0 + Duration::from_secs(1), timeout));
        assert_eq!(q.check("a.tif", t0 + Duration::from_secs(2)), None, "two kills: one retried read");
        // Timeouts and crashes are counted apart: one crash does not tip two timeouts over.
        assert!(!q.record_crash("a.tif", t0 + Duration::from_secs(2), "SIGSEGV"));
        assert!(q.record_timeout("a.tif", t0 + Duration::from_secs(3), timeout));
        let hit = q.check("a.tif", t0 + Duration::from_secs(4)).unwrap();
        assert_eq!(hit.reason, "reading it ran past the 10s read timeout 3 times within 60 s");
        // After the quarantine, the history starts over.
        assert_eq!(q.check("a.tif", t0 + Duration::from_secs(400)), None);
        assert!(!q.record_timeout("a.tif", t0 + Duration::from_secs(401), timeout));
    }

    #[test]
    fn read_timeouts_never_quarantine_with_a_zero_threshold_or_apart() {
        let off = Quarantine::new(2, 0, Duration::from_secs(60), Duration::from_secs(300));
        let t0 = Instant::now();
        for i in 0..10 {
            assert!(!off.record_timeout("a.tif", t0 + Duration::from_secs(i), Duration::from_secs(1)));
        }
        let apart = Quarantine::new(2, 2, Duration::from_secs(10), Duration::from_secs(300));
        assert!(!apart.record_timeout("a.tif", t0, Duration::from_secs(1)));
        assert!(!apart.record_timeout("a.tif", t0 + Duration::from_secs(11), Duration::from_secs(1)));
    }
}
