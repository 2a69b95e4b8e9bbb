//! Tiles in flight per identified caller, so one caller cannot take the whole of
//! `--max-in-flight-tiles`. A caller is identified by its bearer token or, under mTLS, by
//! its client certificate; callers without either share only the server-wide limit
//! (an address says little behind a load balancer or a NAT).

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex},
};

/// Who is calling, as far as the server can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A bearer token (a hash of it: tokens are never kept or logged).
    Token(u64),
    /// A client certificate (a hash of its DER).
    Certificate(u64),
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token(h) => write!(f, "the caller with token #{:08x}", h >> 32),
            Self::Certificate(h) => write!(f, "the caller with client certificate #{:08x}", h >> 32),
        }
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

impl Caller {
    /// The caller of `request`: its token if it sent one, else its client certificate.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<Self> {
        if let Some(token) = request.metadata().get("authorization") {
            return Some(Self::Token(hash(token.as_bytes())));
        }
        let certs = request.peer_certs()?;
        certs.first().map(|c| Self::Certificate(hash(c.as_ref())))
    }
}

/// Counts of tiles in flight per caller, bounded by `max`.
#[derive(Debug)]
pub struct CallerLimits {
    max: usize,
    counts: Arc<Mutex<HashMap<Caller, usize>>>,
}

/// One tile in flight for a caller; released on drop.
#[derive(Debug)]
pub struct CallerPermit {
    caller: Caller,
    counts: Arc<Mutex<HashMap<Caller, usize>>>,
}

impl Drop for CallerPermit {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.caller);
            }
        }
    }
}

impl CallerLimits {
    /// At most `max` tiles in flight per caller.
    #[must_use]
    pub fn new(max: usize) -> Self {
        Self { max, counts: Arc::default() }
    }

    /// The limit.
    #[must_use]
    pub fn max(&self) -> usize {
        self.max
    }

    /// A permit for one more tile of `caller`, or `None` when it has `max` in flight.
    #[must_use]
    pub fn try_acquire(&self, caller: Caller) -> Option<CallerPermit> {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = counts.entry(caller).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(CallerPermit { caller, counts: Arc::clone(&self.counts) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_caller_has_its_own_budget_and_permits_give_it_back() {
        let limits = CallerLimits::new(2);
        let (a, b) = (Caller::Token(1), Caller::Certificate(2));
        let first = limits.try_acquire(a).unwrap();
        let _second = limits.try_acquire(a).unwrap();
        assert!(limits.try_acquire(a).is_none());
        assert!(limits.try_acquire(b).is_some());
        drop(first);
        assert!(limits.try_acquire(a).is_some());
    }

    #[test]
    fn callers_come_from_the_token() {
        let mut request = tonic::Request::new(());
        assert_eq!(Caller::of(&request), None);
        request.metadata_mut().insert("authorization", "Bearer x".parse().unwrap());
        let caller = Caller::of(&request).unwrap();
        assert!(matches!(caller, Caller::Token(_)));
        assert!(caller.to_string().starts_with("the caller with token #"));
    }
}
