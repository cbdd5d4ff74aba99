"""Profile the hot paths: ``python -m bench.profiling send|subscribe [--postgres] [-n N]``.

``send`` runs one digest through the real pipeline (all sending threads); ``subscribe`` posts
subscriptions through the Flask test client. Run it under py-spy to see every thread::

    .venv/bin/py-spy record --format raw -o /tmp/send.txt -- \\
        .venv/bin/python -m bench.profiling send --postgres -n 20000
    .venv/bin/python -m bench.profiling summary /tmp/send.txt

or with ``--pyinstrument`` for a single-threaded call tree (``SEND_CONNECTIONS=1``).
"""

from __future__ import annotations

import argparse
import collections
import sys
import time

from .common import bench_app, fresh_database, log


def profile_send(kind: str, recipients: int, connections: int, pyinstrument: bool) -> None:
    from .sending import prepare_database, service_send
    from .smtp_counter import CountingSmtpServer

    with (
        CountingSmtpServer() as server,
        fresh_database(kind) as url,
        bench_app(url, server.url, SEND_CONNECTIONS=connections),
    ):
        prepare_database(recipients)
        profiler = _start(pyinstrument)
        result = service_send(server, recipients)
        _stop(profiler)
        log(f"send: {result.rate:,.0f} msg/s ({result.detail})")


def profile_subscribe(kind: str, requests: int, pyinstrument: bool) -> None:
    with fresh_database(kind) as url, bench_app(url, "file:///nonexistent-bench-mail") as app:
        client = app.test_client()
        for index in range(20):
            client.post("/api/v1/subscriptions", json={"email": f"warm{index}@example.org"})
        profiler = _start(pyinstrument)
        started = time.perf_counter()
        for index in range(requests):
            response = client.post("/api/v1/subscriptions", json={"email": f"p{index}@example.org"})
            assert response.status_code == 202, response.data
        elapsed = time.perf_counter() - started
        _stop(profiler)
        log(f"subscribe: {elapsed / requests * 1000:.2f} ms per request, one client in-process")


def _start(pyinstrument: bool):
    if not pyinstrument:
        return None
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    return profiler


def _stop(profiler) -> None:
    if profiler is not None:
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False))


def summarise(path: str, top: int = 40) -> None:
    """Self and inclusive sample counts per function from py-spy's ``--format raw`` output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path) as stacks:
        for line in stacks:
            stack, _, count_text = line.rstrip().rpartition(" ")
            count = int(count_text)
            frames = [
                frame.split(" (")[0] + " " + frame.rsplit("/", 1)[-1]
                for frame in stack.split(";")[1:]
            ]
            total += count
            if frames:
                own[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
    print(f"{total} samples\n\nself time:")
    for frame, count in own.most_common(top):
        print(f"{count / total:6.1%}  {frame}")
    print("\ninclusive time:")
    for frame, count in inclusive.most_common(top):
        print(f"{count / total:6.1%}  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profiling")
    parser.add_argument("what", choices=["send", "subscribe", "summary"])
    parser.add_argument("path", nargs="?", help="py-spy raw output (summary)")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--pyinstrument", action="store_true")
    args = parser.parse_args()
    kind = "postgres" if args.postgres else "sqlite"
    if args.what == "send":
        profile_send(kind, args.n, args.connections, args.pyinstrument)
    elif args.what == "subscribe":
        profile_subscribe(kind, args.n, args.pyinstrument)
    else:
        summarise(args.path or sys.exit("summary needs the py-spy output file"))


if __name__ == "__main__":
    main()
