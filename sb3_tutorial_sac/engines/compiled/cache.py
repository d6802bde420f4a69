"""The compiled engine's cache as a private place: what it loads is native code, so nobody else may put it there.

The compiled engine keeps two kinds of artefacts, both native code loaded into the process: AOTInductor packages
(``step-<key>.pt2``) and the AVX-512 kernel's library (``kernels-<key>.so``), in ``sb3_tutorial_sac`` inside Inductor's
cache folder (``TORCHINDUCTOR_CACHE_DIR``; by default ``torchinductor_<user>`` in the system's temporary folder, which
any user can create first). Their keys are predictable (the sources, torch's version, the CPU), so:

* :func:`private_folder` creates the folder (and Inductor's, where missing) with mode 0700 and refuses it, with a
  :class:`CacheError`, when it or Inductor's folder is not owned by this user or is writable by group or others, or
  when a folder above them could let another user swap them (owned by another user than this one or root, or writable
  by others without the sticky bit); the checked path is returned resolved, so that a link swapped later is not
  followed;
* :func:`publish` puts a finished artefact in place: its digest (SHA-256) is recorded beside it (``<name>.sha256``),
  then it is renamed over its name (``os.replace`` replaces a link at that name, never follows it); temporary names are
  unpredictable (:func:`temporary_name`), and :func:`write_private` writes a file the same way (created with
  ``O_EXCL | O_NOFOLLOW``);
* :func:`verified` checks an artefact before it is loaded: a regular file (not a link), owned by this user, writable by
  nobody else, whose content has the digest recorded when it was built. A file planted under an artefact's name has no
  such record, and is never loaded (the caller builds its own in its place).

On platforms without POSIX owners (Windows) the checks of owners and modes are skipped; the digests still hold.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
import re
import stat
import tempfile
import uuid

# what a record holds: the artefact's SHA-256, in hex
_DIGEST = re.compile(r"[0-9a-f]{64}")
_POSIX = hasattr(os, "getuid")


class CacheError(RuntimeError):
    """The compiled engine's cache folder, or an artefact in it, cannot be trusted (the message says why)."""


def inductor_folder() -> str:
    """Inductor's cache folder, as ``torch._inductor.runtime.cache_dir_utils.cache_dir`` names it, without creating
    it (Inductor's own function creates it with mode 0755 first)."""
    folder = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if folder is None:
        try:
            user = getpass.getuser()
        except (KeyError, ModuleNotFoundError, OSError):
            user = f"uid_{os.getuid()}" if _POSIX else "unknown_user"
        folder = os.path.join(tempfile.gettempdir(), "torchinductor_" + re.sub(r'[\\/:*?"<>|]', "_", user))
    return os.path.abspath(folder)


def private_folder(name: str = "sb3_tutorial_sac") -> str:
    """
    ``name`` inside Inductor's cache folder, both created with mode 0700 where missing, checked private
    (:func:`check_private`), resolved.

    :raises CacheError: when the folder is not private (not this user's, or writable by others)
    """
    inductor = inductor_folder()
    parent = os.path.dirname(inductor)
    if not os.path.isdir(parent):
        os.makedirs(parent, exist_ok=True)
    for own, folder in enumerate((inductor, os.path.join(inductor, name)), start=1):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o700)
        resolved = check_private(folder, own=own)  # Inductor's folder before anything is created in it
    return resolved


def _mode(mode: int) -> str:
    return oct(stat.S_IMODE(mode))


def _folder_problem(path: str, info: os.stat_result, own: bool) -> str | None:
    """Why the folder ``path`` could let another user put or swap files in the cache (None: it cannot)."""
    uid = os.getuid()
    if stat.S_ISLNK(info.st_mode):
        return None if info.st_uid in (uid, 0) else f"{path} is a link owned by uid {info.st_uid}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a folder"
    if own and info.st_uid != uid:
        return f"{path} is owned by uid {info.st_uid}, not by this user (uid {uid})"
    if info.st_uid not in (uid, 0):
        return f"{path} is owned by uid {info.st_uid}, neither this user (uid {uid}) nor root"
    others_write = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if others_write and (own or not info.st_mode & stat.S_ISVTX):  # a sticky folder (/tmp): others cannot swap ours
        who = {0o22: "its group and others", 0o20: "its group", 0o2: "others"}[others_write]
        return f"{path} is writable by {who} (mode {_mode(info.st_mode)})"
    return None


