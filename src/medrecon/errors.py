"""Typed exceptions raised by medrecon.

Every exception subclasses both :class:`MedreconError` and the builtin that
best describes the problem, so callers can catch either. Messages state what
was expected and what was received.
"""

from __future__ import annotations

__all__ = [
    "AuditError",
    "BackendUnavailableError",
    "DeviceError",
    "DicomError",
    "DtypeError",
    "GeometryError",
    "InconsistentSeriesError",
    "MRFileError",
    "MedreconError",
    "MetalTraceError",
    "MissingPixelDataError",
    "NonFiniteError",
    "NotDifferentiableError",
    "SendError",
    "ShapeError",
    "UnknownBackendError",
    "UnknownMaterialError",
]


class MedreconError(Exception):
    """Base class of every error raised on purpose by medrecon."""


class GeometryError(MedreconError, ValueError):
    """A geometry is invalid or does not fit the data or the operation."""


class ShapeError(MedreconError, ValueError):
    """An array has the wrong shape for the operator or geometry."""


class DtypeError(MedreconError, TypeError):
    """An array has an unsupported dtype, or dtypes that do not match."""


class NonFiniteError(MedreconError, ValueError):
    """An input holds NaN or infinity where finite values are required."""


class BackendUnavailableError(MedreconError, ImportError):
    """A backend was requested whose packages or hardware are missing.

    The message names what to install (for example ``pip install medrecon[astra]``).
    """


class UnknownBackendError(MedreconError, ValueError):
    """A backend name that no registered backend answers to."""


class DeviceError(MedreconError, ValueError):
    """Data lives on a device that the chosen backend cannot use."""


class NotDifferentiableError(MedreconError, TypeError):
    """An operation that autograd cannot differentiate got a tensor requiring grad."""


class MetalTraceError(MedreconError, ValueError):
    """A metal mask or metal trace that metal artifact reduction cannot use.

    Raised for an empty trace (no ray crosses metal), a trace that covers whole views (nothing
    left to interpolate from), or a mask that does not fit the volume.
    """


class UnknownMaterialError(MedreconError, ValueError):
    """A material name that is not in medrecon's material library (the message lists it)."""


class DicomError(MedreconError, ValueError):
    """A DICOM object or file that medrecon cannot use as asked (the message names the file)."""


class MissingPixelDataError(DicomError):
    """An image instance without pixel data, or with pixel data that cannot be decoded."""


class InconsistentSeriesError(DicomError):
    """Instances that do not form one volume: mixed modality, orientation, size or spacing,
    duplicate or missing slices."""


class MRFileError(MedreconError, ValueError):
    """An MR raw-data file (fastMRI HDF5, ISMRMRD, BART .cfl/.hdr) that exists but cannot be
    read as that format (the message names the file)."""


class SendError(MedreconError, ConnectionError):
    """Sending to a DICOM peer failed for some or all instances.

    ``failed`` maps the SOPInstanceUID of every instance that was not stored to the reason
    (the peer's status or the transport error); ``stored`` lists the ones that were.
    """

    def __init__(
        self, message: str, *, failed: dict[str, str] | None = None, stored: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.failed: dict[str, str] = dict(failed or {})
        self.stored: list[str] = list(stored or [])


class AuditError(MedreconError, ValueError):
    """An audit log that is malformed or whose hash chain is broken (tampering)."""
