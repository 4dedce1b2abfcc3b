"""This process's stdin and stdout as the event loop's own pipes (asyncio's pipe
transports), where they are pipes.

anyio's file wrappers (which the SDK's stdio server uses) read and write them through a
worker thread, one hand-off per line each way: on a proxy that is a good part of what it
adds to a call. Used when both are pipes (as every MCP client starts a server) and stdout
does not share its open file with stderr (a non-blocking stdout must not make staso's own
messages on stderr fail); otherwise the files are read and written as they are.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from typing import Any

import anyio


def _pipe(fd: int) -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False


def _shared_with_stderr(fd: int) -> bool:
    try:
        mine, err = os.fstat(fd), os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return True
    return (mine.st_dev, mine.st_ino) == (err.st_dev, err.st_ino)


def usable() -> bool:
    """Whether stdin and stdout can be the event loop's pipes."""
    try:
        stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        return False
    return os.name == "posix" and _pipe(stdin) and _pipe(stdout) \
        and not _shared_with_stderr(stdout)


class Lines:
    """Lines (bytes, each with its newline) as ``async for line in ...``."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    def __aiter__(self) -> Lines:
        return self

    async def __anext__(self) -> bytes:
        line = await self.reader.readline()
        if not line:
            raise StopAsyncIteration
        return line


class Writer:
    """Bytes out, as ``await write(data)`` / ``await flush()``: a full pipe waits on the
    event loop, never blocks it."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def flush(self) -> None:
        return None


class _FileWriter:
    """stdout as an anyio file (a worker thread per write), where it is not a pipe."""

    def __init__(self) -> None:
        self.file = anyio.wrap_file(sys.stdout.buffer)

    async def write(self, data: bytes) -> None:
        await self.file.write(data)

    async def flush(self) -> None:
        await self.file.flush()


async def stdio(max_line: int) -> tuple[Any, Any]:
    """(stdin's lines, stdout's writer) for this process."""
    if not usable():
        return anyio.wrap_file(sys.stdin.buffer), _FileWriter()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=max_line)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                        sys.stdout)
    return Lines(reader), Writer(asyncio.StreamWriter(transport, protocol, None, loop))
