"""Writing files so that a crash or a full disk never leaves a half-written one behind."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import TinyGMMError


def write_atomic(path: str | os.PathLike, data: bytes | str, what: str = "the file") -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync, then rename.

    Parent folders are created; any OSError becomes a TinyGMMError naming the path and ``what``.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise TinyGMMError(f"{path}: cannot write {what}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise TinyGMMError(f"{path}: cannot write {what}: {e.strerror or e}") from None
        raise
    return path
