"""Writing files so that a crash or a full disk never leaves a half-written one behind."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import TinyGMMError


def _stage(path: Path, payload: bytes, what: str) -> str:
    """``payload`` in a synced temporary file beside ``path``; its name."""
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
    except BaseException as e:
        _remove(tmp)
        if isinstance(e, OSError):
            raise TinyGMMError(f"{path}: cannot write {what}: {e.strerror or e}") from None
        raise
    return tmp


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def write_all_atomic(files: dict[Path, bytes], what: str = "the files") -> None:
    """Write a set of files so that they are all new or all old: every file is staged (written and
    synced beside its target) before the first one replaces its target; if staging any fails,
    nothing is replaced. The renames that follow do not fail for want of space."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            staged.append((_stage(Path(path), data, what), Path(path)))
    except BaseException:
        for tmp, _ in staged:
            _remove(tmp)
        raise
    for i, (tmp, path) in enumerate(staged):
        try:
            os.replace(tmp, path)
        except OSError as e:
            for rest, _ in staged[i:]:
                _remove(rest)
            raise TinyGMMError(f"{path}: cannot write {what}: {e.strerror or e}") from None


def write_atomic(path: str | os.PathLike, data: bytes | str, what: str = "the file") -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync, then rename.

    Parent folders are created; any OSError becomes a TinyGMMError naming the path and ``what``.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = _stage(path, payload, what)
    try:
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise TinyGMMError(f"{path}: cannot write {what}: {e.strerror or e}") from None
    return path
