"""QC results as a DICOM Structured Report: TID 1500 in a Comprehensive 3D SR (highdicom).

:func:`write_qc_report` records what an algorithm did to a series and how its output measured:
one Imaging Measurement Report (TID 1500) whose measurement group (TID 1501) carries the
algorithm's identification (TID 4019: name, version, parameters), the QC measurements (SNR as
DCM 113060, noise as DCM 113061 Standard Deviation, CNR, the relative data-consistency residual
and a confidence value as private concepts of :data:`~medrecon.dicom.codes.PRIVATE_SCHEME`,
declared in CodingSchemeIdentificationSequence), references to the derived images it measured,
and the SHA-256 of every source instance's pixel data. The SR's evidence lists the source and
the derived instances, so a PACS links it to both series.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import highdicom as hd
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from medrecon.dicom import codes as mcodes
from medrecon.dicom._io import deliver
from medrecon.dicom.audit import AuditLog
from medrecon.dicom.derived import AlgorithmInfo, copy_deidentification, device_uid
from medrecon.dicom.series import Series
from medrecon.errors import DicomError

__all__ = ["QC_METRICS", "write_qc_report"]

#: the QC metrics :func:`write_qc_report` knows: key -> (concept, unit for CT, unit otherwise)
QC_METRICS: dict[str, tuple[Code, Code, Code]] = {
    "snr": (mcodes.SNR, mcodes.UCUM_NO_UNITS, mcodes.UCUM_NO_UNITS),
    "cnr": (mcodes.CNR, mcodes.UCUM_NO_UNITS, mcodes.UCUM_NO_UNITS),
    "noise_std": (mcodes.NOISE_STD, mcodes.UCUM_HU, mcodes.UCUM_NO_UNITS),
    "data_consistency_residual": (
        mcodes.DATA_CONSISTENCY_RESIDUAL,
        mcodes.UCUM_NO_UNITS,
        mcodes.UCUM_NO_UNITS,
    ),
}


def _check_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key not in QC_METRICS:
            raise ValueError(f"metrics: unknown key {key!r}; expected some of {sorted(QC_METRICS)}")
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"metrics[{key!r}]: expected a finite number, got {value!r}")
        out[key] = v
    if not out:
        raise ValueError("metrics: expected at least one QC measurement")
    return out


def write_qc_report(
    source: Series,
    derived: Sequence[Dataset],
    algorithm: AlgorithmInfo,
    metrics: Mapping[str, float],
    *,
    confidence: float | None = None,
    out: str | os.PathLike[str] | Callable[[Dataset], object] | None = None,
    series_number: int = 9901,
    uid_root: str | None = None,
    audit: AuditLog | None = None,
) -> Dataset:
    """Write the QC results of ``algorithm`` on ``source`` as a TID 1500 Comprehensive 3D SR.

    Parameters
    ----------
    source : Series
        The series the algorithm read (:func:`~medrecon.dicom.read_series`).
    derived : sequence of pydicom Dataset
        The derived instances it wrote (:func:`~medrecon.dicom.write_derived_series`); they
        must belong to the source's study.
    algorithm : AlgorithmInfo
    metrics : mapping
        Some of ``"snr"``, ``"cnr"``, ``"noise_std"`` (HU for CT) and
        ``"data_consistency_residual"`` (relative), finite numbers.
    confidence : float, optional
        The algorithm's confidence in its output, in [0, 1].
    out : folder, callable or None
        Where the SR goes (``<SOPInstanceUID>.dcm`` in a folder, written atomically).
    series_number : int
    uid_root : str, optional
        Root for the new UIDs (pydicom's by default).
    audit : AuditLog, optional
        Record the write (source pixel hashes, derived and SR UIDs, the metrics), or its
        failure.

    Returns
    -------
    pydicom Dataset
        The SR (highdicom ``Comprehensive3DSR``).

    Raises
    ------
    DicomError
        No derived instances, or derived instances from another study.
    ValueError
        Unknown or non-finite metrics; a confidence outside [0, 1].
    """
    if not derived:
        raise DicomError("derived: expected the derived instances the report is about")
    for ds in derived:
        if str(ds.StudyInstanceUID) != source.study_instance_uid:
            raise DicomError(
                f"derived instance {ds.SOPInstanceUID} belongs to study {ds.StudyInstanceUID}, "
                f"not to the source's {source.study_instance_uid}"
            )
    values = _check_metrics(metrics)
    if confidence is not None and not (0.0 <= float(confidence) <= 1.0):
        raise ValueError(f"confidence: expected a value in [0, 1], got {confidence!r}")
    is_ct = source.modality == "CT"

    params = [f"{k}={v}" for k, v in sorted(dict(algorithm.parameters).items())]
    if algorithm.model_name:
        params.append(f"model={algorithm.model_name} {algorithm.model_version or ''}".strip())
    if algorithm.weights_sha256:
        params.append(f"weights_sha256={algorithm.weights_sha256}")
    algo_id = hd.sr.AlgorithmIdentification(
        name=algorithm.name, version=algorithm.version, parameters=params or None
    )
    measurements = [
        hd.sr.Measurement(
            name=QC_METRICS[key][0],
            value=value,
            unit=QC_METRICS[key][1] if is_ct else QC_METRICS[key][2],
            algorithm_id=algo_id,
        )
        for key, value in values.items()
    ]
    if confidence is not None:
        measurements.append(
            hd.sr.Measurement(
                name=mcodes.CONFIDENCE,
                value=float(confidence),
                unit=mcodes.UCUM_NO_UNITS,
                algorithm_id=algo_id,
            )
        )
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(prefix=uid_root), identifier="medrecon QC"
        ),
        algorithm_id=algo_id,
        measurements=measurements,
        source_images=[
            hd.sr.SourceImageForMeasurementGroup.from_source_image(ds) for ds in derived
        ],
    )
    # the SHA-256 of every source instance's pixel data, as text items of the group
    container = group[0]
    for sl in source.slices:
        container.ContentSequence.append(
            hd.sr.TextContentItem(
                name=mcodes.SOURCE_PIXEL_SHA256,
                value=f"{sl.sop_instance_uid} {sl.pixel_sha256}",
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
        )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_uid(algorithm),
            name=algorithm.name[:64],
            manufacturer_name=algorithm.manufacturer[:64],
            model_name=(algorithm.model_name or algorithm.name)[:64],
        ),
    )
    procedure: Any = (
        codes.cid100.CTUnspecifiedBodyRegion if is_ct else codes.cid100.MRIUnspecifiedBodyRegion
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=procedure,
        imaging_measurements=[group],
        title=codes.cid7021.ImagingMeasurementReport,
    )
    evidence = [*source.headers, *derived]
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report[0],
        series_instance_uid=generate_uid(prefix=uid_root),
        series_number=series_number,
        sop_instance_uid=generate_uid(prefix=uid_root),
        instance_number=1,
        manufacturer=algorithm.manufacturer[:64],
        is_complete=True,
        is_final=False,
        is_verified=False,
        institution_name=source.equipment.get("InstitutionName"),
    )
    sr.SeriesDescription = f"QC {algorithm.name}"[:64]
    for kw in ("PatientIdentityRemoved", "DeidentificationMethod"):
        if kw in sr:
            del sr[kw]
    copy_deidentification(source.headers[0], sr)
    sr.CodingSchemeIdentificationSequence = [mcodes.private_scheme_item()]
    sr.ContentQualification = "PRODUCT" if algorithm.clinical else "RESEARCH"
    now = _dt.datetime.now(_dt.UTC)
    sr.InstanceCreationDate = pydicom.valuerep.DA(now.strftime("%Y%m%d"))
    sr.InstanceCreationTime = pydicom.valuerep.TM(now.strftime("%H%M%S"))
    inputs = [{"uid": sl.sop_instance_uid, "sha256": sl.pixel_sha256} for sl in source.slices]
    audit_params = {"metrics": values, "confidence": confidence}
    try:
        paths = deliver([sr], out)
    except BaseException as exc:
        if audit is not None:
            audit.append(
                "write_qc_report",
                inputs=inputs,
                algorithm=algorithm.as_dict(),
                parameters=audit_params,
                status="failed",
                error=f"{type(exc).__name__}: {exc}",
            )
        raise
    if audit is not None:
        audit.append(
            "write_qc_report",
            inputs=inputs,
            outputs=[str(sr.SOPInstanceUID), *(str(p) for p in paths)],
            algorithm=algorithm.as_dict(),
            parameters={**audit_params, "derived": [str(d.SOPInstanceUID) for d in derived]},
        )
    return sr
