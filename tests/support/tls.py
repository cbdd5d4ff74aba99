"""A self-signed certificate for 127.0.0.1, made by OpenSSL for a test run (TLS servers in
tests: aiosmtpd with STARTTLS or implicit TLS, dovecot over imaps)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """``(cert.pem, key.pem)`` in ``folder``, valid one day for 127.0.0.1 and localhost."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
