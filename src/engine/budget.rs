//! Memory admission: what a tile or preview will cost the front, worked out from the
//! request and the assets' metadata before anything is read, and a byte budget that all
//! requests in flight share.
//!
//! The front holds every asset's answer (pixels and mask) until it is composited, the
//! raster each asset becomes after an expression (a pixel selection that reduces a stack
//! keeps all of them), the `float64` planes an expression is evaluated in, and the
//! result three times over (composited, rescaled or coloured, encoded). The estimate
//! counts all of that at its worst (every answer held at once), so the memory a request
//! may take is bounded by what it reserved. A request over `--max-request-memory` is
//! refused outright (no retry helps); one that does not fit in what is left of
//! `--max-in-flight-memory` is refused with a retry hint, like the tile-count admission
//! beside it. Either way nothing has been read yet.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::{
    error::ServiceError,
    render::DataType,
    telemetry::metrics::{MetricSource, Observers, Sample},
};

/// The budget counts in units of this many bytes (a semaphore takes `u32` permits).
const UNIT: u64 = 1024;

/// What a render holds in the front, as far as the request and the assets' metadata
/// tell before reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderShape {
    /// Output width and height in pixels.
    pub width: u64,
    /// Output height in pixels.
    pub height: u64,
    /// Assets read.
    pub assets: u64,
    /// Type and bands of one asset's answer.
    pub read: (DataType, usize),
    /// Outputs of the expression, if there is one (it is evaluated in `float64`).
    pub expression_outputs: Option<usize>,
    /// Type and bands of one asset's raster after the expression.
    pub selected: (DataType, usize),
    /// Type and bands of the image encoded.
    pub out: (DataType, usize),
}

impl RenderShape {
    /// Bytes held at the worst moment (every answer and every selected raster held at
    /// once; see the module doc). Saturates rather than overflows.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        let pixels = self.width.saturating_mul(self.height);
        // Pixels of `bands` bands of `dtype`, and a one-byte mask.
        let image = |(dtype, bands): (DataType, usize)| {
            pixels.saturating_mul((bands as u64).saturating_mul(dtype.size() as u64).saturating_add(1))
        };
        let per_asset = image(self.read).saturating_add(image(self.selected));
        let expression = self
            .expression_outputs
            .map_or(0, |outputs| pixels.saturating_mul(8).saturating_mul((self.read.1 + outputs) as u64));
        let accumulators = pixels.saturating_mul(8).saturating_mul(self.selected.1 as u64);
        self.assets
            .saturating_mul(per_asset)
            .saturating_add(expression)
            .saturating_add(accumulators)
            .saturating_add(image(self.out).saturating_mul(3))
    }

    /// The smallest the encoded image can be when the format does not compress (NPY):
    /// its pixels.
    #[must_use]
    pub fn raw_bytes(&self) -> u64 {
        let (dtype, bands) = self.out;
        self.width
            .saturating_mul(self.height)
            .saturating_mul(bands as u64)
            .saturating_mul(dtype.size() as u64)
    }

    /// "1024x1024 px, 16 float64 outputs, 8 assets" for messages.
    fn describe(&self) -> String {
        let (dtype, bands) = self.out;
        let assets = if self.assets == 1 { "1 asset".to_owned() } else { format!("{} assets", self.assets) };
        format!("{}x{} px, {bands} {} band(s), {assets}", self.width, self.height, dtype.name())
    }
}

/// The byte budget of the requests in flight, and the limit of one request.
#[derive(Debug)]
pub struct MemoryBudget {
    units: Semaphore,
    total: u64,
    per_request: u64,
    /// Requests refused for being over `per_request`.
    refused_request: AtomicU64,
    /// Requests refused for want of room in the budget.
    refused_in_flight: AtomicU64,
}

/// A reservation: held while the request renders, returned when dropped.
#[derive(Debug)]
pub struct Reservation<'a> {
    _units: SemaphorePermit<'a>,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

