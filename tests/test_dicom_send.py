"""Sending DICOM: C-STORE and STOW-RS against a real Orthanc, DCMTK, and a pynetdicom SCP.

Tests marked ``pacs`` start a real Orthanc (with its DICOMweb plugin) on loopback, on free
ports, with authentication, once per session; without Orthanc (or DCMTK for the interop tests)
they are skipped, except in CI (``CI=true``) where that is a failure. The unmarked tests run a
pynetdicom storage SCP in this process to produce the statuses Orthanc never sends (warnings,
failures that go away on retry) and to check the 128-context split.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from medrecon.dicom.send import MAX_CONTEXTS, StoreReport, c_echo, send_cstore, send_stow
from medrecon.errors import DicomError, SendError

HOST = "127.0.0.1"
USER, PASSWORD = "medrecon-ci", "loopback-only-secret"
ORTHANC_CANDIDATES = ("/usr/sbin/Orthanc", "Orthanc")
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"

CSTORE_FILES = ("CT_small.dcm", "MR_small.dcm", "693_UNCI.dcm")
STOW_FILES = ("SC_rgb.dcm", "emri_small.dcm", "JPEG2000.dcm")


def _testfile(name: str) -> str:
    path = get_testdata_file(name)
    if path is None:  # 693_UNCI.dcm comes with pydicom-data (a test dependency)
        pytest.fail(f"{name}: not found by pydicom.data (install pydicom-data)")
    return str(path)


def _missing(what: str) -> None:
    """Skip (locally) or fail (in CI) when a tool these tests need is absent."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required in CI (CI=true) but was not found")
    pytest.skip(f"{what} not found; install it to run the PACS tests (they fail in CI)")


def _which(*candidates: str) -> str | None:
    for c in candidates:
        found = shutil.which(c)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: get SIGTERM when pytest dies, so no server outlives the session."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-3000:]
    except OSError:
        return "(no log)"


@dataclasses.dataclass(frozen=True)
class Orthanc:
    http_port: int
    dicom_port: int
    aet: str
    version: str

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web/"

    def get(self, path: str) -> Any:
        r = requests.get(self.url + path, auth=(USER, PASSWORD), timeout=10)
        r.raise_for_status()
        return r.json() if "json" in r.headers.get("Content-Type", "") else r.content

    def instance_id(self, sop_instance_uid: str) -> str:
        r = requests.post(
            f"{self.url}/tools/lookup", data=sop_instance_uid, auth=(USER, PASSWORD), timeout=10
        )
        r.raise_for_status()
        found = [x["ID"] for x in r.json() if x["Type"] == "Instance"]
        assert len(found) == 1, f"Orthanc has {len(found)} instances {sop_instance_uid}"
        return str(found[0])


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """A real Orthanc on loopback: free ports, temp storage, basic auth, DICOMweb."""
    exe = _which(*ORTHANC_CANDIDATES)
    if exe is None:
        _missing("Orthanc (/usr/sbin/Orthanc or Orthanc on PATH)")
    if not Path(DICOMWEB_PLUGIN).is_file():
        _missing(f"the Orthanc DICOMweb plugin ({DICOMWEB_PLUGIN})")
    assert exe is not None
    root = tmp_path_factory.mktemp("orthanc")
    failures = []
    for attempt in range(3):  # a free port can be taken between choosing and binding it
        http_port, dicom_port = _free_port(), _free_port()
        if http_port == dicom_port:
            continue
        config = {
            "Name": "medrecon-tests",
            "StorageDirectory": str(root / f"db{attempt}"),
            "IndexDirectory": str(root / f"db{attempt}"),
            "HttpPort": http_port,
            "DicomPort": dicom_port,
            "DicomAet": "ORTHANC",
            "DicomCheckCalledAet": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD},
            "DicomAlwaysAllowStore": True,
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "StableAge": 2,
        }
        cfg = root / f"orthanc{attempt}.json"
        cfg.write_text(json.dumps(config, indent=1))
        log = root / f"orthanc{attempt}.log"
        proc = _start([exe, str(cfg)], log)
        try:
            version = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    r = requests.get(
                        f"http://{HOST}:{http_port}/system", auth=(USER, PASSWORD), timeout=2
                    )
                    if r.status_code == 200:
                        version = str(r.json()["Version"])
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.1)
            if version is None:
                failures.append(f"attempt {attempt}: exit code {proc.poll()}\n{_tail(log)}")
                continue
            unauthenticated = requests.get(f"http://{HOST}:{http_port}/system", timeout=5)
            assert unauthenticated.status_code == 401, "authentication is not enabled"
            yield Orthanc(http_port, dicom_port, "ORTHANC", version)
            return
        finally:
            _stop(proc)
    pytest.fail("Orthanc did not start:\n" + "\n".join(failures))


