#!/usr/bin/env python3
"""Fetch tiles from a Tessera server with Python stubs generated from proto/.

    python examples/python/client.py --server 127.0.0.1:50051 --out tiles/ \
        --asset utm_rgb_00.tif 12/1194/1551 12/1195/1551

writes the first tile with GetTile and all of them with one GetTiles batch, as PNG
files in --out, and prints one line per tile. The stubs are generated with grpcio-tools
into examples/python/_gen/ (not committed) whenever proto/ is newer than them.

Exit codes: 0 all tiles written; 1 some tile failed; 2 the server cannot be reached.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
PROTO = HERE.parent.parent / "proto"
GEN = HERE / "_gen"
SERVICE_PROTO = PROTO / "tessera" / "v1" / "tile_service.proto"


def generate_stubs() -> None:
    """Runs protoc (from grpcio-tools) over the public API when the stubs are stale."""
    stub = GEN / "tessera" / "v1" / "tile_service_pb2_grpc.py"
    sources = list(PROTO.rglob("*.proto"))
    if stub.exists() and all(stub.stat().st_mtime >= p.stat().st_mtime for p in sources):
        return
    import grpc_tools
    from grpc_tools import protoc

    GEN.mkdir(exist_ok=True)
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", f"-I{PROTO}", f"-I{well_known}", f"--python_out={GEN}", f"--grpc_python_out={GEN}",
            str(SERVICE_PROTO), str(PROTO / "google" / "rpc" / "status.proto")]
    if protoc.main(args) != 0:
        sys.exit(f"protoc failed on {SERVICE_PROTO}")


def parse_tile(text: str) -> tuple[int, int, int]:
    try:
        z, x, y = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"tile {text!r} is not Z/X/Y (e.g. 12/1194/1551)")
    return z, x, y


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default="127.0.0.1:50051", help="host:port of a plaintext Tessera server")
    ap.add_argument("--asset", action="append", required=True, help="asset on the server (repeat for a mosaic)")
    ap.add_argument("--out", type=pathlib.Path, required=True, help="directory for the PNG files")
    ap.add_argument("--connect-timeout", type=float, default=10.0, help="seconds to wait for the server")
    ap.add_argument("tiles", nargs="+", type=parse_tile, help="tiles as Z/X/Y")
    args = ap.parse_args()

    generate_stubs()
    sys.path.insert(0, str(GEN))
    import grpc
    from tessera.v1 import tile_service_pb2 as pb
    from tessera.v1 import tile_service_pb2_grpc as rpc

    args.out.mkdir(parents=True, exist_ok=True)
    requests = [pb.GetTileRequest(z=z, x=x, y=y, assets=args.asset, format=pb.IMAGE_FORMAT_PNG)
                for (z, x, y) in args.tiles]
    with grpc.insecure_channel(args.server) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=args.connect_timeout)
        except grpc.FutureTimeoutError:
            print(f"cannot reach {args.server}", file=sys.stderr)
            return 2
        stub = rpc.TileServiceStub(channel)

        # One tile.
        first = requests[0]
        try:
            tile = stub.GetTile(first, timeout=30)
        except grpc.RpcError as e:
            print(f"GetTile {first.z}/{first.x}/{first.y}: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
        path = args.out / f"single_{first.z}_{first.x}_{first.y}.png"
        path.write_bytes(tile.data)
        print(f"GetTile {first.z}/{first.x}/{first.y}: {tile.width}x{tile.height} {tile.content_type} -> {path}")

        # All of them as one batch; results arrive as they complete, each with its index.
        failed = 0
        for result in stub.GetTiles(pb.GetTilesRequest(tiles=requests), timeout=60):
            label = f"{result.z}/{result.x}/{result.y}"
            if result.WhichOneof("result") == "error":
                failed += 1
                print(f"GetTiles [{result.index}] {label}: error {result.error.code}: {result.error.message}")
                continue
            path = args.out / f"batch_{result.z}_{result.x}_{result.y}.png"
            path.write_bytes(result.tile.data)
            print(f"GetTiles [{result.index}] {label}: {result.tile.width}x{result.tile.height} -> {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
