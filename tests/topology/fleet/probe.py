"""Client load through the fleet, every outcome timestamped on the wall clock (the test's clock).

Runs inside a lab client (stdlib only). For --duration seconds it opens a new connection every
--interval seconds (GET, then the server closes it: a short connection) and keeps --long connections
open, each asking a request every 0.2 s on its one connection. Prints one JSON document:
{"short": [[start, end, ok, error], ...], "long": [{"opened", "lost", "error", "requests"}, ...]}.
"""

import argparse
import asyncio
import json
import socket
import time

REQUEST = "GET /status/200 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
KEEPALIVE = "GET /get HTTP/1.1\r\nHost: {host}\r\n\r\n"


async def _close(writer):
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


async def short(args, family, results):
    start = time.time()
    ok, error, writer = False, None, None
    try:
        async with asyncio.timeout(args.timeout):
            reader, writer = await asyncio.open_connection(args.target, args.port, family=family)
            writer.write(REQUEST.format(host=args.target).encode())
            data = await reader.read()
        ok = data.startswith(b"HTTP/1.1 200")
        error = None if ok else repr(data[:40])
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        error = type(exc).__name__
    finally:
        if writer is not None:
            await _close(writer)
    results.append([start, time.time(), ok, error])


async def _response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ValueError(head[:40])
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    await reader.readexactly(length)


async def long_lived(args, family, deadline, record):
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(args.target, args.port, family=family), args.timeout)
        record["opened"] = time.time()
        while time.time() < deadline:
            writer.write(KEEPALIVE.format(host=args.target).encode())
            await asyncio.wait_for(_response(reader), args.timeout)
            record["requests"] += 1
            await asyncio.sleep(0.2)
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
        record["lost"], record["error"] = time.time(), type(exc).__name__
    finally:
        if writer is not None:
            await _close(writer)


async def main(args):
    family = socket.AF_INET6 if ":" in args.target else socket.AF_INET
    deadline = time.time() + args.duration
    longs = [{"opened": None, "lost": None, "error": None, "requests": 0} for _index in range(args.long)]
    tasks = [asyncio.create_task(long_lived(args, family, deadline, record)) for record in longs]
    shorts = []
    while time.time() < deadline:
        tasks.append(asyncio.create_task(short(args, family, shorts)))
        await asyncio.sleep(args.interval)
    await asyncio.gather(*tasks)
    print(json.dumps({"short": sorted(shorts), "long": longs}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--long", type=int, default=4)
    asyncio.run(main(parser.parse_args()))
