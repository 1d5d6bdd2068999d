"""Enhanced CT and MR Image objects: a derived series as one multi-frame instance.

:func:`build_enhanced` is what ``write_derived_series(..., enhanced=True)`` writes: one Enhanced
CT Image (PS3.3 A.38) or Enhanced MR Image (A.36) object holding every slice as a frame, with
the lineage the classic objects carry (:mod:`medrecon.dicom.derived` builds both from one plan):

* Shared functional groups: Pixel Measures, Plane Orientation, Frame Anatomy, the CT or MR
  Image Frame Type, Frame VOI LUT (the source's windows), and the pixel value transform: CT
  Pixel Value Transformation (rescale to HU), MR Real World Value Mapping (stored values to
  the algorithm's floats; windows then apply to stored values, as in classic MR).
* Per-frame functional groups: Plane Position (the source slice's position on an unchanged
  grid), Frame Content (DimensionIndexValues), and Derivation Image (DerivationDescription,
  DerivationCodeSequence, SourceImageSequence with purpose 121322).
* Multi-frame Dimension: one dimension, ImagePositionPatient in PlanePositionSequence; frames
  are stored in increasing position along the slice normal.
* Series references, Contributing Equipment, ContentQualification, de-identification and
  lossy-compression flags as in the classic objects (Common Instance Reference module).

ImageType and FrameType are ``DERIVED\\PRIMARY\\VOLUME\\NONE``: value 2 of the Enhanced IODs
is always PRIMARY (PS3.3 C.8.16.1), so the classic ``SECONDARY`` has no place here.
Reconstructions from raw data (``ORIGINAL``) are refused: an ORIGINAL Enhanced CT or MR frame
must describe its acquisition (CT Acquisition Type, Details, Geometry, Exposure, ... or the MR
Timing, Echo, Coil and Pulse Sequence groups), which a source series does not carry and
medrecon does not invent; write those as classic objects.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import PYDICOM_ROOT_UID, generate_uid

from medrecon.dicom.derived import (
    DerivationKind,
    _code_item,
    _derivation_codes,
    _derivation_description,
    _Plan,
    _real_world_value_mapping,
    _set_identity,
    _set_lineage,
    _source_image_items,
    device_uid,
    file_meta,
)
from medrecon.errors import DicomError

__all__ = [
    "ENHANCED_CT_IMAGE_STORAGE",
    "ENHANCED_MR_IMAGE_STORAGE",
    "build_enhanced",
]

ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
#: BodyPartExamined (CID 4030 terms) -> Frame Anatomy region (CID 4); others are "Unknown"
_REGIONS = {
    "HEAD": codes.SCT.Head,
    "BRAIN": codes.SCT.Brain,
    "NECK": codes.SCT.Neck,
    "CHEST": codes.SCT.Chest,
    "THORAX": codes.SCT.Thorax,
    "HEART": codes.SCT.Heart,
    "ABDOMEN": codes.SCT.Abdomen,
    "LIVER": codes.SCT.Liver,
    "PELVIS": codes.SCT.Pelvis,
    "ABDOMENPELVIS": codes.SCT.AbdomenAndPelvis,
    "CHESTABDOMEN": codes.SCT.ChestAndAbdomen,
    "SPINE": codes.SCT.Spine,
    "KNEE": codes.SCT.Knee,
    "EXTREMITY": codes.SCT.Extremity,
    "WHOLEBODY": codes.SCT.EntireBody,
}
#: ImagePositionPatient (0020,0032) in PlanePositionSequence (0020,9113)
_POSITION, _PLANE_POSITION = 0x00200032, 0x00209113
#: the largest PixelData a 32-bit value length holds (even)
_MAX_PIXEL_BYTES = 0xFFFFFFFE


def _item(**attributes: object) -> Dataset:
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def _frame_anatomy(plan: _Plan) -> Dataset:
    """Frame Anatomy (mandatory): the region from BodyPartExamined, the source's laterality."""
    first = plan.source.headers[0]
    body_part = str(first.get("BodyPartExamined", "") or "").upper().replace(" ", "")
    region = _REGIONS.get(body_part, codes.SCT.Unknown)
    laterality = str(first.get("Laterality", "") or first.get("ImageLaterality", "") or "")
    return _item(
        AnatomicRegionSequence=[_code_item(region)],
        # R, L or B as the source says; U (unpaired) when it does not say
        FrameLaterality=laterality if laterality in ("R", "L", "B") else "U",
    )