def _dcmtk(tool: str) -> str:
    exe = _which(f"/usr/bin/{tool}", tool)
    if exe is None:
        _missing(f"DCMTK {tool} (/usr/bin/{tool})")
    assert exe is not None
    return exe


@pytest.fixture(scope="session")
def storescp_exe() -> str:
    return _dcmtk("storescp")


@pytest.fixture(scope="session")
def storescu_exe() -> str:
    return _dcmtk("storescu")


def _uids(paths: list[str]) -> list[str]:
    return [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths]


def _unknown_sop_class_file(tmp_path: Path) -> tuple[Path, str]:
    """A CT image under a made-up SOP class (Orthanc rejects its presentation context)."""
    ds = pydicom.dcmread(_testfile("CT_small.dcm"))
    uid = generate_uid()
    ds.SOPClassUID = "1.2.826.0.1.3680043.8.498.1.999"
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    path = tmp_path / "unknown_class.dcm"
    ds.save_as(path)
    return path, uid


# --------------------------------------------------------------------------- Orthanc


@pytest.mark.pacs
def test_c_echo(orthanc: Orthanc) -> None:
    assert c_echo(HOST, orthanc.dicom_port, orthanc.aet)
    assert not c_echo(HOST, orthanc.dicom_port, "NOT-ORTHANC")  # DicomCheckCalledAet
    assert not c_echo(HOST, _free_port(), orthanc.aet, timeout_s=2)


@pytest.mark.pacs
def test_cstore_real_files_land_in_their_study_and_series(orthanc: Orthanc) -> None:
    paths = [_testfile(n) for n in CSTORE_FILES]
    originals = [pydicom.dcmread(p) for p in paths]
    # a mix of a file path and in-memory datasets
    report = send_cstore([paths[0], *originals[1:]], HOST, orthanc.dicom_port, orthanc.aet)
    assert isinstance(report, StoreReport)
    assert list(report.stored) == [str(ds.SOPInstanceUID) for ds in originals]
    assert report.warnings == {} and report.attempts == 1 and report.deleted == ()
    assert report.destination == f"ORTHANC@{HOST}:{orthanc.dicom_port}"

    all_instances = orthanc.get("/instances")
    all_studies = orthanc.get("/studies")
    for ds in originals:
        iid = orthanc.instance_id(str(ds.SOPInstanceUID))
        assert iid in all_instances
        instance = orthanc.get(f"/instances/{iid}")
        series = orthanc.get(f"/series/{instance['ParentSeries']}")
        assert series["MainDicomTags"]["SeriesInstanceUID"] == ds.SeriesInstanceUID
        assert iid in series["Instances"]
        assert series["ParentStudy"] in all_studies
        study = orthanc.get(f"/studies/{series['ParentStudy']}")
        assert study["MainDicomTags"]["StudyInstanceUID"] == ds.StudyInstanceUID
        stored = pydicom.dcmread(io.BytesIO(orthanc.get(f"/instances/{iid}/file")))
        assert stored.PixelData == ds.PixelData
    assert (originals[2].Rows, originals[2].Columns) == (512, 512)


