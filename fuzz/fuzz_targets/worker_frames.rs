//! Fuzzes the front's side of the worker channel: the input is a byte stream as a
//! worker's stdout would carry it; every frame decoded from it is validated against a
//! read job and an info job. Nothing here may panic, whatever the worker writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::ipc::{MAX_FRAME_LEN, read_frame};
use tessera::pb::worker::worker_request::Job;
use tessera::pb::worker::{InfoRequest, ReadRequest, Resampling, WorkerRequest, WorkerResponse};
use tessera::pool::check_response;

fn read_job() -> WorkerRequest {
    WorkerRequest {
        id: 1,
        deadline_ms: 5_000,
        trace_context: Default::default(),
        job: Some(Job::Read(ReadRequest {
            path: "/data/a.tif".into(),
            target_crs: "EPSG:3857".into(),
            min_x: 0.0,
            min_y: 0.0,
            max_x: 1.0,
            max_y: 1.0,
            width: 256,
            height: 256,
            resampling: Resampling::Nearest as i32,
            bands: vec![],
        })),
    }
}

fn info_job() -> WorkerRequest {
    WorkerRequest {
        id: 2,
        deadline_ms: 5_000,
        trace_context: Default::default(),
        job: Some(Job::Info(InfoRequest { path: "/data/a.tif".into() })),
    }
}

/// A frame longer than this that the input cannot complete is not handed to
/// `read_frame`: it would only allocate up to MAX_FRAME_LEN zeroed bytes and then
/// fail with `Closed`, and those allocations cut the fuzzer's speed ~30-fold. Shorter
/// truncated frames, and lengths over MAX_FRAME_LEN (refused before allocating), still
/// go through `read_frame`.
const SKIP_TRUNCATED_OVER: usize = 1 << 20;

/// Whether the next frame declares a big length the input cannot supply.
fn is_big_truncated_frame(stream: &[u8]) -> bool {
    let Some(prefix) = stream.first_chunk::<4>() else { return false };
    let len = u32::from_be_bytes(*prefix) as usize;
    len > SKIP_TRUNCATED_OVER && len <= MAX_FRAME_LEN && len > stream.len() - 4
}

fuzz_target!(|data: &[u8]| {
    let read = read_job();
    let info = info_job();
    let mut stream = data;
    // Frames until the stream ends or is corrupt, as the front reads a worker.
    while !is_big_truncated_frame(stream)
        && let Ok(response) = read_frame::<WorkerResponse>(&mut stream)
    {
        let _ = check_response(&read, response.clone());
        let _ = check_response(&info, response);
    }
});