impl MemoryBudget {
    /// A budget of `total` bytes for all requests in flight, of which one request may
    /// take at most `per_request` (capped at `total`).
    #[must_use]
    pub fn new(total: u64, per_request: u64) -> Self {
        let units = usize::try_from(total / UNIT).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS);
        Self {
            units: Semaphore::new(units),
            total,
            per_request: per_request.min(total),
            refused_request: AtomicU64::new(0),
            refused_in_flight: AtomicU64::new(0),
        }
    }

    /// Requests refused so far: (over `--max-request-memory`, for want of room in
    /// `--max-in-flight-memory`).
    #[must_use]
    pub fn refused(&self) -> (u64, u64) {
        (self.refused_request.load(Ordering::Relaxed), self.refused_in_flight.load(Ordering::Relaxed))
    }

    /// Bytes reserved by the requests in flight now.
    #[must_use]
    pub fn in_use(&self) -> u64 {
        let free = self.units.available_permits() as u64;
        (self.total / UNIT).saturating_sub(free) * UNIT
    }

    /// Reserves what rendering `shape` will hold, or says why it cannot: `what` names the
    /// image ("the tile", "the preview") and `smaller` the fields to shrink.
    pub fn reserve(
        &self,
        what: &str,
        shape: &RenderShape,
        smaller: &str,
    ) -> Result<Reservation<'_>, ServiceError> {
        let bytes = shape.bytes();
        if bytes > self.per_request {
            self.refused_request.fetch_add(1, Ordering::Relaxed);
            return Err(ServiceError::ResourceExhausted {
                message: format!(
                    "{what} ({}) would need about {} of memory to render, over this server's limit of {} per request (--max-request-memory); ask for {smaller}",
                    shape.describe(),
                    mib(bytes),
                    mib(self.per_request)
                ),
                retry_after: Duration::ZERO,
            });
        }
        let units = u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX).max(1);
        self.units.try_acquire_many(units).map(|units| Reservation { _units: units }).map_err(|_| {
            self.refused_in_flight.fetch_add(1, Ordering::Relaxed);
            ServiceError::ResourceExhausted {
                message: format!(
                    "server overloaded: {what} needs about {} of memory and the requests in flight hold {} of this server's {} (--max-in-flight-memory); retry later",
                    mib(bytes),
                    mib(self.in_use()),
                    mib(self.total)
                ),
                retry_after: Duration::from_millis(200),
            }
        })
    }

    /// RESOURCE_EXHAUSTED before anything is read when an uncompressed image of `shape`
    /// is bound to be over `max_response_size` (see `Limits::check_response_size`).
    pub fn check_raw_size(
        what: &str,
        shape: &RenderShape,
        max_response_size: usize,
        smaller: &str,
    ) -> Result<(), ServiceError> {
        let raw = shape.raw_bytes();
        if raw <= max_response_size as u64 {
            return Ok(());
        }
        Err(ServiceError::ResourceExhausted {
            message: format!(
                "{what} ({}) would be at least {raw} bytes encoded, over this server's limit of {max_response_size} bytes per response (--max-response-size); ask for {smaller}, fewer bands or a compressed format",
                shape.describe()
            ),
            retry_after: Duration::ZERO,
        })
    }
}

/// The refusals and reservations, on `/metrics` only (not exported over OTLP).
impl MetricSource for MemoryBudget {
    fn samples(&self) -> Vec<Sample> {
        let (request, in_flight) = self.refused();
        let refused = |limit: &str, value| Sample {
            name: "tessera_memory_refused_total",
            help: "Tiles and previews refused before reading, by the memory limit they were over.",
            kind: "counter",
            label: Some(("limit", limit.to_owned())),
            value,
        };
        vec![
            refused("request", request),
            refused("in_flight", in_flight),
            Sample::gauge(
                "tessera_memory_reserved_bytes",
                "Bytes reserved by the tiles and previews rendering now (--max-in-flight-memory).",
                self.in_use(),
            ),
        ]
    }

