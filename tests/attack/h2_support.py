"""Raw HTTP/2 for the transport attacks: gRPC requests that send HEADERS and never a message (slowloris).

`HalfOpenConnection` speaks HTTP/2 with the `h2` package over an asyncio connection to 127.0.0.1: it answers the
server's SETTINGS and PINGs (so the connection stays healthy) and opens streams whose request message never
comes. It records which streams the server ended (trailers or RST_STREAM), and when.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions


class HalfOpenConnection:
    """One HTTP/2 connection holding half-open gRPC streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, authority: str) -> None:
        self.reader = reader
        self.writer = writer
        self.authority = authority
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.opened: list[int] = []
        self.ended: dict[int, float] = {}  # stream id -> monotonic time the server ended it
        self.statuses: dict[int, str] = {}  # stream id -> grpc-status the server answered
        self.refused = 0
        self.settings = asyncio.Event()
        self.closed = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, host: str, port: int, timeout: float = 5.0) -> HalfOpenConnection:
        """Connects, sends the preface and waits for the server's SETTINGS."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        self = cls(reader, writer, f"{host}:{port}")
        self.conn.initiate_connection()
        await self._flush()
        self._pump = asyncio.get_running_loop().create_task(self._read())
        await asyncio.wait_for(self.settings.wait(), timeout)
        return self

    @property
    def stream_limit(self) -> int:
        """The server's SETTINGS_MAX_CONCURRENT_STREAMS (2**32 + 1 when it sets none)."""
        return int(self.conn.remote_settings.max_concurrent_streams)

    async def open_streams(self, path: str, count: int, *, end_stream: bool = False, partial: bytes = b"") -> int:
        """Opens up to `count` streams to `path`: HEADERS, then `partial` (the start of a message that never
        ends) if given, never the whole message; END_STREAM if `end_stream` (a request that ends without its
        message). Returns how many were opened."""
        opened = 0
        for _ in range(count):
            stream_id = self.conn.get_next_available_stream_id()
            headers = [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", path),
                (":authority", self.authority),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ]
            try:
                self.conn.send_headers(stream_id, headers, end_stream=end_stream)
            except h2.exceptions.TooManyStreamsError:
                break
            if partial:
                self.conn.send_data(stream_id, partial, end_stream=False)
            self.opened.append(stream_id)
            opened += 1
        await self._flush()
        return opened

    def open_count(self) -> int:
        """Streams opened that the server has not ended yet."""
        return sum(1 for s in self.opened if s not in self.ended)

    async def close(self) -> None:
        """Closes the connection (GOAWAY, then the socket) and stops reading."""
        with contextlib.suppress(Exception):
            self.conn.close_connection()
            await self._flush()
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump

    async def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                for event in self.conn.receive_data(data):
                    self._on(event)
                await self._flush()
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        finally:
            self.closed.set()

    def _on(self, event: h2.events.Event) -> None:
        now = time.monotonic()
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings.set()
        elif isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived) and event.stream_id:
            for name, value in event.headers or ():
                if name in ("grpc-status", b"grpc-status"):
                    self.statuses[event.stream_id] = value.decode() if isinstance(value, bytes) else str(value)
        elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
            stream_id = event.stream_id
            if stream_id is not None and stream_id not in self.ended:
                self.ended[stream_id] = now
            if isinstance(event, h2.events.StreamReset) and event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM:
                self.refused += 1
        elif isinstance(event, h2.events.DataReceived) and event.stream_id is not None:
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
