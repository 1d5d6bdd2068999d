"""An append-only, hash-chained audit trail in JSON lines.

Every processing step that reads or writes patient data can leave one line in an
:class:`AuditLog`: what ran (event, algorithm and parameters), on what (input UIDs or paths
with their SHA-256), what it produced, who ran it where and when, and whether it worked.

Format (one JSON object per line, UTF-8, ``\\n`` terminated, keys sorted, no spaces):

* ``seq``: 1, 2, ... in file order;
* ``time``: UTC, ISO 8601 with microseconds; ``user``; ``host``; ``medrecon_version``;
* ``event``, ``inputs``, ``outputs``, ``algorithm``, ``parameters``, ``status``, ``error``;
* ``prev_sha256``: SHA-256 (hex) of the previous line's exact bytes (without its ``\\n``),
  or 64 zeros (:data:`GENESIS_SHA256`) on the first line;
* ``sha256``: SHA-256 of the entry's canonical JSON without the ``sha256`` field.

Each line is therefore bound to its own content and to every line before it: an edited byte,
a deleted, inserted or reordered line, or a truncated last line breaks the chain at a line that
:meth:`AuditLog.verify` names. What a file alone cannot show is the removal of whole lines at
its end (the shorter file is a valid chain); keep the count returned by ``verify()`` or the last
``sha256`` somewhere else when that matters.

Writing never rewrites a line: an append opens the file with ``O_APPEND``, takes an exclusive
``fcntl.flock`` (so threads and processes never interleave), reads the last line to chain to it,
writes the new line with a single ``os.write`` and ``fsync``\\ s before unlocking.
"""

from __future__ import annotations

import datetime
import enum
import fcntl
import getpass
import hashlib
import json
import math
import os
import re
import socket
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from medrecon._enum import parse_enum
from medrecon.errors import AuditError

__all__ = ["GENESIS_SHA256", "AuditLog", "AuditStatus"]

#: ``prev_sha256`` of the first entry
GENESIS_SHA256 = "0" * 64

_HEX64 = re.compile(r"[0-9a-f]{64}")
_FIELDS = frozenset(
    {
        "seq",
        "time",
        "user",
        "host",
        "medrecon_version",
        "event",
        "inputs",
        "outputs",
        "algorithm",
        "parameters",
        "status",
        "error",
        "prev_sha256",
        "sha256",
    }
)
#: how far back from the end to look for the start of the last line, per step
_TAIL_STEP = 64 * 1024


class AuditStatus(enum.StrEnum):
    """Outcome of an audited step."""

    OK = "ok"
    FAILED = "failed"


def _version() -> str:
    try:
        return metadata.version("medrecon")
    except metadata.PackageNotFoundError:
        return "unknown"


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor the password database
        return str(os.getuid())


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain JSON types (dict with str keys, list, str, int, finite float, ...)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not finite (JSON has no NaN or infinity)")
        return float(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be str, got {k!r}")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and getattr(value, "shape", None) == ():
        return _plain(item(), where)
    raise TypeError(
        f"{where}: {type(value).__name__} cannot be written to the audit log "
        "(use str, int, float, bool, None, lists and str-keyed mappings)"
    )


def _canonical(entry: Mapping[str, Any]) -> bytes:
    return json.dumps(
        entry, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _entry_sha256(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in entry.items() if k != "sha256"})).hexdigest()


