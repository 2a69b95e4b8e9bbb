//! The process's one backoff: exponential (doubling) from `first` to `max`, with jitter,
//! built with `backon`. The origin fetcher retries on it a bounded number of times; the
//! server's pool warm-up and the pool's spawning of spare workers retry on it until they
//! succeed or shut down.

use std::time::Duration;

use backon::BackoffBuilder;

/// Delays before each next attempt, without end.
pub fn delays(first: Duration, max: Duration) -> impl Iterator<Item = Duration> {
    builder(first, max).without_max_times().build()
}

/// Delays before each next attempt, `times` of them.
pub fn delays_for(first: Duration, max: Duration, times: usize) -> impl Iterator<Item = Duration> {
    builder(first, max).with_max_times(times).build()
}

fn builder(first: Duration, max: Duration) -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default().with_jitter().with_min_delay(first).with_max_delay(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_the_cap_and_bounded_ones_end() {
        let (first, max) = (Duration::from_millis(50), Duration::from_secs(1));
        let seen: Vec<Duration> = delays(first, max).take(12).collect();
        assert!(seen.iter().all(|d| *d >= first && *d <= max * 2), "{seen:?}");
        // Past the cap, each delay is the cap plus at most one cap of jitter.
        assert!(seen[8..].iter().all(|d| *d >= max), "{seen:?}");
        assert_eq!(delays_for(first, max, 4).count(), 4);
    }
}
