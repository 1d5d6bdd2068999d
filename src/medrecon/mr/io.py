"""MR raw-data files: fastMRI HDF5, ISMRMRD and BART ``.cfl``/``.hdr``.

Array layout on every reader's output: ``(slices, coils, kx, ky)`` with the readout (frequency
encoding) along axis -2 and the phase encoding along axis -1, the layout of fastMRI's
``kspace`` datasets and of medrecon's Cartesian masks (which select lines of the last axis).
In ISMRMRD terms axis -2 is the encoded ``x`` (samples of an acquisition) and axis -1 the
encoded ``y`` (``kspace_encode_step_1``); in BART terms they are dimensions 0 and 1. DC sits
at index ``n // 2`` (see ``docs/conventions.md``).

* fastMRI: :func:`read_fastmri` / :func:`write_fastmri` with the dataset names, dtypes and
  attributes of the fastMRI files (``kspace`` complex64, ``reconstruction_rss`` /
  ``reconstruction_esc`` float32, ``ismrmrd_header`` XML bytes, ``mask`` in the challenge
  files; attributes ``acquisition``, ``max``, ``norm``, ``patient_id``); writes are atomic.
  :func:`make_ismrmrd_header` builds a minimal valid ISMRMRD XML header.
* ISMRMRD: :func:`read_ismrmrd` assembles Cartesian acquisitions onto the encoded grid.
* BART: :func:`read_cfl` / :func:`write_cfl` and the layout converters
  :func:`bart_to_kspace` / :func:`kspace_to_bart`.

Errors: a missing file raises :class:`FileNotFoundError`; a file that is not what the reader
expects raises :class:`ValueError` (unreadable or malformed file) or
:class:`~medrecon.errors.ShapeError` / :class:`~medrecon.errors.DtypeError` (a dataset with
the wrong shape or dtype). Every message names the file.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medrecon._array import to_numpy
from medrecon._files import write_atomic
from medrecon.errors import DtypeError, MRFileError, ShapeError

__all__ = [
    "FastMRIData",
    "IsmrmrdData",
    "bart_to_kspace",
    "kspace_to_bart",
    "make_ismrmrd_header",
    "read_cfl",
    "read_fastmri",
    "read_ismrmrd",
    "write_cfl",
    "write_fastmri",
]

PathLike = str | os.PathLike[str]


def _file_error(path: Any, message: str) -> MRFileError:
    """The error for a file that exists but is not what the reader expects."""
    return MRFileError(f"{os.fspath(path)}: {message}")


def _existing(path: PathLike) -> Path:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{os.fspath(path)}: no such file")
    return p


def _plain(value: Any) -> Any:
    """HDF5 attribute values as plain Python objects (str for bytes, float/int for scalars)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------------------- ISMRMRD XML