@pytest.mark.pacs
def test_stow_then_qido_and_wado_return_the_same_instances(orthanc: Orthanc) -> None:
    from dicomweb_client.api import DICOMwebClient

    originals = [pydicom.dcmread(_testfile(n)) for n in STOW_FILES]
    # a small chunk size makes dicomweb-client use chunked transfer encoding
    report = send_stow(
        originals, orthanc.dicomweb, auth=(USER, PASSWORD), chunk_size=64 * 1024, timeout_s=30
    )
    assert list(report.stored) == [str(ds.SOPInstanceUID) for ds in originals]
    assert report.attempts == 1 and report.warnings == {}

    session = requests.Session()
    session.auth = (USER, PASSWORD)
    client = DICOMwebClient(orthanc.dicomweb.rstrip("/"), session=session)
    for ds in originals:
        found = client.search_for_instances(
            study_instance_uid=ds.StudyInstanceUID,
            search_filters={"SeriesInstanceUID": ds.SeriesInstanceUID},
        )
        uids = {str(Dataset.from_json(x).SOPInstanceUID) for x in found}
        assert uids == {ds.SOPInstanceUID}
        series = client.search_for_series(study_instance_uid=ds.StudyInstanceUID)
        assert ds.SeriesInstanceUID in {str(Dataset.from_json(x).SeriesInstanceUID) for x in series}
        back = client.retrieve_instance(
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
            ds.SOPInstanceUID,
            media_types=(("application/dicom", "*"),),
        )
        assert back.SOPInstanceUID == ds.SOPInstanceUID
        assert back.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
        assert bytes(back.PixelData) == bytes(ds.PixelData)


@pytest.mark.pacs
def test_stow_with_wrong_password_lists_every_instance(orthanc: Orthanc) -> None:
    paths = [_testfile(n) for n in ("SC_rgb.dcm", "CT_small.dcm")]
    with pytest.raises(SendError, match=r"0 of 2 instances stored .*HTTP 401") as info:
        send_stow(paths, orthanc.dicomweb, auth=(USER, "wrong"), retry_delay_s=0.01)
    assert set(info.value.failed) == set(_uids(paths))
    assert all("401" in why for why in info.value.failed.values())
    assert info.value.stored == []
    assert "after 1 attempt" in str(info.value), "an authentication failure is not retried"


@pytest.mark.pacs
def test_stow_unreachable_fails_after_retries() -> None:
    path = _testfile("CT_small.dcm")
    url = f"http://{HOST}:{_free_port()}/dicom-web"
    with pytest.raises(SendError, match="after 3 attempts") as info:
        send_stow([path], url, auth=(USER, PASSWORD), retries=2, retry_delay_s=0.01)
    assert list(info.value.failed) == _uids([path])
    assert "ConnectionError" in info.value.failed[_uids([path])[0]]
    assert isinstance(info.value, ConnectionError)


@pytest.mark.pacs
def test_cstore_unreachable_port_fails_after_retries() -> None:
    paths = [_testfile(n) for n in CSTORE_FILES]
    t0 = time.monotonic()
    with pytest.raises(SendError, match="0 of 3 instances stored after 3 attempts") as info:
        send_cstore(paths, HOST, _free_port(), "ORTHANC", retries=2, retry_delay_s=0.05)
    assert time.monotonic() - t0 < 20
    assert set(info.value.failed) == set(_uids(paths))
    assert all("Connection refused" in why for why in info.value.failed.values())


@pytest.mark.pacs
def test_cstore_refused_association_wrong_called_aet(orthanc: Orthanc) -> None:
    path = _testfile("CT_small.dcm")
    with pytest.raises(SendError, match="association rejected by the peer") as info:
        send_cstore([path], HOST, orthanc.dicom_port, "NOT-ORTHANC", retries=1, retry_delay_s=0)
    (why,) = info.value.failed.values()
    assert "Called AE title not recognised" in why
    assert "NOT-ORTHANC@" in str(info.value)