def _inputs(inputs: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, item in enumerate(inputs or ()):
        where = f"inputs[{i}]"
        if not isinstance(item, Mapping):
            raise TypeError(f"{where}: expected a mapping with 'uid' or 'path' and 'sha256'")
        plain = _plain(item, where)
        if not plain.get("uid") and not plain.get("path"):
            raise ValueError(f"{where}: needs a 'uid' or a 'path', got keys {sorted(plain)}")
        sha = plain.get("sha256")
        if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
            raise ValueError(f"{where}: 'sha256' must be 64 lowercase hex digits, got {sha!r}")
        out.append(plain)
    return out


def _outputs(outputs: Iterable[str | os.PathLike[str]] | None) -> list[str]:
    out = []
    for i, item in enumerate(outputs or ()):
        if not isinstance(item, str | os.PathLike):
            raise TypeError(f"outputs[{i}]: expected a UID or a path, got {type(item).__name__}")
        out.append(os.fspath(item))
    return out


class AuditLog:
    """An append-only JSON-lines audit trail with a SHA-256 hash chain.

    Parameters
    ----------
    path : str or path
        The log file; created (with its folder) on the first :meth:`append`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> log = AuditLog(pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl")
    >>> entry = log.append("reconstruct", inputs=[{"uid": "1.2.3", "sha256": "ab" * 32}],
    ...                    outputs=["1.2.4"], algorithm={"name": "fbp", "version": "1"})
    >>> entry["seq"], entry["prev_sha256"] == GENESIS_SHA256
    (1, True)
    >>> log.verify()
    1
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    # ------------------------------------------------------------------ writing

    def append(
        self,
        event: str,
        *,
        inputs: Iterable[Mapping[str, Any]] | None = None,
        outputs: Iterable[str | os.PathLike[str]] | None = None,
        algorithm: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
        status: AuditStatus | str = AuditStatus.OK,
        error: str | None = None,
    ) -> dict[str, Any]:
        """Append one entry atomically and durably; return it as written.

        Parameters
        ----------
        event : str
            What happened, e.g. ``"reconstruct"``, ``"send"``, ``"write_series"``.
        inputs : iterable of mapping, optional
            One per input: ``{"uid": ..., "sha256": ...}`` or ``{"path": ..., "sha256": ...}``
            (other keys allowed); ``sha256`` is 64 lowercase hex digits.
        outputs : iterable of str or path, optional
            UIDs or paths produced.
        algorithm : mapping, optional
            Name, version, model version, ...
        parameters : mapping, optional
            The parameters used (JSON types; numpy scalars are converted).
        status : {"ok", "failed"}, optional
        error : str, optional
            What went wrong (for ``status="failed"``).

        Returns
        -------
        dict
            The entry, with ``seq``, ``time``, ``user``, ``host``, ``medrecon_version``,
            ``prev_sha256`` and ``sha256``.

        Raises
        ------
        AuditError
            The file's last line is incomplete or not an entry of this format (nothing is
            written then; run :meth:`verify`).
        ValueError, TypeError
            An argument that cannot be logged as given.
        """
        if not isinstance(event, str) or not event.strip():
            raise ValueError(f"event: expected a non-empty str, got {event!r}")
        if error is not None and not isinstance(error, str):
            raise TypeError(f"error: expected str or None, got {type(error).__name__}")
        fields: dict[str, Any] = {
            "event": event,
            "inputs": _inputs(inputs),
            "outputs": _outputs(outputs),
            "algorithm": _plain(dict(algorithm or {}), "algorithm"),
            "parameters": _plain(dict(parameters or {}), "parameters"),
            "status": parse_enum(AuditStatus, status, "status").value,
            "error": error,
            "user": _user(),
            "host": socket.gethostname(),
            "medrecon_version": _version(),
        }

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            seq, prev = self._tail(fd, size)
            entry = dict(fields)
            entry["seq"] = seq
            entry["time"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")
            entry["prev_sha256"] = prev
            entry["sha256"] = _entry_sha256(entry)
            line = _canonical(entry) + b"\n"
            written = os.write(fd, line)
            if written != len(line):  # disk full: remove our partial line, keep the old ones
                os.ftruncate(fd, size)
                raise OSError(f"{self.path}: wrote {written} of {len(line)} bytes of an entry")
            os.fsync(fd)
            if size == 0:
                self._fsync_folder()
        finally:
            os.close(fd)  # also releases the lock
        return entry

    def _tail(self, fd: int, size: int) -> tuple[int, str]:
        """(seq of the next entry, SHA-256 of the last line) read under the lock."""
        if size == 0:
            return 1, GENESIS_SHA256
        if os.pread(fd, 1, size - 1) != b"\n":
            raise AuditError(
                f"{self.path}: the last line is incomplete (no end of line: truncated or partly "
                "written); refusing to append. Run verify() and restore the log."
            )
        start = size - 1
        while True:  # find the newline before the last line
            lo = max(0, start - _TAIL_STEP)
            chunk = os.pread(fd, start - lo, lo)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                start = lo + cut + 1
                break
            if lo == 0:
                start = 0
                break
            start = lo
        last = os.pread(fd, size - 1 - start, start)
        try:
            entry = json.loads(last)
            seq = int(entry["seq"])
            ok = isinstance(entry, dict) and entry.get("sha256") == _entry_sha256(entry)
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise AuditError(
                f"{self.path}: the last line is not an intact audit entry; refusing to append. "
                "Run verify() to find the damage."
            )
        return seq + 1, hashlib.sha256(last).hexdigest()

    def _fsync_folder(self) -> None:
        try:
            dfd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)

    # ------------------------------------------------------------------ reading

    def _read_bytes(self) -> bytes:
        with open(self.path, "rb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
            return f.read()

    def read(self) -> list[dict[str, Any]]:
        """All entries in file order (parsed, not verified: use :meth:`verify` for that).

        Raises
        ------
        FileNotFoundError
            There is no log at ``path``.
        AuditError
            A line is not a JSON object.
        """
        out = []
        lines = self._read_bytes().split(b"\n")
        if not lines[-1]:
            lines.pop()
        for k, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise AuditError(f"{self.path}: line {k}: not valid JSON ({exc})") from exc
            if not isinstance(entry, dict):
                raise AuditError(f"{self.path}: line {k}: not a JSON object")
            out.append(entry)
        return out

    def verify(self) -> int:
        """Check every line and the hash chain; return the number of entries.

        Each line must end with ``\\n``, be exactly the canonical JSON of an entry with all
        fields, carry the ``sha256`` of its own content, have ``seq`` equal to its line number
        and ``prev_sha256`` equal to the SHA-256 of the line before (64 zeros on line 1).

        Returns
        -------
        int
            Number of entries (0 for an empty file).

        Raises
        ------
        AuditError
            Naming the first bad line and what is wrong with it (edited, deleted, inserted,
            reordered or truncated lines).
        FileNotFoundError
            There is no log at ``path``.
        """
        data = self._read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline
        prev = GENESIS_SHA256
        for k, line in enumerate(lines, 1):
            self._check_line(k, line, prev)
            prev = hashlib.sha256(line).hexdigest()
        if tail:
            raise AuditError(
                f"{self.path}: line {len(lines) + 1}: incomplete (no end of line): the log was "
                "truncated or a write was cut short"
            )
        return len(lines)

    def _check_line(self, k: int, line: bytes, prev: str) -> None:
        where = f"{self.path}: line {k}"
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise AuditError(f"{where}: not valid JSON ({exc}): edited or damaged") from exc
        if not isinstance(entry, dict):
            raise AuditError(f"{where}: not a JSON object: edited or damaged")
        if set(entry) != _FIELDS:
            missing = sorted(_FIELDS - set(entry))
            extra = sorted(set(entry) - _FIELDS)
            raise AuditError(f"{where}: fields missing {missing}, unexpected {extra}: edited")
        try:
            canonical = _canonical(entry)
        except ValueError as exc:
            raise AuditError(f"{where}: {exc}: edited") from exc
        if canonical != line:
            raise AuditError(f"{where}: not in canonical form (bytes were edited)")
        if entry["sha256"] != _entry_sha256(entry):
            raise AuditError(f"{where}: content does not match its sha256: the entry was edited")
        if entry["seq"] != k:
            raise AuditError(
                f"{where}: seq is {entry['seq']!r}, expected {k}: lines were deleted, inserted or "
                "reordered"
            )
        if entry["prev_sha256"] != prev:
            before = "the genesis value" if k == 1 else f"the SHA-256 of line {k - 1}"
            raise AuditError(
                f"{where}: prev_sha256 is not {before}: a line before it was deleted, inserted, "
                "reordered or edited"
            )
