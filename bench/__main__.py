"""``python -m bench [--full] [--only SECTION ...]``: run the benchmarks, print the table."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback

from .common import Figure, log, postgres_available, render_table

SECTIONS = ("sending", "fanout", "subscribe", "rendering", "scaling", "dkim", "sharedcap")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--full", action="store_true", help="full sizes (20k, 1M, 100k...)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    args = parser.parse_args(argv)
    sections = args.only or list(SECTIONS)
    have_postgres = postgres_available()
    if not have_postgres:
        log("PostgreSQL is not reachable (BENCH_POSTGRES_URL): its figures are skipped")
    started = time.monotonic()
    figures: list[Figure] = []
    failures: list[str] = []

    def run(name: str, function, *fargs, **kwargs) -> None:
        try:
            figures.extend(function(*fargs, **kwargs))
        except Exception:  # noqa: BLE001 - one broken section must not hide the others
            failures.append(name)
            log(f"section {name} failed:\n{traceback.format_exc()}")

    if "sending" in sections:
        from .sending import sending_figures

        databases = ["sqlite"] + (["postgres"] if have_postgres else [])
        run("sending", sending_figures, full=args.full, databases=databases)
    if "fanout" in sections and have_postgres:
        from .fanout import fanout_figures

        run("fanout", fanout_figures, full=args.full)
    if "subscribe" in sections and have_postgres:
        from .subscribe_load import subscribe_figures

        run("subscribe", subscribe_figures, full=args.full)
    if "rendering" in sections:
        from .rendering import rendering_figures

        run("rendering", rendering_figures, full=args.full)
    if "scaling" in sections and have_postgres:
        from .sending import scaling_figures

        run("scaling", scaling_figures, full=args.full)

    if "dkim" in sections:
        from .dkim import dkim_figures

        run("dkim", dkim_figures, full=args.full)

    if "sharedcap" in sections and have_postgres:
        from .sharedcap import redis_available, sharedcap_figures

        if redis_available():
            run("sharedcap", sharedcap_figures, full=args.full)
        else:
            log("Redis is not reachable (BENCH_REDIS_URL): the shared-cap figures are skipped")

    elapsed = time.monotonic() - started
    load = os.getloadavg()
    print()
    print(
        f"newsletter benchmarks ({'full' if args.full else 'quick'} mode) on "
        f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {elapsed:.0f}s"
    )
    print()
    print(render_table(figures))
    if failures:
        print(f"\nsections that failed: {', '.join(failures)} (see the log above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
