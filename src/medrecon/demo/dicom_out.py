"""The demo's results as DICOM: original series, derived series with lineage, QC reports, audit.

Under ``<out>/dicom/`` (replaced as a whole on every run, atomically by folder rename):

* ``chest_fbp/`` - the low-dose FBP of the chest case as the "scanner's" original series;
* ``chest_tv/`` - the TV reconstruction of the same raw data (ORIGINAL\\PRIMARY, linked to it);
* ``chest_qc/`` - a TID 1500 SR with the TV image's noise, SNR and data-consistency residual;
* ``pelvis_fbp/``, ``pelvis_nmar/``, ``pelvis_qc/`` - the same for the hip case (NMAR as a metal
  artifact reduction of the uncorrected series);
* ``audit.jsonl`` - one hash-chained line per write (``medrecon audit verify`` checks it).

All series belong to one simulated patient and study.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from medrecon import __version__
from medrecon.dicom import (
    AlgorithmInfo,
    AuditLog,
    read_series,
    write_derived_series,
    write_qc_report,
)
from medrecon.dicom.synthetic import write_original_series

__all__ = ["SLICE_THICKNESS_MM", "write_demo_dicom"]

#: the simulated slices' thickness (a 2D simulation has none; a typical axial slice)
SLICE_THICKNESS_MM = 5.0


def _roi_metrics(hu: np.ndarray, roi: np.ndarray) -> dict[str, float]:
    vals = hu[roi]
    std = float(vals.std(ddof=1))
    # SNR of the uniform region: (mean + 1000 HU) / std, the attenuation relative to air
    return {"noise_std": std, "snr": float((vals.mean() + 1000.0) / std)}


def write_demo_dicom(
    out_dir: Path,
    *,
    voxel_mm: float,
    chest_fbp_hu: np.ndarray,
    chest_tv_hu: np.ndarray,
    chest_roi: np.ndarray,
    chest_residual: float,
    tv_parameters: dict[str, Any],
    pelvis_fbp_hu: np.ndarray,
    pelvis_nmar_hu: np.ndarray,
    pelvis_roi: np.ndarray,
) -> dict[str, Any]:
    """Write the demo's DICOM folder; return a summary for ``metrics.json``."""
    final = out_dir / "dicom"
    work = out_dir / f".dicom.{secrets.token_hex(6)}.tmp"
    work.mkdir(parents=True)
    try:
        audit = AuditLog(work / "audit.jsonl")
        spacing = (SLICE_THICKNESS_MM, voxel_mm, voxel_mm)
        chest = write_original_series(
            chest_fbp_hu[None],
            spacing=spacing,
            out=work / "chest_fbp",
            patient_name="MEDRECON^DEMO",
            patient_id="MEDRECON-DEMO",
            study_description="medrecon demo (simulated)",
            series_description="Chest low dose FBP (simulated)",
            series_number=1,
        )
        study = str(chest[0].StudyInstanceUID)
        pelvis = write_original_series(
            pelvis_fbp_hu[None],
            spacing=spacing,
            out=work / "pelvis_fbp",
            patient_name="MEDRECON^DEMO",
            patient_id="MEDRECON-DEMO",
            study_instance_uid=study,
            study_description="medrecon demo (simulated)",
            series_description="Pelvis FBP, hip prostheses (simulated)",
            series_number=2,
        )
        tv_algo = AlgorithmInfo(
            name="medrecon.ct.pdhg_tv",
            version=__version__,
            kind="reconstruction",
            parameters=tv_parameters,
            description="TV-regularised reconstruction of the same low-dose raw data",
        )
        mar_algo = AlgorithmInfo(
            name="medrecon.ct.mar.nmar",
            version=__version__,
            kind="metal_artifact_reduction",
            parameters={"threshold_hu": 2500.0, "prior_thresholds_hu": [-500.0, 200.0]},
        )
        src_chest = read_series(chest)
        src_pelvis = read_series(pelvis)
        chest_tv = write_derived_series(
            chest_tv_hu[None], src_chest, tv_algo, work / "chest_tv", audit=audit
        )
        pelvis_nmar = write_derived_series(
            pelvis_nmar_hu[None], src_pelvis, mar_algo, work / "pelvis_nmar", audit=audit
        )
        chest_qc = {
            **_roi_metrics(chest_tv_hu, chest_roi),
            "data_consistency_residual": chest_residual,
        }
        pelvis_qc = _roi_metrics(pelvis_nmar_hu, pelvis_roi)
        sr_chest = write_qc_report(
            src_chest, chest_tv, tv_algo, chest_qc, out=work / "chest_qc", audit=audit
        )
        sr_pelvis = write_qc_report(
            src_pelvis, pelvis_nmar, mar_algo, pelvis_qc, out=work / "pelvis_qc", audit=audit
        )
        n_entries = audit.verify()
        # swap the finished folder in; the previous run's folder goes
        old = out_dir / f".dicom.{secrets.token_hex(6)}.old"
        if final.exists():
            final.rename(old)
        work.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    files = sorted(p.relative_to(out_dir).as_posix() for p in final.rglob("*.dcm"))
    return {
        "folder": "dicom",
        "study_instance_uid": study,
        "series": {
            "chest_fbp": str(chest[0].SeriesInstanceUID),
            "chest_tv": str(chest_tv[0].SeriesInstanceUID),
            "pelvis_fbp": str(pelvis[0].SeriesInstanceUID),
            "pelvis_nmar": str(pelvis_nmar[0].SeriesInstanceUID),
            "chest_qc_sr": str(sr_chest.SOPInstanceUID),
            "pelvis_qc_sr": str(sr_pelvis.SOPInstanceUID),
        },
        "qc": {"chest_tv": chest_qc, "pelvis_nmar": pelvis_qc},
        "n_files": len(files),
        "audit_entries": n_entries,
        "slice_thickness_mm": SLICE_THICKNESS_MM,
    }
