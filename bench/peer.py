#!/usr/bin/env python3
"""Peer renderer for Tessera's side-by-side benchmark: rio-tiler 9.x.

Renders a list of Web Mercator tiles the way a rio-tiler based tile server
(such as TiTiler) does, so that Tessera's numbers can be read against a
well-known Python/GDAL stack on the same data and the same machine.

Each tile is a mosaic: rio_tiler.mosaic.mosaic_reader() over the tile's
assets with rio_tiler.io.Reader, first-pixel-wins selection (FirstMethod,
rio-tiler's default), 256x256 pixels in rio-tiler's default TMS
(WebMercatorQuad), then ImageData.render(img_format="PNG"). Tiles with one
asset take the same path. mosaic_reader reads a tile's assets on its own
thread pool, whose size rio-tiler takes from the MAX_THREADS environment
variable (default: 5 x the CPU count).

CLI:
    python bench/peer.py --tiles FILE.json --mode single|threads|processes
                         [--workers N] [--repeat K] [--out DIR]

    --tiles FILE.json  a JSON list of {"z": 12, "x": 1194, "y": 1551,
                       "assets": ["<path or URL>", ...]}; an asset is a local
                       path or an http(s) URL, handed to rio-tiler as it is
                       (GDAL reads URLs through /vsicurl)
    --mode             single:    one tile after another in this process
                       threads:   a ThreadPoolExecutor of N workers
                       processes: a ProcessPoolExecutor of N workers, each
                                  started and warmed (rio-tiler imported,
                                  nothing opened) before timing starts
    --workers N        pool size (default: os.cpu_count(); 1 for single)
    --repeat K         render the whole list K times in a row in the same
                       process or pool, so later passes run warm (default 1)
    --out DIR          also write each rendered tile to DIR/z_x_y.png, to
                       look at or compare the output (the writes fall inside
                       the timed run: leave it off when timing)

Output: one JSON object on stdout:
    {"peer": "rio-tiler", "version": rio_tiler.__version__,
     "gdal": rasterio.__gdal_version__, "mode": ..., "workers": N,
     "tiles": tiles rendered (list length x repeat), "errors": tiles that
     failed, "wall_s": time from the first submission to the last result,
     "tiles_per_s": successful tiles / wall_s,
     "p50_ms", "p99_ms": nearest-rank percentiles of the successful tiles'
     latencies (null when none succeeded),
     "latencies_ms": every tile's latency in submission order (failed tiles
     included), "error_messages": the first 5 distinct error messages,
     each prefixed with the first tile "z/x/y" that raised it}
    A tile's latency runs from the start of its render to its PNG bytes,
    measured where it is rendered (inside the worker for the pools).
    A tile whose assets all miss it (EmptyMosaicError, TileOutsideBounds),
    or that fails in any other way, counts as an error and the run goes on.
    Exit status: 0, or 1 when no tile at all was rendered.
"""

import os

# GDAL configuration for reading COGs, as recommended by TiTiler's
# performance-tuning documentation ("Performance Tuning", advanced section of
# the TiTiler docs). Set before rasterio is imported so that GDAL sees it, and
# inherited by the process-pool workers through the environment. A variable
# already set in the environment wins.
GDAL_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_VERSION": "2",
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": "5000000",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff",
    "GDAL_CACHEMAX": "200",
    "GDAL_INGESTED_BYTES_AT_OPEN": "32768",
    "PROJ_NETWORK": "OFF",
}
for _key, _value in GDAL_ENV.items():
    os.environ.setdefault(_key, _value)

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import rasterio  # noqa: E402
import rio_tiler  # noqa: E402
from rio_tiler.io import Reader  # noqa: E402
from rio_tiler.models import ImageData  # noqa: E402
from rio_tiler.mosaic import mosaic_reader  # noqa: E402
from rio_tiler.mosaic.methods.defaults import FirstMethod  # noqa: E402

TILE_SIZE = 256
MAX_ERROR_MESSAGES = 5

# Set in each process-pool worker by _init_worker; used by the warm-up task.
_WARM_BARRIER = None


def _read_asset(asset: str, x: int, y: int, z: int, **kwargs) -> ImageData:
    """mosaic_reader's reader: one asset's part of tile z/x/y."""
    with Reader(asset) as src:
        return src.tile(x, y, z, **kwargs)


def render_tile(job: dict, out_dir: str | None = None) -> tuple[float, str | None]:
    """Render one tile to PNG bytes; return (latency in ms, error or None)."""
    z, x, y, assets = job["z"], job["x"], job["y"], job["assets"]
    start = time.perf_counter()
    try:
        img, _used = mosaic_reader(
            assets, _read_asset, x, y, z, pixel_selection=FirstMethod, tilesize=TILE_SIZE
        )
        png = img.render(img_format="PNG")
    except Exception as exc:  # a failed tile is counted, not fatal
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        return elapsed_ms, f"{type(exc).__name__}: {exc}"
    elapsed_ms = (time.perf_counter() - start) * 1000.0
    if out_dir is not None:
        Path(out_dir, f"{z}_{x}_{y}.png").write_bytes(png)
    return elapsed_ms, None


