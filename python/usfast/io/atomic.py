"""Atomic output: write under a temporary name in the target's folder, rename on success.

A write that fails midway (an exception, a full disk) leaves the target untouched: either the
old file (or folder) or nothing, never a half-written one. The temporary name is hidden
(``.tmp-XXXXXXXX-<name>``) and keeps the target's name at its end, so tools that choose a
container by extension (OpenCV's ``VideoWriter``) still see ``.mp4`` / ``.avi``.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path

from .._errors import fail

__all__ = ["atomic_write", "atomic_path", "AtomicDirectory", "temp_name_for"]


def temp_name_for(path) -> Path:
    """A fresh hidden name beside ``path`` that ends with ``path``'s own name."""
    p = Path(os.fspath(path))
    return p.with_name(f".tmp-{secrets.token_hex(4)}-{p.name}")


def _check_parent(func, path) -> Path:
    try:
        p = Path(os.fspath(path))
    except TypeError:
        raise fail(func, "path", "a file path (str or os.PathLike)", type(path).__name__) from None
    if not p.name:
        raise fail(func, "path", "a file path with a name", repr(str(path)))
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise fail(func, "path", "a path in an existing folder", f"{str(path)!r} (no folder {str(parent)!r})")
    if p.is_dir():
        raise fail(func, "path", "a file path, not a folder", repr(str(path)))
    return p


def _remove(p: Path) -> None:
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path (str) beside ``path``; on success rename it onto ``path``.

    The body writes the temporary path however it likes (OpenCV, NumPy...). On an exception the
    temporary file is removed and the exception goes on; ``path`` is not touched.
    """
    final = _check_parent("atomic_path", path)
    tmp = temp_name_for(final)
    try:
        yield str(tmp)
    except BaseException:
        _remove(tmp)
        raise
    if not tmp.exists():
        raise fail("atomic_path", "path", f"a file written at the temporary path {str(tmp)!r}",
                   "nothing written")
    try:
        os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", *, encoding=None, newline=None):
    """``with atomic_write("results.json", "w") as f: ...`` writes ``path`` atomically.

    mode: ``"w"``/``"wt"`` (text) or ``"wb"`` (binary). Data is flushed and fsync'ed before the
    rename, so a crash afterwards cannot leave an empty target.
    """
    if mode not in ("w", "wt", "wb"):
        raise fail("atomic_write", "mode", "'w', 'wt' or 'wb'", repr(mode))
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


class CommitOnSuccess:
    """``with`` support for an output that is committed (a writer's ``close()``: the file
    appears at its path; :class:`AtomicDirectory` renames its folder in) or dropped
    (``abort()``): leaving the block normally commits, an exception aborts."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self._commit()
        else:
            self.abort()
        return False

    def _commit(self):
        self.close()


class AtomicDirectory(CommitOnSuccess):
    """Build an output folder under a temporary name; rename it into place on success.

    ``with AtomicDirectory("out/run1") as d: (d / "results.json").write_text(...)`` — ``d`` is
    the temporary folder (a :class:`pathlib.Path`). On success it becomes ``out/run1``; on an
    exception it is deleted and ``out/run1`` is left as it was.

    overwrite: replace an existing non-empty folder (the old one is moved aside, the new one
        renamed in, then the old one deleted). Without it a non-empty target is an
        :class:`InputError` raised on entry, before any work is done.
    """

    def __init__(self, path, *, overwrite: bool = False):
        try:
            self.path = Path(os.fspath(path))
        except TypeError:
            raise fail("AtomicDirectory", "path", "a folder path (str or os.PathLike)",
                       type(path).__name__) from None
        self.overwrite = bool(overwrite)
        self.tmp_path: Path | None = None

    def __enter__(self) -> Path:
        p = self.path
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise fail("AtomicDirectory", "path", "a folder inside an existing folder",
                       f"{str(p)!r} (no folder {str(parent)!r})")
        if p.exists() and not p.is_dir():
            raise fail("AtomicDirectory", "path", "a folder path, not an existing file", repr(str(p)))
        if p.is_dir() and any(p.iterdir()) and not self.overwrite:
            raise fail("AtomicDirectory", "path",
                       "a new or empty output folder (or overwrite=True)",
                       f"{str(p)!r}, which already holds files")
        self.tmp_path = temp_name_for(p)
        self.tmp_path.mkdir()
        return self.tmp_path

    def commit(self) -> Path:
        """Move the finished temporary folder into place (done by a clean ``with`` exit)."""
        tmp, final = self.tmp_path, self.path
        if tmp is None:
            raise fail("AtomicDirectory.commit", "self", "an entered AtomicDirectory", "not entered")
        old = None
        if final.exists():
            old = final.with_name(f".old-{secrets.token_hex(4)}-{final.name}")
            os.replace(final, old)
        try:
            os.replace(tmp, final)
        except BaseException:
            if old is not None:
                os.replace(old, final)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self.tmp_path = None
        return final

    def abort(self) -> None:
        """Delete the temporary folder (done by a ``with`` exit on an exception)."""
        if self.tmp_path is not None:
            _remove(self.tmp_path)
            self.tmp_path = None

    def _commit(self):
        self.commit()
