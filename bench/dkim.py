"""DKIM signing: its cost per digest message, and the digest sending rate with signing on.

- signing cost: ``DkimSigner.sign`` over finished digest messages (the service's own bytes,
  each with its own To, Message-ID and unsubscribe links), microseconds a message, for RSA-2048
  and Ed25519; baseline: dkimpy's own ``dkim.sign`` on the same messages (what a user of the
  library would call), run on fewer messages since it is slow.
- sending with signing on: the "sending" section's service run (real pipeline, 4 connections,
  counting SMTP server) with ``NEWSLETTER_DKIM_*`` set, against baseline A (raw smtplib pushing
  unsigned finished messages down one connection). Goal as for sending: >= 0.9x.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from .common import Figure, bench_app, fresh_database, log
from .sending import baseline_raw_smtplib, prebuilt_messages, prepare_database, service_send
from .smtp_counter import CountingSmtpServer

DOMAIN = "example.org"
SELECTOR = "bench"
ALGORITHMS = ("ed25519", "rsa")


def _write_key(directory: Path, algorithm: str) -> Path:
    from newsletter.mail.dkim import generate_key

    path = directory / f"{algorithm}.pem"
    path.write_bytes(generate_key(algorithm).pem())
    return path


def signing_cost(messages: list[bytes], key_file: Path, dkimpy_count: int) -> tuple[float, float]:
    """(ours, dkimpy's) CPU microseconds a message (process time: on a shared machine, wall
    time counts other processes' turns)."""
    import dkim

    from newsletter.mail.dkim import DkimSigner, read_key_file

    key = read_key_file(key_file)
    signer = DkimSigner(DOMAIN, SELECTOR, key)
    started = time.process_time()
    for data in messages:
        signer.sign(data)
    ours = (time.process_time() - started) / len(messages) * 1e6
    # dkimpy wants Ed25519 keys as a base64 seed, RSA keys as PEM.
    if key.kind == "ed25519":
        import base64

        from cryptography.hazmat.primitives import serialization

        seed = key.private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        private, algorithm = base64.b64encode(seed), b"ed25519-sha256"
    else:
        private, algorithm = key_file.read_bytes(), b"rsa-sha256"
    headers = list(signer.signed_headers)
    sample = messages[:dkimpy_count]
    started = time.process_time()
    for data in sample:
        dkim.sign(
            data,
            SELECTOR.encode(),
            DOMAIN.encode(),
            private,
            signature_algorithm=algorithm,
            include_headers=headers,
        )
    theirs = (time.process_time() - started) / len(sample) * 1e6
    return ours, theirs


def dkim_figures(*, full: bool) -> list[Figure]:
    recipients = 20_000 if full else 5_000
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="nl-bench-dkim-") as directory:
        keys = {algorithm: _write_key(Path(directory), algorithm) for algorithm in ALGORITHMS}
        with CountingSmtpServer() as server:
            with fresh_database("sqlite") as url, bench_app(url, server.url):
                prepare_database(recipients)
                messages = [data for _address, data in prebuilt_messages(2000)]
                size = sum(map(len, messages)) / len(messages) / 1024
                for algorithm, key_file in keys.items():
                    ours, theirs = signing_cost(messages, key_file, 50)
                    log(f"dkim {algorithm}: {ours:,.0f} us/msg (dkimpy {theirs:,.0f} us/msg)")
                    figures.append(
                        Figure(
                            f"DKIM signing cost per digest message, {algorithm}",
                            ours,
                            "us",
                            theirs,
                            "dkimpy dkim.sign",
                            note=f"{size:.1f} KB/message",
                            better="lower",
                        )
                    )
                raw = baseline_raw_smtplib(server, recipients)
                log(f"dkim: baseline A (raw smtplib, unsigned) {raw.rate:,.0f} msg/s")
                # The same pipeline unsigned, measured in the same minutes: what signing costs
                # the service, read apart from the machine's load of the moment.
                unsigned = service_send(server, recipients)
                log(f"dkim: service unsigned {unsigned.rate:,.0f} msg/s ({unsigned.detail})")
            for algorithm, key_file in keys.items():
                # A fresh database each: a second digest of the same releases would be skipped.
                with fresh_database("sqlite") as url, bench_app(
                    url,
                    server.url,
                    DKIM_DOMAIN=DOMAIN,
                    DKIM_SELECTOR=SELECTOR,
                    DKIM_KEY_FILE=str(key_file),
                ):
                    prepare_database(recipients)
                    signed = service_send(server, recipients)
                log(f"dkim {algorithm}: service signed {signed.rate:,.0f} msg/s ({signed.detail})")
                figures.append(
                    Figure(
                        f"send digest signed ({algorithm}), SQLite: rate vs unsigned",
                        signed.rate,
                        "msg/s",
                        unsigned.rate,
                        "the service, unsigned",
                        note=signed.detail.rsplit(", ", 1)[-1],
                    )
                )
                figures.append(
                    Figure(
                        f"send digest signed ({algorithm}), SQLite: rate vs raw smtplib",
                        signed.rate,
                        "msg/s",
                        raw.rate,
                        "A: raw smtplib, unsigned, 1 connection",
                        goal=">= 0.9x",
                        note=f"{recipients:,} recipients",
                    )
                )
    return figures
