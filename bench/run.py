#!/usr/bin/env python3
"""Tessera side by side with the peer (rio-tiler), one command: `make bench`.

Runs every scenario on the same files, the same tiles and the same machine, prints
the tables and writes them to BENCHMARKS.md with Tessera / peer ratios:

  (a) local mix: single-asset and 6-asset mosaic tiles, z12-z17, 256 px PNG;
      Tessera at --concurrency requests in flight vs the peer in one thread, a
      thread pool and a process pool sized to the cores.
  (b) a 6-asset z12 mosaic over HTTP with a fixed latency per request
      (bench/range_server.py): cold tile (fresh server or process), the same tile
      warm, and a neighbouring tile (a z13 child over the same, already open
      assets), with the requests each cost; the same for S3 (moto, no added
      latency).
  (c) low-zoom mosaic tiles, z8-z10, local files.
  (d) throughput vs Tessera's pool size in the latency-bound case (HTTP).
  (e) RSS of Tessera's front and workers over a long run of the local mix.
  (f) throughput on six-asset tiles z12-z16, 16 in flight: local files vs HTTP at a
      fixed latency, origin requests per tile, and origin requests with 16 workers
      vs 4 (remote I/O shared by the pool should not grow with it).
  (g) TiTiler 2.4 (uvicorn, 2 workers, a MosaicJSON; bench/titiler_peer.py) on the
      tiles of (f), local and over HTTP, against Tessera.
  (h) real TCP latency: the range server in a network namespace behind netem
      delay and loss (bench/netns.py; needs root, ip and tc, else skipped): cold
      and warm z12 tile, and the throughput run of (f).
  (i) the floor: the tiles of (f) rendered in one process and thread with no
      gRPC, pool or IPC vs Tessera with one worker, tile by tile in turn
      (`tessera bench --server ADDR --floor`); and under load, the default pool
      with 16 callers vs one floor process a core (`tessera bench --floor`).
  (j) a STAC layer of a million items: a stac-geoparquet grid of NAIP-like
      quarter-quads (`tessera bench --write-stac-items`), loaded as a layer in one
      process (`tessera bench --stac-layer`): load time, memory, and the time to
      find a tile's items at z8-z14. Tessera only (no peer).
  (k) z0-z8 tiles of a 10 000-item STAC layer over the demo assets, without its
      overview (asset budget 64: truncated) and with it (one asset per tile), the
      overview built by `tessera layer build-overview --max-zoom 8`; and the same
      tiles with every asset read.

Tessera is driven by `tessera bench --tile-list` (a Rust gRPC client); the peer by
bench/peer.py in-process (no RPC: the peer's numbers exclude any serving cost).
Options: --quick (smaller runs), --soak-tiles N, --latency-ms MS, --out FILE,
--only LETTERS (e.g. --only fgi), --stac-items N (scenario j).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "tessera"
DATA = ROOT / "data"
PY = ROOT / ".venv" / "bin" / "python"
UTM = [f"utm_rgb_{i}.tif" for i in ("00", "01", "02", "10", "11", "12")]
CORES = os.cpu_count() or 1


# ---------------------------------------------------------------- processes


class Proc:
    """A child process whose stderr is drained (and kept) in the background."""

    def __init__(self, args: list[str], env: dict | None = None, ready: str | None = None):
        self.p = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
        )
        self.lines: list[str] = []
        self.seen = threading.Event()
        self.ready = ready
        threading.Thread(target=self._drain, args=(self.p.stderr,), daemon=True).start()

    def _drain(self, stream) -> None:
        for line in stream:
            self.lines.append(line)
            if self.ready and self.ready in line:
                self.seen.set()

    def wait_ready(self, timeout: float = 60) -> None:
        if not self.seen.wait(timeout):
            raise RuntimeError("not ready:\n" + "".join(self.lines[-20:]))

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()


def range_server(latency_ms: int, host: str = "127.0.0.1", prefix: list[str] = ()) -> tuple[Proc, str]:
    """bench/range_server.py over DATA; `prefix` runs it under a command (ip netns exec)."""
    proc = Proc([*prefix, str(PY), str(ROOT / "bench" / "range_server.py"), "--root", str(DATA),
                 "--host", host, "--latency-ms", str(latency_ms)])
    base = proc.p.stdout.readline().split("listening on ")[1].strip()
    return proc, base


def counts(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/__stats") as r:
        return json.load(r)


def tessera(workers: int | None, args: list[str] = (), env: dict | None = None) -> tuple[Proc, str]:
    """A fresh `tessera serve`; `workers=None` keeps the default pool size."""
    pool = [] if workers is None else ["--workers", str(workers)]
    proc = Proc([str(BIN), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(DATA),
                 *pool, *args], env={"RUST_LOG": "info", "NO_COLOR": "1", **(env or {})},
                ready="worker pool ready")
    proc.wait_ready()
    address = next(re.search(r"listening on ([0-9.:]+)", l).group(1) for l in proc.lines if "listening on" in l)
    return proc, address


def children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


def rss_mib(pid: int, key: str = "VmRSS:") -> float:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def write_list(tiles: list[dict]) -> str:
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, dir=tempfile.gettempdir())
    json.dump(tiles, f)
    f.close()
    return f.name


def run_tessera(address: str, tiles: list[dict], concurrency: int = 1, repeat: int = 1) -> dict:
    out = subprocess.run([str(BIN), "bench", "--server", address, "--tile-list", write_list(tiles),
                          "--concurrency", str(concurrency), "--repeat", str(repeat)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_peer(tiles: list[dict], mode: str, workers: int | None = None, repeat: int = 1,
             env: dict | None = None) -> dict:
    args = [str(PY), str(ROOT / "bench" / "peer.py"), "--tiles", write_list(tiles), "--mode", mode,
            "--repeat", str(repeat)]
    if workers:
        args += ["--workers", str(workers)]
    out = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if not out.stdout.strip():
        raise RuntimeError(f"peer failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


# ---------------------------------------------------------------- tiles


def bounds_4326(path: Path) -> tuple[float, float, float, float]:
    out = subprocess.run([str(PY), "-c", (
        "import sys, json, rasterio\n"
        "from rasterio.warp import transform_bounds\n"
        "ds = rasterio.open(sys.argv[1])\n"
        "print(json.dumps(transform_bounds(ds.crs, 'EPSG:4326', *ds.bounds)))"), str(path)],
        capture_output=True, text=True, check=True)
    return tuple(json.loads(out.stdout))


def tiles_over(b, z: int) -> list[tuple[int, int, int]]:
    """Web Mercator tiles at zoom z that touch the lon/lat box b."""
    import math

    def tile(lon, lat):
        n = 2 ** z
        x = int((lon + 180) / 360 * n)
        lat = math.radians(lat)
        y = int((1 - math.log(math.tan(lat) + 1 / math.cos(lat)) / math.pi) / 2 * n)
        return x, y

    x0, y0 = tile(b[0], b[3])
    x1, y1 = tile(b[2], b[1])
    return [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def union(bs):
    return (min(b[0] for b in bs), min(b[1] for b in bs), max(b[2] for b in bs), max(b[3] for b in bs))


def local_mix(bounds: dict, n: int, seed: int = 42) -> list[dict]:
    rng = random.Random(seed)
    singles = [(t, [a]) for a in UTM for z in range(14, 18) for t in tiles_over(bounds[a], z)]
    mosaic_area = union(list(bounds.values()))
    mosaics = [(t, UTM) for z in range(12, 18) for t in tiles_over(mosaic_area, z)]
    out = []
    for _ in range(n):
        (z, x, y), assets = rng.choice(singles if rng.random() < 0.5 else mosaics)
        out.append({"z": z, "x": x, "y": y, "assets": [str(DATA / a) for a in assets]})
    return out


def tile(z, x, y, assets) -> dict:
    return {"z": z, "x": x, "y": y, "assets": list(assets)}


# ---------------------------------------------------------------- scenarios


def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


def scenario_a(bounds, n: int, concurrency: int, workers: int) -> list[str]:
    tiles = local_mix(bounds, n)
    proc, address = tessera(workers)
    try:
        run_tessera(address, tiles[: max(10, n // 10)], concurrency)  # warm-up pass
        ours = run_tessera(address, tiles, concurrency)
    finally:
        proc.stop()
    peers = {mode: run_peer(tiles, mode, None if mode == "single" else CORES) for mode in ("single", "threads", "processes")}
    best = max(peers.values(), key=lambda r: r["tiles_per_s"])
    rows = [f"| Tessera ({workers} workers, {concurrency} in flight) | {fmt(ours['tiles_per_s'])} | "
            f"{fmt(ours['p50_ms'])} | {fmt(ours['p99_ms'])} | {ours['errors']} |"]
    for mode, r in peers.items():
        rows.append(f"| rio-tiler {mode}{'' if mode == 'single' else f' ({CORES})'} | {fmt(r['tiles_per_s'])} | "
                    f"{fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | {r['errors']} |")
    ratio = ours["tiles_per_s"] / best["tiles_per_s"]
    return [
        f"### (a) Local mix: {n} tiles, half single-asset (z14-z17), half 6-asset mosaics (z12-z17), 256 px PNG",
        "", "| renderer | tiles/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|", *rows, "",
        f"Tessera / best peer mode ({best['mode']}): **{ratio:.2f}x** tiles/s "
        f"(target >= 3x); Tessera p99/p50 = {ours['p99_ms'] / ours['p50_ms']:.2f} (target <= 3).", "",
    ]


def _tile_at(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    import math
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


# A zoom-16 tile well inside utm_rgb_00.tif (the point the fault tests use).
FULL_RES_TILE = _tile_at(-75.0305, 39.9650, 16)


def remote_rows(label, cold_warm_neighbour, url_of, counts_fn, peer_env=None, tessera_args=(), workers=None):
    """Cold, warm and neighbour latencies and request counts for Tessera and the peer."""
    z12, z13 = cold_warm_neighbour
    # Last, a full-resolution tile inside the first asset: its headers are cached by then,
    # its blocks are not (the z12 tile read an overview).
    sequence = [z12, z12, z13, FULL_RES_TILE]
    as_urls = lambda t: tile(t[0], t[1], t[2], [url_of(a) for a in UTM])
    # Tessera: a fresh server; one tile per call so each tile's requests can be counted.
    proc, address = tessera(workers, list(tessera_args), env=peer_env)
    ours, our_requests = [], []
    try:
        for t in sequence:
            before = counts_fn()
            r = run_tessera(address, [as_urls(t)])
            ours.append(r["latencies_ms"][0] if not r["errors"] else None)
            our_requests.append(counts_fn() - before if before is not None else None)
    finally:
        proc.stop()
    # The peer: a fresh process per prefix of the sequence, so requests per tile are
    # the differences; latencies from the full sequence.
    peer_requests, peer = [], None
    total_before = None
    for k in range(1, len(sequence) + 1):
        before = counts_fn()
        peer = run_peer([as_urls(t) for t in sequence[:k]], "single", env=peer_env)
        used = counts_fn() - before if before is not None else None
        peer_requests.append(None if used is None else used - (total_before or 0))
        total_before = used
    theirs = peer["latencies_ms"]
    rows = []
    for i, name in enumerate(["cold z12 tile", "same tile, warm", "neighbour (z13 child)",
                              "z16 tile, headers cached, blocks not"]):
        ratio = (ours[i] / theirs[i]) if ours[i] and theirs[i] else None
        rows.append(f"| {label}: {name} | {fmt(ours[i], 0)} | {our_requests[i] if our_requests[i] is not None else '-'} | "
                    f"{fmt(theirs[i], 0)} | {peer_requests[i] if peer_requests[i] is not None else '-'} | "
                    f"{fmt(ratio, 2)} |")
    return rows, ours


def scenario_b(latency_ms: int, s3: bool) -> list[str]:
    z12 = (12, 1194, 1551)
    children13 = [(13, 2 * 1194 + dx, 2 * 1551 + dy) for dx in (0, 1) for dy in (0, 1)]
    rs, base = range_server(latency_ms)
    out = [f"### (b) 6-asset mosaic, remote: HTTP at {latency_ms} ms per request" + (", and S3 (moto)" if s3 else ""), "",
           "| scenario | Tessera ms | Tessera requests | rio-tiler ms | rio-tiler requests | Tessera / peer |",
           "|---|---|---|---|---|---|"]
    try:
        # The neighbour: the z13 child that touches the most assets.
        neighbour = children13[0]
        rows, ours = remote_rows(
            "HTTP", (z12, neighbour), lambda a: f"{base}/{a}", lambda: counts(base)["requests"],
            tessera_args=["--allow-remote", f"{base}/"])
        out += rows
        # One cold tile is one sample: four more fresh servers, and the target is
        # judged on the median of the five.
        colds = [ours[0]]
        for _ in range(4):
            proc, address = tessera(None, ["--allow-remote", f"{base}/"])
            try:
                r = run_tessera(address, [tile(*z12, [f"{base}/{a}" for a in UTM])])
                colds.append(r["latencies_ms"][0] if not r["errors"] else None)
            finally:
                proc.stop()
    finally:
        rs.stop()
    if s3:
        out += s3_rows(z12, neighbour)
    cold = sorted(c for c in colds if c is not None)
    cold_median = cold[len(cold) // 2] if len(cold) == len(colds) else None
    cold_ok = cold_median is not None and cold_median <= 150
    one_trip_ok = ours[3] is not None and ours[3] <= 100
    spread = f"{fmt(cold[0], 0)}-{fmt(cold[-1], 0)}" if cold else "-"
    out += ["", f"Tessera runs with its default pool. The cold HTTP tile on five fresh servers (the row above is "
                f"the first): median {fmt(cold_median, 0)} ms, {spread} ms. Targets at {latency_ms} ms: the cold "
                f"tile <= 150 ms (the median), i.e. "
                f"two round trips (headers, then data) + CPU ({'met' if cold_ok else 'missed'}); the same tile "
                f"again: 0 requests (the front's cache); a tile whose headers are cached but not its blocks "
                f"(the z16 row; the z13 neighbour's blocks came with the z12 tile's): one round trip + CPU, "
                f"<= 100 ms ({'met' if one_trip_ok else 'missed'}).", ""]
    return out


def s3_rows(z12, neighbour) -> list[str]:
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    moto = Proc([str(ROOT / ".venv" / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)])
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except Exception:
                time.sleep(0.05)
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/bench", method="PUT"), timeout=30)
        for a in UTM:
            urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{port}/bench/{a}", data=(DATA / a).read_bytes(), method="PUT",
                headers={"Content-Type": "application/octet-stream"}), timeout=30)
        env = {"AWS_S3_ENDPOINT": f"127.0.0.1:{port}", "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE",
               "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}
        rows, _ = remote_rows("S3", (z12, neighbour), lambda a: f"s3://bench/{a}", lambda: None, peer_env=env,
                              tessera_args=["--allow-remote", "s3://bench/"])
        return rows
    finally:
        moto.stop()


def scenario_c(bounds) -> list[str]:
    area = union(list(bounds.values()))
    low = [tiles_over(area, z)[0] for z in (8, 9, 10)]
    lists = [tile(z, x, y, [str(DATA / a) for a in UTM]) for (z, x, y) in low]
    proc, address = tessera(CORES * 2)
    try:
        ours = run_tessera(address, lists)
    finally:
        proc.stop()
    theirs = run_peer(lists, "single")
    rows = [f"| z{t['z']} {t['x']}/{t['y']} | {fmt(o, 0)} | {fmt(p, 0)} | {fmt(o / p if o and p else None, 2)} |"
            for t, o, p in zip(lists, ours["latencies_ms"], theirs["latencies_ms"])]
    worst = max(ours["latencies_ms"])
    return ["### (c) Low-zoom 6-asset mosaic tiles, local files, first request of each", "",
            "| tile | Tessera ms | rio-tiler ms | Tessera / peer |", "|---|---|---|---|", *rows, "",
            f"Target <= 1000 ms per tile: {'met' if worst <= 1000 else 'missed'} (worst {worst:.0f} ms).", ""]


def scenario_d(bounds, latency_ms: int, sizes: list[int], n: int) -> list[str]:
    area = union(list(bounds.values()))
    rng = random.Random(7)
    candidates = [t for z in (14, 15, 16) for t in tiles_over(area, z)]
    rs, base = range_server(latency_ms)
    rows = []
    try:
        tiles = [tile(*rng.choice(candidates), [f"{base}/{a}" for a in UTM]) for _ in range(n)]
        for w in sizes:
            proc, address = tessera(w, ["--allow-remote", f"{base}/"])
            try:
                r = run_tessera(address, tiles, concurrency=16)
            finally:
                proc.stop()
            rows.append(f"| Tessera, {w} workers | {fmt(r['tiles_per_s'])} | {fmt(r['p50_ms'], 0)} | {fmt(r['p99_ms'], 0)} | {r['errors']} |")
        for mode in ("threads", "processes"):
            r = run_peer(tiles, mode, CORES * 4 if mode == "threads" else CORES)
            rows.append(f"| rio-tiler {mode} ({r['workers']}) | {fmt(r['tiles_per_s'])} | {fmt(r['p50_ms'], 0)} | {fmt(r['p99_ms'], 0)} | {r['errors']} |")
    finally:
        rs.stop()
    return [f"### (d) Throughput vs pool size: {n} 6-asset mosaic tiles z14-z16 over HTTP at {latency_ms} ms, 16 in flight", "",
            "| renderer | tiles/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|", *rows, ""]


def scenario_e(bounds, n: int, workers: int) -> list[str]:
    tiles = local_mix(bounds, 2000, seed=3)
    proc, address = tessera(workers)
    samples = []
    try:
        front = proc.p.pid
        done = 0
        start = time.time()
        while done < n:
            batch = min(len(tiles), n - done)
            run_tessera(address, tiles[:batch], concurrency=8)
            done += batch
            ws = children(front)
            samples.append((done, rss_mib(front), sum(rss_mib(w) for w in ws), max([rss_mib(w) for w in ws] or [0])))
        elapsed = time.time() - start
        peak_front = rss_mib(front, "VmHWM:")
    finally:
        proc.stop()
    first, last = samples[0], samples[-1]
    rows = [f"| {d} | {f:.0f} | {s:.0f} | {m:.0f} |" for d, f, s, m in samples[:: max(1, len(samples) // 8)] + [last]]
    return [f"### (e) RSS over a long run: {n} tiles of the local mix, {workers} workers, 8 in flight ({elapsed:.0f} s)", "",
            "| tiles done | front RSS MiB | workers RSS sum MiB | largest worker MiB |", "|---|---|---|---|", *rows, "",
            f"Front peak RSS {peak_front:.0f} MiB (target < 100 MB). Largest worker from {first[3]:.0f} to {last[3]:.0f} MiB "
            f"(workers retire after --max-jobs-per-worker, default 10000 jobs).", ""]


# ---------------------------------------------------------------- issue 16 targets (f-i)


def tile_lonlat(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """West, south, east, north of Web Mercator tile z/x/y."""
    import math
    n = 2 ** z
    lat = lambda row: math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))
    return (x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y))


def touching(bounds: dict, t) -> int:
    """Assets whose lon/lat bounds overlap the tile's (the front's test)."""
    w, s, e, n = tile_lonlat(*t)
    return sum(1 for b in bounds.values() if b[0] < e and w < b[2] and b[1] < n and s < b[3])


def six_asset_tiles(bounds: dict, n: int, zooms=range(12, 17), seed: int = 16) -> tuple[list[tuple], list[str]]:
    """n mosaic tiles over zooms 12-16, each asking for all six assets and touching at
    least two of them (by lon/lat bounds, the front's test). The demo assets overlap
    pairwise but no point lies in all six: only the z12 tile touches six, and from z13
    on a tile touches four at most; a tile touching one asset is no mosaic, so those
    are left out. That leaves fewer distinct tiles than a full run asks for, so the list
    is made of passes over them (each pass in its own seeded order): a tile comes back
    only after every other, so it is never in flight with itself. Returns the tiles and
    the notes that say what was chosen."""
    rng = random.Random(seed)
    area = union(list(bounds.values()))
    distinct = [(touching(bounds, t), t) for z in zooms for t in tiles_over(area, z)]
    distinct = [(c, t) for c, t in distinct if c >= 2]
    chosen: list[tuple] = []
    while len(chosen) < n:
        batch = [t for _, t in distinct]
        rng.shuffle(batch)
        chosen += batch[: n - len(chosen)]
    used = set(chosen)
    by_zoom = {}
    for c, t in distinct:
        if t in used:
            by_zoom.setdefault(t[0], []).append(c)
    notes = [f"z{z}: {len(cs)} tile{'s' if len(cs) > 1 else ''} touching " + "/".join(str(c) for c in sorted(set(cs), reverse=True))
             + " assets" for z, cs in sorted(by_zoom.items())]
    mean = sum(touching(bounds, t) for t in chosen) / len(chosen)
    notes.append(f"{len(used)} distinct tiles, {len(chosen) - len(used)} repeats in later passes, "
                 f"{mean:.1f} assets touched per tile on average")
    return chosen, notes


def with_assets(tiles, where) -> list[dict]:
    return [tile(z, x, y, [where(a) for a in UTM]) for (z, x, y) in tiles]


def met(ok: bool) -> str:
    return "met" if ok else "missed"


def throughput(workers, tiles_json, concurrency, tessera_args=(), count=None) -> tuple[dict, int | None]:
    """A fresh server, one pass over the list (no warm-up: opening the assets is part of
    the run), and the origin requests it cost when `count` reads a counter."""
    proc, address = tessera(workers, list(tessera_args))
    try:
        before = count() if count else None
        r = run_tessera(address, tiles_json, concurrency)
        used = count() - before if count else None
        r["front_peak_mib"] = rss_mib(proc.p.pid, "VmHWM:")
    finally:
        proc.stop()
    return r, used


# Runs of each of the compared configurations in (f) and (g), taken in turn; the median
# run (by tiles/s) is reported. One pass of 150 tiles lasts under a second, and on a
# shared 2-core machine two such runs differ by up to 15%.
ROUNDS = 3

# Rounds of (i)'s goal measure (one worker, paired with the floor), of which the round
# with the median ratio is reported. On this shared 2-core machine the same build gave
# rounds from 1.03x to 1.57x in one sitting (the host sometimes runs the two virtual
# cores side by side, sometimes not): the median of 3 moved by several percent from run
# to run, more than the goal's margin.
GOAL_ROUNDS = 9


# (i) under load: rounds (the floor and the served run alternating; the round with the
# median ratio is reported), and passes of the tile list a core in each measured run.
LOAD_ROUNDS = 5
LOAD_PASSES = 8


def median_run(runs: list) -> tuple:
    """The run with the median tiles/s of `runs` ((result, used) pairs)."""
    return sorted(runs, key=lambda r: r[0]["tiles_per_s"])[len(runs) // 2]


def scenario_f(bounds, latency_ms: int, n: int, concurrency: int = 16) -> list[str]:
    tiles, notes = six_asset_tiles(bounds, n)
    local_tiles = with_assets(tiles, lambda a: str(DATA / a))
    rs, base = range_server(latency_ms)
    remote = {}
    try:
        count = lambda: counts(base)["requests"]
        remote_tiles = with_assets(tiles, lambda a: f"{base}/{a}")
        args = ["--allow-remote", f"{base}/"]
        locals_, remotes = [], []
        for _ in range(ROUNDS):
            locals_.append(throughput(None, local_tiles, concurrency))
            remotes.append(throughput(None, remote_tiles, concurrency, args, count))
        local, _ = median_run(locals_)
        remote[None] = median_run(remotes)
        for w in (4, 16):
            remote[w] = throughput(w, remote_tiles, concurrency, args, count)
    finally:
        rs.stop()

    def row(label, r, used):
        per = fmt(used / r["tiles"], 1) if used is not None else "-"
        return (f"| {label} | {fmt(r['tiles_per_s'])} | {fmt(r['p50_ms'], 0)} | {fmt(r['p99_ms'], 0)} | "
                f"{r['errors']} | {used if used is not None else '-'} | {per} | {fmt(r['front_peak_mib'], 0)} |")

    default = f"default pool ({CORES + 1} workers here)"
    rows = [row(f"local files, {default}", local, None),
            row(f"HTTP at {latency_ms} ms, {default}", *remote[None]),
            row(f"HTTP at {latency_ms} ms, 4 workers", *remote[4]),
            row(f"HTTP at {latency_ms} ms, 16 workers", *remote[16])]
    ratio = remote[None][0]["tiles_per_s"] / local["tiles_per_s"] if local["tiles_per_s"] else None
    r4, r16 = remote[4][1], remote[16][1]
    req_ratio = r16 / r4 if r4 else None
    return [
        f"### (f) Throughput, remote vs local: {n} six-asset mosaic tiles z12-z16, {concurrency} in flight", "",
        "Every tile asks for the six assets and touches at least two (" + "; ".join(notes) + "). "
        "Each run starts a fresh server and makes one pass over the list with no warm-up, so "
        "opening the assets is part of it; origin requests are the range server's counter "
        "(bench/range_server.py, every request held back by the latency). Local and HTTP with "
        f"the default pool run {ROUNDS} times each, in turn, and the median run (by tiles/s) is "
        "shown; 4 and 16 workers run once.", "",
        f"`bench/run.py --only f` (`--latency-ms {latency_ms}`)", "",
        "| run | tiles/s | p50 ms | p99 ms | errors | origin requests | requests/tile | front peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|", *rows, "",
        f"Remote / local tiles/s: **{fmt(ratio, 2)}** (target >= 0.7: {met(ratio is not None and ratio >= 0.7)}). "
        f"Origin requests with 16 workers / with 4: **{fmt(req_ratio, 2)}** "
        f"(target <= 1.2: {met(req_ratio is not None and req_ratio <= 1.2)}). "
        f"Front peak RSS over HTTP: {fmt(max(r[0]['front_peak_mib'] for r in remote.values()), 0)} MiB (target: "
        f"under 100 MiB + the remote cache's size; here the cache holds at most the six files, "
        f"{sum((DATA / a).stat().st_size for a in UTM) / 2**20:.1f} MiB).", "",
    ]


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scenario_g(bounds, latency_ms: int, n: int, concurrency: int = 16) -> list[str]:
    import titiler_peer
    tiles, notes = six_asset_tiles(bounds, n)
    workdir = Path(tempfile.mkdtemp(prefix="tessera-bench-titiler-"))
    paths = [str(DATA / a) for a in UTM]
    local_mosaic = str(workdir / "local.json")
    titiler_peer.write_mosaic(str(PY), paths, local_mosaic)
    rs, base = range_server(latency_ms)
    results = {}
    try:
        count = lambda: counts(base)["requests"]
        http_mosaic = str(workdir / "http.json")
        titiler_peer.write_mosaic(str(PY), paths, http_mosaic, (str(DATA), base))
        for source, mosaic, tiles_json, args in [
            ("local", local_mosaic, with_assets(tiles, lambda a: str(DATA / a)), []),
            ("HTTP", http_mosaic, with_assets(tiles, lambda a: f"{base}/{a}"), ["--allow-remote", f"{base}/"]),
        ]:
            ours, theirs = [], []
            for _ in range(ROUNDS):
                ours.append(throughput(None, tiles_json, concurrency, args, count if source == "HTTP" else None))
                port = free_port()
                server = Proc(titiler_peer.server_command(str(PY), port), env=titiler_peer.GDAL_ENV)
                try:
                    titiler_peer.wait_ready(f"http://127.0.0.1:{port}")
                    before = count() if source == "HTTP" else None
                    r = titiler_peer.http_load(f"http://127.0.0.1:{port}",
                                               [titiler_peer.tile_path(mosaic, *t) for t in tiles], concurrency)
                    used = count() - before if source == "HTTP" else None
                finally:
                    server.stop()
                theirs.append((r, used))
            results[("Tessera", source)] = median_run(ours)
            results[("TiTiler", source)] = median_run(theirs)
    finally:
        rs.stop()
    rows, ratios = [], []
    for source in ("local", "HTTP"):
        for who in ("Tessera", "TiTiler"):
            r, used = results[(who, source)]
            rows.append(f"| {who} | {source if source == 'local' else f'HTTP at {latency_ms} ms'} | "
                        f"{fmt(r['tiles_per_s'])} | {fmt(r['p50_ms'], 0)} | {fmt(r['p99_ms'], 0)} | {r['errors']} | "
                        f"{fmt(used / r['tiles'], 1) if used is not None else '-'} |")
            if r["errors"]:
                print(f"  {who} {source}: {r['error_messages']}", file=sys.stderr)
        ours, theirs = results[("Tessera", source)][0], results[("TiTiler", source)][0]
        ratios.append(ours["tiles_per_s"] / theirs["tiles_per_s"] if theirs["tiles_per_s"] else None)
    version = subprocess.run([str(PY), "-c", "import importlib.metadata as m; print(m.version('titiler.application'), m.version('uvicorn'), m.version('cogeo-mosaic'))"],
                             capture_output=True, text=True).stdout.split() or ["?", "?", "?"]
    settings = ", ".join(f"{k}={v}" for k, v in titiler_peer.GDAL_ENV.items())
    return [
        f"### (g) TiTiler: the same {n} six-asset tiles, local and over HTTP at {latency_ms} ms, {concurrency} in flight", "",
        f"TiTiler {version[0]} (titiler.application with titiler.mosaic; rio-tiler and GDAL as the peer's) "
        f"served by uvicorn {version[1]} with {titiler_peer.UVICORN_WORKERS} worker processes, reading a "
        f"MosaicJSON 0.0.3 (cogeo-mosaic {version[2]}, quadkey zoom {titiler_peer.MOSAIC_MINZOOM}) of the six assets, "
        "first-pixel-wins, 256 px PNG, as Tessera is asked for. Its GDAL settings, from TiTiler's "
        f"performance-tuning docs: {settings}. The client is a pool of {concurrency} threads on keep-alive "
        "HTTP/1.1 connections; Tessera is driven by `tessera bench --tile-list` at the same concurrency, "
        f"default pool. Fresh servers, one pass, no warm-up, {ROUNDS} runs of each server in turn, "
        "the median run (by tiles/s) shown (tiles: " + "; ".join(notes) + ").", "",
        f"`bench/run.py --only g` (`--latency-ms {latency_ms}`)", "",
        "| server | source | tiles/s | p50 ms | p99 ms | errors | origin requests/tile |",
        "|---|---|---|---|---|---|---|", *rows, "",
        f"Tessera / TiTiler tiles/s: local **{fmt(ratios[0], 1)}x**, over HTTP **{fmt(ratios[1], 1)}x** "
        f"(goal over HTTP >= 15x: {met(ratios[1] is not None and ratios[1] >= 15)}).", "",
    ]


def scenario_h(bounds, n: int, delay_ms: int = 50, loss_pct: float = 1.0, concurrency: int = 16) -> list[str]:
    import netns
    title = f"### (h) Real TCP latency: a network namespace with netem delay {delay_ms} ms and {loss_pct:g}% loss"
    why = netns.unavailable()
    if why:
        return [title, "", f"Skipped: {why}.", ""]
    z12 = (12, 1194, 1551)
    tiles, notes = six_asset_tiles(bounds, n)
    rows = []
    try:
        with netns.Netns(delay_ms, loss_pct) as ns:
            relay = None
            if ns.netem:
                rs, base = range_server(0, host=ns.inside, prefix=ns.exec_prefix)
            else:
                # No netem here: the range server listens on the namespace's loopback and a
                # relay on its veth address holds every byte back (bench/delay_relay.py).
                rs, inner = range_server(0, host="127.0.0.1", prefix=ns.exec_prefix)
                relay = Proc([*ns.exec_prefix, str(PY), str(ROOT / "bench" / "delay_relay.py"),
                              "--listen", f"{ns.inside}:0", "--upstream", inner.split("//")[1],
                              "--rtt-ms", str(delay_ms)])
                base = "http://" + relay.p.stdout.readline().split("listening on ")[1].strip()
            try:
                count = lambda: counts(base)["requests"]
                allow = ["--allow-remote", f"{base}/"]
                as_url = lambda a: f"{base}/{a}"
                proc, address = tessera(None, allow)
                try:
                    for name in ("cold six-asset z12 tile", "same tile, warm"):
                        before = count()
                        r = run_tessera(address, with_assets([z12], as_url))
                        ms = r["latencies_ms"][0] if not r["errors"] else None
                        rows.append(f"| {name} | {fmt(ms, 0)} | - | - | {count() - before} | {r['errors']} |")
                finally:
                    proc.stop()
                dropped_before = ns.dropped()
                r, used = throughput(None, with_assets(tiles, as_url), concurrency, allow, count)
                dropped = ns.dropped() - dropped_before
                rows.append(f"| throughput: {n} tiles of (f), {concurrency} in flight | {fmt(r['p50_ms'], 0)} | "
                            f"{fmt(r['p99_ms'], 0)} | {fmt(r['tiles_per_s'])} | {used} ({fmt(used / r['tiles'], 1)}/tile) | "
                            f"{r['errors']} |")
            finally:
                rs.stop()
                if relay is not None:
                    relay.stop()
            path = (f"the namespace's end of a veth pair delays every packet it sends by {delay_ms} ms and drops "
                    f"{loss_pct:g}% (`tc qdisc ... netem`), so each round trip, TCP handshake and lost segment "
                    "costs what it would on a real network" if ns.netem else
                    f"netem is not available ({ns.no_netem}), so a relay in the namespace "
                    f"(bench/delay_relay.py) holds every byte back by {delay_ms / 2:g} ms each way and a new "
                    f"connection by {delay_ms} ms: each round trip and TCP handshake costs {delay_ms} ms on a "
                    "real TCP path through the veth pair; "
                    + (f"and {loss_pct:g}% of the packets the namespace's veth end receives and sends are "
                       f"dropped by `{ns.loss_by} -m statistic --mode random` ({dropped} packets in the "
                       "throughput run), which TCP retransmits" if ns.loss_by else
                       "but nothing is lost (neither netem nor iptables could drop packets)"))
            if not ns.netem:
                title = (f"### (h) Real TCP latency: a network namespace, {delay_ms} ms round trips through a relay"
                         + (f" and {loss_pct:g}% packet loss (iptables; no netem here)" if ns.loss_by
                            else " (no netem here)"))
    except (RuntimeError, subprocess.CalledProcessError) as e:
        return [title, "", f"Skipped: the namespace could not be set up or used: {e}", ""]
    return [
        title, "",
        "The range server runs inside a network namespace of the benchmark's own with no added sleep; "
        + path + ". Tessera runs in the root namespace with the default pool and "
        f"reads `http://10.200.N.2:PORT/`. Cold and warm: one fresh server, one tile at a time. "
        "Throughput: the tiles of (f) (" + "; ".join(notes) + "), a fresh server, one pass.", "",
        "`bench/run.py --only h` (needs root, `ip` and `tc`, and `iptables` where the kernel has no netem; the namespace is removed at the end, also on Ctrl-C)", "",
        "| run | ms (p50) | p99 ms | tiles/s | origin requests | errors |", "|---|---|---|---|---|---|", *rows, "",
    ]


def run_with_floor(address: str, tiles_json: list[dict], repeat: int) -> dict:
    """Each tile rendered by the floor in the bench process and asked of the server at
    `address`, one right after the other: `{"served": REPORT, "floor": REPORT}`."""
    out = subprocess.run([str(BIN), "bench", "--server", address, "--floor", "--tile-list", write_list(tiles_json),
                          "--data-dir", str(DATA), "--concurrency", "1", "--repeat", str(repeat)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def scenario_i(bounds, n: int) -> list[str]:
    tiles, notes = six_asset_tiles(bounds, n)
    local = with_assets(tiles, lambda a: str(DATA / a))
    def warm(r):
        """Mean, p50 and p99 of the second pass (the first opens the files)."""
        ms = sorted(r["latencies_ms"][len(local):])
        pick = lambda p: ms[min(len(ms) - 1, round(p / 100 * (len(ms) - 1)))]
        return sum(ms) / len(ms), pick(50), pick(99), r["errors"]

    def cpu_ms(pids: list[int]) -> float:
        """CPU time (user + system) of `pids` so far, in ms."""
        total = 0
        for pid in pids:
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except OSError:
                pass
        return total * 1000 / os.sysconf("SC_CLK_TCK")

    same = [0, 0]

    def paired_round(workers: int | None):
        """One round on a fresh server: the report of `run_with_floor`, the warm figures
        of both sides, and the CPU (front, worker) the server spent in it."""
        proc, address = tessera(workers)
        try:
            pids = children(proc.p.pid)
            before = (cpu_ms([proc.p.pid]), cpu_ms(pids))
            r = run_with_floor(address, local, repeat=2)
            after = (cpu_ms([proc.p.pid]), cpu_ms(pids))
        finally:
            proc.stop()
        same[0] += r["same_png"]
        same[1] += r["served"]["tiles"]
        served, floor = warm(r["served"]), warm(r["floor"])
        spent = tuple((b - a) / (2 * len(local)) for a, b in zip(before, after))
        return r, served, floor, spent

    def floor_under_load() -> tuple[float, float, int]:
        """The floor on every core: one `tessera bench --floor` process a core, started
        together, each rendering the list once to open its assets and then LOAD_PASSES
        times; the warm passes' tiles/s (summed over the processes), CPU ms a tile, errors."""
        cmd = [str(BIN), "bench", "--floor", "--tile-list", write_list(local), "--data-dir", str(DATA),
               "--repeat", str(LOAD_PASSES + 1)]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(CORES)]
        reports = []
        for p in procs:
            out, err = p.communicate()
            if p.returncode != 0:
                raise RuntimeError(f"the floor failed: {err[-2000:]}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
        warm = [r["warm"] for r in reports]
        rate = sum(w["tiles"] / w["wall_s"] for w in warm)
        return rate, sum(w["cpu_ms"] for w in warm) / sum(w["tiles"] for w in warm), sum(r["errors"] for r in reports)

    def served_under_load() -> tuple[float, float, int]:
        """The default pool with 16 callers on a fresh server: one pass to open the assets,
        then the same number of tiles as the floor's warm passes; tiles/s, the server's
        CPU ms a tile (the front and its workers), errors."""
        proc, address = tessera(None)
        try:
            run_tessera(address, local, 16)
            pids = [proc.p.pid, *children(proc.p.pid)]
            before = cpu_ms(pids)
            r = run_tessera(address, local, 16, repeat=LOAD_PASSES * CORES)
            if sorted(children(proc.p.pid)) != sorted(pids[1:]):
                raise RuntimeError("a worker was replaced during the run: its CPU would go uncounted")
            spent = cpu_ms(pids) - before
        finally:
            proc.stop()
        return r["tiles_per_s"], spent / r["tiles"], r["errors"]

    # Each round: ((floor's tiles/s, CPU ms a tile, errors), (Tessera's, the same)).
    loaded = [(floor_under_load(), served_under_load()) for _ in range(LOAD_ROUNDS)]
    ratios = [f[0] / s[0] for f, s in loaded]
    (lf_rate, lf_cpu, lf_err), (l_rate, l_cpu, l_err) = loaded[ratios.index(sorted(ratios)[len(ratios) // 2])]
    load_ratio = lf_rate / l_rate
    load_ratios = ", ".join(f"{r:.3f}x" for r in ratios)
    load_cpu_ratio = sorted(s[1] / f[1] for f, s in loaded)[len(loaded) // 2]

    rounds, cpu = [], []
    for _ in range(GOAL_ROUNDS):
        r, served, floor, (front, worker) = paired_round(1)
        server_ms = r["served"]["server_ms"][len(local):]
        rounds.append((served[0] / floor[0], served, floor, sum(server_ms) / len(server_ms)))
        floor_cpu = r["floor"]["cpu_ms"] / (2 * len(local))
        client_cpu = r["served"]["cpu_ms"] / (2 * len(local))
        cpu.append((front, worker, floor_cpu, (front + worker) / floor_cpu, client_cpu))
    # The default pool, also one tile at a time: a tile's reads run on several workers at
    # once. Paired with the floor the same way; what a lone caller sees, not the goal's
    # measure (the floor reads one asset after another).
    pooled = []
    for _ in range(ROUNDS):
        _, served, floor, _ = paired_round(None)
        pooled.append((served[0] / floor[0], served, floor))
    pool_ratio, (pm, p50, p99, pe), (pfm, pf50, pf99, pfe) = sorted(pooled)[len(pooled) // 2]
    # The round with the median ratio; CPU: the median of each process, and of the ratio.
    ratio, (om, o50, o99, oe), (fm, f50, f99, fe), server_mean = sorted(rounds)[len(rounds) // 2]
    all_ratios = ", ".join(f"{r[0]:.3f}x" for r in rounds)
    front_cpu, worker_cpu, floor_cpu, cpu_ratio, client_cpu = (sorted(c)[len(c) // 2] for c in zip(*cpu))
    cpu_ratios = ", ".join(f"{c[3]:.2f}x" for c in cpu)
    return [
        f"### (i) The floor: {n} six-asset tiles, local files, one at a time, with and without the serving path", "",
        "The floor renders each tile in one process on one thread with the worker's read function "
        "called directly (no gRPC, no front, no pool, no IPC; assets read one "
        "after another in priority order into the same first-wins selection, stopping when the tile is "
        "complete, then the same PNG encoder). Tessera serves the same tiles with `--workers 1`, one "
        "request in flight (and, for comparison, with the default pool); a pool of one worker takes each "
        "tile whole (one job: the reads, the selection and the encoding on the worker), as a busy pool "
        "does (docs/ARCHITECTURE.md, section 2). Both run in one "
        "`tessera bench --server ADDR --floor` process, tile by tile: "
        "each tile is rendered by the floor and asked of the server one right after the other (the floor "
        "first on every other tile), so both see the same state of the machine (on this shared virtual "
        "machine the floor alone took 1.9 to 6.4 ms a tile from one run to the next). The list is "
        f"rendered twice, {GOAL_ROUNDS} times (a fresh server each time; {ROUNDS} with the default pool); the figures are of the second pass, "
        "in the round with the median ratio "
        "(tiles: " + "; ".join(notes) + ").", "",
        "`bench/run.py --only i`", "",
        "| renderer | mean ms/tile | p50 ms | p99 ms | errors |", "|---|---|---|---|---|",
        f"| Tessera, 1 worker, 1 in flight (gRPC) | {fmt(om, 2)} | {fmt(o50, 2)} | {fmt(o99, 2)} | {oe} |",
        f"| floor: one process, one thread | {fmt(fm, 2)} | {fmt(f50, 2)} | {fmt(f99, 2)} | {fe} |",
        f"| Tessera, default pool, 1 in flight (gRPC) | {fmt(pm, 2)} | {fmt(p50, 2)} | {fmt(p99, 2)} | {pe} |",
        f"| floor, paired with the default pool's round | {fmt(pfm, 2)} | {fmt(pf50, 2)} | {fmt(pf99, 2)} | {pfe} |", "",
        f"Tessera / floor time per tile: **{fmt(ratio, 3)}x** (goal <= 1.2x: {met(ratio is not None and ratio <= 1.2)}; "
        f"the {GOAL_ROUNDS} rounds: {all_ratios}). The server's own time for a tile (`GetTileResponse.elapsed`) "
        f"was {fmt(server_mean, 2)} ms on average, {fmt(server_mean / fm, 2)}x the floor: the rest is the "
        f"gRPC call (client and transport). With the default pool, one tile at a time, a tile took "
        f"{fmt(pool_ratio, 2)}x its floor (the round with the median of {ROUNDS} rounds of its own, paired the "
        "same way, the last two rows): its reads run on several workers at once, which the floor's "
        "cannot, so that figure is what a lone caller sees, not the cost the goal measures. The served PNG "
        f"and the floor's were the same bytes for {same[0]} of {same[1]} tiles.", "",
        "What it costs in CPU: CPU time per tile over both passes (user + system; the server's processes "
        "from /proc, the floor's renders from the bench process's CPU clock around each one; the median of "
        f"the {GOAL_ROUNDS} rounds): the worker **{fmt(worker_cpu, 2)} ms**, the front **{fmt(front_cpu, 2)} ms**, "
        f"together **{fmt(cpu_ratio, 2)}x** the floor's **{fmt(floor_cpu, 2)} ms** (the rounds: {cpu_ratios}). "
        "The worker does the floor's work (reads, selection, encoding) plus its side of the channel; the "
        "front serves gRPC, plans the tile and sends it one job. The time a tile takes one at a time also holds what is not "
        "CPU of the server: the client's side of the call (its CPU, measured the same way around each call: "
        f"{fmt(client_cpu, 2)} ms a tile) and the hand-offs between the three processes.", "",
        f"Under load: the same tiles with the default pool and 16 callers, against the floor run by one process "
        f"on each of the {CORES} cores (`tessera bench --floor`, no client at all), each side opening its assets "
        f"in a first pass and then rendering the list {LOAD_PASSES} times a core ({LOAD_PASSES * CORES * n} tiles); "
        f"the two alternate, {LOAD_ROUNDS} rounds, the round with the median ratio. Here the cores stay busy, so "
        "the hand-offs overlap with other tiles' work instead of adding up, and the ratio is what the serving "
        "path costs a deployment in throughput. The served side also carries the bench's client on the same cores.", "",
        "| under load | tiles/s | CPU ms a tile | errors |", "|---|---|---|---|",
        f"| Tessera, default pool, 16 in flight (gRPC) | {fmt(l_rate, 0)} | {fmt(l_cpu, 2)} (the front and its workers) | {l_err} |",
        f"| floor, one process a core | {fmt(lf_rate, 0)} | {fmt(lf_cpu, 2)} | {lf_err} |", "",
        f"Floor tiles/s / Tessera tiles/s under load: **{fmt(load_ratio, 3)}x** (goal <= 1.2x: "
        f"{met(load_ratio <= 1.2 and l_err == 0 and lf_err == 0)}; the {LOAD_ROUNDS} rounds: {load_ratios}); the server's CPU a tile "
        f"{fmt(load_cpu_ratio, 2)}x the floor's (the median of the rounds).", "",
    ]


def scenario_j(items: int, queries: int) -> list[str]:
    started = time.time()
    subprocess.run([str(BIN), "bench", "--data-dir", str(DATA), "--write-stac-items", str(items)],
                   check=True, capture_output=True, text=True)
    written = time.time() - started
    path = DATA / "stac-bench" / f"items-{items}.parquet"
    out = subprocess.run([str(BIN), "bench", "--data-dir", str(DATA), "--stac-layer", str(path),
                          "--stac-queries", str(queries)], check=True, capture_output=True, text=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    peak, growth = r["hwm_after_mib"], r["hwm_after_mib"] - r["rss_before_mib"]
    us = lambda v: fmt(v, 1)
    rows = [f"| z{z['z']} | {z['queries']} | {fmt(z['mean_assets'], 1)} | {z['max_assets']} | {us(z['p50_us'])} | "
            f"{us(z['p99_us'])} | {us(z['max_us'])} |" for z in r["zooms"]]
    o = r["overall"]
    rows.append(f"| all | {o['queries']} | - | - | {us(o['p50_us'])} | {us(o['p99_us'])} | {us(o['max_us'])} |")
    p99_ms = o["p99_us"] / 1000
    return [
        f"### (j) A STAC layer of {items:,} items (stac-geoparquet), loaded and queried in one process", "",
        f"`tessera bench --write-stac-items {items}` writes a stac-geoparquet file ({fmt(r['file_mib'], 1)} MiB, snappy, "
        f"in {written:.1f} s) of NAIP-like 0.0625° quarter-quads: 1000 cells a row from 125°W, 24.5°N, two "
        "acquisitions per cell (2020, 2022), `datetime` timestamps, a WKB geometry, `assets.image.href` cycling "
        "through the six demo COGs. `tessera bench --stac-layer FILE` loads it as a STAC layer sorted by "
        f"`{r['sort']}` with `Layers::load` (what the server's front does at start), then asks "
        "`Layer::assets_for_tile` for random WebMercatorQuad tiles inside the grid.", "",
        f"`bench/run.py --only j` (or: `tessera bench --data-dir data --write-stac-items {items}`, then "
        f"`tessera bench --data-dir data --stac-layer data/stac-bench/items-{items}.parquet --stac-queries {queries}`)", "",
        "| load | items | RSS before MiB | peak RSS (VmHWM) after load MiB | RSS after load MiB | growth to peak MiB |",
        "|---|---|---|---|---|---|",
        f"| {r['load_s']:.2f} s | {r['items']:,} | {fmt(r['rss_before_mib'], 0)} | {fmt(peak, 0)} | "
        f"{fmt(r['rss_after_mib'], 0)} | {fmt(growth, 0)} |", "",
        "| zoom | tiles | items per tile (mean) | max | p50 µs | p99 µs | max µs |", "|---|---|---|---|---|---|---|",
        *rows, "",
        "Times are wall clock around each call, on one thread; the items a tile returns are all those "
        "touching it (no asset budget applied).", "",
        f"Targets: load <= 15 s ({met(r['load_s'] <= 15)}), peak memory of the process holding the layer <= 600 MiB "
        f"({met(peak <= 600)}), a tile's items in <= 1 ms at p99 (overall {p99_ms:.3f} ms: {met(p99_ms <= 1)}).", "",
    ]


# ---------------------------------------------------------------- issue 19: layer overviews (k)


def big_layer_items(bounds: dict, side: int = 100) -> list[dict]:
    """side x side STAC items on a grid over the six demo assets' union, row by row from
    the north-west: each item's bbox is its cell, its href the first demo file whose
    bounds hold the cell's centre (the next one round, where none does)."""
    w, s, e, n = union(list(bounds.values()))
    dx, dy = (e - w) / side, (n - s) / side
    items = []
    for row in range(side):
        for col in range(side):
            cell = (w + col * dx, n - (row + 1) * dy, w + (col + 1) * dx, n - row * dy)
            cx, cy = (cell[0] + cell[2]) / 2, (cell[1] + cell[3]) / 2
            holding = [a for a in UTM if bounds[a][0] <= cx <= bounds[a][2] and bounds[a][1] <= cy <= bounds[a][3]]
            href = holding[0] if holding else UTM[(row * side + col) % len(UTM)]
            items.append({
                "type": "Feature", "stac_version": "1.0.0", "id": f"cell-{row}-{col}", "bbox": list(cell),
                "geometry": None, "properties": {"datetime": "2024-01-01T00:00:00Z"},
                "assets": {"image": {"href": str(DATA / href), "type": "image/tiff; application=geotiff"}},
            })
    return items


def scenario_k(bounds, budget: int = 64, overview_zoom: int = 8) -> list[str]:
    """z0-z8 tiles of a 10 000-item STAC layer over the demo assets, without and with its
    overview (built by `tessera layer build-overview` at zoom 8 through the first server)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-k-", dir=DATA))
    relative = workdir.relative_to(DATA)
    items = big_layer_items(bounds)
    (workdir / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    overview = workdir / f"big-z{overview_zoom}.tif"
    layer = (f'[[layers]]\nname = "big"\nmax_assets_per_tile = {budget}\n'
             f'stac = {{ items = "{relative}/items.json" }}\n')

    def config(name: str, text: str) -> list[str]:
        path = workdir / name
        path.write_text(text)
        return ["--config", str(path)]

    w, s, e, n = union(list(bounds.values()))
    centre = ((w + e) / 2, (s + n) / 2)
    zooms = range(0, overview_zoom + 1)
    tiles = [{"z": z, "x": x, "y": y, "layer": "big"} for z, x, y in (_tile_at(*centre, z) for z in zooms)]

    def measure(args: list[str]) -> tuple[dict, dict, float]:
        """A fresh server: one pass over the tiles (cold: first request of each), then a
        second (warm: files open; no tile cache), and the layer's load time."""
        proc, address = tessera(None, args)
        try:
            cold = run_tessera(address, tiles)
            warm = run_tessera(address, tiles)
            load = next((float(m.group(1)) for l in proc.lines if (m := re.search(r"load_ms=([0-9.]+)", l))), None)
        finally:
            proc.stop()
        return cold, warm, load

    try:
        # Without an overview, and the build through the same kind of server.
        without_cold, without_warm, load_ms = measure(config("without.toml", layer))
        proc, address = tessera(None, config("without.toml", layer))
        try:
            t0 = time.time()
            built = subprocess.run([str(BIN), "layer", "build-overview", "big", "--server", address,
                                    "--max-zoom", str(overview_zoom), "-o", str(overview)],
                                   capture_output=True, text=True)
            build_s = time.time() - t0
        finally:
            proc.stop()
        if built.returncode != 0:
            raise RuntimeError(f"build-overview failed: {built.stderr}")
        # The summary without this machine's paths.
        summary = [l.replace(str(workdir), f"data/{relative.name[:7]}*") for l in built.stderr.splitlines()
                   if l.startswith(("layer 'big'", "warning"))]
        with_text = layer + f'overview = "{relative}/{overview.name}"\noverview_maxzoom = {overview_zoom}\n'
        with_cold, with_warm, _ = measure(config("with.toml", with_text))
        # Without a budget: the server's --max-assets-per-tile raised to the whole layer.
        unbudgeted = layer.replace(f"max_assets_per_tile = {budget}\n", "")
        proc, address = tessera(None, config("all.toml", unbudgeted) + ["--max-assets-per-tile", str(len(items))])
        try:
            everything = run_tessera(address, [tiles[-1], tiles[0]])
        finally:
            proc.stop()
    finally:
        for f in workdir.iterdir():
            f.unlink()
        workdir.rmdir()

    rows = []
    for i, t in enumerate(tiles):
        def cell(r, k):
            # A layer tile that failed reports no asset.
            return "error" if not r["assets"][k] else fmt(r["latencies_ms"][k], 0)
        rows.append(f"| z{t['z']} {t['x']}/{t['y']} | {cell(without_cold, i)} | {cell(without_warm, i)} | "
                    f"{without_cold['assets'][i]} | {'yes' if without_cold['truncated'][i] else 'no'} | "
                    f"{cell(with_cold, i)} | {cell(with_warm, i)} | {with_cold['assets'][i]} |")
    worst = max(max(with_cold["latencies_ms"]), max(with_warm["latencies_ms"]))
    errors = without_cold["errors"] + without_warm["errors"] + with_cold["errors"] + with_warm["errors"]
    all_rows = [f"z{t['z']}: {fmt(ms, 0)} ms, " + (f"{a} assets read" if a else "refused")
                for t, ms, a in zip([tiles[-1], tiles[0]], everything["latencies_ms"], everything["assets"])]
    if everything["error_messages"]:
        all_rows.append("the refusal: " + " / ".join(f"`{m}`" for m in everything["error_messages"]))
    return [
        f"### (k) A 10 000-asset layer at zooms 0-{overview_zoom}, without and with its overview", "",
        f"A STAC ItemCollection of {len(items)} items on a 100 x 100 grid over the six demo assets (each item's "
        "bbox its cell, its href the demo file under the cell's centre; nothing is opened to load it: "
        f"{fmt(load_ms, 0)} ms), served as layer `big` with `max_assets_per_tile = {budget}`. One tile per zoom, "
        "the one holding the centre of the demo area; every one of them is covered by all the items. A fresh "
        "server per column pair; cold is the first request of each tile, warm the second pass (files open, no "
        f"tile cache). The overview: `tessera layer build-overview big --max-zoom {overview_zoom}` through a "
        f"server of the layer without overview, {build_s:.1f} s wall (" + "; ".join(summary) + ").", "",
        "`bench/run.py --only k`", "",
        "| tile | without ms (cold) | without ms (warm) | assets read | truncated | with overview ms (cold) | "
        "with overview ms (warm) | assets read |",
        "|---|---|---|---|---|---|---|---|", *rows, "",
        f"With the overview, worst tile {fmt(worst, 0)} ms (target <= 100 ms: {met(worst <= 100)}); errors {errors}. "
        f"Without a budget (the layer's table without `max_assets_per_tile`, the server's `--max-assets-per-tile "
        f"{len(items)}`), each tile asks for all {len(items)} assets, cold: " + "; ".join(all_rows) + ".", "",
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small runs, to check the harness")
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--soak-tiles", type=int, default=20000)
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--only", default="abcdefghijk", help="scenarios to run, e.g. bd (default: all)")
    ap.add_argument("--stac-items", type=int, default=1_000_000, help="items of scenario (j)'s layer")
    args = ap.parse_args()
    n = 60 if args.quick else 300
    soak = 2000 if args.quick else args.soak_tiles
    six = 30 if args.quick else 150  # tiles of scenarios f-i
    bounds = {a: bounds_4326(DATA / a) for a in UTM}
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    gdal = subprocess.run(["gdal-config", "--version"], capture_output=True, text=True).stdout.strip()
    peer_version = json.loads(subprocess.run([str(PY), "-c", "import json, rio_tiler, rasterio; print(json.dumps([rio_tiler.__version__, rasterio.__gdal_version__]))"], capture_output=True, text=True, check=True).stdout)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    header = ["# Benchmarks", "",
              f"Generated by `make bench` (bench/run.py{' --quick' if args.quick else ''}) on {time.strftime('%Y-%m-%d')}, "
              f"Tessera {rev}. Machine: {CORES} cores ({cpu}), {platform.system()} {platform.release()}. "
              f"Tessera uses GDAL {gdal}; the peer is rio-tiler {peer_version[0]} with its bundled GDAL {peer_version[1]}. "
              "Same files (`tessera demo-data`), same tiles, same cores, one run. Ratios are Tessera / peer: "
              "above 1 is better for tiles/s, below 1 is better for latency. Tessera's latencies are "
              "measured by a gRPC client (queueing, RPC and encoding included); the peer's inside the "
              "thread or process that renders the tile (no queueing, no serving).", ""]
    sections = []
    for name, fn in [
        ("a", lambda: scenario_a(bounds, n, 8, CORES * 2)),
        ("b", lambda: scenario_b(args.latency_ms, s3=True)),
        ("c", lambda: scenario_c(bounds)),
        ("d", lambda: scenario_d(bounds, args.latency_ms, [2, 4, 8, 16], 40 if args.quick else 120)),
        ("e", lambda: scenario_e(bounds, soak, CORES * 2)),
        ("f", lambda: scenario_f(bounds, args.latency_ms, six)),
        ("g", lambda: scenario_g(bounds, args.latency_ms, six)),
        ("h", lambda: scenario_h(bounds, six)),
        ("i", lambda: scenario_i(bounds, six)),
        ("j", lambda: scenario_j(100_000 if args.quick else args.stac_items, 2000 if args.quick else 20000)),
        ("k", lambda: scenario_k(bounds)),
    ]:
        if name not in args.only:
            continue
        t0 = time.time()
        print(f"scenario ({name}) ...", file=sys.stderr, flush=True)
        lines = fn()
        print("\n".join(lines), flush=True)
        print(f"  ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
        sections += lines
    Path(args.out).write_text("\n".join(header + sections) + "\n")
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
