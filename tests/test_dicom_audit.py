"""The hash-chained JSON-lines audit log: entries, tamper detection, concurrent appends."""

from __future__ import annotations

import datetime
import getpass
import hashlib
import json
import multiprocessing
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

import medrecon
from medrecon.dicom.audit import GENESIS_SHA256, AuditLog
from medrecon.errors import AuditError

SHA_A = hashlib.sha256(b"input a").hexdigest()
SHA_B = hashlib.sha256(b"input b").hexdigest()


def _fill(log: AuditLog, n: int) -> list[dict]:
    entries = []
    for i in range(n):
        entries.append(
            log.append(
                "reconstruct" if i % 2 == 0 else "send",
                inputs=[{"uid": f"1.2.826.0.1.3680043.9.{i}", "sha256": SHA_A}]
                + ([{"path": f"/data/slice{i}.dcm", "sha256": SHA_B}] if i % 3 == 0 else []),
                outputs=[f"1.2.826.0.1.3680043.10.{i}"],
                algorithm={"name": "fbp", "version": "1.0", "model_version": None},
                parameters={"filter": "ram-lak", "n_iter": i, "relax": 0.5, "roi": [1, 2, 3]},
                status="ok" if i != 2 else "failed",
                error=None if i != 2 else "peer refused the association",
            )
        )
    return entries


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "logs" / "audit.jsonl")


def _lines(log: AuditLog) -> list[bytes]:
    return log.path.read_bytes().split(b"\n")[:-1]


def _write_lines(log: AuditLog, lines: list[bytes], *, final_newline: bool = True) -> None:
    log.path.write_bytes(b"\n".join(lines) + (b"\n" if final_newline else b""))