    fn observe(self: std::sync::Arc<Self>, _meter: &opentelemetry::metrics::Meter) -> Observers {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preview_attack() -> RenderShape {
        // GetPreview of a 4-band uint16 asset at 4096x4096 px, "b1/b2;" x 16 as NPY.
        RenderShape {
            width: 4096,
            height: 4096,
            assets: 1,
            read: (DataType::U16, 2),
            expression_outputs: Some(16),
            selected: (DataType::F64, 16),
            out: (DataType::F64, 16),
        }
    }

    #[test]
    fn the_estimate_counts_answers_planes_stack_and_output() {
        let tile = RenderShape {
            width: 256,
            height: 256,
            assets: 6,
            read: (DataType::U8, 3),
            expression_outputs: None,
            selected: (DataType::U8, 3),
            out: (DataType::U8, 3),
        };
        let pixels = 256 * 256;
        assert_eq!(tile.bytes(), 6 * (pixels * 4 + pixels * 4) + pixels * 8 * 3 + 3 * pixels * 4);
        let attack = preview_attack();
        let pixels = 4096 * 4096;
        assert_eq!(
            attack.bytes(),
            (pixels * 5 + pixels * 129) + pixels * 8 * 18 + pixels * 8 * 16 + 3 * pixels * 129,
            "about 12.4 GiB: the attack's measured ~4.4 GB of RSS, counted at its worst"
        );
        assert_eq!(attack.raw_bytes(), pixels * 16 * 8);
    }

    #[test]
    fn a_request_over_the_per_request_limit_is_refused_without_a_retry_hint() {
        let budget = MemoryBudget::new(1 << 30, 256 << 20);
        let Err(ServiceError::ResourceExhausted { message, retry_after }) =
            budget.reserve("the preview", &preview_attack(), "a smaller max_size")
        else {
            panic!("the attack was admitted");
        };
        assert_eq!(retry_after, Duration::ZERO);
        assert!(
            message.starts_with("the preview (4096x4096 px, 16 float64 band(s), 1 asset) would need about 12688.0 MiB of memory"),
            "{message}"
        );
        assert!(message.contains("over this server's limit of 256.0 MiB per request (--max-request-memory)"));
        assert_eq!(budget.in_use(), 0, "nothing is held after a refusal");
        assert_eq!(budget.refused(), (1, 0));
    }

    #[test]
    fn the_budget_is_shared_and_returned_when_a_reservation_drops() {
        let budget = MemoryBudget::new(18 << 20, 18 << 20);
        let shape = RenderShape {
            width: 1024,
            height: 1024,
            assets: 1,
            read: (DataType::U8, 1),
            expression_outputs: None,
            selected: (DataType::U8, 1),
            out: (DataType::U8, 1),
        };
        // 2 + 2 + 8 (accumulator) + 3 * 2 MiB = 18 MiB: exactly the budget.
        assert_eq!(shape.bytes(), 18 << 20);
        let first = budget.reserve("the tile", &shape, "less").unwrap();
        assert_eq!(budget.in_use(), 18 << 20);
        let Err(ServiceError::ResourceExhausted { message, retry_after }) =
            budget.reserve("the tile", &shape, "less")
        else {
            panic!("the budget was overcommitted");
        };
        assert_eq!(retry_after, Duration::from_millis(200));
        assert!(message.contains(
            "the requests in flight hold 18.0 MiB of this server's 18.0 MiB (--max-in-flight-memory)"
        ));
        assert_eq!(budget.refused(), (0, 1));
        drop(first);
        assert_eq!(budget.in_use(), 0);
        assert!(budget.reserve("the tile", &shape, "less").is_ok());
    }

    #[test]
    fn an_uncompressed_image_over_the_response_limit_is_refused_up_front() {
        let e =
            MemoryBudget::check_raw_size("the preview", &preview_attack(), 64 << 20, "a smaller max_size")
                .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the preview (4096x4096 px, 16 float64 band(s), 1 asset) would be at least 2147483648 bytes encoded, over this server's limit of 67108864 bytes per response (--max-response-size); ask for a smaller max_size, fewer bands or a compressed format"
        );
        let small = RenderShape { width: 256, height: 256, ..preview_attack() };
        assert!(MemoryBudget::check_raw_size("the preview", &small, 64 << 20, "less").is_ok());
    }
}
