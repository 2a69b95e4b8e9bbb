#!/usr/bin/env python3
"""Loopback HTTP/1.1 range server: a stand-in for S3/HTTP object storage.

Tessera's benchmarks read COGs over HTTP. To measure how a renderer behaves
when every request to storage costs a round trip, this server serves the
files of one directory on 127.0.0.1 (or another local address) and holds back
each response by a fixed latency, without blocking the other connections.

CLI:
    python bench/range_server.py --root DIR [--host 127.0.0.1] [--port 0] [--latency-ms 50]

    --root DIR        directory whose files are served (paths that would
                      escape it answer 404)
    --host ADDR       local address to listen on (default 127.0.0.1); the
                      benchmark's real-latency scenario listens on a veth
                      address inside a network namespace
    --port PORT       TCP port on ADDR; 0 (the default) picks a free one
    --latency-ms MS   delay added before every file response (default 50)
    --log             print one line per counted request on stderr:
                      method, path, Range header, status, body bytes

Output:
    The first line on stdout is exactly
        listening on http://ADDR:PORT
    and is flushed at once; the server then runs until SIGTERM or SIGINT,
    on which it closes its sockets and exits with status 0.

Protocol:
    * HTTP/1.1 with keep-alive (GDAL/curl reuse connections); HTTP/1.0
      clients and "Connection: close" get one response per connection.
    * HEAD and GET of regular files under DIR. Other methods get 405.
    * A single range, "Range: bytes=a-b", "bytes=a-" or the suffix form
      "bytes=-n", answers 206 with Content-Range. A range that starts past
      the end of the file answers 416. A request with several ranges, or a
      Range header that cannot be parsed, is answered with the whole file
      (200), which HTTP allows.
    * No Range: 200 with the whole file.
    * Every response carries Content-Length; file responses carry
      Accept-Ranges: bytes.

Counters (for the benchmark to read how many requests a renderer made):
    Every request that is not a control endpoint is counted, whatever its
    status, along with the body bytes sent for it.
    GET /__stats  -> {"requests": N, "head": N, "get": N, "bytes": B}
    GET /__reset  -> zeroes the counters, answers the same shape (zeros)
    The control endpoints are neither delayed nor counted.

Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import json
import mimetypes
import signal
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Largest request head (request line + headers) accepted, in bytes.
MAX_HEAD = 64 * 1024

REASONS = {
    200: "OK",
    206: "Partial Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    416: "Range Not Satisfiable",
    431: "Request Header Fields Too Large",
}


class Stats:
    """Request counters, reported by /__stats and zeroed by /__reset."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.head = 0
        self.get = 0
        self.bytes = 0

    def as_json(self) -> bytes:
        return json.dumps(
            {"requests": self.requests, "head": self.head, "get": self.get, "bytes": self.bytes}
        ).encode()


def parse_range(value: str, size: int) -> tuple[int, int] | None | str:
    """Parse a Range header against a file of `size` bytes.

    Returns (first, last) inclusive for a satisfiable single range, None when
    the header should be ignored (multiple ranges, other units, malformed),
    or the string "unsatisfiable" when the range lies past the end.
    """
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    start_s, dash, end_s = spec.strip().partition("-")
    if not dash:
        return None
    start_s, end_s = start_s.strip(), end_s.strip()
    try:
        if start_s == "":
            # Suffix range: the last n bytes.
            n = int(end_s)
            if n <= 0:
                return "unsatisfiable"
            return (max(size - n, 0), size - 1) if size > 0 else "unsatisfiable"
        first = int(start_s)
        last = int(end_s) if end_s else size - 1
    except ValueError:
        return None
    if first < 0 or (end_s and last < first):
        return None
    if first >= size:
        return "unsatisfiable"
    return first, min(last, size - 1)


