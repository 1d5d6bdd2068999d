"""A pelvis slice with metal implants, for metal artifact studies.

:func:`pelvis_slice` paints an axial slice at the level of the hip joints (380 x 250 mm):
subcutaneous fat, muscle, bladder, rectum with a gas pocket, the acetabula, the femoral heads
(cortical shell and cancellous core) and the sacrum, as HU, plus metal implants given by
:class:`Implant` (a prosthesis head in each femoral head by default: "bilateral hip
replacement"). Implants are returned as partial-volume *fractions*, separately from the tissue,
so that the polychromatic simulator (:mod:`~medrecon.ct.simulate.polychromatic`) can give them
their real material; the tissue image holds what lies around and under them.

:func:`random_implants` draws implant sets of varied size, count, position and material for
benchmarks (seeded).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medrecon.ct.simulate._validate import check_oversample, check_rng, check_volume
from medrecon.ct.simulate.phantoms import _extrude, _in_plane, _layer_params
from medrecon.ct.simulate.shapes import Combine, ellipses
from medrecon.errors import GeometryError
from medrecon.geometry import VolumeGeometry

__all__ = [
    "HIP_IMPLANTS",
    "PELVIS_HU",
    "Implant",
    "MetalPhantom",
    "pelvis_slice",
    "random_implants",
]

#: HU of the tissues of :func:`pelvis_slice`
PELVIS_HU: Mapping[str, float] = {
    "fat": -100.0,
    "muscle": 50.0,
    "bladder": 10.0,
    "rectum": 30.0,
    "gas": -1000.0,
    "cortical_bone": 1000.0,
    "cancellous_bone": 250.0,
    "pelvic_bone": 600.0,
}

# (tissue, semi_axis_y, semi_axis_x, center_y, center_x, angle in degrees), painted in order;
# anterior at the top (-y), the patient's right on the left of the display (-x)
_PELVIS: tuple[tuple[str, float, float, float, float, float], ...] = (
    ("fat", 125.0, 190.0, 0.0, 0.0, 0.0),
    ("muscle", 112.0, 176.0, 2.0, 0.0, 0.0),
    ("bladder", 32.0, 42.0, -45.0, 0.0, 0.0),
    ("rectum", 16.0, 16.0, 62.0, 0.0, 0.0),
    ("gas", 6.0, 7.0, 60.0, 1.0, 0.0),
    ("pelvic_bone", 14.0, 38.0, 96.0, 0.0, 0.0),  # sacrum / coccyx
    *(
        layer
        for side in (-1.0, 1.0)
        for layer in (
            ("pelvic_bone", 40.0, 22.0, 8.0, side * 78.0, side * -20.0),  # acetabulum
            ("cortical_bone", 26.0, 26.0, 0.0, side * 95.0, 0.0),  # femoral head
            ("cancellous_bone", 21.5, 21.5, 0.0, side * 95.0, 0.0),
        )
    ),
)
# uniform muscle discs next to the joints, for the streak index: (radius, cy, cx)
_STREAK_ROIS = {"streak_right": (10.0, 15.0, -45.0), "streak_left": (10.0, 15.0, 45.0)}


@dataclasses.dataclass(frozen=True)
class Implant:
    """A cylindrical (elliptical) metal implant crossing the slice.

    Attributes
    ----------
    center_y, center_x : float
        Centre in mm (world coordinates, the volume's frame).
    radius_y, radius_x : float
        Semi-axes in mm (> 0).
    material : str
        Name of a material of :mod:`~medrecon.ct.simulate.materials` (``"titanium"``,
        ``"steel"``, ``"iron"``, ``"gold"``, ``"amalgam"``, ...).
    """

    center_y: float
    center_x: float
    radius_y: float
    radius_x: float
    material: str = "titanium"

    def __post_init__(self) -> None:
        for name in ("center_y", "center_x", "radius_y", "radius_x"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"Implant.{name}: expected a finite number in mm, got {v!r}")
        if self.radius_y <= 0 or self.radius_x <= 0:
            raise ValueError(
                f"Implant radii: expected values > 0 mm, got {self.radius_y}, {self.radius_x}"
            )
        if not isinstance(self.material, str) or not self.material:
            raise ValueError(f"Implant.material: expected a material name, got {self.material!r}")


#: the default: a 28 mm titanium prosthesis head in each femoral head
HIP_IMPLANTS: tuple[Implant, ...] = (
    Implant(0.0, -95.0, 14.0, 14.0, "titanium"),
    Implant(0.0, 95.0, 14.0, 14.0, "titanium"),
)


@dataclasses.dataclass(frozen=True)
class MetalPhantom:
    """Tissue and implants of a metal phantom, on one grid.

    Attributes
    ----------
    tissue_hu : ndarray
        HU of the tissue (no metal; the tissue the implants sit in continues under them).
    metal_fraction : dict of str to ndarray
        Per implant material, the fraction of each voxel it fills (0..1).
    rois : dict of str to ndarray of bool
        ``"body"``, ``"bone"`` and uniform muscle discs ``"streak_right"``/``"streak_left"``
        next to the joints (radius 10 mm, or 1.5 voxels on grids coarser than 6.7 mm; no
        partial-volume voxels).
    implants : tuple of Implant
    """

    tissue_hu: np.ndarray
    metal_fraction: dict[str, np.ndarray]
    rois: dict[str, np.ndarray]
    implants: tuple[Implant, ...]

    @property
    def metal_mask(self) -> np.ndarray:
        """Voxels at least half filled by metal."""
        total = sum(self.metal_fraction.values(), np.zeros(self.tissue_hu.shape))
        return np.asarray(total >= 0.5)


def _check_implants(implants: Any) -> tuple[Implant, ...]:
    items = tuple(implants)
    for imp in items:
        if not isinstance(imp, Implant):
            raise TypeError(f"implants: expected Implant objects, got {type(imp).__name__}")
    return items


def pelvis_slice(
    volume: VolumeGeometry,
    *,
    implants: Sequence[Implant] = HIP_IMPLANTS,
    oversample: int = 4,
) -> MetalPhantom:
    """An axial pelvis slice through the hip joints, with metal implants.

    Parameters
    ----------
    volume : VolumeGeometry
        2D ``(ny, nx)`` grid, or 3D (the slice repeats along z). The pelvis is centred on the
        world origin and needs a 380 x 250 mm (x by y) field of view.
    implants : sequence of Implant
        Metal objects (default :data:`HIP_IMPLANTS`); may be empty.
    oversample : int
        Sub-samples per pixel and axis (partial volume at edges, also of the metal).

    Returns
    -------
    MetalPhantom

    Examples
    --------
    >>> ph = pelvis_slice(VolumeGeometry(shape=(100, 160), voxel_size=2.5))
    >>> [round(float(ph.tissue_hu[50, c])) for c in (0, 40, 80)]  # air, femoral head, muscle
    [-1000, 250, 50]
    >>> sorted(ph.metal_fraction), int(ph.metal_mask.sum()) > 0
    (['titanium'], True)
    """
    vol = check_volume(volume, (2, 3))
    k = check_oversample(oversample)
    items = _check_implants(implants)
    plane = _in_plane(vol)
    (y0, y1), (x0, x1) = plane.extent
    # the pelvis is centred on the world origin: the grid must cover [-125, 125] x [-190, 190]
    if min(-y0, y1) < 125.0 - 1e-6 or min(-x0, x1) < 190.0 - 1e-6:
        raise GeometryError(
            f"volume: the pelvis needs a field of view of at least 250 x 380 mm (y, x) around "
            f"the world origin, got y in [{y0:.1f}, {y1:.1f}] and x in [{x0:.1f}, {x1:.1f}] mm"
        )
    # +1000 so that air is 0 and REPLACE painting starts from air
    shifted = {t: v + 1000.0 for t, v in PELVIS_HU.items()}
    hu = ellipses(plane, _layer_params(_PELVIS, shifted), combine=Combine.REPLACE, oversample=k)
    hu -= 1000.0
    rois: dict[str, np.ndarray] = {}
    regions = {
        "body": set(PELVIS_HU),
        "bone": {"cortical_bone", "cancellous_bone", "pelvic_bone"},
    }
    for name, tissues in regions.items():
        member = {t: (1.0 if t in tissues else 0.0) for t in PELVIS_HU}
        frac = ellipses(
            plane, _layer_params(_PELVIS, member), combine=Combine.REPLACE, oversample=k
        )
        rois[name] = _extrude(frac >= 1.0 - 1e-9, vol)
    fractions: dict[str, np.ndarray] = {}
    for imp in items:
        f = ellipses(
            plane,
            [[1.0, imp.radius_y, imp.radius_x, imp.center_y, imp.center_x, 0.0]],
            oversample=k,
        )
        prev = fractions.get(imp.material, np.zeros(plane.shape))
        fractions[imp.material] = np.minimum(prev + f, 1.0)
    metal_any = sum(fractions.values(), np.zeros(plane.shape)) > 0
    # on coarse grids the discs grow so that they hold whole voxels
    r_min = 1.5 * float(max(plane.voxel_size))
    for name, (r0, cy, cx) in _STREAK_ROIS.items():
        r = max(r0, r_min)
        frac = ellipses(plane, [[1.0, r, r, cy, cx, 0.0]], oversample=k)
        rois[name] = _extrude((frac >= 1.0 - 1e-9) & ~metal_any, vol)
    return MetalPhantom(
        tissue_hu=_extrude(hu, vol),
        metal_fraction={m: _extrude(f, vol) for m, f in fractions.items()},
        rois=rois,
        implants=items,
    )


def random_implants(
    rng: np.random.Generator | int,
    *,
    n_implants: tuple[int, int] = (1, 3),
    radius_mm: tuple[float, float] = (3.0, 16.0),
    materials: Sequence[str] = ("titanium", "steel"),
) -> tuple[Implant, ...]:
    """Random implant sets inside the pelvis of :func:`pelvis_slice`.

    Each set has ``n_implants[0]..n_implants[1]`` round implants of one material, with radii
    drawn uniformly in ``radius_mm``; each sits either in a femoral head (prosthesis), in the
    sacrum (screw, small) or at a random point of the muscle (surgical clips and markers),
    without overlapping the others.

    Examples
    --------
    >>> imps = random_implants(0)
    >>> 1 <= len(imps) <= 3 and all(3.0 <= i.radius_x <= 16.0 for i in imps)
    True
    >>> random_implants(0) == random_implants(0)
    True
    """
    gen = check_rng(rng)
    lo, hi = n_implants
    if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi):
        raise ValueError(
            f"n_implants: expected (low, high) with 1 <= low <= high, got {n_implants}"
        )
    rlo, rhi = radius_mm
    if not 0 < rlo <= rhi:
        raise ValueError(f"radius_mm: expected (low, high) with 0 < low <= high, got {radius_mm}")
    if isinstance(materials, str):
        raise TypeError(f"materials: expected a sequence of material names, got {materials!r}")
    if not materials:
        raise ValueError("materials: expected at least one material name")
    material = str(materials[int(gen.integers(len(materials)))])
    n = int(gen.integers(lo, hi + 1))
    out: list[Implant] = []
    attempts = 0
    while len(out) < n and attempts < 200:
        attempts += 1
        r = float(gen.uniform(rlo, rhi))
        site = gen.choice(["femoral_head", "sacrum", "muscle"], p=[0.5, 0.15, 0.35])
        if site == "femoral_head":
            side = -1.0 if gen.random() < 0.5 else 1.0
            r = min(r, max(18.0, rlo))  # caps stay within radius_mm
            cy, cx = float(gen.uniform(-4, 4)), side * 95.0 + float(gen.uniform(-4, 4))
        elif site == "sacrum":
            r = min(r, max(6.0, rlo))
            cy, cx = 96.0, float(gen.uniform(-25.0, 25.0))
        else:
            # inside the muscle ellipse, away from the skin
            t = float(gen.uniform(0, 2 * np.pi))
            s = math.sqrt(float(gen.uniform(0.05, 0.55)))
            cy, cx = 2.0 + s * 100.0 * math.sin(t), s * 160.0 * math.cos(t)
        cand = Implant(cy, cx, r, r, material)
        if all(
            math.hypot(cand.center_y - o.center_y, cand.center_x - o.center_x)
            > cand.radius_x + o.radius_x + 4.0
            for o in out
        ):
            out.append(cand)
    return tuple(out)
