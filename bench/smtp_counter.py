"""An SMTP server on loopback that only counts what it accepts, in a process of its own.

It runs aiosmtpd in a separate process so that it never competes with the sender for the GIL;
counts and the time of the last message come back through shared memory.
"""

from __future__ import annotations

import multiprocessing
import socket
import time
from multiprocessing.sharedctypes import Synchronized


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _CountingHandler:
    """Accepts every message and counts it; keeps nothing (unless asked to note arrival times
    and recipients)."""

    def __init__(
        self, count: Synchronized, size: Synchronized, last: Synchronized, times, recipients
    ) -> None:  # noqa: ANN001
        self.count = count
        self.size = size
        self.last = last
        self.times = times  # shared array of arrival times, or None
        self.recipients = recipients  # open file, one address a line, or None

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001 - aiosmtpd's hook
        # One event loop thread writes: no lock needed, readers tolerate a stale value.
        now = time.monotonic()
        if self.times is not None and self.count.value < len(self.times):
            self.times[self.count.value] = now
        if self.recipients is not None:
            self.recipients.write("".join(f"{address}\n" for address in envelope.rcpt_tos))
            self.recipients.flush()
        self.count.value += 1
        self.size.value += len(envelope.original_content or b"")
        self.last.value = now
        return "250 OK"


def _serve(  # noqa: ANN001 - process entry
    port: int, count, size, last, ready, stop, times=None, recipients_path=None
) -> None:
    from aiosmtpd.controller import Controller

    recipients = open(recipients_path, "a") if recipients_path else None  # noqa: SIM115
    controller = Controller(
        _CountingHandler(count, size, last, times, recipients),
        hostname="127.0.0.1",
        port=port,
        decode_data=False,
        enable_SMTPUTF8=True,
        # Digest messages are ~15 KB; leave plenty of room.
        data_size_limit=10 * 1024 * 1024,
    )
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()
    if recipients is not None:
        recipients.close()


class CountingSmtpServer:
    """``with CountingSmtpServer() as server:`` then ``server.wait_for(n)``."""

    def __init__(self, *, keep_times: int = 0, recipients_path: str | None = None) -> None:
        """``keep_times``: note the arrival time of the first that many messages;
        ``recipients_path``: append every accepted recipient to that file (duplicates show)."""
        self.port = free_port()
        context = multiprocessing.get_context("spawn")
        self._count = context.Value("q", 0, lock=False)
        self._size = context.Value("q", 0, lock=False)
        self._last = context.Value("d", 0.0, lock=False)
        self._times = context.Array("d", keep_times, lock=False) if keep_times else None
        self.recipients_path = recipients_path
        self._ready = context.Event()
        self._stop = context.Event()
        self._process = context.Process(
            target=_serve,
            args=(self.port, self._count, self._size, self._last, self._ready, self._stop),
            kwargs={"times": self._times, "recipients_path": recipients_path},
            daemon=True,
        )

    def __enter__(self) -> CountingSmtpServer:
        self._process.start()
        if not self._ready.wait(30):
            raise RuntimeError("the counting SMTP server did not start")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=60"

    @property
    def count(self) -> int:
        return int(self._count.value)

    @property
    def bytes_received(self) -> int:
        return int(self._size.value)

    @property
    def last_message_at(self) -> float:
        """``time.monotonic()`` (a system-wide clock) when the last message was accepted."""
        return float(self._last.value)

    def arrival_times(self) -> list[float]:
        """``time.monotonic()`` of each message noted so far (see ``keep_times``)."""
        if self._times is None:
            return []
        return list(self._times[: min(self.count, len(self._times))])

    def reset(self) -> None:
        self._count.value = 0
        self._size.value = 0
        self._last.value = 0.0

    def wait_for(self, expected: int, timeout: float = 600.0) -> float:
        """Wait until ``expected`` messages arrived; returns when the last one did."""
        deadline = time.monotonic() + timeout
        while self.count < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {expected} messages, got {self.count}")
            time.sleep(0.005)
        return self.last_message_at
