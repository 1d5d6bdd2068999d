"""Coded concepts medrecon writes into DICOM objects, and its private coding scheme.

Standard concepts come from DICOM's DCM scheme (PS3.16) and UCUM units; where DICOM has no
concept (metal artifact reduction as a derivation, CNR, a data-consistency residual, a model's
confidence), medrecon uses its private scheme :data:`PRIVATE_SCHEME`, which every object that
uses it declares in CodingSchemeIdentificationSequence (:func:`private_scheme_item`).
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

__all__ = [
    "CNR",
    "CONFIDENCE",
    "DATA_CONSISTENCY_RESIDUAL",
    "METAL_ARTIFACT_REDUCTION",
    "NOISE_STD",
    "PRIVATE_SCHEME",
    "SNR",
    "SOURCE_PIXEL_SHA256",
    "UCUM_HU",
    "UCUM_NO_UNITS",
    "private_scheme_item",
]

#: medrecon's private coding scheme designator (the "99" prefix marks a private scheme)
PRIVATE_SCHEME = "99MEDRECON"

# --- standard (DCM)
#: Signal to noise (DCM 113060)
SNR = Code("113060", "DCM", "Signal to noise")
#: Standard Deviation (DCM 113061): the noise, as the standard deviation in a uniform region
NOISE_STD = Code("113061", "DCM", "Standard Deviation")

# --- private (99MEDRECON)
#: derivation code for metal artifact reduction (no CID 7203 concept exists)
METAL_ARTIFACT_REDUCTION = Code("MAR001", PRIVATE_SCHEME, "Metal artifact reduction")
CNR = Code("QC001", PRIVATE_SCHEME, "Contrast to noise ratio")
DATA_CONSISTENCY_RESIDUAL = Code("QC002", PRIVATE_SCHEME, "Relative data consistency residual")
CONFIDENCE = Code("QC003", PRIVATE_SCHEME, "Algorithm confidence")
SOURCE_PIXEL_SHA256 = Code("QC004", PRIVATE_SCHEME, "SHA-256 of source pixel data")

# --- units (UCUM)
UCUM_NO_UNITS = Code("1", "UCUM", "no units")
UCUM_HU = Code("[hnsf'U]", "UCUM", "Hounsfield unit")


def private_scheme_item() -> Dataset:
    """An item of CodingSchemeIdentificationSequence declaring :data:`PRIVATE_SCHEME`."""
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = "medrecon private codes"
    item.CodingSchemeResponsibleOrganization = "medrecon project"
    return item
