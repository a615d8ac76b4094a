"""A throw-away Dovecot IMAP server on 127.0.0.1 for the IMAP poller's tests.

Debian's ``dovecot-imapd`` (``scripts/test.sh`` installs it when missing) runs from a config
written here: its own mail root, run and state folders in a temporary directory, one user in a
passwd file, plain-text login allowed, and optionally implicit TLS and STARTTLS with a
self-signed certificate made by ``openssl``. As root, Dovecot will not deliver mail as uid 0 and
drops its helper processes to unprivileged users, so mail is owned by the ``dovecot`` user the
package creates and logins run as ``dovenull``; as any other user everything runs as that user.
Messages are put in the mailbox with IMAP ``APPEND`` and inspected with ``imaplib``, as a mail
client would.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

USER = "leads@example.com"
PASSWORD = "imap-test-password"
START_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Dovecot:
    root: Path
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    user: str = USER
    password: str = PASSWORD
    process: subprocess.Popen[bytes] | None = None

    @property
    def cert(self) -> Path:
        """The server's self-signed certificate: trust it (``SSL_CERT_FILE``) to test TLS."""
        return self.root / "cert.pem"

    def start(self) -> None:
        """Start (or restart on the same ports and mail) and return once it accepts connections."""
        if self.process is not None:
            raise RuntimeError("dovecot is already running")
        if not (self.root / "dovecot.conf").exists():
            self._prepare()
        self.process = subprocess.Popen(
            [_binary(), "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so stop() ends the sessions too
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited at start-up:\n{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not listen on {self.port} within {START_TIMEOUT}s:\n{self.log()}")

    def stop(self) -> None:
        """Stop the server (its connections drop, as when a real server goes away)."""
        if self.process is None:
            return
        # The master alone would leave the running IMAP sessions serving; end the whole group it leads.
        group = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process = None
        # the master is gone; wait until its listeners are closed so a restart can bind again
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                return
            time.sleep(0.05)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"

    @contextlib.contextmanager
    def client(self) -> Iterator[imaplib.IMAP4]:
        conn = imaplib.IMAP4("127.0.0.1", self.port)
        try:
            conn.login(self.user, self.password)
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.logout()

    def deliver(self, message: bytes, mailbox: str = "INBOX", *, read: bool = False) -> int:
        """Put a message in the mailbox as an MTA's delivery would (``read``: as if someone had
        already opened it in a mail client); returns its UID."""
        wire = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        with self.client() as conn:
            status, data = conn.append(mailbox, "(\\Seen)" if read else None, None, wire)
            if status != "OK":
                raise RuntimeError(f"APPEND failed: {data!r}")
            # "[APPENDUID <validity> <uid>] Append completed."
            return int(data[0].split(b"]")[0].split()[-1])

    def flags(self, mailbox: str = "INBOX") -> dict[int, set[str]]:
        """Each message's UID and flags, read without changing them."""
        with self.client() as conn:
            conn.select(mailbox, readonly=True)
            _, data = conn.uid("FETCH", "1:*", "(FLAGS)")
        found: dict[int, set[str]] = {}
        for item in data:
            if not isinstance(item, bytes):
                continue
            text = item.decode()
            uid, flags = re.search(r"\bUID (\d+)", text), re.search(r"\bFLAGS \(([^)]*)\)", text)
            if uid is None or flags is None:
                continue  # an unsolicited FETCH (a flag change elsewhere) names no UID: not an answer
            found[int(uid[1])] = set(flags[1].split())
        return found

    def _prepare(self) -> None:
        root = self.root
        for name in ("run", "state", "mail"):
            (root / name).mkdir(parents=True, exist_ok=True)
        (root / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout",
                str(root / "key.pem"),
                "-out",
                str(self.cert),
            ],
            check=True,
            capture_output=True,
        )
        if os.geteuid() == 0:
            internal, login = "dovecot", "dovenull"
            mail_user = pwd.getpwnam(internal)
        else:
            mail_user = pwd.getpwuid(os.getuid())
            internal = login = mail_user.pw_name
        group = grp.getgrgid(mail_user.pw_gid).gr_name
        os.chmod(root, 0o755)
        os.chown(root / "mail", mail_user.pw_uid, mail_user.pw_gid)
        (root / "dovecot.conf").write_text(
            f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{self.cert}
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""
        )


def _binary() -> str:
    found = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
    if found is None:
        raise RuntimeError(
            "dovecot is not installed: apt-get install dovecot-imapd (scripts/test.sh does it)"
        )
    return found


def new_dovecot() -> Dovecot:
    """A stopped server with a fresh mail root outside pytest's private tmp (Dovecot's users must reach it)."""
    return Dovecot(Path(tempfile.mkdtemp(prefix="leadline-dovecot-")))