def make_ismrmrd_header(
    encoded_matrix: tuple[int, int, int] | tuple[int, int],
    *,
    recon_matrix: tuple[int, int, int] | tuple[int, int] | None = None,
    fov_mm: tuple[float, float, float] | None = None,
    recon_fov_mm: tuple[float, float, float] | None = None,
    h1_frequency_hz: int = 63_870_000,
) -> str:
    """A minimal valid ISMRMRD XML header for one Cartesian encoding.

    Parameters
    ----------
    encoded_matrix : (x, y[, z]) ints
        Encoded matrix size (readout samples, phase-encoding lines, partitions; z default 1).
    recon_matrix : (x, y[, z]) ints, optional
        Reconstructed matrix size (default: the encoded one).
    fov_mm : (x, y, z) floats, optional
        Encoded field of view in mm (default 1 mm per sample, 1 mm thick).
    recon_fov_mm : (x, y, z) floats, optional
        Reconstructed field of view (default: ``fov_mm`` scaled by the matrix ratio).
    h1_frequency_hz : int
        Proton resonance frequency (default 63.87 MHz, 1.5 T).

    Returns
    -------
    str
        XML that :func:`ismrmrd.xsd.CreateFromDocument` parses.

    Examples
    --------
    >>> import ismrmrd.xsd
    >>> xml = make_ismrmrd_header((64, 32))
    >>> enc = ismrmrd.xsd.CreateFromDocument(xml).encoding[0]
    >>> enc.encodedSpace.matrixSize.x, enc.encodedSpace.matrixSize.y, enc.trajectory.value
    (64, 32, 'cartesian')
    """
    import ismrmrd.xsd as xsd

    def _matrix(m: Any, name: str) -> tuple[int, int, int]:
        dims = tuple(int(v) for v in m)
        if len(dims) == 2:
            dims = (*dims, 1)
        if len(dims) != 3 or any(v < 1 for v in dims):
            raise ShapeError(f"{name}: expected (x, y) or (x, y, z) sizes >= 1, got {m!r}")
        return dims[0], dims[1], dims[2]

    enc = _matrix(encoded_matrix, "encoded_matrix")
    rec = enc if recon_matrix is None else _matrix(recon_matrix, "recon_matrix")
    fov = tuple(float(v) for v in (fov_mm if fov_mm is not None else (*enc[:2], 1.0)))
    if len(fov) != 3 or not all(math.isfinite(v) and v > 0 for v in fov):
        raise ValueError(f"fov_mm: expected three positive lengths in mm, got {fov_mm!r}")
    if recon_fov_mm is None:
        rfov = tuple(f * r / e for f, r, e in zip(fov, rec, enc, strict=True))
    else:
        rfov = tuple(float(v) for v in recon_fov_mm)
    header = xsd.ismrmrdHeader(
        experimentalConditions=xsd.experimentalConditionsType(
            H1resonanceFrequency_Hz=int(h1_frequency_hz)
        ),
        encoding=[
            xsd.encodingType(
                encodedSpace=xsd.encodingSpaceType(
                    matrixSize=xsd.matrixSizeType(x=enc[0], y=enc[1], z=enc[2]),
                    fieldOfView_mm=xsd.fieldOfViewMm(x=fov[0], y=fov[1], z=fov[2]),
                ),
                reconSpace=xsd.encodingSpaceType(
                    matrixSize=xsd.matrixSizeType(x=rec[0], y=rec[1], z=rec[2]),
                    fieldOfView_mm=xsd.fieldOfViewMm(x=rfov[0], y=rfov[1], z=rfov[2]),
                ),
                encodingLimits=xsd.encodingLimitsType(
                    kspace_encoding_step_1=xsd.limitType(
                        minimum=0, maximum=enc[1] - 1, center=enc[1] // 2
                    ),
                    kspace_encoding_step_2=xsd.limitType(
                        minimum=0, maximum=enc[2] - 1, center=enc[2] // 2
                    ),
                ),
                trajectory=xsd.trajectoryType("cartesian"),
            )
        ],
    )
    xml = xsd.ToXML(header)
    return xml.decode("utf-8") if isinstance(xml, bytes) else str(xml)


def _parse_header(xml: str | bytes, path: Any) -> Any:
    import ismrmrd.xsd as xsd

    try:
        return xsd.CreateFromDocument(xml)
    except Exception as exc:  # the XML parser raises many types
        raise _file_error(path, f"invalid ISMRMRD XML header ({exc})") from exc


# -------------------------------------------------------------------------------- fastMRI
@dataclass
class FastMRIData:
    """The contents of one fastMRI HDF5 file.

    Attributes
    ----------
    kspace : ndarray, complex64
        ``(slices, coils, kx, ky)`` (multi-coil) or ``(slices, kx, ky)`` (single-coil), as
        stored (readout along -2, phase encoding along -1).
    reconstruction_rss, reconstruction_esc : ndarray of float32, optional
        Reference images ``(slices, ny, nx)`` (320 x 320 in the released data).
    ismrmrd_header : str or None
        The ISMRMRD XML header.
    attrs : dict
        File attributes as plain Python values (``acquisition``, ``max``, ``norm``,
        ``patient_id``, and ``acceleration``/``num_low_frequency`` in challenge files).
    mask : ndarray, optional
        The sampling mask of challenge/test files (as stored).
    """

    kspace: np.ndarray
    reconstruction_rss: np.ndarray | None = None
    reconstruction_esc: np.ndarray | None = None
    ismrmrd_header: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    mask: np.ndarray | None = None

    @property
    def multicoil(self) -> bool:
        """True for ``(slices, coils, kx, ky)`` k-space."""
        return self.kspace.ndim == 4


