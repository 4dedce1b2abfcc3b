"""This process's stdin and stdout as the event loop's own non-blocking pipes.

anyio's file wrappers (which the SDK's stdio server uses) read and write them through a
worker thread, one hand-off per line each way: on a proxy that is a good part of what it
adds to a call. When both are pipes (as
every MCP client starts a server) and stdout does not share its open file with stderr (a
non-blocking stdout must not make staso's own messages on stderr fail), the proxy reads and
writes them directly; otherwise it uses the SDK's files as they are.
"""

from __future__ import annotations

import os
import stat
import sys

import anyio

_CHUNK = 1 << 16


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
    """Whether stdin and stdout can be read and written as non-blocking pipes."""
    try:
        stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        return False
    return os.name == "posix" and _pipe(stdin) and _pipe(stdout) \
        and not _shared_with_stderr(stdout)


class PipeLines:
    """Lines from a pipe (bytes, each with its newline), as ``async for line in ...``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.searched = 0  # the buffer holds no newline before this offset
        os.set_blocking(fd, False)

    def __aiter__(self) -> PipeLines:
        return self

    async def __anext__(self) -> bytes:
        while True:
            end = self.buffer.find(b"\n", self.searched)
            if end >= 0:
                line = bytes(self.buffer[:end + 1])
                del self.buffer[:end + 1]
                self.searched = 0
                return line
            self.searched = len(self.buffer)
            try:
                chunk = os.read(self.fd, _CHUNK)
            except BlockingIOError:
                await anyio.wait_readable(self.fd)
                continue
            if not chunk:  # end of input: a last line without a newline still counts
                if self.buffer:
                    line = bytes(self.buffer)
                    self.buffer.clear()
                    return line
                raise StopAsyncIteration
            self.buffer += chunk


class PipeWriter:
    """Bytes to a pipe, as ``await write(data)`` / ``await flush()``; a full pipe waits on
    the event loop, never blocks it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:
                await anyio.wait_writable(self.fd)
                continue
            view = view[written:]

    async def flush(self) -> None:
        return None