def _image_type(plan: _Plan) -> list[str]:
    """ImageType / FrameType: value 2 of the Enhanced IODs is always PRIMARY (C.8.16.1)."""
    return [plan.image_type[0], "PRIMARY", "VOLUME", "NONE"]


def _frame_type(plan: _Plan) -> Dataset:
    """CT or MR Image Frame Type (mandatory): the frame's ImageType and pixel character."""
    item = _item(
        FrameType=_image_type(plan),
        PixelPresentation="MONOCHROME",
        VolumetricProperties="VOLUME",
        VolumeBasedCalculationTechnique="NONE",
    )
    if plan.source.modality == "MR":
        item.ComplexImageComponent = "MAGNITUDE"
        item.AcquisitionContrast = "UNKNOWN"
    return item


def _shared_groups(plan: _Plan) -> Dataset:
    sp, q = plan.spacing, plan.q
    shared = Dataset()
    shared.PixelMeasuresSequence = [
        _item(
            PixelSpacing=[f"{sp[1]:.6f}", f"{sp[2]:.6f}"],
            SliceThickness=plan.slice_thickness,
            SpacingBetweenSlices=f"{sp[0]:.6f}",
        )
    ]
    shared.PlaneOrientationSequence = [
        _item(ImageOrientationPatient=[f"{v:.6f}" for v in plan.source.orientation])
    ]
    shared.FrameAnatomySequence = [_frame_anatomy(plan)]
    if plan.source.modality == "CT":
        shared.CTImageFrameTypeSequence = [_frame_type(plan)]
        shared.PixelValueTransformationSequence = [
            _item(
                RescaleSlope=f"{q.slope:.10g}",
                RescaleIntercept=f"{q.intercept:.10g}",
                RescaleType="HU",
            )
        ]
        shared.IrradiationEventIdentificationSequence = [
            _item(IrradiationEventUID=_irradiation_events(plan))
        ]
    else:
        shared.MRImageFrameTypeSequence = [_frame_type(plan)]
        # no rescale (stored values are the modality's values, the windows apply to them, as
        # in classic MR); the Real World Value Mapping gives the algorithm's floats back
        shared.PixelValueTransformationSequence = [
            _item(RescaleSlope="1", RescaleIntercept="0", RescaleType="US")
        ]
        shared.RealWorldValueMappingSequence = [_real_world_value_mapping(plan)]
    if plan.windows:
        shared.FrameVOILUTSequence = [
            _item(
                WindowCenter=[f"{c:.6g}" for c, _ in plan.windows],
                WindowWidth=[f"{w:.6g}" for _, w in plan.windows],
            )
        ]
    return shared


def _per_frame_groups(plan: _Plan, k: int) -> Dataset:
    derivation = _item(
        DerivationDescription=_derivation_description(plan.algorithm),
        DerivationCodeSequence=_derivation_codes(plan),
        SourceImageSequence=_source_image_items(plan, k),
    )
    frame = Dataset()
    frame.PlanePositionSequence = [_item(ImagePositionPatient=plan.position_value(k))]
    frame.FrameContentSequence = [_item(DimensionIndexValues=[k + 1])]
    frame.DerivationImageSequence = [derivation]
    return frame