def read_fastmri(path: PathLike) -> FastMRIData:
    """Read a fastMRI HDF5 file (knee/brain, single- or multi-coil, train or challenge).

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    FastMRIData

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not an HDF5 file, no ``kspace`` dataset, or an invalid XML header.
    ShapeError, DtypeError
        ``kspace`` that is not 3D/4D complex.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> p = tempfile.mkdtemp() + "/file.h5"
    >>> write_fastmri(p, np.ones((2, 4, 8, 6), np.complex64), attrs={"acquisition": "CORPD_FBK"})
    >>> d = read_fastmri(p)
    >>> d.kspace.shape, d.kspace.dtype, d.attrs["acquisition"], d.multicoil
    ((2, 4, 8, 6), dtype('complex64'), 'CORPD_FBK', True)
    """
    import h5py

    p = _existing(path)
    try:
        fh = h5py.File(p, "r")
    except OSError as exc:
        raise _file_error(path, f"not a readable HDF5 file ({exc})") from exc
    with fh:
        if "kspace" not in fh or not isinstance(fh["kspace"], h5py.Dataset):
            raise _file_error(path, f"no 'kspace' dataset (found {sorted(fh.keys())})")
        kspace = fh["kspace"][()]
        if kspace.dtype.kind != "c":
            raise DtypeError(f"{os.fspath(path)}: 'kspace' expected complex, got {kspace.dtype}")
        if kspace.ndim not in (3, 4):
            raise ShapeError(
                f"{os.fspath(path)}: 'kspace' expected (slices, [coils,] kx, ky), got "
                f"{kspace.shape}"
            )
        recon = {}
        for name in ("reconstruction_rss", "reconstruction_esc"):
            recon[name] = fh[name][()] if name in fh else None
        header = None
        if "ismrmrd_header" in fh:
            raw = fh["ismrmrd_header"][()]
            if isinstance(raw, np.ndarray):
                raw = raw.item() if raw.size == 1 else b"".join(raw.ravel().tolist())
            header = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            _parse_header(header, path)
        mask = fh["mask"][()] if "mask" in fh else None
        attrs = {k: _plain(v) for k, v in fh.attrs.items()}
    return FastMRIData(
        kspace=kspace,
        reconstruction_rss=recon["reconstruction_rss"],
        reconstruction_esc=recon["reconstruction_esc"],
        ismrmrd_header=header,
        attrs=attrs,
        mask=mask,
    )


