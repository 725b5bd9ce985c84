"""Send N signed slash commands at once and print how long each took to be acked.

Run by `bench/commands.py` in a process of its own: a client that shares a process
(and its GIL) with the stand-ins would time their work, not the bot's acks. Every
connection is opened before the clock starts, as Slack's would be kept alive, and
each time runs from the first byte of a request to the last byte of its answer.

    python bench/ack_load.py PORT COUNT TEXT SIGNING_SECRET RESPONSE_URL_BASE
"""

import asyncio
import hashlib
import hmac
import json
import sys
import time
from urllib.parse import urlencode

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def signed_request(text: str, secret: str, response_url: str) -> bytes:
    """One `/usage` slash command, signed as Slack signs it (v0, HMAC-SHA256)."""
    body = urlencode(
        {
            "command": "/usage",
            "text": text,
            "user_id": "UBENCH",
            "user_name": "bench",
            "channel_id": "CBENCH",
            "team_id": "T0STANDIN",
            "response_url": response_url,
            "trigger_id": "bench",
        }
    ).encode()
    stamp = str(int(time.time()))
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"X-Slack-Request-Timestamp: {stamp}\r\nX-Slack-Signature: v0={digest}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def timed(connection: Connection, request: bytes) -> float:
    """Seconds from sending the request to reading its whole answer (HTTP 200)."""
    reader, writer = connection
    started = time.perf_counter()
    writer.write(request)
    status = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    elapsed = time.perf_counter() - started
    if b" 200 " not in status:
        raise RuntimeError(f"the bot answered {status!r}")
    return elapsed


async def main(port: int, count: int, text: str, secret: str, base: str) -> None:
    connections = [
        await asyncio.open_connection("127.0.0.1", port) for _ in range(count)
    ]
    requests = [signed_request(text, secret, f"{base}/{i}") for i in range(count)]

    times = await asyncio.gather(*map(timed, connections, requests))

    for _, writer in connections:
        writer.close()
    print(json.dumps(times))


if __name__ == "__main__":
    port, count, text, secret, base = sys.argv[1:6]
    asyncio.run(main(int(port), int(count), text, secret, base))
