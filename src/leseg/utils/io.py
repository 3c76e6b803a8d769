"""Atomic file output: a file appears complete or not at all.

Every artefact leseg writes (metrics, tables, plots, prediction PNGs, later CAMs and pseudo-labels)
goes through :func:`atomic_write`: the content is written to a temporary file in the destination's
directory and moved onto the destination with :func:`os.replace`, which is atomic on POSIX file
systems. A crash, a full disk or a ``KeyboardInterrupt`` therefore never leaves a half-written file
under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success move it onto ``path``.

    Args:
        path: final destination. Parent directories are created.
        mode: ``"wb"`` (default) or ``"w"`` (text, UTF-8).

    Yields:
        The open temporary file object.

    Raises:
        OSError: if the directory cannot be written (e.g. disk full, ``ENOSPC``): the temporary file
            is removed, ``path`` is left untouched (its previous content, if any, survives), and
            the error (same class and errno) names ``path``.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        named = naming_error(err, path)
        if named is err:
            raise
        raise named from err


def naming_error(err: BaseException, path: str | os.PathLike) -> BaseException:
    """An ``OSError`` whose message names the destination ``path`` (same errno and class), e.g.
    ``[Errno 28] No space left on device; nothing was written to <path>: '<path>'``; other
    exceptions, and OSErrors that already name it, are returned unchanged."""
    if not isinstance(err, OSError) or str(path) in str(err):
        return err
    reason = f"{err.strerror or str(err) or type(err).__name__}; nothing was written to {path}"
    try:
        if err.errno is not None:
            return type(err)(err.errno, reason, str(path))
        return type(err)(reason)
    except TypeError:  # an OSError subclass with another signature
        return OSError(err.errno, reason, str(path))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Serialise ``obj`` as JSON (NaN written as ``NaN``, keys kept in order) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")
