"""File writing for every layer: a file appears under its final name only when complete.

Atomic byte/text writes, JSON (and reading it back, with damage named in one line), and OS errors turned
into one-line user errors.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    On any exception the temporary file is removed, so nothing half-written is
    left behind, and disk-full / permission errors become a :class:`UserError`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; final files get the usual permissions
    except OSError as exc:
        raise _user_os_error(exc, path) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise _user_os_error(exc, path) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def prepare_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Create the output folder ``path`` and check that files can be written in it.

    Raises:
        UserError: ``path`` is a file, or the folder cannot be created or written
            (read-only, permission denied, disk full), before any work is done.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder; choose a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test.", suffix=".tmp"):
            pass
    except OSError as exc:
        raise _user_os_error(exc, path) from None
    return path


def prepare_output_file(path: str | os.PathLike) -> Path:
    """Create the folder that will hold the file ``path`` now, so that a bad ``--out`` fails before
    minutes of work rather than after; returns the path with ``~`` expanded.

    Raises:
        UserError: ``path`` is a folder, or its folder cannot be created (a file in the way, permission
            denied, disk full).
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{path} is a folder; give the path of the file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _user_os_error(exc, path) from None
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON (non-JSON values such as paths become strings), atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_json_object(path: str | os.PathLike, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON object this library wrote (a cached result, a run's summary), with its ``required`` keys.

    Raises:
        UserError: the file is unreadable, not JSON, not an object, or lacks a required key; it names
            the file, which the library writes only whole, so it was changed or damaged elsewhere.
    """
    try:
        data = json.loads(Path(path).read_text())
        problem = "not a JSON object" if not isinstance(data, dict) else next(
            (f"no {key!r}" for key in required if key not in data), None)
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8 text
        problem = str(exc).splitlines()[0]
    if problem is not None:
        raise UserError(f"{path} is damaged ({problem}); delete it to compute it again")
    return data


def read_json_lines(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file such as a run's metrics (none if it is missing); a line cut short
    by a kill, or one that is not an object, is skipped."""
    path = Path(path)
    rows = []
    for line in path.read_text(errors="replace").splitlines() if path.is_file() else []:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _user_os_error(exc: OSError, path: Path) -> UserError:
    if exc.errno == errno.ENOSPC:
        return UserError(f"no space left on the device while writing {path}; nothing half-written was kept")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UserError(f"cannot write {path}: permission denied (is the output directory writable?)")
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):  # a folder on the way is a file
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return UserError(f"cannot write {path}: {blocker} is a file, not a folder")
    return UserError(f"cannot write {path}: {exc.strerror or exc}")


def user_os_error(exc: OSError, path: str | os.PathLike) -> UserError:
    """Turn an OSError from writing ``path`` into a one-line :class:`UserError`."""
    return _user_os_error(exc, Path(path))