def write_fastmri(
    path: PathLike,
    kspace: Any,
    *,
    reconstruction_rss: npt.ArrayLike | None = None,
    reconstruction_esc: npt.ArrayLike | None = None,
    ismrmrd_header: str | None = None,
    attrs: Mapping[str, Any] | None = None,
    mask: npt.ArrayLike | None = None,
) -> None:
    """Write a fastMRI-style HDF5 file atomically.

    Datasets: ``kspace`` (complex64), ``reconstruction_rss`` / ``reconstruction_esc``
    (float32, any ``(slices, ny, nx)``; the released data use 320 x 320), ``ismrmrd_header``
    (XML as bytes) and ``mask`` (as given). Attributes: ``attrs`` as given; when a
    reconstruction is written and ``max``/``norm`` are not given they are set as in fastMRI
    (``max`` = its maximum, ``norm`` = its Euclidean norm over the whole volume). The file is
    built in memory, written to a temporary file in the same folder and moved into place
    (:func:`medrecon._files.write_atomic`), so readers never see half a file.

    Parameters
    ----------
    path : str or PathLike
    kspace : ndarray or Tensor
        ``(slices, coils, kx, ky)`` or ``(slices, kx, ky)``; complex (or real), stored as
        complex64 (values are not changed for complex64 input).
    reconstruction_rss, reconstruction_esc : array_like, optional
        Reference images, stored as float32.
    ismrmrd_header : str, optional
        ISMRMRD XML; checked with :func:`ismrmrd.xsd.CreateFromDocument`. Default: a
        minimal header from :func:`make_ismrmrd_header` with the k-space's matrix size.
    attrs : mapping, optional
        File attributes (str, numbers or arrays), e.g. ``acquisition``, ``patient_id``.
    mask : array_like, optional
        Sampling mask to store (challenge-file layout).

    Raises
    ------
    ShapeError
        ``kspace`` not 3D/4D, or a reconstruction not 3D or with another number of slices.
    DtypeError
        ``kspace`` not numeric.
    ValueError
        ``ismrmrd_header`` that does not parse.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> p = tempfile.mkdtemp() + "/f.h5"
    >>> k = np.ones((1, 8, 4), np.complex64)
    >>> write_fastmri(p, k, reconstruction_rss=np.ones((1, 4, 4)))
    >>> d = read_fastmri(p)
    >>> d.reconstruction_rss.dtype, d.attrs["max"], d.attrs["norm"]
    (dtype('float32'), 1.0, 4.0)
    """
    import h5py

    k = to_numpy(kspace)
    if k.dtype.kind not in "fc":
        raise DtypeError(f"kspace: expected a complex or real float array, got {k.dtype}")
    if k.ndim not in (3, 4):
        raise ShapeError(f"kspace: expected (slices, [coils,] kx, ky), got {k.shape}")
    k = np.ascontiguousarray(k, dtype=np.complex64)
    recons: dict[str, np.ndarray] = {}
    for name, value in (
        ("reconstruction_rss", reconstruction_rss),
        ("reconstruction_esc", reconstruction_esc),
    ):
        if value is None:
            continue
        r = np.ascontiguousarray(to_numpy(value), dtype=np.float32)
        if r.ndim != 3 or r.shape[0] != k.shape[0]:
            raise ShapeError(
                f"{name}: expected ({k.shape[0]}, ny, nx) (one image per slice), got {r.shape}"
            )
        recons[name] = r
    if ismrmrd_header is None:
        ismrmrd_header = make_ismrmrd_header((k.shape[-2], k.shape[-1], 1))
    _parse_header(ismrmrd_header, "ismrmrd_header")
    all_attrs = dict(attrs or {})
    if recons:
        first = recons.get("reconstruction_rss", recons.get("reconstruction_esc"))
        assert first is not None
        all_attrs.setdefault("max", float(first.max()))
        all_attrs.setdefault("norm", float(np.linalg.norm(first)))
    buf = io.BytesIO()
    with h5py.File(buf, "w") as fh:
        fh.create_dataset("kspace", data=k)
        for name, r in recons.items():
            fh.create_dataset(name, data=r)
        fh.create_dataset("ismrmrd_header", data=np.bytes_(ismrmrd_header.encode("utf-8")))
        if mask is not None:
            fh.create_dataset("mask", data=to_numpy(mask))
        for key, value in all_attrs.items():
            fh.attrs[key] = value
    write_atomic(Path(path), buf.getvalue())


# -------------------------------------------------------------------------------- ISMRMRD
@dataclass
class IsmrmrdData:
    """Cartesian k-space assembled from an ISMRMRD dataset.

    Attributes
    ----------
    kspace : ndarray of complex64, shape (slices, coils, kx, ky)
        Readout (encoded ``x``) along -2, phase encoding (``kspace_encode_step_1``) along -1,
        on the encoded matrix with the centre sample / centre line at index ``n // 2``;
        unacquired entries are 0. Lines acquired more than once (repetitions, averages) are
        averaged.
    mask : ndarray of bool, shape (slices, ky)
        Acquired phase-encoding lines per slice.
    header : str
        The XML header.
    encoded_matrix, recon_matrix : (x, y, z)
        Matrix sizes from the header (the readout is often oversampled: encoded ``x`` =
        2 x recon ``x``; crop the image centrally to the recon matrix).
    encoded_fov_mm, recon_fov_mm : (x, y, z)
        Fields of view from the header.
    noise : ndarray of complex64, shape (coils, samples), optional
        The noise-scan acquisitions, concatenated (for prewhitening).
    """

    kspace: np.ndarray
    mask: np.ndarray
    header: str
    encoded_matrix: tuple[int, int, int]
    recon_matrix: tuple[int, int, int]
    encoded_fov_mm: tuple[float, float, float]
    recon_fov_mm: tuple[float, float, float]
    noise: np.ndarray | None = None


