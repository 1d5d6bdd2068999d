"""Test data and checks of the derived-series tests: pydicom's public files, an algorithm, dciodvfy.

``dciodvfy`` (Debian dicom3tools) validates what we write; its errors always count as problems,
its warnings unless they are in :data:`ACCEPTED_WARNINGS`, each accepted for a stated reason.
Without the tool the checks skip, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from medrecon.dicom.codes import PRIVATE_SCHEME
from medrecon.dicom.derived import AlgorithmInfo

CT_SMALL = get_testdata_file("CT_small.dcm")
MR_SMALL = get_testdata_file("MR_small.dcm")
CT_512 = get_testdata_file("693_UNCI.dcm")
#: the 5-slice CT series (16 x 16) of pydicom's dicomdirtests
CT_SERIES = Path(get_testdata_file("17106")).parents[2] / "98892001" / "CT5N"
DCIODVFY = shutil.which("dciodvfy")
#: dciodvfy's 2022 dictionary predates or does not know these; every other message is checked
ACCEPTED_WARNINGS = (
    "(0x0018,0x1002) UI Device UID",  # DeviceUID in Contributing Equipment (newer than 2022)
    "Standard Extended SOP Class",  # follows from DeviceUID
    f"Unrecognized defined term <{PRIVATE_SCHEME}>",  # our declared private coding scheme
    "attribute <Laterality>",  # empty when the source does not say (type 2C, unknown)
    "Unrecognized defined term <AXIAL> for value 3 of attribute <Image Type>",  # MR
    "needed to build DICOMDIR",  # copied from sources that lack them (StudyID, ...)
    "Retired Person Name form",  # names as the public test files have them
    "Value is zero for value 1 of attribute <Patient's Weight>",  # copied from the source
)


def sha256(path: str | Path) -> str:
    """The SHA-256 of the file's bytes (to show that a source file is left unchanged)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def algo(kind: str = "denoising") -> AlgorithmInfo:
    """A test algorithm of ``kind`` with a model, weights and parameters."""
    return AlgorithmInfo(
        name="medrecon-test",
        version="1.0",
        kind=kind,
        model_name="unet",
        model_version="7",
        weights_sha256="cd" * 32,
        parameters={"strength": 0.5},
    )


def _require_dciodvfy() -> str:
    if DCIODVFY is None:
        if os.environ.get("CI") == "true":
            pytest.fail("dciodvfy (Debian dicom3tools) is missing in CI; .ci/run installs it")
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed here")
    return DCIODVFY


def dciodvfy_problems(path: str | Path) -> list[str]:
    """dciodvfy's errors and unaccepted warnings about one file."""
    out = subprocess.run(
        [_require_dciodvfy(), str(path)], capture_output=True, text=True, check=False
    )
    return [
        ln
        for ln in (out.stdout + out.stderr).splitlines()
        if ln.startswith("Error")
        or (ln.startswith("Warning") and not any(a in ln for a in ACCEPTED_WARNINGS))
    ]


def dciodvfy_folder_problems(folder: Path) -> list[str]:
    """:func:`dciodvfy_problems` of every file in ``folder`` (not empty), named by the file."""
    _require_dciodvfy()
    files = sorted(folder.iterdir())
    assert files, f"nothing written to {folder}"
    return [f"{f.name}: {line}" for f in files for line in dciodvfy_problems(f)]
