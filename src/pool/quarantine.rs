//! Poison-asset quarantine. An asset whose reads kill workers (by their own fault, not
//! an outside SIGKILL) `threshold` times within `window` is quarantined for `duration`:
//! its reads fail fast instead of taking more workers down.

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
    until: Option<(Instant, String)>,
}

/// Crash history and quarantines, by asset key (its path).
#[derive(Debug)]
pub struct Quarantine {
    threshold: usize,
    window: Duration,
    duration: Duration,
    records: Mutex<HashMap<String, Record>>,
}

impl Quarantine {
    /// A quarantine that triggers after `threshold` crashes within `window` and lasts
    /// `duration`.
    #[must_use]
    pub fn new(threshold: usize, window: Duration, duration: Duration) -> Self {
        Self { threshold: threshold.max(1), window, duration, records: Mutex::new(HashMap::new()) }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_crashes_in_the_window_quarantine_the_asset_for_the_duration() {
        let q = Quarantine::new(2, Duration::from_secs(60), Duration::from_secs(300));
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
        let q = Quarantine::new(2, Duration::from_secs(10), Duration::from_secs(300));
        let t0 = Instant::now();
        assert!(!q.record_crash("a.tif", t0, "x"));
        assert!(!q.record_crash("a.tif", t0 + Duration::from_secs(11), "x"));
        assert_eq!(q.check("a.tif", t0 + Duration::from_secs(12)), None);
    }
}