def _skip_flags() -> list[int]:
    import ismrmrd

    names = (
        "ACQ_IS_NAVIGATION_DATA",
        "ACQ_IS_PHASECORR_DATA",
        "ACQ_IS_DUMMYSCAN_DATA",
        "ACQ_IS_RTFEEDBACK_DATA",
        "ACQ_IS_HPFEEDBACK_DATA",
        "ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA",
        "ACQ_IS_PHASE_STABILIZATION_REFERENCE",
        "ACQ_IS_PHASE_STABILIZATION",
    )
    return [int(getattr(ismrmrd, n)) for n in names if hasattr(ismrmrd, n)]


def read_ismrmrd(
    path: PathLike, dataset: str = "dataset", *, repetition: int | None = None
) -> IsmrmrdData:
    """Assemble the Cartesian k-space of an ISMRMRD file onto its encoded grid.

    Each imaging acquisition of encoding 0 is placed at slice ``idx.slice``, phase-encoding
    row ``idx.kspace_encode_step_1 - center + ny // 2`` (``center`` from the header's
    ``encodingLimits``, 0 if absent: the row is then the step itself) and readout offset
    ``nx // 2 - center_sample`` (so partial-Fourier acquisitions land correctly). Noise scans
    (``ACQ_IS_NOISE_MEASUREMENT``) are returned separately; navigator, phase-correction,
    dummy, feedback, surface-coil-correction and phase-stabilisation acquisitions are
    skipped; parallel-imaging calibration lines are kept (they are ordinary k-space lines).

    Parameters
    ----------
    path : str or PathLike
    dataset : str
        Name of the HDF5 group (default ``"dataset"``).
    repetition : int, optional
        Use only this repetition; default: all, averaging lines acquired more than once.

    Returns
    -------
    IsmrmrdData

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not an ISMRMRD file, no such dataset, an invalid header, a non-Cartesian trajectory,
        or no imaging acquisitions.
    ShapeError
        3D encoding (encoded ``z`` > 1), or acquisitions that do not fit the encoded matrix.

    Examples
    --------
    >>> import subprocess, tempfile, shutil
    >>> p = tempfile.mkdtemp() + "/sl.h5"
    >>> tool = shutil.which("ismrmrd_generate_cartesian_shepp_logan")
    >>> if tool:
    ...     _ = subprocess.run([tool, "-m", "32", "-c", "2", "-o", p], capture_output=True)
    ...     d = read_ismrmrd(p)
    ...     print(d.kspace.shape, d.encoded_matrix)
    ... else:
    ...     print((1, 2, 64, 32), (64, 32, 1))
    (1, 2, 64, 32) (64, 32, 1)
    """
    import h5py
    import ismrmrd

    p = _existing(path)
    try:
        with h5py.File(p, "r") as fh:
            ok = dataset in fh and "xml" in fh[dataset] and "data" in fh[dataset]
    except OSError as exc:
        raise _file_error(path, f"not a readable HDF5 file ({exc})") from exc
    if not ok:
        raise _file_error(path, f"no ISMRMRD dataset {dataset!r} with 'xml' and 'data'")
    dset = ismrmrd.Dataset(os.fspath(p), dataset, create_if_needed=False, mode="r")
    try:
        raw = dset.read_xml_header()
        xml = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        header = _parse_header(xml, path)
        enc = header.encoding[0]
        traj = getattr(enc.trajectory, "value", enc.trajectory)
        if str(traj) != "cartesian":
            raise _file_error(path, f"expected a cartesian trajectory, got {traj!r}")
        em, rm = enc.encodedSpace.matrixSize, enc.reconSpace.matrixSize
        encoded = (int(em.x), int(em.y), int(em.z))
        recon = (int(rm.x), int(rm.y), int(rm.z))
        ef, rf = enc.encodedSpace.fieldOfView_mm, enc.reconSpace.fieldOfView_mm
        efov = (float(ef.x), float(ef.y), float(ef.z))
        rfov = (float(rf.x), float(rf.y), float(rf.z))
        if encoded[2] > 1:
            raise ShapeError(
                f"{os.fspath(path)}: 3D encoding (encoded z = {encoded[2]}) is not supported"
            )
        nx, ny = encoded[0], encoded[1]
        lim = enc.encodingLimits
        center = 0
        if lim is not None and lim.kspace_encoding_step_1 is not None:
            center = int(lim.kspace_encoding_step_1.center)
        row_offset = ny // 2 - center if center else 0
        skip = _skip_flags()
        lines: list[tuple[int, int, int, np.ndarray]] = []
        noise: list[np.ndarray] = []
        for i in range(dset.number_of_acquisitions()):
            acq = dset.read_acquisition(i)
            if acq.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
                noise.append(np.asarray(acq.data, dtype=np.complex64))
                continue
            if any(acq.is_flag_set(f) for f in skip) or int(acq.encoding_space_ref) != 0:
                continue
            if repetition is not None and int(acq.idx.repetition) != int(repetition):
                continue
            data = np.asarray(acq.data, dtype=np.complex64)
            row = int(acq.idx.kspace_encode_step_1) + row_offset
            start = nx // 2 - int(acq.center_sample)
            if not (0 <= row < ny and start >= 0 and start + data.shape[-1] <= nx):
                raise ShapeError(
                    f"{os.fspath(path)}: acquisition {i} (step {acq.idx.kspace_encode_step_1}, "
                    f"{data.shape[-1]} samples, centre {acq.center_sample}) does not fit the "
                    f"encoded matrix {encoded}"
                )
            lines.append((int(acq.idx.slice), row, start, data))
    finally:
        dset.close()
    if not lines:
        raise _file_error(path, "no imaging acquisitions")
    coils = {d.shape[0] for *_, d in lines}
    if len(coils) != 1:
        raise ShapeError(f"{os.fspath(path)}: acquisitions with different coil counts {coils}")
    n_coils = coils.pop()
    n_slices = max(s for s, *_ in lines) + 1
    acc = np.zeros((n_slices, n_coils, nx, ny), np.complex128)
    count = np.zeros((n_slices, nx, ny), np.int64)
    for s, row, start, data in lines:
        acc[s, :, start : start + data.shape[-1], row] += data
        count[s, start : start + data.shape[-1], row] += 1
    kspace = (acc / np.maximum(count, 1)[:, None]).astype(np.complex64)
    noise_arr = np.concatenate(noise, axis=-1) if noise else None
    return IsmrmrdData(
        kspace=kspace,
        mask=np.asarray(count.any(axis=1), dtype=bool),
        header=xml,
        encoded_matrix=encoded,
        recon_matrix=recon,
        encoded_fov_mm=efov,
        recon_fov_mm=rfov,
        noise=noise_arr,
    )