@pytest.mark.pacs
def test_delete_after_deletes_only_confirmed_files(orthanc: Orthanc, tmp_path: Path) -> None:
    copies = []
    for name in ("CT_small.dcm", "MR_small.dcm", "SC_rgb.dcm"):
        copies.append(tmp_path / name)
        shutil.copyfile(_testfile(name), copies[-1])
    rejected, rejected_uid = _unknown_sop_class_file(tmp_path)
    files = [*copies, rejected]
    expected = _uids([str(p) for p in copies])  # read now: they get deleted
    with pytest.raises(SendError, match="3 of 4 instances stored") as info:
        send_cstore(
            files,
            HOST,
            orthanc.dicom_port,
            orthanc.aet,
            retries=1,
            retry_delay_s=0,
            delete_after=files,
        )
    assert list(info.value.failed) == [rejected_uid]
    assert "Abstract Syntax Not Supported" in info.value.failed[rejected_uid]
    assert info.value.stored == expected
    assert [p.exists() for p in files] == [False, False, False, True]
    for name in ("CT_small.dcm", "MR_small.dcm", "SC_rgb.dcm"):
        assert Path(_testfile(name)).is_file(), "an original test file was touched"

    # all confirmed: every listed file goes, and the report says which
    again = tmp_path / "again.dcm"
    shutil.copyfile(_testfile("CT_small.dcm"), again)
    report = send_cstore([again], HOST, orthanc.dicom_port, orthanc.aet, delete_after=[again])
    assert report.deleted == (str(again),) and not again.exists()


