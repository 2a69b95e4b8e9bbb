//! Identical tile requests share work: while one is being rendered, the same request
//! from other callers waits for that render instead of starting its own (coalescing);
//! and, when `--tile-cache-size` is set, encoded tiles are kept for `--tile-cache-ttl`
//! and served again without any worker job.
//!
//! The coalescing is hand-written rather than moka's `get_with`: a waiter is bounded by
//! its own deadline, and a leader's deadline or admission failure is not passed on to
//! the others (they render for themselves); the cache itself is moka's.
//!
//! Requests are identical when their protobuf encodings are: the same tile, assets in
//! the same order, same bands, format and options. A cached tile of a local file that
//! is replaced is served until its TTL runs out.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::OnceCell, time::Instant};

use crate::{error::ServiceError, pb::v1::GetTileResponse};

/// A request's identity: its protobuf encoding.
pub type Key = Vec<u8>;

type Shared = Arc<OnceCell<Result<GetTileResponse, ServiceError>>>;

/// Encoded tiles by request (moka): bounded in bytes (each tile weighs its key, data,
/// mask and 256 bytes of overhead), least recently used out first, each kept for the TTL.
type Cache = moka::sync::Cache<Key, Arc<GetTileResponse>>;

fn cost(key: &Key, tile: &GetTileResponse) -> u64 {
    (key.len() + tile.data.len() + tile.mask.len() + 256) as u64
}

/// Where a tile's answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This caller rendered it.
    Rendered,
    /// Another caller's render of the same request, in flight when this one came.
    Coalesced,
    /// The tile cache.
    Cached,
}

/// Coalescing of in-flight renders and the optional cache of encoded tiles.
#[derive(Debug)]
pub struct TileSharing {
    in_flight: Mutex<HashMap<Key, Shared>>,
    cache: Option<Cache>,
    max_bytes: u64,
}

impl TileSharing {
    /// Coalescing always; a cache of `max_bytes` (0 = none) keeping tiles for `ttl`.
    #[must_use]
    pub fn new(max_bytes: u64, ttl: Duration) -> Self {
        let cache = (max_bytes > 0 && !ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key, tile: &Arc<GetTileResponse>| {
                    u32::try_from(cost(key, tile)).unwrap_or(u32::MAX)
                })
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .time_to_live(ttl)
                .build()
        });
        Self { in_flight: Mutex::default(), cache, max_bytes }
    }

    /// The answer to the request `key`: from the cache, from a render of the same
    /// request already in flight, or from `render` (whose result the others share).
    /// A caller waits for another's render no longer than its own `deadline`.
    pub async fn get_or_render<F>(
        &self,
        key: Key,
        deadline: Instant,
        render: impl Fn() -> F,
    ) -> (Result<GetTileResponse, ServiceError>, Source)
    where
        F: Future<Output = Result<GetTileResponse, ServiceError>>,
    {
        if let Some(tile) = self.cache.as_ref().and_then(|c| c.get(&key)) {
            return (Ok((*tile).clone()), Source::Cached);
        }
        // The first caller of a key leads: it renders under its own deadline, which the
        // render itself enforces. The others wait, each bounded by its own deadline.
        let entry = self.in_flight.lock().ok().map(|mut m| match m.entry(key.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => (Arc::clone(e.get()), false),
            std::collections::hash_map::Entry::Vacant(e) => (Arc::clone(e.insert(Shared::default())), true),
        });
        let Some((cell, leader)) = entry else {
            return (render().await, Source::Rendered);
        };
        // `get_or_init` runs `render` only if no other caller is rendering; if that
        // caller goes away mid-render, one of the waiting callers takes over.
        let mut rendered_here = false;
        let shared = cell.get_or_init(|| {
            rendered_here = true;
            render()
        });
        let result = if leader { Ok(shared.await) } else { tokio::time::timeout_at(deadline, shared).await };
        let result = match result {
            Ok(r) => r.clone(),
            Err(_) => Err(ServiceError::DeadlineExceeded(
                "the deadline passed while waiting for the same tile to be rendered for another caller"
                    .into(),
            )),
        };
        if let Ok(mut in_flight) = self.in_flight.lock() {
            if in_flight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) && cell.initialized() {
                in_flight.remove(&key);
            }
        }
        if let (Ok(tile), Some(cache), true) = (&result, &self.cache, rendered_here)
            && cost(&key, tile) <= self.max_bytes
        {
            cache.insert(key, Arc::new(tile.clone()));
            // Evict now, not on some later call: the bytes bound holds when this returns.
            cache.run_pending_tasks();
        }
        // Another caller's deadline or admission failure says nothing about this one's.
        let theirs =
            matches!(result, Err(ServiceError::DeadlineExceeded(_) | ServiceError::ResourceExhausted { .. }));
        if !rendered_here && theirs && Instant::now() < deadline {
            return (render().await, Source::Rendered);
        }
        (result, if rendered_here { Source::Rendered } else { Source::Coalesced })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(n: usize) -> GetTileResponse {
        GetTileResponse { data: vec![7; n], ..Default::default() }
    }

    #[tokio::test]
    async fn concurrent_identical_requests_render_once() {
        let sharing = TileSharing::new(0, Duration::ZERO);
        let renders = std::sync::atomic::AtomicUsize::new(0);
        let deadline = Instant::now() + Duration::from_secs(5);
        let one = || async {
            renders.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(tile(10))
        };
        let results =
            futures::future::join_all((0..5).map(|_| sharing.get_or_render(b"k".to_vec(), deadline, one)))
                .await;
        assert_eq!(renders.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(results.iter().filter(|(_, s)| *s == Source::Rendered).count(), 1);
        assert!(results.iter().all(|(r, _)| r.as_ref().unwrap().data == vec![7; 10]));
        // Finished renders are forgotten: the next request renders again (no cache).
        let (_, source) = sharing.get_or_render(b"k".to_vec(), deadline, one).await;
        assert_eq!(source, Source::Rendered);
        assert_eq!(renders.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_cache_serves_until_its_ttl_and_stays_within_its_bytes() {
        let sharing = TileSharing::new(3 * (1 + 1000 + 256), Duration::from_millis(100));
        let deadline = Instant::now() + Duration::from_secs(5);
        for k in 0..4u8 {
            let (_, s) = sharing.get_or_render(vec![k], deadline, || async { Ok(tile(1000)) }).await;
            assert_eq!(s, Source::Rendered);
        }
        // Three fit; the least recently used (key 0) went.
        let (_, s) = sharing.get_or_render(vec![3], deadline, || async { Ok(tile(1)) }).await;
        assert_eq!(s, Source::Cached);
        let (_, s) = sharing.get_or_render(vec![0], deadline, || async { Ok(tile(1000)) }).await;
        assert_eq!(s, Source::Rendered);
        tokio::time::sleep(Duration::from_millis(120)).await;
        let (r, s) = sharing.get_or_render(vec![3], deadline, || async { Ok(tile(5)) }).await;
        assert_eq!((s, r.unwrap().data.len()), (Source::Rendered, 5), "expired entries render again");
        // Errors are not cached.
        let (_, s) = sharing
            .get_or_render(vec![9], deadline, || async { Err(ServiceError::NotFound("x".into())) })
            .await;
        assert_eq!(s, Source::Rendered);
        let (_, s) = sharing.get_or_render(vec![9], deadline, || async { Ok(tile(1)) }).await;
        assert_eq!(s, Source::Rendered);
    }
}
