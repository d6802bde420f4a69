"""Files, written and read with care: atomic writes that keep a file's permission bits, and the bounded reading of
a saved zip (its members counted, each refused before it is inflated beyond its cap) and of its JSON (nesting, long
integers and duplicate keys refused in time linear in its length). Shared by the model files
(:mod:`sb3_tutorial_sac.persistence`), the replay buffer files (:mod:`sb3_tutorial_sac.buffer_files`) and the zoo's
``VecNormalize`` files (:mod:`sb3_tutorial_sac.zoo`); every refusal is a :class:`FileValueError` naming the file.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import pathlib
import re
import stat
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from stable_baselines3.common.save_util import open_path

from sb3_tutorial_sac import validation
from sb3_tutorial_sac.validation import FileValueError

Path = str | pathlib.Path | io.BufferedIOBase

READ_ERRORS: tuple[type[Exception], ...] = (zipfile.BadZipFile, zlib.error, EOFError, KeyError, RuntimeError, OSError)
READ_ERRORS += (UnicodeDecodeError, json.JSONDecodeError, NotImplementedError)  # data that is not JSON, odd zips


# ----------------------------------------------------------------------------------------------- writing files


def atomic_write(path: str | pathlib.Path, suffix: str, write: Callable[[io.BufferedIOBase], object]) -> None:
    """
    Write a file through a temporary file in the same directory, renamed over ``path`` only once complete
    (``os.replace`` is atomic on POSIX and Windows): an interrupted or failed write leaves the old file as it was.
    A file replaced keeps its permission bits; a new one gets those of ``open()``.

    :param path: destination; as in SB3's ``open_path``, ``.<suffix>`` is added when it has no suffix
    :param suffix: the default suffix (``"zip"``, ``"pkl"``)
    :param write: writes the content to the open binary file it is given (and may close it)
    """
    path = pathlib.Path(path)
    if path.suffix == "" and suffix:
        path = pathlib.Path(f"{path}.{suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)  # the file replaced keeps its permission bits (a private 0600 file)
    except OSError:
        mode = None  # a new file: the mode open() gives it (0666 less the umask)
    try:
        # created private, so that a private file's content is never readable by others while it is written
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if mode is not None else 0o666)
        with open(descriptor, "wb") as file:
            write(file)  # type: ignore[arg-type]
        if mode is not None:
            os.chmod(temporary, mode)
        # flush to disk before the rename, so that a crash cannot leave a renamed but empty file
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def write_to(path: Path, suffix: str, write: Callable[[Any], None]) -> None:
    """Write through :func:`atomic_write` where ``path`` is a path; into the caller's open file where it is one."""
    if isinstance(path, (str, pathlib.Path)):
        atomic_write(path, suffix, write)
    else:
        write(path)


# ----------------------------------------------------------------------------------------------- reading, bounded


@contextlib.contextmanager
def open_archive(
    path: Path, suffix: str, max_members: int, limit: str, unreadable: Callable[[Exception], Exception]
) -> Iterator[zipfile.ZipFile]:
    """
    A saved file's zip archive, its members counted before anything is read; the file is closed after use where this
    opened it (a path), left open where the caller gave a file object.

    :param path: a path or a file object
    :param suffix: the suffix :func:`open_path` adds to a path without one
    :param max_members: more members than this raise a :class:`FileValueError` (naming ``limit``)
    :param unreadable: the exception to raise when the file is not a readable zip (a missing file raises as it is)
    """
    file = open_path(path, "r", suffix=suffix)
    try:
        try:
            archive = zipfile.ZipFile(file)
        except READ_ERRORS as error:
            if isinstance(error, FileNotFoundError):
                raise
            raise unreadable(error) from error
        with archive:
            members = len(archive.infolist())
            if members > max_members:
                raise FileValueError(f"{path!r} holds {members} members, more than {limit}")
            yield archive
    finally:
        if isinstance(path, (str, pathlib.Path)):
            file.close()


def read_member(archive: zipfile.ZipFile, name: str, cap: int, path: Any) -> bytes:
    """
    A zip member's content, refused before it is inflated if it says it is larger than ``cap`` bytes (``zipfile``
    never inflates a member beyond the size its header gives).
    """
    info = archive.getinfo(name)
    if info.file_size > cap:
        raise FileValueError(
            f"{path!r}: its member {name} inflates to {info.file_size} bytes, more than the {cap} bytes it may hold "
            "(a zip bomb, or a model beyond the bounds of sb3_tutorial_sac.validation)"
        )
    with archive.open(info) as member:
        content = member.read(cap + 1)
    if len(content) > cap:  # (cannot happen with zipfile's own reader; kept for any other)
        raise FileValueError(f"{path!r}: its member {name} is larger than {cap} bytes")
    return content


# Linear-time pieces of the depth check: the escapes that matter (a backslash's and a quote's) dropped first, so that
# every '"' left delimits a string and no pattern backtracks over a run of '\\"' (an unterminated one was quadratic
# with the one-pass string pattern of earlier versions)
_STRINGS = re.compile(rb'"[^"]*"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_DEPTH_CHUNK = 2**22


def json_depth(content: bytes) -> int:
    """How deep ``content`` (JSON text) nests its lists and objects, in time linear in its length (strings skipped)."""
    unescaped = content.replace(b"\\\\", b"").replace(b'\\"', b"")  # pairs left to right, as JSON reads them
    brackets = _STRINGS.sub(b'""', unescaped).translate(None, _NOT_BRACKETS)
    deepest = depth = 0
    for start in range(0, len(brackets), _DEPTH_CHUNK):  # in chunks: a 64 MiB member never needs 8 bytes a bracket
        chunk = np.frombuffer(brackets, dtype=np.uint8, count=min(_DEPTH_CHUNK, len(brackets) - start), offset=start)
        running = np.cumsum(np.where((chunk == ord("[")) | (chunk == ord("{")), 1, -1), dtype=np.int64) + depth
        deepest, depth = max(deepest, int(running.max())), int(running[-1])
    return deepest


def parse_json(content: bytes, where: str) -> Any:
    """
    JSON as data, in time linear in its length, with its bounds applied as it is read: nesting at most
    ``MAX_JSON_DEPTH`` deep, checked before it is parsed (Python's parser would raise a ``RecursionError``); integers of
    at most ``MAX_INT_DIGITS`` digits (Python's ``int`` of a long one takes time quadratic in its digits, and a number
    like 10**400 would overflow the bounds' arithmetic); no key given twice in one object (JSON keeps the last one
    silently). Any refusal is a :class:`FileValueError` naming ``where``.
    """
    deepest = json_depth(content)
    if deepest > validation.MAX_JSON_DEPTH:
        raise FileValueError(f"{where} is nested more than {validation.MAX_JSON_DEPTH} deep")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            counts = collections.Counter(key for key, _ in pairs)
            twice = sorted(key for key, count in counts.items() if count > 1)
            raise FileValueError(f"{where} gives the key{'s' if len(twice) > 1 else ''} {twice[:5]} twice in one object")
        return result

    def integer(text: str) -> int:
        if len(text.lstrip("-")) > validation.MAX_INT_DIGITS:
            raise FileValueError(
                f"{where} holds an integer of {len(text.lstrip('-'))} digits, more than the {validation.MAX_INT_DIGITS} "
                f"a file may give ({text[:20]}...)"
            )
        return int(text)

    try:
        return json.loads(content.decode("utf-8"), object_pairs_hook=no_duplicates, parse_int=integer)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise FileValueError(f"{where} is not JSON: {str(error)[:200]}") from error
