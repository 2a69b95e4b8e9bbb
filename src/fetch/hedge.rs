//! Hedged requests: a second, identical request for an attempt that is slower than
//! recent ones, the first complete answer winning.
//!
//! The hedge delay is the larger of a floor and a percentile of the latencies of the
//! last [`LATENCY_WINDOW`] successful requests (the floor alone until
//! [`MIN_SAMPLES`] are known). Hedges are paid from a token bucket that every first
//! request fills by the budget share and that holds at most `burst` tokens (it starts
//! full), so at most that share of requests is doubled over time, however slow the
//! origin gets. The loser of a race is dropped, which cancels its request.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::{Either, select};
use tokio::time::Instant;

use super::counters::OriginCounters;

/// Successful latencies kept for the percentile.
const LATENCY_WINDOW: usize = 256;
/// Latencies needed before the percentile counts.
const MIN_SAMPLES: usize = 16;
/// The shortest hedge delay, by default.
pub const DEFAULT_HEDGE_FLOOR: Duration = Duration::from_millis(150);
/// The percentile of recent latencies after which a request is hedged, by default.
pub const DEFAULT_HEDGE_PERCENTILE: f64 = 0.95;
/// The share of requests that may be hedged, by default.
pub const DEFAULT_HEDGE_BUDGET: f64 = 0.05;
/// Hedges that may be spent at once (and at start), by default.
pub const DEFAULT_HEDGE_BURST: f64 = 10.0;

/// When slow requests are hedged.
#[derive(Debug, Clone, Copy)]
pub struct HedgeConfig {
    /// The shortest hedge delay.
    pub floor: Duration,
    /// The percentile (0..=1) of recent latencies after which a request is hedged.
    pub percentile: f64,
    /// The share of requests that may be hedged (0 turns hedging off once the burst is spent).
    pub budget: f64,
    /// Hedges that may be spent at once; the bucket starts with this many.
    pub burst: f64,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        Self {
            floor: DEFAULT_HEDGE_FLOOR,
            percentile: DEFAULT_HEDGE_PERCENTILE,
            budget: DEFAULT_HEDGE_BUDGET,
            burst: DEFAULT_HEDGE_BURST,
        }
    }
}

/// The latencies and the token bucket.
#[derive(Debug)]
pub(super) struct Hedger {
    config: HedgeConfig,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    latencies: VecDeque<Duration>,
    tokens: f64,
}

impl Hedger {
    pub(super) fn new(config: HedgeConfig) -> Self {
        let state = State { latencies: VecDeque::with_capacity(LATENCY_WINDOW), tokens: config.burst };
        Self { config, state: Mutex::new(state) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current hedge delay.
    pub(super) fn delay(&self) -> Duration {
        let state = self.state();
        if state.latencies.len() < MIN_SAMPLES {
            return self.config.floor;
        }
        let mut sorted: Vec<Duration> = state.latencies.iter().copied().collect();
        sorted.sort_unstable();
        let rank = ((sorted.len() - 1) as f64 * self.config.percentile.clamp(0.0, 1.0)).round() as usize;
        sorted[rank].max(self.config.floor)
    }

    /// A first request earns its share of a hedge.
    fn earn(&self) {
        let mut state = self.state();
        state.tokens = (state.tokens + self.config.budget).min(self.config.burst);
    }

    /// Takes a hedge token if there is one.
    fn spend(&self) -> bool {
        let mut state = self.state();
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn record(&self, latency: Duration) {
        let mut state = self.state();
        if state.latencies.len() == LATENCY_WINDOW {
            state.latencies.pop_front();
        }
        state.latencies.push_back(latency);
    }

    /// Runs `request`, and a copy of it when the first is slow and the budget allows;
    /// the first success wins (a failure waits for the other request). Returns the
    /// outcome and the number of requests made.
    pub(super) async fn run<F, Fut, T, E>(&self, counters: &OriginCounters, request: F) -> (Result<T, E>, u32)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.earn();
        counters.request();
        let first = self.timed(request());
        let mut first = std::pin::pin!(first);
        let delay = self.delay();
        match tokio::time::timeout(delay, &mut first).await {
            Ok(outcome) => return (outcome, 1),
            Err(_) if !self.spend() => return (first.await, 1),
            Err(_) => {}
        }
        counters.hedge();
        counters.request();
        let second = std::pin::pin!(self.timed(request()));
        match select(first, second).await {
            Either::Left((Ok(answer), _)) => (Ok(answer), 2),
            Either::Right((Ok(answer), _)) => {
                counters.hedge_win();
                (Ok(answer), 2)
            }
            // One failed: the other one decides.
            Either::Left((Err(_), second)) => {
                let outcome = second.await;
                if outcome.is_ok() {
                    counters.hedge_win();
                }
                (outcome, 2)
            }
            Either::Right((Err(_), first)) => (first.await, 2),
        }
    }

    /// `request`, its latency recorded when it succeeds.
    async fn timed<T, E>(&self, request: impl Future<Output = Result<T, E>>) -> Result<T, E> {
        let started = Instant::now();
        let outcome = request.await;
        if outcome.is_ok() {
            self.record(started.elapsed());
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_is_the_floor_until_enough_latencies_then_their_percentile() {
        let hedger = Hedger::new(HedgeConfig { floor: Duration::from_millis(10), ..HedgeConfig::default() });
        for ms in 1..MIN_SAMPLES as u64 {
            hedger.record(Duration::from_millis(ms * 100));
        }
        assert_eq!(hedger.delay(), Duration::from_millis(10));
        for ms in 1..=100 {
            hedger.record(Duration::from_millis(ms));
        }
        // 115 samples: 1..=100 ms and 100..=1500 ms; the 95th percentile is rank 108.
        assert_eq!(hedger.delay(), Duration::from_millis(900));
    }

    #[test]
    fn the_budget_earns_a_share_per_request_up_to_the_burst() {
        let hedger = Hedger::new(HedgeConfig { budget: 0.25, burst: 2.0, ..HedgeConfig::default() });
        assert!(hedger.spend());
        assert!(hedger.spend());
        assert!(!hedger.spend());
        for _ in 0..3 {
            hedger.earn();
        }
        assert!(!hedger.spend(), "0.75 token");
        hedger.earn();
        assert!(hedger.spend());
        for _ in 0..100 {
            hedger.earn();
        }
        assert!(hedger.spend() && hedger.spend() && !hedger.spend(), "capped at the burst");
    }
}
