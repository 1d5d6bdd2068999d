"""Sending DICOM instances to a peer: C-STORE (DIMSE, :func:`send_cstore`) and STOW-RS
(DICOMweb, :func:`send_stow`), with a per-instance account of what the peer stored.

Both functions either return a :class:`StoreReport` (every instance confirmed by the peer) or
raise :class:`~medrecon.errors.SendError`, whose ``failed`` maps the SOPInstanceUID of every
instance that was not stored to the reason (the peer's status, a rejected presentation context,
the HTTP status or the transport error) and whose ``stored`` lists the ones that were. Nothing is
silently dropped: an instance counts as stored only when the peer said so for that instance.

Inputs are validated before anything goes on the wire: every item must be a pydicom
:class:`~pydicom.dataset.Dataset` or the path of a DICOM file, with SOPClassUID and
SOPInstanceUID, and no SOPInstanceUID may appear twice.

:func:`c_echo` checks that a DICOM peer answers (verification SOP class).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pydicom
import requests
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS, code_to_category

from medrecon.errors import DicomError, SendError

__all__ = ["StoreReport", "c_echo", "send_cstore", "send_stow"]

#: the most presentation contexts one association may propose (PS3.8: odd context IDs 1..255)
MAX_CONTEXTS = 128

#: uncompressed little-endian transfer syntaxes; pynetdicom converts between them when sending
_NATIVE_LE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
_NATIVE_KEY = "native-little-endian"

#: HTTP statuses worth another STOW-RS try (the server may recover)
_HTTP_RETRIABLE = frozenset({408, 429, 500, 502, 503, 504})

#: PS3.18 STOW-RS FailureReason / WarningReason codes (PS3.4 status codes)
_STOW_REASONS = {
    0xA700: "out of resources",
    0xA900: "data set does not match SOP class",
    0xC000: "cannot understand",
    0xC122: "referenced transfer syntax not supported",
    0x0110: "processing failure",
    0x0122: "referenced SOP class not supported",
    0xB000: "coercion of data elements",
    0xB006: "elements discarded",
    0xB007: "data set does not match SOP class",
}

DatasetOrPath = Dataset | str | os.PathLike[str]


@dataclasses.dataclass(frozen=True)
class StoreReport:
    """What a send stored; returned only when the peer confirmed every instance.

    Attributes
    ----------
    stored : tuple of str
        SOPInstanceUIDs the peer confirmed, in input order.
    warnings : mapping of str to str
        SOPInstanceUID -> note, for instances stored with a warning status (for C-STORE
        0xB000 coercion of data elements, 0xB006 elements discarded, 0xB007 data set does not
        match SOP class; for STOW-RS a WarningReason). They are also in ``stored``.
    attempts : int
        Rounds made: 1 when everything went through at once, up to ``1 + retries``.
    seconds : float
        Wall-clock time of the whole send, retries included.
    destination : str
        The peer, e.g. ``"ORTHANC@127.0.0.1:4242"`` or the DICOMweb URL.
    deleted : tuple of str
        Local files removed after the peer confirmed their instance (``delete_after``).
    """

    stored: tuple[str, ...]
    warnings: Mapping[str, str]
    attempts: int
    seconds: float
    destination: str
    deleted: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class _Instance:
    uid: str
    sop_class: str
    transfer_syntax: str
    source: Dataset | str  # a dataset, or the path of a file read when it is sent

    @property
    def context_key(self) -> tuple[str, str]:
        if self.transfer_syntax in _NATIVE_LE:
            return (self.sop_class, _NATIVE_KEY)
        return (self.sop_class, self.transfer_syntax)


# --------------------------------------------------------------------------- inputs


def _instance(item: object) -> _Instance:
    """Check one input and describe it (reads only the header of a file)."""
    if isinstance(item, Dataset):
        name = f"dataset {item.get('SOPInstanceUID', '(no SOPInstanceUID)')}"
        ds = item
        source: Dataset | str = item
    elif isinstance(item, str | os.PathLike):
        path = Path(os.fspath(item))
        name = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError) as exc:
            raise DicomError(f"{path}: not a readable DICOM file ({exc})") from exc
        source = str(path)
    else:
        raise TypeError(
            f"expected pydicom Datasets or file paths, got {type(item).__name__}: {item!r:.80}"
        )
    missing = [kw for kw in ("SOPClassUID", "SOPInstanceUID") if not ds.get(kw)]
    if missing:
        raise DicomError(f"{name}: cannot be sent without {' and '.join(missing)}")
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is None:
        if isinstance(source, str):
            raise DicomError(f"{name}: the file meta has no TransferSyntaxUID")
        if "PixelData" in ds and ds["PixelData"].is_undefined_length:
            raise DicomError(
                f"{name}: encapsulated (compressed) PixelData but no file_meta.TransferSyntaxUID "
                "to say how it is compressed"
            )
        # a dataset built in memory: say how it is encoded (shallow copy, the caller's is kept)
        implicit = ds.original_encoding[0] is True
        ts = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        copied = copy.copy(ds)
        copied.file_meta = FileMetaDataset(copy.copy(meta)) if meta else FileMetaDataset()
        copied.file_meta.TransferSyntaxUID = ts
        source = copied
    return _Instance(str(ds.SOPInstanceUID), str(ds.SOPClassUID), str(ts), source)


def _instances(datasets: Iterable[DatasetOrPath]) -> list[_Instance]:
    if isinstance(datasets, Dataset | str | os.PathLike):
        datasets = [datasets]
    out = [_instance(item) for item in datasets]
    if not out:
        raise ValueError("nothing to send: `datasets` is empty")
    seen: set[str] = set()
    for inst in out:
        if inst.uid in seen:
            raise DicomError(f"SOPInstanceUID {inst.uid} appears more than once in `datasets`")
        seen.add(inst.uid)
    return out


def _check_retries(retries: int, retry_delay_s: float, timeout_s: float) -> None:
    if int(retries) != retries or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
    if retry_delay_s < 0:
        raise ValueError(f"retry_delay_s must be >= 0, got {retry_delay_s!r}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")


def _uids_of_files(paths: Iterable[str | os.PathLike[str]]) -> dict[str, str]:
    """Map each file of ``delete_after`` to the SOPInstanceUID it holds (header only)."""
    out: dict[str, str] = {}
    for p in paths:
        path = os.fspath(p)
        try:
            uid = pydicom.dcmread(path, stop_before_pixels=True).get("SOPInstanceUID")
        except (InvalidDicomError, OSError, ValueError) as exc:
            raise DicomError(f"delete_after: {path} is not a readable DICOM file ({exc})") from exc
        if not uid:
            raise DicomError(f"delete_after: {path} has no SOPInstanceUID")
        out[path] = str(uid)
    return out


def _failure_message(
    what: str, n_total: int, stored: Sequence[str], failed: Mapping[str, str], attempts: int
) -> str:
    shown = list(failed.items())[:5]
    lines = "; ".join(f"{uid}: {why}" for uid, why in shown)
    more = f"; ... and {len(failed) - len(shown)} more (see .failed)" if len(failed) > 5 else ""
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    return (
        f"{what}: {len(stored)} of {n_total} instances stored after {tries}; "
        f"{len(failed)} not stored: {lines}{more}"
    )


# --------------------------------------------------------------------------- C-STORE


def _new_ae(calling_aet: str, timeout_s: float) -> AE:
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = timeout_s
    ae.dimse_timeout = timeout_s
    ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s
    return ae


def _association_failure(assoc: Association, host: str, port: int, timeout_s: float) -> str:
    """Why an association was not established, as precisely as pynetdicom lets us say."""
    rsp = assoc.acceptor.primitive
    if assoc.is_rejected and rsp is not None:
        return (
            f"association rejected by the peer ({rsp.result_str}; source: {rsp.source_str}; "
            f"reason: {rsp.reason_str})"
        )
    if rsp is not None and getattr(rsp, "result", None) == 0x00:
        rejected = ", ".join(
            f"{UID(str(cx.abstract_syntax)).name} ({cx.status})" for cx in assoc.rejected_contexts
        )
        return f"the peer accepted none of the proposed presentation contexts: {rejected}"
    # no A-ASSOCIATE answer: find out whether TCP itself fails, to report the OS's reason
    try:
        with socket.create_connection((host, port), timeout=min(timeout_s, 5.0)):
            pass
    except OSError as exc:
        return f"cannot connect to {host}:{port} ({exc})"
    return (
        "no association: the peer accepted the TCP connection but did not answer the "
        f"association request within {timeout_s:g} s, or aborted it"
    )


def _no_delay(assoc: Association) -> None:
    """Turn off Nagle's algorithm on the association's socket.

    pynetdicom writes a C-STORE as several small PDUs and waits for each response; with Nagle
    and delayed ACKs every instance then costs ~40 ms of idle time (7x slower on loopback).
    Best effort: the socket attribute is pynetdicom's, and sending works without it.
    """
    sock = getattr(getattr(getattr(assoc, "dul", None), "socket", None), "socket", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _status_text(status: Dataset) -> tuple[str, str]:
    """(category, text) of a C-STORE response status."""
    code = int(status.Status)
    category = code_to_category(code)
    description = STORAGE_SERVICE_CLASS_STATUS.get(code, (category, ""))[1]
    text = f"status 0x{code:04X} ({category}{': ' + description if description else ''})"
    comment = status.get("ErrorComment")
    if comment:
        text += f": {comment}"
    return category, text


def _store_batch(
    batch: Sequence[_Instance],
    keys: Sequence[tuple[str, str]],
    host: str,
    port: int,
    called_aet: str,
    calling_aet: str,
    timeout_s: float,
    stored: dict[str, str | None],
    failed: dict[str, str],
) -> None:
    """Send ``batch`` over one association that proposes one context per key."""
    ae = _new_ae(calling_aet, timeout_s)
    for sop_class, ts in keys:
        syntaxes = list(_NATIVE_LE) if ts == _NATIVE_KEY else [ts]
        ae.add_requested_context(sop_class, syntaxes)
    assoc = ae.associate(host, port, ae_title=called_aet)
    try:
        if not assoc.is_established:
            reason = _association_failure(assoc, host, port, timeout_s)
            for inst in batch:
                failed[inst.uid] = reason
            return
        _no_delay(assoc)
        rejected = {str(cx.abstract_syntax): cx.status for cx in assoc.rejected_contexts}
        for i, inst in enumerate(batch):
            if not assoc.is_established:
                failed[inst.uid] = (
                    "not sent: the association ended before this instance (aborted by the peer "
                    "or timed out)"
                )
                continue
            try:
                status = assoc.send_c_store(inst.source, msg_id=i % 65535 + 1)
            except (ValueError, AttributeError, RuntimeError, OSError) as exc:
                why = str(exc)
                if inst.sop_class in rejected:
                    why = (
                        f"the peer rejected the presentation context for "
                        f"{UID(inst.sop_class).name} ({rejected[inst.sop_class]})"
                    )
                failed[inst.uid] = f"not sent: {why}"
                continue
            if "Status" not in status:
                failed[inst.uid] = (
                    "no valid C-STORE response (DIMSE timeout after "
                    f"{timeout_s:g} s, association aborted, or an invalid response)"
                )
                continue
            category, text = _status_text(status)
            if category == "Success":
                stored[inst.uid] = None
            elif category == "Warning":
                stored[inst.uid] = f"stored with warning {text}"
            else:
                failed[inst.uid] = text
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def _batches(pending: Sequence[_Instance]) -> list[tuple[list[tuple[str, str]], list[_Instance]]]:
    """Split instances so that no association proposes more than MAX_CONTEXTS contexts."""
    keys = list(dict.fromkeys(inst.context_key for inst in pending))
    out = []
    for start in range(0, len(keys), MAX_CONTEXTS):
        chunk = keys[start : start + MAX_CONTEXTS]
        members = set(chunk)
        out.append((chunk, [inst for inst in pending if inst.context_key in members]))
    return out


def send_cstore(
    datasets: Iterable[DatasetOrPath],
    host: str,
    port: int,
    called_aet: str,
    *,
    calling_aet: str = "MEDRECON",
    retries: int = 2,
    retry_delay_s: float = 1.0,
    timeout_s: float = 30.0,
    delete_after: Iterable[str | os.PathLike[str]] | None = None,
) -> StoreReport:
    """Send instances to a DICOM storage SCP with C-STORE and account for each one.

    One association proposes one presentation context per SOP class present (for uncompressed
    little-endian data, Explicit and Implicit VR Little Endian, converted as the peer accepts)
    and one per SOP class and compressed transfer syntax, at most 128 per association (more
    are split over several associations). Every instance gets its own status:
    0x0000 is stored; a warning status (0xB000, 0xB006, 0xB007, ...) is stored with a note in
    ``StoreReport.warnings``; anything else, a rejected presentation context, a refused or
    aborted association or a transport error is a failure. Failed instances are sent again, up
    to ``retries`` more times, ``retry_delay_s`` apart (every failure is retried: a failure the
    peer will repeat costs only the delay).

    Parameters
    ----------
    datasets : iterable of pydicom Dataset or path
        The instances. Files are read only to be sent (header first, to plan the contexts);
        an in-memory dataset without ``file_meta.TransferSyntaxUID`` is sent as uncompressed
        little endian (a shallow copy gets the file meta; the caller's dataset is unchanged).
    host : str
    port : int
    called_aet : str
        The peer's AE title.
    calling_aet : str, optional
        Our AE title.
    retries : int, optional
        How many more rounds failed instances get (0: one try).
    retry_delay_s : float, optional
        Pause in seconds before each further round.
    timeout_s : float, optional
        TCP connect, association (ACSE), DIMSE and network timeout, in seconds.
    delete_after : iterable of path, optional
        Local files to delete once the peer has confirmed storage of the instance each holds
        (matched by its SOPInstanceUID, read before anything is sent). A file is deleted only
        when its instance got a success or warning status from the peer; the files of instances
        that were not stored are kept. Deleting happens after the last round, also when
        :class:`SendError` is raised for other instances (``SendError.stored`` lists what was
        confirmed). A file that cannot be deleted is left in place and named in the error
        (:class:`OSError`).

    Returns
    -------
    StoreReport
        When every instance was stored.

    Raises
    ------
    SendError
        One or more instances were not stored after all rounds (unreachable host, refused or
        rejected association, rejected presentation context, failure status): ``failed`` maps
        each SOPInstanceUID to the last reason, ``stored`` lists those confirmed.
    DicomError
        An input (or a ``delete_after`` file) is not usable DICOM, lacks SOPClassUID or
        SOPInstanceUID, a SOPInstanceUID appears twice, or a ``delete_after`` file holds an
        instance that is not being sent.
    OSError
        A confirmed ``delete_after`` file could not be deleted (after everything was sent).
    """
    _check_retries(retries, retry_delay_s, timeout_s)
    instances = _instances(datasets)
    to_delete = _uids_of_files(delete_after) if delete_after is not None else {}
    sent_uids = {inst.uid for inst in instances}
    strangers = {p: uid for p, uid in to_delete.items() if uid not in sent_uids}
    if strangers:
        path, uid = next(iter(strangers.items()))
        raise DicomError(
            f"delete_after: {path} holds SOPInstanceUID {uid}, which is not among the "
            f"instances being sent ({len(strangers)} such file(s)); refusing to plan its deletion"
        )

    destination = f"{called_aet}@{host}:{port}"
    t0 = time.monotonic()
    stored: dict[str, str | None] = {}
    failed: dict[str, str] = {}
    pending = instances
    attempts = 0
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(retry_delay_s)
        attempts += 1
        failed = {}
        for keys, batch in _batches(pending):
            _store_batch(
                batch, keys, host, port, called_aet, calling_aet, timeout_s, stored, failed
            )
        pending = [inst for inst in pending if inst.uid in failed]
        if not pending:
            break

    deleted: list[str] = []
    delete_errors: list[str] = []
    for path, uid in to_delete.items():
        if uid in stored:
            try:
                os.remove(path)
            except OSError as exc:
                delete_errors.append(f"{path}: {exc}")
            else:
                deleted.append(path)

    order = [inst.uid for inst in instances if inst.uid in stored]
    if failed:
        raise SendError(
            _failure_message(
                f"C-STORE from {calling_aet} to {destination}",
                len(instances),
                order,
                failed,
                attempts,
            ),
            failed=failed,
            stored=order,
        )
    if delete_errors:
        raise OSError(
            f"all {len(instances)} instances were stored at {destination}, but "
            f"{len(delete_errors)} confirmed file(s) could not be deleted: "
            + "; ".join(delete_errors)
        )
    return StoreReport(
        stored=tuple(order),
        warnings={uid: note for uid, note in stored.items() if note is not None},
        attempts=attempts,
        seconds=time.monotonic() - t0,
        destination=destination,
        deleted=tuple(deleted),
    )


def c_echo(
    host: str,
    port: int,
    called_aet: str,
    *,
    calling_aet: str = "MEDRECON",
    timeout_s: float = 10.0,
) -> bool:
    """Whether the DICOM peer answers a C-ECHO with success (never raises for network errors).

    Parameters
    ----------
    host : str
    port : int
    called_aet : str
        The peer's AE title.
    calling_aet : str, optional
    timeout_s : float, optional
        Connect, association and DIMSE timeout in seconds.

    Returns
    -------
    bool
        True when an association was established and the C-ECHO status was 0x0000.
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
    ae = _new_ae(calling_aet, timeout_s)
    ae.add_requested_context(Verification)
    assoc = ae.associate(host, port, ae_title=called_aet)
    try:
        if not assoc.is_established:
            return False
        status = assoc.send_c_echo()
        return bool("Status" in status and int(status.Status) == 0x0000)
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


# --------------------------------------------------------------------------- STOW-RS


def _stow_reason(code: object) -> str:
    try:
        value = int(code)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return str(code)
    name = _STOW_REASONS.get(value)
    if name is None and 0xA700 <= value <= 0xA7FF:
        name = "out of resources"
    elif name is None and 0xA900 <= value <= 0xA9FF:
        name = "data set does not match SOP class"
    elif name is None and 0xC000 <= value <= 0xCFFF:
        name = "cannot understand"
    return f"0x{value:04X}" + (f" ({name})" if name else "")


def _parse_stow_response(
    response: Dataset, uids: Sequence[str], http_status: int | None
) -> tuple[dict[str, str | None], dict[str, str], bool]:
    """Per-instance results from a Store Instances response dataset (PS3.18 10.5.3).

    Returns (stored UID -> warning or None, failed UID -> reason, whether the response listed
    any of ``uids``); an instance the response does not list as stored counts as failed.
    """
    stored: dict[str, str | None] = {}
    failed: dict[str, str] = {}
    for item in response.get("ReferencedSOPSequence", []):
        uid = str(item.get("ReferencedSOPInstanceUID", ""))
        warning = item.get("WarningReason")
        stored[uid] = None if warning is None else f"warning {_stow_reason(warning)}"
    for item in response.get("FailedSOPSequence", []):
        uid = str(item.get("ReferencedSOPInstanceUID", ""))
        failed[uid] = f"failure reason {_stow_reason(item.get('FailureReason', '(none given)'))}"
        stored.pop(uid, None)
    known = set(uids)
    stored = {k: v for k, v in stored.items() if k in known}
    failed = {k: v for k, v in failed.items() if k in known}
    listed = bool(stored or failed)
    for uid in uids:
        if uid not in stored and uid not in failed:
            where = "the response" if http_status is None else f"the HTTP {http_status} response"
            failed[uid] = f"not confirmed: {where} does not list this instance as stored"
    return stored, failed, listed


def _response_dataset(response: requests.Response | None) -> Dataset:
    """The Store Instances response dataset in an HTTP error response, if there is one."""
    if response is None or not response.content:
        return Dataset()
    kind = response.headers.get("Content-Type", "").split(";")[0].strip()
    if kind in ("application/dicom+json", "application/json"):
        try:
            return Dataset.from_json(response.json())
        except ValueError:
            return Dataset()
    return Dataset()


def send_stow(
    datasets: Iterable[DatasetOrPath],
    url: str,
    *,
    auth: tuple[str, str] | requests.Session | None = None,
    timeout_s: float = 60.0,
    chunk_size: int | None = None,
    retries: int = 2,
    retry_delay_s: float = 1.0,
) -> StoreReport:
    """Store instances with DICOMweb STOW-RS and account for each one.

    All instances go in one multipart request (dicomweb-client's
    ``DICOMwebClient.store_instances``). The Store Instances response (ReferencedSOPSequence,
    FailedSOPSequence with FailureReason) gives the result per instance; an instance the
    response does not list as stored counts as not stored. A request that fails as a whole
    (connection refused, timeout, HTTP 401/403/404/5xx, ...) fails every instance with that
    reason; timeouts, connection errors and HTTP 408/429/5xx are retried up to ``retries``
    times, ``retry_delay_s`` apart, resending only what is not yet stored.

    Parameters
    ----------
    datasets : iterable of pydicom Dataset or path
        The instances (files are read whole).
    url : str
        The DICOMweb service root, e.g. ``"http://127.0.0.1:8042/dicom-web"``.
    auth : (user, password) or requests.Session, optional
        A tuple for HTTP basic authentication, or a prepared session (token, certificates,
        proxies). dicomweb-client changes the session's headers.
    timeout_s : float, optional
        Connect and read timeout of each request, in seconds.
    chunk_size : int, optional
        Bytes per chunk of chunked transfer encoding (used when the request is larger);
        None keeps dicomweb-client's default (1 MB).
    retries, retry_delay_s : optional
        Further rounds for transient failures and the pause before each.

    Returns
    -------
    StoreReport
        When every instance was stored.

    Raises
    ------
    SendError
        One or more instances were not stored; ``failed`` maps SOPInstanceUID to reason.
    DicomError
        An input is not usable DICOM or a SOPInstanceUID appears twice.
    """
    from dicomweb_client.api import DICOMwebClient

    _check_retries(retries, retry_delay_s, timeout_s)
    if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    instances = _instances(datasets)
    if auth is None:
        session = requests.Session()
    elif isinstance(auth, requests.Session):
        session = auth
    elif isinstance(auth, tuple) and len(auth) == 2:
        session = requests.Session()
        session.auth = (str(auth[0]), str(auth[1]))
    else:
        raise TypeError(
            f"auth must be None, a (user, password) tuple or a requests.Session, got "
            f"{type(auth).__name__}"
        )
    kwargs: dict[str, Any] = {"session": session, "timeout": timeout_s}
    if chunk_size is not None:
        kwargs["chunk_size"] = int(chunk_size)
    root = url.rstrip("/")
    client = DICOMwebClient(root, **kwargs)
    client.set_http_retry_params(retry=False)  # our own loop retries, with bounded delays

    def load(inst: _Instance) -> Dataset:
        return inst.source if isinstance(inst.source, Dataset) else pydicom.dcmread(inst.source)

    t0 = time.monotonic()
    stored: dict[str, str | None] = {}
    failed: dict[str, str] = {}
    pending = instances
    attempts = 0
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(retry_delay_s)
        attempts += 1
        uids = [inst.uid for inst in pending]
        transient = False
        try:
            payload = [load(inst) for inst in pending]
        except (InvalidDicomError, OSError, ValueError) as exc:
            raise DicomError(f"cannot read an instance to send: {exc}") from exc
        try:
            response = client.store_instances(payload)
        except requests.HTTPError as exc:
            rsp = exc.response
            code = rsp.status_code if rsp is not None else None
            ok, bad, listed = _parse_stow_response(_response_dataset(rsp), uids, code)
            if not listed:  # the request failed as a whole: every instance, same reason
                reason = f"HTTP {code} {rsp.reason if rsp is not None else ''}".strip()
                body = rsp.text.strip()[:200] if rsp is not None else ""
                reason += f" from {root}" + (f" ({body})" if body else "")
                bad = {uid: f"request failed: {reason}" for uid in uids}
            stored.update(ok)
            failed = bad
            transient = code in _HTTP_RETRIABLE
        except (requests.ConnectionError, requests.Timeout) as exc:
            failed = {uid: f"request failed: {type(exc).__name__}: {exc}" for uid in uids}
            transient = True
        else:
            ok, failed, _ = _parse_stow_response(response, uids, None)
            stored.update(ok)
        pending = [inst for inst in pending if inst.uid in failed]
        if not pending or not transient:
            break

    order = [inst.uid for inst in instances if inst.uid in stored]
    if failed:
        raise SendError(
            _failure_message(f"STOW-RS to {root}", len(instances), order, failed, attempts),
            failed=failed,
            stored=order,
        )
    return StoreReport(
        stored=tuple(order),
        warnings={uid: note for uid, note in stored.items() if note is not None},
        attempts=attempts,
        seconds=time.monotonic() - t0,
        destination=root,
    )