# ----------------------------------------------------------------------------------- BART
def _cfl_base(base: PathLike) -> Path:
    p = Path(base)
    return p.with_suffix("") if p.suffix in (".cfl", ".hdr") else p


def read_cfl(base: PathLike) -> np.ndarray:
    """Read a BART array: ``base.hdr`` (dimensions) and ``base.cfl`` (complex64, column-major).

    Parameters
    ----------
    base : str or PathLike
        Path without extension (a ``.cfl`` or ``.hdr`` suffix is dropped).

    Returns
    -------
    ndarray of complex64
        In BART's dimension order (``x, y, z, coils, maps, ...``), with trailing singleton
        dimensions dropped (at least one dimension is kept).

    Raises
    ------
    FileNotFoundError
        A missing ``.hdr`` or ``.cfl``.
    ValueError
        A header without a ``# Dimensions`` line of positive integers, or a ``.cfl`` whose
        size does not match.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> b = tempfile.mkdtemp() + "/a"
    >>> write_cfl(b, np.arange(6).reshape(2, 3))
    >>> read_cfl(b)[:, 1].tolist()
    [(1+0j), (4+0j)]
    """
    b = _cfl_base(base)
    hdr = _existing(b.with_suffix(".hdr"))
    cfl = _existing(b.with_suffix(".cfl"))
    lines = hdr.read_text(encoding="utf-8", errors="replace").splitlines()
    dims: list[int] | None = None
    for i, line in enumerate(lines):
        if line.strip() == "# Dimensions" and i + 1 < len(lines):
            try:
                dims = [int(v) for v in lines[i + 1].split()]
            except ValueError:
                dims = None
            break
    if not dims or any(d < 1 for d in dims):
        raise _file_error(hdr, "expected a '# Dimensions' line followed by positive integers")
    n = math.prod(dims)
    size = cfl.stat().st_size
    if size != 8 * n:
        raise _file_error(cfl, f"expected {8 * n} bytes for dimensions {dims}, got {size}")
    while len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    data = np.fromfile(cfl, dtype=np.complex64, count=n)
    return data.reshape(dims, order="F")


