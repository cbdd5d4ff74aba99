"""Run the service as an operator would: real processes (gunicorn, ``flask worker``) started
from a given interpreter's ``bin/``, talked to over HTTP, with mail read at a real SMTP sink."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

SECRET_KEY = "deployment-test-secret-key-0123456789abcdefghijkl"
STAFF_PASSWORD = "Deployment-Test#2026-Quartz!"


class Deployment:
    """gunicorn + workers from ``bin_dir``, in ``cwd``, with ``env`` (plus PATH to ``bin_dir``)."""

    def __init__(self, bin_dir: Path, cwd: Path, env: dict[str, str], log_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.cwd = cwd
        # Only what the service needs: no PYTHONPATH or virtualenv of the test run leaks in.
        self.env = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            **env,
        }
        self.log_dir = log_dir
        self.processes: list[tuple[subprocess.Popen, object]] = []
        self.base_url = ""

    def flask(self, *args: str, input: str | None = None, timeout: float = 120) -> str:  # noqa: A002
        result = subprocess.run(
            [str(self.bin_dir / "flask"), "--app", "newsletter", *args],
            cwd=self.cwd,
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, f"flask {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.processes.append((process, log))
        return process

    def start_gunicorn(self, port: int, workers: int = 2, config: Path | None = None) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        if config is not None:  # the recipe's own settings file, bind and workers from env
            self.env["NEWSLETTER_BIND"] = f"127.0.0.1:{port}"
            self.env["NEWSLETTER_WEB_WORKERS"] = str(workers)
            command = [str(self.bin_dir / "gunicorn"), "-c", str(config)]
        else:
            command = [
                str(self.bin_dir / "gunicorn"),
                "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers),
                "newsletter:create_app()",
            ]
        self.start("gunicorn", command)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                status, _ = self.request("GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError("gunicorn did not answer:\n" + self.logs())

    def start_worker(self, name: str, env: dict[str, str] | None = None) -> None:
        command = [str(self.bin_dir / "flask"), "--app", "newsletter", "worker", "--name", name,
                   "--poll-interval", "0.3"]
        if env:
            saved, self.env = self.env, {**self.env, **env}
            try:
                self.start(name, command)
            finally:
                self.env = saved
        else:
            self.start(name, command)

    def request(
        self, method: str, path: str, body: dict | None = None, token: str | None = None,
        form: dict | None = None, headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            from urllib.parse import urlencode

            data = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def staff_token(self, email: str = "ops@example.org") -> str:
        self.flask("staff", "create", email, input=STAFF_PASSWORD + "\n")
        return self.flask("staff", "token", email).strip()

    def publish_digest(self, token: str, release: dict[str, str], language: str = "fr") -> int:
        """Post ``release`` (published an hour ago) and a digest of ``language`` through the
        API, as an editor's script would; returns the digest's id."""
        status, body = self.request(
            "POST",
            "/api/v1/releases",
            {**release, "language": language, "published_at": an_hour_ago()},
            token=token,
        )
        assert status == 201, body
        status, body = self.request("POST", "/api/v1/digests", {"language": language}, token=token)
        assert status == 201, body
        return json.loads(body)["id"]

    def confirm(self, link: str) -> None:
        """Open the emailed link; press the page's button when the GET only shows one."""
        path = urlsplit(link).path
        status, page = self.request("GET", path)
        assert status == 200, (status, page)
        if f'action="{path}"' in page:
            status, page = self.request("POST", path, form={})
            assert status in (200, 303), (status, page)

    def stop(self) -> None:
        for process, _log in self.processes:
            if process.poll() is None:
                process.terminate()
        for process, log in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
            log.close()  # type: ignore[attr-defined]

    def logs(self) -> str:
        return "\n".join(
            f"== {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )


def an_hour_ago() -> str:
    """A release date inside the first digest's window, whatever today is."""
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines as systemd's EnvironmentFile reads them (comments and blanks skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def wait_for_mail(mailbox, address: str, count: int = 1, timeout: float = 60.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = mailbox.to(address)
        if len(messages) >= count:
            return messages
        time.sleep(0.2)
    raise AssertionError(f"{count} message(s) for {address} did not arrive in {timeout}s")
