"""Files of personal data that Leadline writes outside its database: backups, exports, subject exports."""

from __future__ import annotations

import os
from pathlib import Path


def owner_only(path: str | Path, flags: int) -> int:
    """``os.open`` for a file of personal data (a backup, an export, a subject export): readable by
    Leadline's user only, whatever the umask of the shell or cron job that runs the command, and
    whatever mode a file it replaces had. Also an ``opener`` for :func:`open`."""
    fd = os.open(path, flags | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd
