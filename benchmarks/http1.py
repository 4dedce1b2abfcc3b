"""A minimal HTTP/1.1 keep-alive connection on asyncio streams: light enough that one
process can hold 10,000 of them, which no full HTTP client library here can."""

from __future__ import annotations

import asyncio
import json
from typing import Any


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 host: str, key: str) -> None:
        self.reader, self.writer, self.host, self.key = reader, writer, host, key

    @classmethod
    async def open(cls, host: str, port: int, key: str = "") -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, host, key)

    def send(self, method: str, path: str, body: bytes = b"") -> None:
        auth = f"Authorization: Bearer {self.key}\r\n" if self.key else ""
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{auth}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        self.writer.write(head.encode() + body)

    async def answer(self) -> tuple[int, bytes]:
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        self.send(method, path, b"" if body is None else json.dumps(body).encode())
        status, data = await self.answer()
        return status, json.loads(data) if data else None

    def close(self) -> None:
        self.writer.close()
