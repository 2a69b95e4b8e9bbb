#!/usr/bin/env python3
"""Two Tessera builds (or settings) side by side on the tiles of bench (i), tile by tile.

    .venv/bin/python bench/pair.py [--passes 4] [--run 1] A=BINARY[:VAR=VALUE;...] B=BINARY[:...]

starts both servers at once (one worker each, local demo files), warms both on the 150
six-asset tiles of bench/run.py's scenario (i), then asks every tile of one server and
right after of the other, the order alternating from tile to tile, for --passes passes.
With --run N, N tiles in a row of one server, then the same N of the other: what a
tile leaves behind in a server (work still running when the next tile comes) then
shows in the next tile's time, as it does for a caller asking one tile after another;
the times compared are each run's mean a tile.
Both see the same state of the machine, which on a shared virtual machine moves more
from one round to the next (0.3 ms a tile) than the changes worth measuring: between
two copies of the same build the median of the per-tile differences came out at 13 us
over 600 pairs. Prints each server's median and mean time a tile and the median, mean
and quartiles of A - B per tile (positive: B is faster).

The client is grpcio (the Python example's stubs, generated as it does), not the tonic
client of `tessera bench`: what it measures is the difference between the servers.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import statistics
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402  (bench/run.py: servers, tiles)


def stubs():
    """The generated API stubs of examples/python (made when stale)."""
    path = HERE.parent / "examples" / "python" / "client.py"
    spec = importlib.util.spec_from_file_location("tessera_example_client", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.generate_stubs()
    sys.path.insert(0, str(example.GEN))
    from tessera.v1 import tile_service_pb2, tile_service_pb2_grpc

    return tile_service_pb2, tile_service_pb2_grpc


def variant(text: str) -> tuple[str, pathlib.Path, dict]:
    name, sep, rest = text.partition("=")
    binary, _, env = rest.partition(":")
    if not sep or not name or not binary:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=BINARY[:VAR=VALUE;...]")
    pairs = dict(kv.split("=", 1) for kv in env.split(";") if kv)
    return name, pathlib.Path(binary), pairs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passes", type=int, default=4, help="passes over the 150 tiles (default 4)")
    ap.add_argument("--run", type=int, default=1, help="tiles in a row of one server (default 1)")
    ap.add_argument("a", type=variant, help="NAME=BINARY[:VAR=VALUE;...], the first server")
    ap.add_argument("b", type=variant, help="the second server, the same way")
    args = ap.parse_args()
    pb, rpc = stubs()
    import grpc

    bounds = {a: run.bounds_4326(run.DATA / a) for a in run.UTM}
    tiles, _ = run.six_asset_tiles(bounds, 150)
    requests = [pb.GetTileRequest(z=t["z"], x=t["x"], y=t["y"], assets=t["assets"])
                for t in run.with_assets(tiles, lambda a: str(run.DATA / a))]
    servers = []
    try:
        for name, binary, env in (args.a, args.b):
            run.BIN = binary
            proc, address = run.tessera(1, env=env)
            servers.append((name, proc, rpc.TileServiceStub(grpc.insecure_channel(address))))
        for _, _, stub in servers:
            for r in requests:
                stub.GetTile(r)
        times = {name: [] for name, _, _ in servers}
        diffs = []
        n = max(1, args.run)
        for p in range(args.passes):
            for i in range(0, len(requests), n):
                took = {}
                for name, _, stub in (servers if (i // n + p) % 2 == 0 else servers[::-1]):
                    t0 = time.perf_counter_ns()
                    for r in requests[i:i + n]:
                        stub.GetTile(r)
                    took[name] = (time.perf_counter_ns() - t0) / 1e3 / len(requests[i:i + n])
                    times[name].append(took[name])
                diffs.append(took[servers[0][0]] - took[servers[1][0]])
    finally:
        for _, proc, _ in servers:
            proc.stop()
    for name, t in times.items():
        print(f"{name}: median {statistics.median(t):.1f} us, mean {statistics.fmean(t):.1f} us a tile"
              + (f" (means of runs of {args.run})" if args.run > 1 else ""))
    d = sorted(diffs)
    (a, _, _), (b, _, _) = servers
    unit = "tiles" if args.run <= 1 else f"runs of {args.run} tiles"
    print(f"{a} - {b}: median {statistics.median(d):+.1f} us, mean {statistics.fmean(d):+.1f} us, "
          f"quartiles [{d[len(d) // 4]:+.1f}, {d[3 * len(d) // 4]:+.1f}], {b} faster in "
          f"{sum(x > 0 for x in d)} of {len(d)} {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