@pytest.mark.pacs
def test_dcmtk_storescu_stores_into_the_fixture_orthanc(
    orthanc: Orthanc, storescu_exe: str
) -> None:
    path = _testfile("US1_UNCR.dcm")
    done = subprocess.run(
        [
            storescu_exe,
            "-aet",
            "STORESCU",
            "-aec",
            orthanc.aet,
            HOST,
            str(orthanc.dicom_port),
            path,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (uid,) = _uids([path])
    iid = orthanc.instance_id(uid)
    assert orthanc.get(f"/instances/{iid}")["MainDicomTags"]["SOPInstanceUID"] == uid


@pytest.mark.pacs
def test_our_scu_against_dcmtk_storescp(storescp_exe: str, tmp_path: Path) -> None:
    out = tmp_path / "received"
    out.mkdir()
    port = _free_port()
    log = tmp_path / "storescp.log"
    proc = _start([storescp_exe, "-aet", "STORESCP", "+xa", "-od", str(out), str(port)], log)
    try:
        deadline = time.monotonic() + 15
        while not c_echo(HOST, port, "STORESCP", timeout_s=2):
            assert proc.poll() is None, f"storescp exited:\n{_tail(log)}"
            assert time.monotonic() < deadline, f"storescp does not answer:\n{_tail(log)}"
            time.sleep(0.1)
        paths = [_testfile(n) for n in CSTORE_FILES]
        report = send_cstore(paths, HOST, port, "STORESCP", calling_aet="MEDRECON-IT")
        assert list(report.stored) == _uids(paths)
    finally:
        _stop(proc)
    received = {str(ds.SOPInstanceUID): ds for ds in map(pydicom.dcmread, out.iterdir())}
    assert set(received) == set(report.stored)
    for p in paths:
        ds = pydicom.dcmread(p)
        got = received[str(ds.SOPInstanceUID)]
        assert bytes(got.PixelData) == bytes(ds.PixelData)
        assert got.SeriesInstanceUID == ds.SeriesInstanceUID


# --------------------------------------------------------------------------- pynetdicom SCP


@dataclasses.dataclass
class _Scp:
    port: int
    plan: dict[str, list[int]]  # SOPInstanceUID -> statuses to answer, in turn (then 0x0000)
    received: list[str]
    associations: list[int]


@pytest.fixture
def scp() -> Iterator[_Scp]:
    """A pynetdicom storage SCP on a free loopback port that answers planned statuses."""
    state = _Scp(0, {}, [], [])
    lock = threading.Lock()

    def on_store(event: evt.Event) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        with lock:
            state.received.append(uid)
            todo = state.plan.get(uid)
            return todo.pop(0) if todo else 0x0000

    def on_open(event: evt.Event) -> None:
        with lock:
            state.associations.append(1)

    ae = AE(ae_title="TESTSCP")
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax)
    ae.add_supported_context(Verification)
    server = ae.start_server(
        (HOST, 0),
        block=False,
        evt_handlers=[(evt.EVT_C_STORE, on_store), (evt.EVT_ACCEPTED, on_open)],
    )
    state.port = int(server.server_address[1])
    try:
        yield state
    finally:
        server.shutdown()


def _dataset(sop_class: str = "1.2.840.10008.5.1.4.1.1.7", *, file_meta: bool = True) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName = "Test^Send"
    ds.PatientID = "SEND-1"
    if file_meta:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def test_c_echo_against_pynetdicom(scp: _Scp) -> None:
    assert c_echo(HOST, scp.port, "TESTSCP")


def test_warning_statuses_count_as_stored_with_a_note(scp: _Scp) -> None:
    datasets = [_dataset() for _ in range(4)] + [_dataset(file_meta=False)]
    uids = [str(ds.SOPInstanceUID) for ds in datasets]
    scp.plan = {uids[0]: [0xB000], uids[1]: [0xB007], uids[2]: [0xB006]}
    report = send_cstore(datasets, HOST, scp.port, "TESTSCP", retry_delay_s=0)
    assert list(report.stored) == uids and report.attempts == 1
    assert set(report.warnings) == set(uids[:3])
    assert "0xB000" in report.warnings[uids[0]] and "Coercion" in report.warnings[uids[0]]
    assert "0xB007" in report.warnings[uids[1]]
    assert "0xB006" in report.warnings[uids[2]]
    meta = getattr(datasets[4], "file_meta", Dataset())
    assert "TransferSyntaxUID" not in meta, "the caller's dataset must not be changed"
    assert scp.received == uids


def test_failed_instances_are_retried_until_stored(scp: _Scp) -> None:
    datasets = [_dataset() for _ in range(3)]
    uids = [str(ds.SOPInstanceUID) for ds in datasets]
    scp.plan = {uids[1]: [0xA700, 0xA700]}  # out of resources twice, then fine
    report = send_cstore(datasets, HOST, scp.port, "TESTSCP", retries=2, retry_delay_s=0)
    assert list(report.stored) == uids and report.attempts == 3
    assert scp.received == [*uids, uids[1], uids[1]], "only the failed instance is resent"


def test_persistent_failure_status_is_reported_per_instance(scp: _Scp) -> None:
    datasets = [_dataset() for _ in range(3)]
    uids = [str(ds.SOPInstanceUID) for ds in datasets]
    scp.plan = {uids[0]: [0xC000] * 5}
    with pytest.raises(SendError, match="2 of 3 instances stored after 2 attempts") as info:
        send_cstore(datasets, HOST, scp.port, "TESTSCP", retries=1, retry_delay_s=0)
    assert list(info.value.failed) == [uids[0]]
    assert "status 0xC000 (Failure" in info.value.failed[uids[0]]
    assert info.value.stored == uids[1:]


def test_more_sop_classes_than_contexts_use_several_associations(scp: _Scp) -> None:
    classes = [str(cx.abstract_syntax) for cx in AllStoragePresentationContexts]
    assert len(classes) > MAX_CONTEXTS
    datasets = [_dataset(c) for c in classes]
    report = send_cstore(datasets, HOST, scp.port, "TESTSCP")
    assert len(report.stored) == len(classes)
    assert len(scp.associations) == 2


def test_invalid_inputs_are_refused_before_sending(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens: any connection attempt would fail differently
    with pytest.raises(ValueError, match="empty"):
        send_cstore([], HOST, port, "X")
    ds = _dataset()
    with pytest.raises(DicomError, match="more than once"):
        send_cstore([ds, ds], HOST, port, "X")
    no_uid = _dataset()
    del no_uid.SOPInstanceUID
    with pytest.raises(DicomError, match="without SOPInstanceUID"):
        send_cstore([no_uid], HOST, port, "X")
    text = tmp_path / "notes.txt"
    text.write_text("not DICOM")
    with pytest.raises(DicomError, match="not a readable DICOM file"):
        send_stow([text], f"http://{HOST}:{port}/dicom-web")
    with pytest.raises(FileNotFoundError):
        send_cstore([tmp_path / "missing.dcm"], HOST, port, "X")
    with pytest.raises(TypeError, match="Datasets or file paths"):
        send_cstore([42], HOST, port, "X")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="retries"):
        send_cstore([ds], HOST, port, "X", retries=-1)
    # a delete_after file whose instance is not being sent: refused, and kept
    other = tmp_path / "other.dcm"
    shutil.copyfile(_testfile("CT_small.dcm"), other)
    with pytest.raises(DicomError, match="not among the instances being sent"):
        send_cstore([ds], HOST, port, "X", delete_after=[other])
    assert other.exists()


@pytest.mark.parametrize(("ci", "outcome"), [("true", "fail"), ("", "skip"), ("false", "skip")])
def test_missing_pacs_tools_skip_locally_and_fail_in_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if outcome == "fail" else pytest.skip.Exception
    with pytest.raises(expected, match="Orthanc"):
        _missing("Orthanc")


# --------------------------------------------------------------------------- STOW-RS responses


@dataclasses.dataclass
class _Stow:
    url: str
    replies: list[tuple[int, Dataset | None]]  # (HTTP status, response dataset) in turn
    requests: list[int]  # body sizes received


@pytest.fixture
def stow_server() -> Iterator[_Stow]:
    """A loopback HTTP server answering STOW-RS POSTs with planned Store Instances responses."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    state = _Stow("", [], [])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.headers.get("Transfer-Encoding") == "chunked":
                body = b""
                while (size := int(self.rfile.readline().strip(), 16)) > 0:
                    body += self.rfile.read(size + 2)[:-2]
                self.rfile.readline()
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append(len(body))
            status, ds = state.replies.pop(0) if state.replies else (200, None)
            payload = json.dumps(ds.to_json_dict()).encode() if ds is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://{HOST}:{server.server_address[1]}/dicom-web"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _store_response(
    stored: dict[str, int | None], failed: dict[str, int], sop_class: str
) -> Dataset:
    rsp = Dataset()
    refs = []
    for uid, warning in stored.items():
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = uid
        if warning is not None:
            item.WarningReason = warning
        refs.append(item)
    fails = []
    for uid, reason in failed.items():
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = uid
        item.FailureReason = reason
        fails.append(item)
    if refs:
        rsp.ReferencedSOPSequence = refs
    if fails:
        rsp.FailedSOPSequence = fails
    return rsp


def test_stow_response_gives_per_instance_results(stow_server: _Stow) -> None:
    datasets = [_dataset() for _ in range(4)]
    uids = [str(ds.SOPInstanceUID) for ds in datasets]
    sc = str(datasets[0].SOPClassUID)
    # 202: two stored (one with a warning), one failed, one not mentioned at all
    stow_server.replies = [
        (202, _store_response({uids[0]: None, uids[1]: 0xB000}, {uids[2]: 0xA700}, sc))
    ]
    with pytest.raises(SendError, match="2 of 4 instances stored after 1 attempt") as info:
        send_stow(datasets, stow_server.url, retry_delay_s=0)
    assert info.value.stored == uids[:2]
    assert info.value.failed[uids[2]] == "failure reason 0xA700 (out of resources)"
    assert "does not list this instance" in info.value.failed[uids[3]]
    assert len(stow_server.requests) == 1, "per-instance failures are not retried"


def test_stow_conflict_response_lists_failure_reasons(stow_server: _Stow) -> None:
    datasets = [_dataset() for _ in range(2)]
    uids = [str(ds.SOPInstanceUID) for ds in datasets]
    sc = str(datasets[0].SOPClassUID)
    stow_server.replies = [(409, _store_response({}, {uids[0]: 0xC000, uids[1]: 0x0122}, sc))]
    with pytest.raises(SendError, match="0 of 2") as info:
        send_stow(datasets, stow_server.url, retry_delay_s=0)
    assert info.value.failed == {
        uids[0]: "failure reason 0xC000 (cannot understand)",
        uids[1]: "failure reason 0x0122 (referenced SOP class not supported)",
    }


def test_stow_retries_transient_http_errors_and_reports_warnings(stow_server: _Stow) -> None:
    datasets = [_dataset() for _ in range(2)]
    uids = [str(ds.SOPInstanceUID) for ds in datasets]
    sc = str(datasets[0].SOPClassUID)
    stow_server.replies = [
        (503, None),
        (200, _store_response({uids[0]: None, uids[1]: 0xB007}, {}, sc)),
    ]
    report = send_stow(datasets, stow_server.url, retries=2, retry_delay_s=0, chunk_size=64)
    assert report.attempts == 2 and list(report.stored) == uids
    assert report.warnings == {uids[1]: "warning 0xB007 (data set does not match SOP class)"}
    assert len(stow_server.requests) == 2 and stow_server.requests[0] > 64


@pytest.mark.pacs
def test_derived_series_and_qc_report_land_linked_in_the_source_study(
    orthanc: Orthanc, tmp_path: Path
) -> None:
    """The seed use case end to end: source series in the PACS, then our derived series by
    C-STORE and our QC report by STOW-RS; QIDO/WADO show them in the source study, linked."""
    from dicomweb_client.api import DICOMwebClient

    from medrecon.dicom import (
        AlgorithmInfo,
        read_series,
        write_derived_series,
        write_qc_report,
    )

    series_dir = Path(_testfile("17106")).parents[2] / "98892001" / "CT5N"
    src = read_series(series_dir)
    send_cstore(sorted(series_dir.iterdir()), HOST, orthanc.dicom_port, orthanc.aet)
    algo = AlgorithmInfo(name="pacs-test", version="1", kind="denoising")
    derived = write_derived_series(src.volume * 0.9, src, algo, tmp_path / "derived")
    sr = write_qc_report(src, derived, algo, {"noise_std": 7.5, "snr": 40.0})
    report = send_cstore(derived, HOST, orthanc.dicom_port, orthanc.aet)
    assert len(report.stored) == len(derived) == 5
    assert list(send_stow([sr], orthanc.dicomweb, auth=(USER, PASSWORD)).stored) == [
        sr.SOPInstanceUID
    ]

    session = requests.Session()
    session.auth = (USER, PASSWORD)
    client = DICOMwebClient(orthanc.dicomweb.rstrip("/"), session=session)
    in_study = {
        str(Dataset.from_json(x).SeriesInstanceUID)
        for x in client.search_for_series(study_instance_uid=src.study_instance_uid)
    }
    assert {src.series_instance_uid, str(derived[0].SeriesInstanceUID), sr.SeriesInstanceUID} <= (
        in_study
    )
    back = client.retrieve_instance(
        src.study_instance_uid, derived[0].SeriesInstanceUID, derived[0].SOPInstanceUID
    )
    assert back.RelatedSeriesSequence[0].SeriesInstanceUID == src.series_instance_uid
    assert back.SourceImageSequence[0].ReferencedSOPInstanceUID == src.slices[0].sop_instance_uid
    assert bytes(back.PixelData) == bytes(derived[0].PixelData)
    sr_back = client.retrieve_instance(
        src.study_instance_uid, sr.SeriesInstanceUID, sr.SOPInstanceUID
    )
    assert sr_back.ContentTemplateSequence[0].TemplateIdentifier == "1500"
