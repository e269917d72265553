"""Writing outputs without ever destroying a user's files (torch-free).

Every file faceland writes (``predict``'s JSON, overlays, JSONL and videos, evaluation results,
exported graphs) goes through here:

- a temporary file is **created exclusively** (``O_CREAT | O_EXCL``, a unique random name in the
  target folder, so a planted symlink is never followed and two runs into one folder never share
  a name), written through its own descriptor, and **renamed atomically** onto the final name: a
  killed run never leaves a half-written output;
- a final name that is a **symlink** is refused (:class:`UnsafeOutputError`), so a write never
  lands outside the output folder;
- an output that would land on an **input** is refused before anything runs
  (:func:`check_not_inputs`);
- append-mode files (``--jsonl``) are opened with ``O_NOFOLLOW``.

Each finished per-image output records which input produced it (:func:`source_record`: resolved
path, size and modification time), so ``--resume`` matches inputs exactly
(:func:`same_source`), never by file stem.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

__all__ = [
    "UnsafeOutputError",
    "append_file",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_not_inputs",
    "check_output_file",
    "exclusive_temp",
    "path_key",
    "replace_into",
    "same_source",
    "source_record",
]


class UnsafeOutputError(OSError):
    """An output would overwrite an input, follow a symlink or replace a directory; the message
    names the path."""


def _refuse_unsafe_target(path: Path) -> None:
    if path.is_symlink():
        raise UnsafeOutputError(errno.EEXIST, "is a symbolic link; faceland does not write "
                                "through links (remove it or choose another --out)", str(path))
    if path.is_dir():
        raise UnsafeOutputError(errno.EISDIR, "is a directory", str(path))
    if path.exists() and not path.is_file():
        raise UnsafeOutputError(errno.EEXIST, "exists and is not a regular file (a device, "
                                "pipe or socket); faceland only replaces regular files", str(path))


def check_output_file(path: str | Path, what: str = "output") -> Path:
    """Check, before any work, that ``path`` can become an output file.

    Args:
        path: the planned output file.
        what: how the message names it (e.g. ``"--json"``).

    Returns:
        ``path`` as a :class:`~pathlib.Path` (its parent folders are created).

    Raises:
        UnsafeOutputError: ``path`` is a directory, a symlink, or lies under a regular file, or its
            folder is not writable; the message is one line naming the path.
    """
    p = Path(path)
    try:
        _refuse_unsafe_target(p)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".check")
        os.close(fd)
        os.unlink(tmp)
    except UnsafeOutputError as e:
        raise UnsafeOutputError(e.errno, f"{what} {p}: {e.strerror}") from None
    except OSError as e:
        raise UnsafeOutputError(e.errno or 0, f"{what} {p}: cannot be written "
                                f"({e.strerror or e})") from None
    return p


def exclusive_temp(path: Path) -> tuple[int, Path]:
    """A new temporary file beside ``path`` (unique name, created with ``O_EXCL``, so no
    existing file or link is ever opened), keeping ``path``'s suffix for encoders that need it.

    Returns:
        ``(fd, temporary path)``; the caller owns the descriptor.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".part{path.suffix}")
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide outputs from other users
    return fd, Path(tmp)


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def replace_into(tmp: Path, path: Path) -> None:
    """Rename a finished temporary file onto ``path`` (atomic), refusing a symlink or directory
    at ``path``; the temporary file is removed on failure.

    Raises:
        UnsafeOutputError, OSError: as :func:`atomic_write_bytes`.
    """
    try:
        _refuse_unsafe_target(path)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and without following links.

    Raises:
        UnsafeOutputError: ``path`` is a symlink or a directory.
        OSError: the folder cannot be written (full disk, permissions, a file in the way); the
            temporary file is removed.
    """
    p = Path(path)
    _refuse_unsafe_target(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = exclusive_temp(p)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    replace_into(tmp, p)
    return p


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: object, indent: int | None = 2) -> Path:
    """:func:`atomic_write_text` of ``obj`` as JSON (``indent`` spaces, ``None``: one line) and
    a final newline."""
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """For writers that need a file name (OpenCV's video writer, ONNX export): yields an
    exclusively created temporary path beside ``path`` and renames it onto ``path`` when the
    block ends without an exception (removed otherwise).
    """
    p = Path(path)
    _refuse_unsafe_target(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = exclusive_temp(p)
    os.close(fd)
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    replace_into(tmp, p)


def append_file(path: str | Path, keep: Iterable[str] | None = None):
    """Open ``path`` for appending text lines, never through a symlink (``O_NOFOLLOW``).

    Args:
        path: the file.
        keep: when given, the file is first replaced atomically by these lines (``--resume``
            keeping the complete lines of a killed run); when ``None`` the file starts empty.

    Returns:
        A text file object in append mode.

    Raises:
        UnsafeOutputError: ``path`` is a symlink or a directory; OSError: cannot be written.
    """
    p = Path(path)
    atomic_write_text(p, "".join(x + "\n" for x in keep) if keep is not None else "")
    flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(p, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafeOutputError(e.errno, "is a symbolic link; faceland does not write "
                                    "through links", str(p)) from None
        raise
    return os.fdopen(fd, "a", encoding="utf-8")


def path_key(path: Path) -> str:
    """How inputs are compared: the resolved, case-normalised path."""
    return os.path.normcase(str(path.resolve()))


def check_not_inputs(outputs: Iterable[Path], inputs: Iterable[Path]) -> None:
    """Refuse outputs that would overwrite an input (compared by resolved path, and by inode
    for hard links).

    Raises:
        UnsafeOutputError: one line naming the output and the input it would replace.
    """
    by_key = {}
    for q in inputs:
        by_key[path_key(q)] = q
    ids = {}
    for q in by_key.values():
        with contextlib.suppress(OSError):
            st = q.stat()
            ids[(st.st_dev, st.st_ino)] = q
    for o in outputs:
        hit = by_key.get(path_key(o))
        if hit is None and ids:
            with contextlib.suppress(OSError):
                st = o.stat()
                hit = ids.get((st.st_dev, st.st_ino))
        if hit is not None:
            raise UnsafeOutputError(errno.EEXIST, f"output {o} would overwrite the input {hit}; "
                                    "choose another --out")


def source_record(path: Path) -> dict:
    """What identifies an input for ``--resume``: ``{"path": resolved path, "size": bytes,
    "mtime_ns": int}`` (size and time are ``None`` when the file cannot be stat'ed)."""
    try:
        st = path.stat()
        size, mtime = int(st.st_size), int(st.st_mtime_ns)
    except OSError:
        size = mtime = None
    return {"path": str(path.resolve()), "size": size, "mtime_ns": mtime}


def same_source(recorded: object, path: Path,
                current: Callable[[Path], dict] = source_record) -> bool:
    """``True`` when an output's recorded ``source`` (see :func:`source_record`) is this input,
    unchanged since (same resolved path, size and modification time)."""
    if not isinstance(recorded, dict):
        return False
    now = current(path)
    return all(recorded.get(k) == now[k] for k in ("path", "size", "mtime_ns"))