class RangeServer:
    def __init__(self, root: Path, latency_s: float, log: bool = False) -> None:
        self.root = root.resolve()
        self.latency_s = latency_s
        self.log = log
        self.stats = Stats()
        self.connections: set[asyncio.Task] = set()

    def resolve(self, target: str) -> Path | None:
        """Map a request target to a regular file under the root, or None."""
        path = unquote(urlsplit(target).path)
        candidate = (self.root / path.lstrip("/")).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.connections.add(task)
        try:
            while await self.one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            if task is not None:
                self.connections.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, asyncio.CancelledError):
                pass

    async def one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; return True if the connection stays open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                await self.simple(writer, 400, b"", keep_alive=False)
            return False
        except asyncio.LimitOverrunError:
            await self.simple(writer, 431, b"", keep_alive=False)
            return False

        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            await self.simple(writer, 400, b"", keep_alive=False)
            return False
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                await self.simple(writer, 400, b"", keep_alive=False)
                return False
            headers[name.strip().lower()] = value.strip()

        # GET and HEAD carry no body; drain one if a client sent it anyway.
        length = headers.get("content-length", "0")
        if not length.isdigit():
            await self.simple(writer, 400, b"", keep_alive=False)
            return False
        if int(length):
            await reader.readexactly(int(length))

        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            keep_alive = "keep-alive" in connection
        else:
            keep_alive = "close" not in connection

        path = urlsplit(target).path
        if method == "GET" and path in ("/__stats", "/__reset"):
            if path == "/__reset":
                self.stats.reset()
            await self.simple(writer, 200, self.stats.as_json(), keep_alive, "application/json")
            return keep_alive

        self.stats.requests += 1
        if method == "HEAD":
            self.stats.head += 1
        elif method == "GET":
            self.stats.get += 1

        # The stand-in for storage latency: this request waits, others go on.
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)

        if method not in ("GET", "HEAD"):
            await self.simple(writer, 405, b"", keep_alive, extra={"Allow": "GET, HEAD"})
            return keep_alive

        file = self.resolve(target)
        if file is None:
            await self.simple(writer, 404, b"", keep_alive)
            return keep_alive

        status, sent = await self.send_file(writer, file, method, headers.get("range"), keep_alive)
        if self.log:
            print(f"{method} {path} range={headers.get('range', '-')} {status} {sent}", file=sys.stderr, flush=True)
        return keep_alive

    async def simple(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        keep_alive: bool,
        content_type: str = "text/plain",
        extra: dict[str, str] | None = None,
    ) -> None:
        """Write a response whose body is held in memory."""
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        headers.update(extra or {})
        writer.write(self.head(status, headers, keep_alive) + body)
        await writer.drain()

    @staticmethod
    def head(status: int, headers: dict[str, str], keep_alive: bool) -> bytes:
        lines = [f"HTTP/1.1 {status} {REASONS[status]}"]
        lines.append(f"Date: {email.utils.formatdate(usegmt=True)}")
        lines.append("Server: tessera-bench-range-server")
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        lines.append("Connection: " + ("keep-alive" if keep_alive else "close"))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def send_file(
        self,
        writer: asyncio.StreamWriter,
        file: Path,
        method: str,
        range_header: str | None,
        keep_alive: bool,
    ) -> tuple[int, int]:
        """Answer HEAD/GET for a file; return (status, body bytes sent)."""
        st = file.stat()
        size = st.st_size
        headers = {
            "Content-Type": mimetypes.guess_type(file.name)[0] or "application/octet-stream",
            "Accept-Ranges": "bytes",
            "Last-Modified": email.utils.formatdate(st.st_mtime, usegmt=True),
        }
        status, first, count = 200, 0, size
        if range_header is not None:
            parsed = parse_range(range_header, size)
            if parsed == "unsatisfiable":
                headers["Content-Range"] = f"bytes */{size}"
                headers["Content-Length"] = "0"
                writer.write(self.head(416, headers, keep_alive))
                await writer.drain()
                return 416, 0
            if isinstance(parsed, tuple):
                first, last = parsed
                status, count = 206, last - first + 1
                headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        headers["Content-Length"] = str(count)

        writer.write(self.head(status, headers, keep_alive))
        await writer.drain()
        if method == "HEAD" or count == 0:
            return status, 0
        loop = asyncio.get_running_loop()
        with open(file, "rb") as fh:
            sent = await loop.sendfile(writer.transport, fh, first, count, fallback=True)
        self.stats.bytes += sent
        return status, sent


async def serve(root: Path, port: int, latency_ms: float, log: bool = False, host: str = "127.0.0.1") -> None:
    app = RangeServer(root, latency_ms / 1000.0, log)
    server = await asyncio.start_server(app.handle, host, port, limit=MAX_HEAD, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://{host}:{bound}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async with server:
        await stop.wait()
        server.close()
        for task in list(app.connections):
            task.cancel()
        if app.connections:
            await asyncio.gather(*app.connections, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, type=Path, help="directory to serve")
    parser.add_argument("--host", default="127.0.0.1", help="local address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port on --host (0: any free port)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="delay before every file response")
    parser.add_argument("--log", action="store_true", help="log each counted request on stderr")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"--root {args.root} is not a directory")
    if args.latency_ms < 0:
        parser.error("--latency-ms must be >= 0")
    asyncio.run(serve(args.root, args.port, args.latency_ms, args.log, args.host))
    return 0


if __name__ == "__main__":
    sys.exit(main())
