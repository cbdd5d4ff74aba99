"""The real app in subprocesses for browser tests: a web server and a worker, plus helpers
to check pages the way a visitor meets them (keyboard, contrast, phone width, other hosts).

Chromium is Debian's (``/usr/bin/chromium``); a browser is never downloaded.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_path() -> str | None:
    """Debian's Chromium when installed (``make browser`` installs it), else None."""
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveApp:
    """``flask run`` and ``flask worker`` against the test database and SMTP sink."""

    database_url: str
    smtp_port: int
    secret_key: str
    log_dir: Path
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("NEWSLETTER_", "FLASK_", "PYTEST_"))
        }
        env.update(
            {
                "NEWSLETTER_DATABASE_URL": self.database_url,
                "NEWSLETTER_MAIL_URL": f"smtp://127.0.0.1:{self.smtp_port}?timeout=5",
                "NEWSLETTER_SECRET_KEY": self.secret_key,
                "NEWSLETTER_PUBLIC_URL": self.url,
                "NEWSLETTER_MAIL_FROM": "Newsroom <news@example.org>",
                # Per-IP limits would trip over a test run's many requests from one address;
                # the per-address caps on emails stay on.
                "NEWSLETTER_RATELIMIT_ENABLED": "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "newsletter", *args],
            cwd=ROOT,
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()  # the child holds its own descriptor
        self.processes.append(process)
        return process

    worker: subprocess.Popen | None = None

    def start_worker(self) -> None:
        if self.worker is None or self.worker.poll() is not None:
            self.worker = self._start(
                "worker", "worker", "--poll-interval", "0.2", "--name", "browser-tests"
            )

    def stop_worker(self) -> None:
        """Stop the worker (tests empty the tables in between: TRUNCATE waits for its locks)."""
        if self.worker is None:
            return
        if self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        self.processes.remove(self.worker)
        self.worker = None

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        server = self._start("server", "run", "--port", str(self.port), "--no-reload")
        self.start_worker()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"web server exited:\n{self.log('server')}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise RuntimeError(f"web server did not answer:\n{self.log('server')}")

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


# JavaScript run in the page: WCAG contrast of every visible text against its background.
CONTRAST_SCRIPT = """
() => {
  const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = ({r, g, b}) => { const f = (v) => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const background = (el) => { for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor); if (c && c.a > 0.5) return c; }
    return {r: 255, g: 255, b: 255, a: 1}; };
  const failures = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode; const el = node.parentElement;
    if (!node.textContent.trim() || !el) continue;
    const style = getComputedStyle(el); const box = el.getBoundingClientRect();
    if (style.visibility === 'hidden' || style.display === 'none' || box.width <= 1
        || box.height <= 1 || el.closest('[aria-hidden=true], svg, option')) continue;
    const fg = parse(style.color); const bg = background(el);
    const l1 = lum(fg), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(style.fontSize); const bold = parseInt(style.fontWeight) >= 700;
    const needed = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
    if (ratio < needed)
      failures.push(`${node.textContent.trim().slice(0, 40)}: ${ratio.toFixed(2)}`);
  }
  return failures;
}
"""

# Every form control a person can reach has a name a screen reader announces.
UNLABELLED_SCRIPT = """
() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter((el) => el.type !== 'hidden' && !el.hidden && el.tabIndex >= 0
          && !el.closest('[aria-hidden=true]'))
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
          && !el.getAttribute('aria-labelledby'))
  .map((el) => el.outerHTML.slice(0, 80))
"""

OVERFLOW_SCRIPT = (
    "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
)


def check_page(page, *languages: str) -> None:
    """Labels on every control, readable contrast, nothing wider than the screen; with
    ``languages``, the page declares one of them."""
    assert page.evaluate(UNLABELLED_SCRIPT) == []
    assert page.evaluate(CONTRAST_SCRIPT) == []
    if languages:
        assert page.get_attribute("html", "lang") in languages
    assert page.evaluate(OVERFLOW_SCRIPT) <= 0
