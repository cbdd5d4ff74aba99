"""A real IMAP server for tests: Debian's dovecot, started as a private instance with its own
configuration in a temporary directory, on a free loopback port: plain IMAP, or implicit TLS
(imaps) with a certificate the test made.

Run as root (CI, the dev machines), dovecot insists that its login processes run as an
unprivileged user, so the instance uses the package's own ``dovecot``/``dovenull`` users; as
anyone else it runs everything as that user.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DOVECOT = "/usr/sbin/dovecot"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = 0
first_valid_gid = 0
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
namespace inbox {{
  inbox = yes
}}
"""


@dataclass
class Dovecot:
    """One private dovecot with one mailbox account (``user``/``password``); with ``tls``
    (certificate, key) it listens for imaps only, on ``port``."""

    port: int
    user: str = "bounces"
    password: str = "s3cret"
    tls: tuple[Path, Path] | None = None

    def __post_init__(self) -> None:
        # Not under pytest's tmp_path: its parents are private to root, and the mail processes
        # of a root-started dovecot run as the dovecot user.
        self.root = Path(tempfile.mkdtemp(prefix="nl-dovecot-"))
        self.root.chmod(0o755)

    def start(self) -> None:
        if os.geteuid() == 0:
            internal_user, login_user = "dovecot", "dovenull"
            mail_uid, mail_gid = pwd.getpwnam("dovecot").pw_uid, grp.getgrnam("dovecot").gr_gid
        else:
            internal_user = login_user = pwd.getpwuid(os.getuid()).pw_name
            mail_uid, mail_gid = os.getuid(), os.getgid()
        internal_group = grp.getgrgid(pwd.getpwnam(internal_user).pw_gid).gr_name
        for name in ("run", "state", "mail"):
            (self.root / name).mkdir()
        os.chown(self.root / "mail", mail_uid, mail_gid)
        (self.root / "passwd").write_text(
            f"{self.user}:{{PLAIN}}{self.password}:{mail_uid}:{mail_gid}::"
            f"{self.root}/mail/{self.user}\n"
        )
        config = self.root / "dovecot.conf"
        if self.tls is not None:
            cert, key = self.tls
            ssl_setting = f"ssl = required\nssl_cert = <{cert}\nssl_key = <{key}"
        else:
            ssl_setting = "ssl = no"
        config.write_text(
            CONFIG.format(
                root=self.root,
                ssl=ssl_setting,
                imap_port=0 if self.tls else self.port,
                imaps_port=self.port if self.tls else 0,
                internal_user=internal_user,
                internal_group=internal_group,
                login_user=login_user,
            )
        )
        # dovecot forks into the background: its children must not hold our pipes open.
        subprocess.run(
            [DOVECOT, "-c", str(config)],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                client = self.client()
                client.logout()
                return
            except (OSError, imaplib.IMAP4.error):
                if time.monotonic() > deadline:
                    log = (self.root / "dovecot.log").read_text(errors="replace")
                    raise RuntimeError(f"dovecot did not start:\n{log}") from None
                time.sleep(0.1)

    def client(self) -> imaplib.IMAP4:
        if self.tls is not None:
            context = ssl.create_default_context(cafile=str(self.tls[0]))
            client = imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=context, timeout=10)
        else:
            client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        client.login(self.user, self.password)
        return client

    @property
    def url(self) -> str:
        scheme = "imaps" if self.tls is not None else "imap"
        return f"{scheme}://{self.user}:{self.password}@127.0.0.1:{self.port}/INBOX"

    def append(self, data: bytes, folder: str = "INBOX") -> None:
        client = self.client()
        try:
            status, detail = client.append(folder, None, None, data)
            assert status == "OK", detail
        finally:
            client.logout()

    def count(self, folder: str) -> int:
        client = self.client()
        try:
            status, data = client.select(f'"{folder}"', readonly=True)
            if status != "OK":
                return 0
            return int(data[0])
        finally:
            client.logout()

    def stop(self) -> None:
        pid_file = self.root / "run" / "master.pid"
        if pid_file.exists():
            subprocess.run(
                [DOVECOT, "-c", str(self.root / "dovecot.conf"), "stop"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=20,
            )
            deadline = time.monotonic() + 10
            while pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)
