"""``make run``: the development web server and a worker side by side, stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def main() -> int:
    env = {**os.environ, "FLASK_APP": "newsletter"}
    flask = [sys.executable, "-m", "flask", "--app", "newsletter"]
    worker = subprocess.Popen([*flask, "worker"], env=env)
    print(
        "worker started (scheduler + sender); mail goes to",
        env.get("NEWSLETTER_MAIL_URL", "instance/mail/"),
    )
    try:
        return subprocess.call([*flask, "run", "--host", "127.0.0.1", "--port", "5000"], env=env)
    except KeyboardInterrupt:
        return 0
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()


if __name__ == "__main__":
    sys.exit(main())