def check_private(path: str, own: int = 1) -> str:
    """
    ``path`` resolved, once every folder on it (as given, and resolved) is checked: the last ``own`` folders owned by
    this user and writable by nobody else; the folders above them owned by this user or root, and writable by others
    only with the sticky bit; a link on the way only if owned by this user or root.

    :raises CacheError: naming the folder and what is wrong with it
    """
    resolved = os.path.realpath(path)
    if not _POSIX:
        return resolved
    for chain in (os.path.abspath(path), resolved):
        parts = chain.split(os.sep)
        prefixes = [os.sep + os.path.join(*parts[1 : i + 1]) for i in range(1, len(parts))] if len(parts) > 1 else []
        for index, prefix in enumerate([os.sep, *prefixes]):
            try:
                info = os.lstat(prefix)
            except OSError as error:
                raise CacheError(f"the compiled engine's cache folder {path} cannot be checked: {error}") from error
            problem = _folder_problem(prefix, info, own=index >= len(prefixes) + 1 - own)
            if problem:
                raise CacheError(
                    f"the compiled engine's cache folder {path} is not private: {problem}. It loads native code from "
                    "there, so another user's files would run in this process. Use a folder of your own "
                    "(TORCHINDUCTOR_CACHE_DIR=~/.cache/torchinductor, or chmod 700 / chown it)"
                )
    return resolved


def temporary_name(path: str, suffix: str = "") -> str:
    """An unpredictable name beside ``path`` for a file being built (``suffix`` kept last: ``.pt2``)."""
    return f"{path}.{uuid.uuid4().hex}.tmp{suffix}"


def write_private(path: str, content: bytes) -> None:
    """Write ``content`` to ``path`` through a new temporary file (``O_EXCL | O_NOFOLLOW``, mode 0600) renamed over it:
    a link planted at ``path`` is replaced, never written through."""
    temporary = temporary_name(path)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with open(descriptor, "wb") as file:
            file.write(content)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def _digest(path: str) -> str:
    """The SHA-256 of the regular file ``path`` (not followed if a link), once it is checked to be this user's own and
    writable by nobody else."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with open(descriptor, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise CacheError(f"{path} is not a regular file")
        if _POSIX and info.st_uid != os.getuid():
            raise CacheError(f"{path} is owned by uid {info.st_uid}, not by this user (uid {os.getuid()})")
        if _POSIX and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise CacheError(f"{path} is writable by others (mode {_mode(info.st_mode)})")
        digest = hashlib.sha256()
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def publish(temporary: str, path: str) -> None:
    """Put the finished artefact ``temporary`` in place as ``path``: its digest recorded (``<path>.sha256``), then
    renamed over ``path`` (atomic; a link at ``path`` is replaced, not followed)."""
    if _POSIX:
        os.chmod(temporary, stat.S_IMODE(os.lstat(temporary).st_mode) & ~0o22)  # writable by this user only
    write_private(f"{path}.sha256", _digest(temporary).encode())
    os.replace(temporary, path)


def verified(path: str) -> str:
    """
    ``path``, once checked as an artefact this user built: a regular file of this user's, writable by nobody else,
    with the digest recorded when it was built (:func:`publish`).

    :raises CacheError: why it is not (a planted file: no record), and :class:`FileNotFoundError` if it is missing
    """
    digest = _digest(path)
    record = f"{path}.sha256"
    try:
        recorded = _digest_record(record)
    except FileNotFoundError:
        raise CacheError(f"{path} has no digest recorded when it was built: not built by this package here") from None
    if recorded != digest:
        raise CacheError(f"{path} is not what was built (SHA-256 {digest[:16]}..., recorded {recorded[:16]}...)")
    return path


def _digest_record(record: str) -> str:
    descriptor = os.open(record, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with open(descriptor, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or (_POSIX and (info.st_uid != os.getuid() or info.st_mode & 0o22)):
            raise CacheError(f"{record} is not a record of this user's (owner uid {info.st_uid}, mode {_mode(info.st_mode)})")
        text = file.read(65).decode("ascii", "replace").strip()
    if not _DIGEST.fullmatch(text):
        raise CacheError(f"{record} holds no digest")
    return text


def discard(path: str) -> None:
    """Remove an artefact that failed :func:`verified` and its record (a link is removed, never followed)."""
    for name in (path, f"{path}.sha256"):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            os.remove(name)