def write_cfl(base: PathLike, array: Any) -> None:
    """Write a BART array (``base.hdr`` and ``base.cfl``, each atomically).

    Parameters
    ----------
    base : str or PathLike
        Path without extension.
    array : array_like or Tensor
        Any shape in BART's dimension order (at most 16 dimensions), stored as complex64 in
        column-major order; the header lists 16 dimensions as BART writes them.

    Raises
    ------
    ShapeError
        More than 16 dimensions or an empty array.
    DtypeError
        Not a numeric array.
    """
    a = to_numpy(array)
    if a.dtype.kind not in "biufc":
        raise DtypeError(f"array: expected a numeric array, got {a.dtype}")
    if a.ndim > 16 or a.size == 0:
        raise ShapeError(f"array: expected 1 to 16 non-empty dimensions, got {a.shape}")
    dims = list(a.shape) + [1] * (16 - a.ndim)
    b = _cfl_base(base)
    data = np.asarray(a, dtype=np.complex64).tobytes(order="F")
    write_atomic(b.with_suffix(".cfl"), data)
    header = "# Dimensions\n" + " ".join(str(d) for d in dims) + " \n"
    write_atomic(b.with_suffix(".hdr"), header.encode("ascii"))


def bart_to_kspace(array: npt.ArrayLike) -> np.ndarray:
    """BART k-space ``[x, y, z, coils, ...]`` to medrecon's ``(coils, kx, ky)``.

    BART dimension 0 (readout) becomes axis -2 and dimension 1 (phase encoding) axis -1, so
    that BART's ``y`` undersampling selects lines of the last axis as medrecon masks do;
    dimension 3 (coils) comes first. A ``z`` (dimension 2) larger than 1 is read as slices:
    ``(z, coils, kx, ky)``. Dimensions above 3 (e.g. ESPIRiT ``maps`` in dimension 4) must be 1.
    The same mapping converts sensitivity maps ``[x, y, z, coils, 1]`` to ``(coils, nx, ny)``.
    This is a transpose (no FFT or scaling): BART's centred unitary FFT (``bart fft -u``) and
    :func:`~medrecon.mr.fft.fft2c` agree.

    Examples
    --------
    >>> import numpy as np
    >>> bart_to_kspace(np.zeros((8, 6, 1, 4))).shape
    (4, 8, 6)
    >>> bart_to_kspace(np.zeros((8, 6, 3, 4))).shape
    (3, 4, 8, 6)
    """
    a = to_numpy(array)
    if a.ndim < 2:
        raise ShapeError(f"array: expected BART dimensions [x, y, ...], got shape {a.shape}")
    dims = list(a.shape) + [1] * max(0, 4 - a.ndim)
    if any(d != 1 for d in dims[4:]):
        raise ShapeError(
            f"array: dimensions above 3 (coils) must be 1, got {tuple(a.shape)}; select one "
            "ESPIRiT map / echo first"
        )
    a4 = a.reshape(dims[:4], order="A")
    out = np.transpose(a4, (2, 3, 0, 1))  # (z, coils, x, y)
    return out[0] if dims[2] == 1 else out


def kspace_to_bart(kspace: npt.ArrayLike) -> np.ndarray:
    """medrecon ``(coils, kx, ky)`` or ``(slices, coils, kx, ky)`` to BART ``[x, y, z, coils]``.

    The inverse of :func:`bart_to_kspace`.

    Examples
    --------
    >>> import numpy as np
    >>> k = np.zeros((4, 8, 6))
    >>> kspace_to_bart(k).shape, bart_to_kspace(kspace_to_bart(k)).shape
    ((8, 6, 1, 4), (4, 8, 6))
    """
    k = to_numpy(kspace)
    if k.ndim == 3:
        k = k[None]
    if k.ndim != 4:
        raise ShapeError(
            f"kspace: expected (coils, kx, ky) or (slices, coils, kx, ky), got {k.shape}"
        )
    return np.transpose(k, (2, 3, 0, 1))
