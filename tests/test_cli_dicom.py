"""``medrecon dicom info|export|send`` and ``medrecon audit verify`` on real files."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from medrecon.cli import app
from medrecon.dicom import read_series

CT_SMALL = get_testdata_file("CT_small.dcm")


def test_info_lists_series(tmp_path: Path) -> None:
    shutil.copy(CT_SMALL, tmp_path / "a.dcm")
    shutil.copy(get_testdata_file("MR_small.dcm"), tmp_path / "b.dcm")
    result = CliRunner().invoke(app, ["dicom", "info", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "CT 1x128x128" in result.output and "MR 1x64x64" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert CliRunner().invoke(app, ["dicom", "info", str(empty)]).exit_code == 1


def test_export_writes_a_linked_series_and_audits_it(tmp_path: Path) -> None:
    src = read_series(CT_SMALL)
    np.save(tmp_path / "result.npy", src.volume - 10.0)
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    log = tmp_path / "audit.jsonl"
    args = ["dicom", "export", CT_SMALL, str(tmp_path / "result.npy"), "--out"]
    args += [str(tmp_path / "out"), "--algorithm", "dn", "--version", "2", "--weights"]
    args += [str(weights), "--model-name", "unet", "--audit", str(log)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "out").iterdir()
    ds = pydicom.dcmread(path)
    assert ds.RelatedSeriesSequence[0].SeriesInstanceUID == src.series_instance_uid
    assert hashlib.sha256(b"weights").hexdigest() in ds.DerivationDescription
    np.testing.assert_allclose(read_series(path).volume, src.volume - 10.0)
    (entry,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert entry["status"] == "ok" and entry["inputs"][0]["sha256"] == src.slices[0].pixel_sha256


def test_audit_verify_detects_tampering(tmp_path: Path) -> None:
    src = read_series(CT_SMALL)
    np.save(tmp_path / "r.npy", src.volume)
    log = tmp_path / "audit.jsonl"
    for n in range(2):
        args = ["dicom", "export", CT_SMALL, str(tmp_path / "r.npy"), "--out"]
        args += [str(tmp_path / f"o{n}"), "--algorithm", "a", "--version", "1", "--audit", str(log)]
        assert CliRunner().invoke(app, args).exit_code == 0
    ok = CliRunner().invoke(app, ["audit", "verify", str(log)])
    assert ok.exit_code == 0 and "2 entries" in ok.output
    lines = log.read_text().splitlines()
    log.write_text(lines[0].replace('"a"', '"b"') + "\n" + lines[1] + "\n")
    bad = CliRunner().invoke(app, ["audit", "verify", str(log)])
    assert bad.exit_code == 1 and "line 1" in bad.output


def test_send_to_an_unreachable_peer_fails_and_is_audited(tmp_path: Path) -> None:
    shutil.copy(CT_SMALL, tmp_path / "ct.dcm")
    log = tmp_path / "audit.jsonl"
    args = ["dicom", "send", str(tmp_path / "ct.dcm"), "--host", "127.0.0.1", "--port", "1"]
    result = CliRunner().invoke(app, [*args, "--audit", str(log)])
    assert result.exit_code == 1
    assert "not stored" in result.output
    (entry,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert entry["status"] == "failed" and entry["event"] == "send"
    assert (tmp_path / "ct.dcm").exists()  # nothing deleted
    both = CliRunner().invoke(app, ["dicom", "send", str(tmp_path), "--host", "h", "--stow", "u"])
    assert both.exit_code == 2
