"""The lean HTTP/1.1 client against a raw socket server: framing, reuse, compression and breakage."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from polyroute.providers.lean_http import ConnectFailed, LeanClient, ProtocolBroken

Reply = Callable[[bytes], bytes | None]  # request bytes -> raw reply (None: close without answering)


class _Server:
    def __init__(self, reply: Reply, *, close_after: bool = False) -> None:
        self.reply = reply
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                raw = self.reply(request)
                if raw is None:
                    break
                writer.write(raw)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., asyncio.Future[tuple[str, _Server]]]]:
    servers: list[asyncio.Server] = []

    async def start(reply: Reply, **kwargs: bool) -> tuple[str, _Server]:
        state = _Server(reply, **kwargs)
        server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat/completions", state

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()


def _fixed(body: bytes, extra: bytes = b"") -> Reply:
    return lambda _request: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body


async def test_post_reads_a_sized_body_and_reuses_the_connection(serve) -> None:
    url, server = await serve(_fixed(b'{"ok":true}', b"Retry-After: 3\r\n"))
    client = LeanClient(2)
    for _ in range(3):
        response = await client.post(url, b'{"q":1}', {"Content-Type": "application/json"})
        assert response.status == 200 and response.headers.get("retry-after") == "3"
        assert await response.read() == b'{"ok":true}'
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"Content-Type: application/json\r\n" in first and first.endswith(b'\r\n\r\n{"q":1}')
    await client.aclose()


async def test_chunked_body_arrives_piece_by_piece(serve) -> None:
    chunks = [b"data: one\n\n", b"data: two\n\n"]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    url, server = await serve(lambda _r: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed)
    client = LeanClient(2)
    response = await client.post(url, b"{}", {})
    got = []
    while piece := await response.read_some():
        got.append(piece)
    assert b"".join(got) == b"".join(chunks)
    response.close()
    response = await client.post(url, b"{}", {})  # the connection went back to the pool
    assert await response.read() == b"".join(chunks)
    assert server.connections == 1
    await client.aclose()


async def test_a_body_delimited_by_the_close_ends_there(serve) -> None:
    url, server = await serve(lambda _r: b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", close_after=True)
    client = LeanClient(2)
    response = await client.post(url, b"{}", {})
    assert await response.read() == b"all of it"
    response = await client.post(url, b"{}", {})  # not reused: a new connection
    assert await response.read() == b"all of it"
    assert server.connections == 2
    await client.aclose()


async def test_gzip_bodies_are_decoded(serve) -> None:
    url, _ = await serve(_fixed(gzip.compress(b'{"z":1}'), b"Content-Encoding: gzip\r\n"))
    client = LeanClient(2)
    response = await client.post(url, b"{}", {})
    assert await response.read() == b'{"z":1}'
    await client.aclose()


async def test_a_connection_closed_before_answering_is_a_connect_failure(serve) -> None:
    url, _ = await serve(lambda _r: None)
    client = LeanClient(2)
    with pytest.raises(ConnectFailed):
        await client.post(url, b"{}", {})
    await client.aclose()


async def test_a_body_cut_short_is_a_protocol_failure(serve) -> None:
    url, _ = await serve(lambda _r: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", close_after=True)
    client = LeanClient(2)
    response = await client.post(url, b"{}", {})
    with pytest.raises(ProtocolBroken):
        await response.read()
    await client.aclose()


async def test_garbage_instead_of_http_is_a_protocol_failure(serve) -> None:
    url, _ = await serve(lambda _r: b"SSH-2.0-OpenSSH\r\n\r\n")
    client = LeanClient(2)
    with pytest.raises(ProtocolBroken):
        await client.post(url, b"{}", {})
    await client.aclose()


async def test_an_idle_connection_the_server_closed_is_not_reused(serve) -> None:
    url, server = await serve(_fixed(b"x"))
    client = LeanClient(2)
    assert await (await client.post(url, b"{}", {})).read() == b"x"
    server.writers[0].close()  # the server drops the idle keep-alive connection
    await asyncio.sleep(0.1)
    assert await (await client.post(url, b"{}", {})).read() == b"x"
    assert server.connections == 2
    await client.aclose()


async def test_an_unread_body_closes_the_connection_only_if_it_had_not_fully_arrived(serve) -> None:
    url, server = await serve(_fixed(b"whole"))
    client = LeanClient(2)
    response = await client.post(url, b"{}", {})
    await asyncio.sleep(0.05)  # the body has arrived, unread
    response.close()
    assert await (await client.post(url, b"{}", {})).read() == b"whole"
    assert server.connections == 1
    await client.aclose()


async def test_nothing_listening_is_a_connect_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = LeanClient(2)
    with pytest.raises(ConnectFailed):
        await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", b"{}", {})
    await client.aclose()


async def test_a_header_with_a_line_break_is_never_sent(serve) -> None:
    url, server = await serve(_fixed(b"x"))
    client = LeanClient(2)
    with pytest.raises(ProtocolBroken):
        await client.post(url, b"{}", {"X-Evil": "a\r\nX-Injected: 1"})
    assert server.requests == []
    await client.aclose()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
async def test_https_with_a_verified_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    state = _Server(_fixed(b'{"tls":true}'))
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0, ssl=served)
    port = server.sockets[0].getsockname()[1]
    trusting = LeanClient(2, ssl.create_default_context(cafile=str(cert)))
    for _ in range(2):
        response = await trusting.post(f"https://localhost:{port}/v1/chat/completions", b"{}", {})
        assert await response.read() == b'{"tls":true}'
    assert state.connections == 1  # kept alive over TLS too
    with pytest.raises(ConnectFailed):  # the system CAs do not know this certificate
        await LeanClient(2).post(f"https://localhost:{port}/v1/chat/completions", b"{}", {})
    await trusting.aclose()
    server.close()


async def test_a_read_waits_at_most_its_timeout_and_buffered_data_needs_no_wait(serve) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    url, server = await serve(lambda _r: head + b"b\r\ndata: one\n\n\r\n")  # then silence: the stream stalls
    client = LeanClient(2)
    response = await client.post(url, b"{}", {})
    assert await response.read_some(0.0) == b"data: one\n\n"  # already there: no timer can fire
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await response.read_some(0.2)
    assert 0.19 <= loop.time() - started < 1.0
    response.close()
    response = await client.post(url, b"{}", {})  # the stalled connection was not reused
    with pytest.raises(TimeoutError):
        await response.read(0.1)  # the whole body within 0.1 s: it never ends
    assert server.connections == 2
    await client.aclose()


async def test_a_post_waits_for_the_response_head_at_most_its_timeout(serve) -> None:
    answering = False

    def reply(_request: bytes) -> bytes | None:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}" if answering else b""  # b"": silence

    url, server = await serve(reply)
    client = LeanClient(2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await client.post(url, b"{}", {}, 0.2)
    assert 0.19 <= loop.time() - started < 1.0
    answering = True
    response = await client.post(url, b"{}", {}, 5.0)  # a timer that does not fire changes nothing
    assert response.status == 200 and await response.read(5.0) == b"{}"
    response.close()
    assert server.connections == 2  # the silent connection was closed, not reused
    await client.aclose()