def test_chain_of_entries_verifies(log: AuditLog) -> None:
    entries = _fill(log, 5)
    assert log.verify() == 5
    assert log.read() == entries
    lines = _lines(log)
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0]["prev_sha256"] == GENESIS_SHA256
    for k in range(1, 5):
        assert entries[k]["prev_sha256"] == hashlib.sha256(lines[k - 1]).hexdigest()
    # each entry's own hash is over its canonical JSON without the sha256 field
    for line, entry in zip(lines, entries, strict=True):
        body = {k: v for k, v in json.loads(line).items() if k != "sha256"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        assert entry["sha256"] == hashlib.sha256(canonical).hexdigest()
    assert entries[2]["status"] == "failed"
    assert entries[2]["error"] == "peer refused the association"
    assert entries[0]["inputs"][1] == {"path": "/data/slice0.dcm", "sha256": SHA_B}


def test_entries_carry_who_where_when_and_version(log: AuditLog) -> None:
    before = datetime.datetime.now(datetime.UTC)
    entry = log.append("write_series", outputs=[Path("/out/derived.dcm")])
    after = datetime.datetime.now(datetime.UTC)
    assert entry["user"] == getpass.getuser()
    assert entry["host"] == socket.gethostname()
    assert entry["medrecon_version"] == medrecon.__version__
    when = datetime.datetime.fromisoformat(entry["time"])
    assert when.utcoffset() == datetime.timedelta(0)
    assert before <= when <= after
    assert entry["outputs"] == ["/out/derived.dcm"]
    assert entry["inputs"] == [] and entry["status"] == "ok" and entry["error"] is None


def test_every_edited_byte_of_every_line_is_named(log: AuditLog) -> None:
    _fill(log, 3)
    original = log.path.read_bytes()
    lines = _lines(log)
    checked = 0
    offset = 0
    with open(log.path, "r+b", buffering=0) as f:  # edit in place, one byte at a time
        for k, line in enumerate(lines, 1):
            for pos in range(len(line) + 1):  # + 1: the line's own newline
                old = original[offset + pos]
                for new in (old ^ 0x01, 0x20 if old != 0x20 else 0x21):
                    f.seek(offset + pos)
                    f.write(bytes([new]))
                    with pytest.raises(AuditError, match=rf": line {k}: "):
                        log.verify()
                    checked += 1
                f.seek(offset + pos)
                f.write(bytes([old]))
            offset += len(line) + 1
    assert checked == 2 * len(original)
    assert log.path.read_bytes() == original
    log.path.write_bytes(original)
    assert log.verify() == 3


@pytest.mark.parametrize("deleted", [1, 2, 3])
def test_deleted_line_is_named(log: AuditLog, deleted: int) -> None:
    _fill(log, 4)
    lines = _lines(log)
    del lines[deleted - 1]
    _write_lines(log, lines)
    with pytest.raises(AuditError, match=rf": line {deleted}: .*(deleted|reordered)"):
        log.verify()


def test_swapped_lines_are_named(log: AuditLog) -> None:
    _fill(log, 4)
    lines = _lines(log)
    lines[1], lines[2] = lines[2], lines[1]
    _write_lines(log, lines)
    with pytest.raises(AuditError, match=r": line 2: seq is 3, expected 2"):
        log.verify()


def test_inserted_copy_of_a_line_is_named(log: AuditLog) -> None:
    _fill(log, 3)
    lines = _lines(log)
    lines.insert(2, lines[1])
    _write_lines(log, lines)
    with pytest.raises(AuditError, match=r": line 3: "):
        log.verify()


@pytest.mark.parametrize("cut", [1, 10, 100])
def test_truncated_last_line_is_named_and_blocks_appends(log: AuditLog, cut: int) -> None:
    _fill(log, 3)
    data = log.path.read_bytes()
    log.path.write_bytes(data[:-cut])
    with pytest.raises(AuditError, match=r": line 3: incomplete"):
        log.verify()
    with pytest.raises(AuditError, match="last line is incomplete"):
        log.append("more")
    assert log.path.read_bytes() == data[:-cut], "a refused append must not write anything"


def test_append_refuses_a_damaged_last_line(log: AuditLog) -> None:
    _fill(log, 2)
    lines = _lines(log)
    lines[-1] = lines[-1].replace(b'"n_iter":1', b'"n_iter":7')
    _write_lines(log, lines)
    with pytest.raises(AuditError, match="not an intact audit entry"):
        log.append("more")
    with pytest.raises(AuditError, match=r": line 2: content does not match"):
        log.verify()


def test_appends_never_rewrite_existing_lines(log: AuditLog) -> None:
    _fill(log, 3)
    before = log.path.read_bytes()
    log.append("later", parameters={"x": np.float32(0.25), "n": np.int64(3), "ok": np.bool_(1)})
    after = log.path.read_bytes()
    assert after.startswith(before)
    assert log.read()[-1]["parameters"] == {"x": 0.25, "n": 3, "ok": True}
    assert log.verify() == 4


def test_empty_and_missing_logs(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.touch()
    assert AuditLog(empty).verify() == 0
    assert AuditLog(empty).read() == []
    with pytest.raises(FileNotFoundError):
        AuditLog(tmp_path / "missing.jsonl").verify()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"inputs": [{"uid": "1.2.3", "sha256": "abc"}]}, ValueError, "64 lowercase hex"),
        ({"inputs": [{"sha256": SHA_A}]}, ValueError, "needs a 'uid' or a 'path'"),
        ({"inputs": ["1.2.3"]}, TypeError, "expected a mapping"),
        ({"status": "maybe"}, ValueError, "status: expected one of 'ok', 'failed'"),
        ({"parameters": {"tol": float("nan")}}, ValueError, "parameters.tol"),
        ({"parameters": {"arr": np.zeros(3)}}, TypeError, "parameters.arr: ndarray"),
        ({"algorithm": {1: "x"}}, TypeError, "keys must be str"),
        ({"outputs": [3]}, TypeError, r"outputs\[0\]"),
        ({"error": 3}, TypeError, "error: expected str"),
    ],
)
def test_invalid_arguments_write_nothing(
    log: AuditLog, kwargs: dict, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        log.append("step", **kwargs)
    assert not log.path.exists()


def _worker(path: str, worker: int, n: int) -> None:
    log = AuditLog(path)
    for i in range(n):
        log.append(
            "concurrent",
            inputs=[{"uid": f"1.2.3.{worker}.{i}", "sha256": SHA_A}],
            parameters={"worker": worker, "i": i},
        )


def _check_concurrent(log: AuditLog, n_workers: int, n: int) -> None:
    assert log.verify() == n_workers * n
    entries = log.read()
    assert [e["seq"] for e in entries] == list(range(1, n_workers * n + 1))
    seen = sorted((e["parameters"]["worker"], e["parameters"]["i"]) for e in entries)
    assert seen == [(w, i) for w in range(n_workers) for i in range(n)]
    for w in range(n_workers):  # each writer's own entries stay in its order
        mine = [e["parameters"]["i"] for e in entries if e["parameters"]["worker"] == w]
        assert mine == list(range(n))


def test_concurrent_appends_from_processes(log: AuditLog) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(str(log.path), w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    _check_concurrent(log, 4, 25)


def test_concurrent_appends_from_threads(log: AuditLog) -> None:
    threads = [threading.Thread(target=_worker, args=(str(log.path), w, 25)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    _check_concurrent(log, 4, 25)