def _init_worker(barrier) -> None:
    global _WARM_BARRIER
    _WARM_BARRIER = barrier


def _warm_up() -> int:
    """No-op task: blocks until every worker holds one, so each runs it once."""
    _WARM_BARRIER.wait(timeout=120)
    return os.getpid()


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def load_tiles(path: str) -> list[dict]:
    with open(path) as fh:
        tiles = json.load(fh)
    if not isinstance(tiles, list):
        raise ValueError(f"{path}: expected a JSON list of tiles")
    jobs = []
    for i, t in enumerate(tiles):
        try:
            job = {"z": int(t["z"]), "x": int(t["x"]), "y": int(t["y"]), "assets": list(t["assets"])}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: tile #{i} is not {{z, x, y, assets}}: {exc}") from exc
        if not job["assets"] or not all(isinstance(a, str) for a in job["assets"]):
            raise ValueError(f"{path}: tile #{i} needs a non-empty list of asset strings")
        jobs.append(job)
    return jobs


def run(jobs: list[dict], mode: str, workers: int, out_dir: str | None) -> tuple[float, list]:
    """Render jobs in order; return (wall seconds, [(latency_ms, error)])."""
    if mode == "single":
        start = time.perf_counter()
        results = [render_tile(job, out_dir) for job in jobs]
        return time.perf_counter() - start, results

    if mode == "threads":
        with ThreadPoolExecutor(max_workers=workers) as pool:
            start = time.perf_counter()
            futures = [pool.submit(render_tile, job, out_dir) for job in jobs]
            results = [f.result() for f in futures]
            wall = time.perf_counter() - start
        return wall, results

    # processes: fresh interpreters ("spawn"), so no GDAL state is inherited
    # from this process, only the environment set above.
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(barrier,)
    ) as pool:
        pids = {f.result() for f in [pool.submit(_warm_up) for _ in range(workers)]}
        if len(pids) != workers:
            raise RuntimeError(f"warm-up reached {len(pids)} of {workers} workers")
        start = time.perf_counter()
        futures = [pool.submit(render_tile, job, out_dir) for job in jobs]
        results = [f.result() for f in futures]
        wall = time.perf_counter() - start
    return wall, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="rio-tiler peer for Tessera's tile benchmark")
    parser.add_argument("--tiles", required=True, help="JSON list of {z, x, y, assets}")
    parser.add_argument("--mode", required=True, choices=("single", "threads", "processes"))
    parser.add_argument("--workers", type=int, default=None, help="pool size (default: CPU count)")
    parser.add_argument("--repeat", type=int, default=1, help="render the list this many times")
    parser.add_argument("--out", default=None, help="write tiles as DIR/z_x_y.png (not for timing)")
    args = parser.parse_args(argv)

    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.mode == "single":
        workers = 1
    else:
        workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
        if workers < 1:
            parser.error("--workers must be >= 1")
    if args.out is not None:
        Path(args.out).mkdir(parents=True, exist_ok=True)

    try:
        tiles = load_tiles(args.tiles)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    jobs = tiles * args.repeat

    wall, results = run(jobs, args.mode, workers, args.out)

    latencies = [ms for ms, _err in results]
    ok = sorted(ms for ms, err in results if err is None)
    # The first distinct error texts, each with the first tile that raised it.
    seen: set[str] = set()
    messages: list[str] = []
    for job, (_ms, err) in zip(jobs, results):
        if err is not None and err not in seen and len(messages) < MAX_ERROR_MESSAGES:
            seen.add(err)
            messages.append(f"{job['z']}/{job['x']}/{job['y']}: {err}")
    errors = len(results) - len(ok)
    p50, p99 = percentile(ok, 50), percentile(ok, 99)

    report = {
        "peer": "rio-tiler",
        "version": rio_tiler.__version__,
        "gdal": rasterio.__gdal_version__,
        "mode": args.mode,
        "workers": workers,
        "tiles": len(results),
        "errors": errors,
        "wall_s": round(wall, 6),
        "tiles_per_s": round(len(ok) / wall, 3) if wall > 0 else None,
        "p50_ms": round(p50, 3) if p50 is not None else None,
        "p99_ms": round(p99, 3) if p99 is not None else None,
        "latencies_ms": [round(ms, 3) for ms in latencies],
        "error_messages": messages,
    }
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()
    return 0 if ok or not results else 1


if __name__ == "__main__":
    sys.exit(main())
