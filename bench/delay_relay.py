"""A TCP relay that holds every byte back by half a round trip in each direction, and a
new connection by one round trip: scenario (h)'s stand-in for `tc netem` on kernels
built without it (no sch_netem).

    python bench/delay_relay.py --listen 10.200.0.2:0 --upstream 127.0.0.1:PORT --rtt-ms 50

Prints `listening on HOST:PORT`. Run inside the benchmark's network namespace in front
of the range server, it puts the latency on the TCP path itself (the kernel's TCP stack,
the veth pair, real connections): a request and its answer cost one round trip, a new
connection one more (the handshake), whatever the HTTP client does. Unlike netem it
drops nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import time


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, not_before: float) -> None:
    """Copies `reader` to `writer`, each chunk `delay` seconds after it arrived, in order."""
    queue: asyncio.Queue = asyncio.Queue()

    async def read_side() -> None:
        while True:
            data = await reader.read(65536)
            await queue.put((time.monotonic() + delay, data))
            if not data:
                return

    async def write_side() -> None:
        while True:
            due, data = await queue.get()
            wait = max(due, not_before) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    await asyncio.gather(read_side(), write_side())


async def relay(upstream: tuple[str, int], rtt: float,
                client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
    accepted = time.monotonic()
    try:
        up_reader, up_writer = await asyncio.open_connection(*upstream)
    except OSError:
        client_writer.close()
        return
    # Nothing moves before the handshake's round trip would have completed.
    not_before = accepted + rtt
    try:
        await asyncio.gather(pump(client_reader, up_writer, rtt / 2, not_before),
                             pump(up_reader, client_writer, rtt / 2, not_before))
    except (ConnectionError, OSError):
        pass
    finally:
        for w in (up_writer, client_writer):
            w.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", required=True, help="HOST:PORT (port 0: any)")
    ap.add_argument("--upstream", required=True, help="HOST:PORT")
    ap.add_argument("--rtt-ms", type=float, required=True)
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    up_host, up_port = args.upstream.rsplit(":", 1)
    rtt = args.rtt_ms / 1000
    server = await asyncio.start_server(lambda r, w: relay((up_host, int(up_port)), rtt, r, w), host, int(port))
    bound = server.sockets[0].getsockname()
    print(f"listening on {bound[0]}:{bound[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
