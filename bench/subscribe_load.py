"""Subscribe under load: ``POST /api/v1/subscriptions`` through gunicorn on PostgreSQL, many
concurrent clients on loopback (wrk, or a Python generator when wrk is missing), against a
bare Flask route served the same way, and against that route plus the least a durable
subscription costs (one raw INSERT and its COMMIT: ``bench/bare_db_app.py``)."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from .common import ROOT, SECRET_KEY, Figure, fresh_database, log
from .smtp_counter import free_port

HERE = Path(__file__).resolve().parent


@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    generator: str

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def gunicorn_workers() -> int:
    """As the README's production line suggests: a few sync workers per core."""
    return int(os.environ.get("BENCH_GUNICORN_WORKERS") or max(2, 2 * (os.cpu_count() or 1)))


class Gunicorn:
    """``gunicorn`` from the project's environment, serving ``target`` on a loopback port."""

    def __init__(self, target: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.target = target
        self.env = env
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Gunicorn:
        gunicorn = Path(sys.executable).parent / "gunicorn"
        self.process = subprocess.Popen(
            [
                str(gunicorn),
                "--workers",
                str(gunicorn_workers()),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--backlog",
                "2048",
                "--log-level",
                "warning",
                self.target,
            ],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.process.stderr.read().decode()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        # One request per worker warms imports and database pools before measuring.
        for index in range(gunicorn_workers() * 2):
            post_subscription(self.port, f"warm-{index}-{time.time_ns()}@example.org")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def post_subscription(port: int, email: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "POST",
            "/api/v1/subscriptions",
            body=json.dumps({"email": email, "language": "fr"}),
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def run_wrk(port: int, *, connections: int, seconds: float, run_id: str) -> LoadResult:
    threads = min(connections, max(1, (os.cpu_count() or 1)))
    completed = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{seconds:.0f}s",
            "--timeout",
            "10s",
            "-s",
            str(HERE / "subscribe.lua"),
            f"http://127.0.0.1:{port}",
            "--",
            run_id,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"BENCH-RESULT (.*)", completed.stdout)
    if not match:
        raise RuntimeError(f"wrk printed no result: {completed.stdout} {completed.stderr}")
    values = {k: int(v) for k, v in (item.split("=") for item in match.group(1).split())}
    errors = sum(values[k] for k in ("connect", "read", "write", "status", "timeout"))
    return LoadResult(
        requests=values["requests"],
        seconds=values["duration_us"] / 1e6,
        p50_ms=values["p50_us"] / 1000,
        p99_ms=values["p99_us"] / 1000,
        errors=errors,
        generator="wrk",
    )


def run_python_load(port: int, *, connections: int, seconds: float, run_id: str) -> LoadResult:
    """The fallback generator: one thread per client, each posting until the time is up.

    Slower than wrk (it shares the GIL), so it understates both rates alike.
    """
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        counter = 0
        while time.monotonic() < stop_at:
            counter += 1
            started = time.perf_counter()
            try:
                status = post_subscription(port, f"load-{run_id}-{index}-{counter}@example.org")
            except OSError:
                status = 0
            latencies[index].append(time.perf_counter() - started)
            if status != 202:
                errors[index] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    merged = sorted(value for chunk in latencies for value in chunk)
    quantiles = statistics.quantiles(merged, n=100) if len(merged) > 1 else [0.0] * 99
    return LoadResult(
        requests=len(merged),
        seconds=elapsed,
        p50_ms=quantiles[49] * 1000,
        p99_ms=quantiles[98] * 1000,
        errors=sum(errors),
        generator="python",
    )


def load(port: int, *, connections: int, seconds: float, run_id: str) -> LoadResult:
    if shutil.which("wrk"):
        return run_wrk(port, connections=connections, seconds=seconds, run_id=run_id)
    return run_python_load(port, connections=connections, seconds=seconds, run_id=run_id)


def subscribe_figures(*, full: bool) -> list[Figure]:
    """Run the service and the bare route under the same load; returns the table lines."""
    seconds = 20 if full else 8
    connections = int(os.environ.get("BENCH_CLIENTS") or 16)
    generator = "wrk" if shutil.which("wrk") else "python threads (wrk not installed)"
    log(f"subscribe under load: {connections} clients, {seconds}s each, generator {generator}")
    with Gunicorn("bench.bare_app:app", {}) as bare:
        bare_result = load(bare.port, connections=connections, seconds=seconds, run_id="bare")
    with fresh_database("postgres") as url:
        libpq_url = make_url(url).set(drivername="postgresql").render_as_string(False)
        with Gunicorn("bench.bare_db_app:app", {"BENCH_BARE_DATABASE_URL": libpq_url}) as floor:
            floor_result = load(floor.port, connections=connections, seconds=seconds, run_id="db")
    with fresh_database("postgres") as url:
        env = {
            "NEWSLETTER_DATABASE_URL": url,
            "NEWSLETTER_RATELIMIT_ENABLED": "false",
            "NEWSLETTER_SECRET_KEY": SECRET_KEY,
            "NEWSLETTER_ENV": "production",
            "NEWSLETTER_PUBLIC_URL": "https://news.example.org",
        }
        with Gunicorn("wsgi:app", env) as service:
            result = load(service.port, connections=connections, seconds=seconds, run_id="svc")
        rows = _count_rows(url)
    log(
        f"subscribe: service {result.rate:.0f} req/s p50 {result.p50_ms:.1f} ms p99 "
        f"{result.p99_ms:.1f} ms errors {result.errors}; bare {bare_result.rate:.0f} req/s "
        f"p99 {bare_result.p99_ms:.1f} ms; bare + raw INSERT/COMMIT {floor_result.rate:.0f} "
        f"req/s p99 {floor_result.p99_ms:.1f} ms; rows written {rows}"
    )
    note = f"{connections} clients, {gunicorn_workers()} gunicorn workers, {result.generator}"
    return [
        Figure(
            "subscribe: requests/s (PostgreSQL)",
            result.rate,
            "req/s",
            bare_result.rate,
            "bare Flask route",
            goal=">= 0.4x",
            note=note,
        ),
        Figure(
            "subscribe: requests/s vs the least a durable write costs",
            result.rate,
            "req/s",
            floor_result.rate,
            "bare route + one raw INSERT/COMMIT",
            note="the floor on this machine: bench/README.md",
        ),
        Figure(
            "subscribe: p50 latency",
            result.p50_ms,
            "ms",
            bare_result.p50_ms,
            "bare Flask route",
            better="lower",
        ),
        Figure(
            "subscribe: p99 latency",
            result.p99_ms,
            "ms",
            bare_result.p99_ms,
            "bare Flask route",
            goal="< 100 ms",
            better="lower",
        ),
        Figure(
            "subscribe: failed requests / subscribers+outbox rows written",
            float(result.errors),
            "",
            baseline_name=f"{rows['subscribers']} subscribers, {rows['outbox']} emails queued",
            better="lower",
        ),
    ]


def _count_rows(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as connection:
        subscribers = connection.scalar(text("SELECT count(*) FROM subscribers"))
        outbox = connection.scalar(text("SELECT count(*) FROM outbox_messages"))
    engine.dispose()
    return {"subscribers": int(subscribers or 0), "outbox": int(outbox or 0)}
