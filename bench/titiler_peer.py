"""TiTiler as the benchmark runs it (scenario g), and a small HTTP load client.

TiTiler 2.4 (titiler.application, bench/requirements-titiler.txt) is served by
uvicorn with 2 worker processes, with the GDAL settings of TiTiler's documentation
("Performance Tuning", and the environment of its docker-compose file) for COGs, and
serves a MosaicJSON of the six demo assets at
    /mosaicjson/tiles/WebMercatorQuad/{z}/{x}/{y}.png?url=<mosaic.json>
(first-pixel-wins selection, 256 px: the same tile Tessera's bench asks for).

The MosaicJSON (0.0.3, quadkey zoom 12, zooms 12-16) is written by cogeo-mosaic,
which TiTiler's mosaic extension uses to read it, from the local files; the HTTP
variant is the same document with each asset's path replaced by its URL.
"""

from __future__ import annotations

import http.client
import json
import math
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit

# TiTiler's recommended GDAL configuration for COGs (the same as bench/peer.py's, with
# the two block and curl caches of the docs' list).
GDAL_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_VERSION": "2",
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": "5000000",
    "GDAL_CACHEMAX": "200",
    "CPL_VSIL_CURL_CACHE_SIZE": "200000000",
    "GDAL_BAND_BLOCK_CACHE": "HASHSET",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff",
    "GDAL_INGESTED_BYTES_AT_OPEN": "32768",
    "PROJ_NETWORK": "OFF",
    "PYTHONWARNINGS": "ignore",
}

# Uvicorn worker processes (one per core of the benchmark machine's 2).
UVICORN_WORKERS = 2

MOSAIC_MINZOOM, MOSAIC_MAXZOOM = 12, 16

_WRITE_MOSAIC = """
import json, sys
from cogeo_mosaic.mosaic import MosaicJSON
paths = json.loads(sys.argv[1])
mosaic = MosaicJSON.from_urls(paths, minzoom=int(sys.argv[2]), maxzoom=int(sys.argv[3]), quiet=True)
print(mosaic.model_dump_json(exclude_none=True))
"""


def write_mosaic(python: str, paths: list[str], out: str, url_prefix: tuple[str, str] | None = None) -> dict:
    """Writes a MosaicJSON of `paths` to `out`; with url_prefix (local_dir, base_url)
    each asset path under local_dir becomes a URL under base_url. Returns the document."""
    text = subprocess.run([python, "-c", _WRITE_MOSAIC, json.dumps(paths), str(MOSAIC_MINZOOM),
                           str(MOSAIC_MAXZOOM)], capture_output=True, text=True, check=True).stdout
    doc = json.loads(text)
    if url_prefix is not None:
        local, base = url_prefix
        doc["tiles"] = {qk: [a.replace(local, base, 1) for a in assets] for qk, assets in doc["tiles"].items()}
    with open(out, "w") as f:
        json.dump(doc, f)
    return doc


def server_command(python: str, port: int) -> list[str]:
    return [python, "-m", "uvicorn", "titiler.application.main:app", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(UVICORN_WORKERS), "--no-access-log",
            "--log-level", "warning"]


def tile_path(mosaic: str, z: int, x: int, y: int) -> str:
    return f"/mosaicjson/tiles/WebMercatorQuad/{z}/{x}/{y}.png?url={quote(mosaic, safe='')}"


def wait_ready(base: str, timeout: float = 120) -> None:
    """Waits until the server answers /healthz."""
    deadline = time.time() + timeout
    parts = urlsplit(base)
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"TiTiler at {base} did not answer /healthz in {timeout:.0f} s")


def _percentile(sorted_ms: list[float], p: float) -> float | None:
    # The same rank as `tessera bench --tile-list`.
    if not sorted_ms:
        return None
    return sorted_ms[min(len(sorted_ms) - 1, round(p / 100 * (len(sorted_ms) - 1)))]


def http_load(base: str, paths: list[str], concurrency: int) -> dict:
    """GETs every path, `concurrency` at a time on keep-alive connections (one per
    thread); a tile is ok when it answers 200 with an image/png body. Returns the same
    shape as `tessera bench --tile-list`."""
    parts = urlsplit(base)
    local = threading.local()

    def get(path: str) -> tuple[float, str | None]:
        start = time.perf_counter()
        for attempt in (0, 1):
            try:
                if getattr(local, "conn", None) is None:
                    local.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
                local.conn.request("GET", path)
                r = local.conn.getresponse()
                body = r.read()
                elapsed = (time.perf_counter() - start) * 1000
                if r.status != 200 or not body.startswith(b"\x89PNG"):
                    return elapsed, f"HTTP {r.status}: {body[:200]!r}"
                return elapsed, None
            except (OSError, http.client.HTTPException) as e:
                local.conn = None
                if attempt == 1:
                    return (time.perf_counter() - start) * 1000, f"{type(e).__name__}: {e}"
        raise AssertionError("unreachable")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(get, paths))
    wall = time.perf_counter() - started
    ok = sorted(ms for ms, err in results if err is None)
    messages = list(dict.fromkeys(err for _, err in results if err))[:5]
    return {
        "tiles": len(results), "errors": len(results) - len(ok), "wall_s": wall,
        "tiles_per_s": len(ok) / wall if wall > 0 else math.nan,
        "p50_ms": _percentile(ok, 50), "p99_ms": _percentile(ok, 99),
        "latencies_ms": [ms for ms, _ in results], "error_messages": messages,
    }