def build_enhanced(plan: _Plan) -> Dataset:
    """One Enhanced CT or MR Image object holding the planned derived series as frames."""
    source = plan.source
    first = source.headers[0]
    n, rows, columns = plan.shape
    if plan.kind is DerivationKind.RECONSTRUCTION:
        raise DicomError(
            "enhanced=True: a reconstruction from raw data is an ORIGINAL image, and ORIGINAL "
            f"Enhanced {source.modality} frames must describe their acquisition (the "
            f"{source.modality} acquisition functional groups), which the source series does "
            "not carry; write it as classic objects (enhanced=False)"
        )
    stored = np.ascontiguousarray(plan.q.stored)
    if stored.nbytes > _MAX_PIXEL_BYTES:
        raise DicomError(
            f"volume: {stored.nbytes} bytes of pixel data do not fit one multi-frame object "
            f"(at most {_MAX_PIXEL_BYTES}); write classic objects (enhanced=False)"
        )
    ct = source.modality == "CT"
    ds = Dataset()
    _set_identity(ds, plan)
    ds.SOPClassUID = ENHANCED_CT_IMAGE_STORAGE if ct else ENHANCED_MR_IMAGE_STORAGE
    ds.InstanceNumber = 1
    # Enhanced General Equipment: the device serial number (type 1) is the model version's UID
    ds.DeviceSerialNumber = device_uid(plan.algorithm)
    # Enhanced CT / MR Image module
    ds.ImageType = _image_type(plan)
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.PresentationLUTShape = "IDENTITY"
    ds.BurnedInAnnotation = "YES" if str(first.get("BurnedInAnnotation", "")) == "YES" else "NO"
    if "AcquisitionNumber" in first and first.AcquisitionNumber not in (None, ""):
        ds.AcquisitionNumber = first.AcquisitionNumber
    acquired = _acquisition_datetime(first)
    if acquired:
        ds.AcquisitionDateTime = acquired
    if not ct:
        ds.ComplexImageComponent = "MAGNITUDE"
        ds.AcquisitionContrast = "UNKNOWN"
        if first.get("MagneticFieldStrength") not in (None, ""):
            ds.MagneticFieldStrength = first.MagneticFieldStrength
        # required by the MR Image and Spectroscopy Instance macro: the source's, else IEC
        # (IEC 60601-2-33, the international standard for MR equipment safety)
        agency = str(first.get("ApplicableSafetyStandardAgency", "") or "")
        ds.ApplicableSafetyStandardAgency = agency if agency in ("IEC", "FDA", "MHW") else "IEC"
    ds.AcquisitionContextSequence = []  # type 2: nothing recorded
    # Multi-frame Functional Groups and Dimension modules
    ds.NumberOfFrames = n
    dimension_uid = generate_uid(prefix=plan.uid_root)
    ds.DimensionOrganizationSequence = [_item(DimensionOrganizationUID=dimension_uid)]
    ds.DimensionOrganizationType = "3D"
    ds.DimensionIndexSequence = [
        _item(
            DimensionOrganizationUID=dimension_uid,
            DimensionIndexPointer=_POSITION,
            FunctionalGroupPointer=_PLANE_POSITION,
            DimensionDescriptionLabel="Image Position (Patient)",
        )
    ]
    ds.SharedFunctionalGroupsSequence = [_shared_groups(plan)]
    ds.PerFrameFunctionalGroupsSequence = [_per_frame_groups(plan, k) for k in range(n)]
    # Image Pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if plan.q.signed else 0
    ds.PixelData = stored.tobytes()
    _set_lineage(ds, plan)
    ds.SourceImageEvidenceSequence = [_evidence(plan)]
    # General Series: Laterality is not sent with FrameLaterality (Frame Anatomy)
    del ds.Laterality
    ds.file_meta = file_meta(ds)
    return ds


def _acquisition_datetime(header: Dataset) -> str | None:
    """The source's AcquisitionDateTime, or its AcquisitionDate and AcquisitionTime joined."""
    value = header.get("AcquisitionDateTime")
    if value:
        return str(value)
    date, time = header.get("AcquisitionDate"), header.get("AcquisitionTime")
    if date and time:
        return f"{date}{time}"
    return None


def _irradiation_events(plan: _Plan) -> list[str]:
    """The source's IrradiationEventUIDs; without any, one UID fixed by the source series."""
    uids: list[str] = []
    for header in plan.source.headers:
        value = header.get("IrradiationEventUID")
        for uid in [] if value in (None, "") else ([value] if isinstance(value, str) else value):
            if str(uid) not in uids:
                uids.append(str(uid))
    if uids:
        return uids
    return [
        str(
            generate_uid(
                prefix=plan.uid_root or PYDICOM_ROOT_UID,
                entropy_srcs=[
                    "medrecon IrradiationEventUID",
                    plan.source.study_instance_uid,
                    plan.source.series_instance_uid,
                ],
            )
        )
    ]


def _evidence(plan: _Plan) -> Dataset:
    """Source Image Evidence (Hierarchical SOP Instance Reference): every source instance."""
    source = plan.source
    instances: dict[str, str] = {}
    for sl in source.slices:
        instances.setdefault(sl.sop_instance_uid, sl.sop_class_uid)
    series = _item(
        SeriesInstanceUID=source.series_instance_uid,
        ReferencedSOPSequence=[
            _item(ReferencedSOPClassUID=cls, ReferencedSOPInstanceUID=uid)
            for uid, cls in instances.items()
        ],
    )
    return _item(StudyInstanceUID=source.study_instance_uid, ReferencedSeriesSequence=[series])
