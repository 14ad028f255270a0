"""Private by default: the state directory is 0700, the files in it 0600.

The state database holds the publish log, article texts and editors' sessions; the
outbox holds every post. Nobody else on the machine needs to read them. Modes are set
when autopublish creates a file or directory; an admin's later chmod is respected.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) if needed; a directory created here is 0700."""
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 unless it exists (so later opens keep that mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return path
    os.close(fd)
    return path
