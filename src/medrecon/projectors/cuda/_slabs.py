"""Split projector work into batch chunks, z-slabs and view chunks that fit a memory budget.

Pure planning and assembly, written over an abstract *executor* (:class:`SlabExecutor`) so that
the same code runs on the GPU (the CuPy backend's executor) and on the CPU (:class:`HostExecutor`,
the host build of the kernels), where the tests check that split equals unsplit.

Why splitting is exact (``kernels/README.md``, "Slabs"): a z-slab ``[z0, z1)`` of a volume is
the volume ``(z1 - z0, ny, nx)`` whose origin is shifted by ``z0 * spacing_z``; interpolation
reads zero outside it, so

* **forward**: the Joseph projections of the slabs add up to the projection of the whole
  volume. The ``fast`` forward does *not* add up exactly (each slab clips a ray to its own box,
  which moves the fixed-step sample points; differences are of the order of its sampling
  error), so it is split along views and batch items only, unless the volume alone does not
  fit;
* **adjoint / backprojection**: the result for a slab is that slab of the whole result;
* **views**: a view chunk uses rows ``[v0, v1)`` of the geometry arrays; forward projections of
  view chunks are the matching view rows of the whole projection, and the adjoint and the
  backprojection are sums over views, so view chunks add up.

Batch items are independent. 2D data (batched slices) have no z axis: they split along batch
items and views only (``nz = 1`` below).

Memory model (bytes, float32 elements): ``b`` batch items, ``dz`` planes, ``dv`` views per work
item, ``P`` elements per volume plane, ``V`` per view:

=============  ===========================  ==========================================
operation      device input                 device output and temporaries
=============  ===========================  ==========================================
forward        ``b dz P`` (+ a texture copy  ``b dv V`` (+ ``b dv V`` accumulator when
               ``dz P`` in ``fast`` 3D)       there is more than one z-slab)
adjoint        ``b dv V``                    ``b dz P`` (the kernel accumulates itself)
backproject    ``b dv V``                    ``b dz P`` (+ ``b dz P`` accumulator when there
                                             is more than one view chunk)
=============  ===========================  ==========================================

An input already on the device costs nothing while the work is not split.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from medrecon.errors import GeometryError
from medrecon.geometry import ConeBeamVec, FanBeamVec, ParallelVec, VolumeGeometry

__all__ = [
    "HostExecutor",
    "KernelGeometry",
    "Operation",
    "Sizes",
    "SlabExecutor",
    "SlabPlan",
    "kernel_geometry",
    "plan_slabs",
    "run",
]

#: bytes of one stored element (the kernels work in float32)
ITEMSIZE = 4
#: planning cost of one work item, in bytes moved (launch and synchronisation overhead)
_ITEM_COST = 1 << 20


class Operation(enum.Enum):
    """The three projector operations the planner knows."""

    FORWARD = "forward"
    ADJOINT = "adjoint"
    BACKPROJECT = "backproject"


# ------------------------------------------------------------------------------ geometry


@dataclass(frozen=True)
class KernelGeometry:
    """A geometry in the form the kernels take (``kernels/README.md``, "ABI").

    Attributes
    ----------
    mode : int
        2D: 0 parallel, 1 flat fan, 2 arc fan; 3D: 0 parallel, 1 cone.
    vectors : tuple of ndarray
        ``(a, c, u)`` in 2D, ``(a, c, u, w)`` in 3D, each C-contiguous float64
        ``(n_views, ndim)`` in array-axis order (mm).
    origin, spacing : ndarray of shape (ndim,)
        Centre of voxel 0 and voxel size (mm).
    vol_shape : tuple of int
        ``(ny, nx)`` or ``(nz, ny, nx)``.
    det_shape : tuple of int
        ``(n_det,)`` or ``(n_rows, n_cols)``.
    """

    mode: int
    vectors: tuple[np.ndarray, ...]
    origin: np.ndarray
    spacing: np.ndarray
    vol_shape: tuple[int, ...]
    det_shape: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.vol_shape)

    @property
    def n_views(self) -> int:
        return int(self.vectors[0].shape[0])

    @property
    def proj_shape(self) -> tuple[int, ...]:
        return (self.n_views, *self.det_shape)

    def slab_origin(self, z0: int) -> np.ndarray:
        """Origin of the z-slab starting at plane ``z0`` (3D); the origin itself in 2D."""
        if self.ndim == 2 or z0 == 0:
            return self.origin
        shifted = self.origin.copy()
        shifted[0] += z0 * self.spacing[0]
        return shifted


def _f64(a: Any) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def kernel_geometry(geometry: Any, volume: VolumeGeometry) -> KernelGeometry:
    """Convert a vector geometry and a volume into the kernels' arguments.

    Parameters
    ----------
    geometry : ParallelVec, FanBeamVec or ConeBeamVec
        The projector's geometry in vector form.
    volume : VolumeGeometry
        The voxel grid.

    Returns
    -------
    KernelGeometry

    Raises
    ------
    GeometryError
        If the geometry's dimension does not fit the volume's.
    """
    g = geometry
    if volume.ndim == 2:
        if isinstance(g, ParallelVec):
            mode = 0
            vecs: tuple[Any, ...] = (g.ray_dirs, g.det_centers, g.det_u)
        elif isinstance(g, FanBeamVec):
            mode = 1 if str(getattr(g.detector, "value", g.detector)) == "flat" else 2
            vecs = (g.sources, g.det_centers, g.det_u)
        else:
            raise GeometryError(f"a 2D volume needs a 2D geometry, got {type(g).__name__}")
        det: tuple[int, ...] = (int(g.det_shape[-1]),)
    else:
        if isinstance(g, ParallelVec) and g.det_v is not None:
            mode = 0
            vecs = (g.ray_dirs, g.det_centers, g.det_u, g.det_v)
        elif isinstance(g, ConeBeamVec):
            mode = 1
            vecs = (g.sources, g.det_centers, g.det_u, g.det_v)
        else:
            raise GeometryError(f"a 3D volume needs a 3D geometry, got {type(g).__name__}")
        det = (int(g.det_shape[0]), int(g.det_shape[1]))
    return KernelGeometry(
        mode=mode,
        vectors=tuple(_f64(v) for v in vecs),
        origin=_f64(volume.origin),
        spacing=_f64(volume.voxel_size),
        vol_shape=tuple(int(s) for s in volume.shape),
        det_shape=det,
    )


# ------------------------------------------------------------------------------ planning


@dataclass(frozen=True)
class Sizes:
    """Sizes of one operation (elements, not bytes).

    ``nz`` is 1 and ``plane`` the whole image for 2D data.
    """

    n_batch: int
    nz: int
    plane: int
    n_views: int
    view: int

    @classmethod
    def of(cls, kg: KernelGeometry, n_batch: int) -> Sizes:
        """The sizes of ``n_batch`` items of the geometry ``kg``."""
        vol = kg.vol_shape
        nz = vol[0] if kg.ndim == 3 else 1
        plane = math.prod(vol[1:]) if kg.ndim == 3 else math.prod(vol)
        return cls(int(n_batch), int(nz), int(plane), kg.n_views, math.prod(kg.det_shape))


@dataclass(frozen=True)
class SlabPlan:
    """Work items: every combination of a batch chunk, a z-slab and a view chunk.

    Each range is ``(start, stop)``. ``peak_bytes`` is the planner's estimate of the device
    memory one work item needs.
    """

    batches: tuple[tuple[int, int], ...]
    slabs: tuple[tuple[int, int], ...]
    views: tuple[tuple[int, int], ...]
    peak_bytes: int

    @property
    def n_items(self) -> int:
        return len(self.batches) * len(self.slabs) * len(self.views)


def _ranges(n: int, size: int) -> tuple[tuple[int, int], ...]:
    """``[0, n)`` in consecutive pieces of ``size`` (the last one may be shorter)."""
    return tuple((i, min(i + size, n)) for i in range(0, n, size))


def _chunk_sizes(n: int) -> list[int]:
    """The distinct sizes ``ceil(n / k)`` for ``k = 1 .. n``, largest first."""
    out: list[int] = []
    k = 1
    while k <= n:
        size = -(-n // k)
        if not out or size != out[-1]:
            out.append(size)
        # next k that gives a smaller ceil(n / k)
        k = -(-n // (size - 1)) if size > 1 else n + 1
    return out


def work_bytes(
    op: Operation,
    s: Sizes,
    b: int,
    dz: int,
    dv: int,
    *,
    n_slabs: int,
    n_view_chunks: int,
    input_resident: bool = False,
    texture: bool = False,
) -> int:
    """Device bytes one work item of ``b`` items, ``dz`` planes and ``dv`` views needs.

    See the table in the module docstring. ``input_resident``: the input is already on the
    device and is used in place (no chunk copy); ``texture``: ``fast`` 3D forward, which copies
    one item's slab into a texture.
    """
    vol = b * dz * s.plane
    proj = b * dv * s.view
    if op is Operation.FORWARD:
        data_in = 0 if input_resident else vol
        extra = dz * s.plane if texture else 0
        out = proj * (2 if n_slabs > 1 else 1)
    else:
        data_in = 0 if input_resident else proj
        extra = 0
        accumulate = op is Operation.BACKPROJECT and n_view_chunks > 1
        out = vol * (2 if accumulate else 1)
    return ITEMSIZE * (data_in + out + extra)


def _transfer_cost(op: Operation, s: Sizes, n_slabs: int, n_view_chunks: int) -> int:
    vol = s.n_batch * s.nz * s.plane * ITEMSIZE
    proj = s.n_batch * s.n_views * s.view * ITEMSIZE
    if op is Operation.FORWARD:  # the volume is read once per view chunk
        return vol * n_view_chunks + proj
    return proj * n_slabs + vol  # the projections are read once per z-slab


def plan_slabs(
    op: Operation,
    sizes: Sizes,
    max_bytes: int,
    *,
    input_on_device: bool = False,
    texture: bool = False,
    split_z: bool = True,
) -> SlabPlan:
    """Choose batch chunks, z-slabs and view chunks whose work items fit ``max_bytes``.

    Parameters
    ----------
    op : Operation
        Forward projection, adjoint or backprojection.
    sizes : Sizes
        Sizes of the whole operation.
    max_bytes : int
        Device memory available to one work item (bytes).
    input_on_device : bool
        The input is already on the device: when nothing is split it is used in place.
    texture : bool
        ``fast`` 3D forward through a texture (one more copy of a slab).
    split_z : bool
        Allow z-slabs (default True). The ``fast`` forward is not exactly additive over
        z-slabs (each slab clips the rays to its own box, which moves the sample points), so
        the backend plans it with ``split_z=False`` first.

    Returns
    -------
    SlabPlan
        A single work item when everything fits; otherwise, among the splits that fit, the one
        that moves the fewest bytes (each work item counted as 1 MiB more), preferring few
        batch chunks.

    Raises
    ------
    MemoryError
        If even one batch item, one plane and one view do not fit.
    """
    s = sizes
    kw = {"texture": texture}
    whole = work_bytes(
        op,
        s,
        s.n_batch,
        s.nz,
        s.n_views,
        n_slabs=1,
        n_view_chunks=1,
        input_resident=input_on_device,
        **kw,
    )
    if whole <= max_bytes:
        return SlabPlan(((0, s.n_batch),), ((0, s.nz),), ((0, s.n_views),), whole)
    best: tuple[int, int, SlabPlan] | None = None
    for b in _chunk_sizes(s.n_batch):
        n_b = -(-s.n_batch // b)
        for dv in _chunk_sizes(s.n_views):
            n_v = -(-s.n_views // dv)
            # bytes are affine in dz: solve for the largest dz, assuming several slabs
            zero = work_bytes(op, s, b, 0, dv, n_slabs=2, n_view_chunks=n_v, **kw)
            per = work_bytes(op, s, b, 1, dv, n_slabs=2, n_view_chunks=n_v, **kw) - zero
            dz = min(s.nz, (max_bytes - zero) // per) if per > 0 else s.nz
            if dz < 1 or (dz < s.nz and not split_z):
                continue
            n_z = -(-s.nz // dz)
            need = work_bytes(op, s, b, dz, dv, n_slabs=n_z, n_view_chunks=n_v, **kw)
            if need > max_bytes:  # pragma: no cover - the affine solve is conservative
                continue
            n_items = n_b * n_z * n_v
            cost = _transfer_cost(op, s, n_z, n_v) + n_items * _ITEM_COST
            plan = SlabPlan(_ranges(s.n_batch, b), _ranges(s.nz, dz), _ranges(s.n_views, dv), need)
            if best is None or (cost, n_b) < (best[0], best[1]):
                best = (cost, n_b, plan)
    if best is None:
        dz = 1 if split_z else s.nz
        smallest = work_bytes(op, s, 1, dz, 1, n_slabs=2, n_view_chunks=2, **kw)
        what = "one z-plane" if split_z else f"all {s.nz} z-planes (z-splitting is off)"
        raise MemoryError(
            f"{op.value}: even one batch item, {what} and one view need {smallest} bytes "
            f"of device memory, more than the {max_bytes} bytes available"
        )
    return best[2]


# ------------------------------------------------------------------------------ assembly


class SlabExecutor(Protocol):
    """What :func:`run` needs from a device: data movement and the three kernels.

    "Device arrays" are whatever the executor computes on (CuPy arrays on the GPU, numpy
    arrays for :class:`HostExecutor`); the input and output of :func:`run` may live elsewhere
    (host numpy arrays), and the executor moves them.
    """

    def load(self, data: Any, index: tuple[slice, ...]) -> Any:
        """``data[index]`` as a C-contiguous float32 device array."""

    def forward(self, x: Any, z0: int, views: tuple[int, int]) -> Any:
        """Forward projection of the slab ``x`` (first plane ``z0``) for views ``[v0, v1)``."""

    def adjoint(self, y: Any, out: Any, z0: int, views: tuple[int, int]) -> None:
        """Add the adjoint of ``y`` (views ``[v0, v1)``) into the slab ``out``."""

    def backproject(self, y: Any, z0: int, nz: int, views: tuple[int, int], weighting: int) -> Any:
        """Backprojection of ``y`` (views ``[v0, v1)``) onto the slab of ``nz`` planes."""

    def zeros(self, shape: tuple[int, ...]) -> Any:
        """A zeroed float32 device array."""

    def iadd(self, acc: Any, part: Any) -> None:
        """``acc += part`` on the device."""

    def finish(self, result: Any) -> Any:
        """A whole result (one work item) in the output's kind (download for host outputs)."""

    def new_output(self, shape: tuple[int, ...]) -> Any:
        """The float32 output array that :meth:`store` fills (host or device)."""

    def store(self, out: Any, index: tuple[slice, ...], part: Any) -> None:
        """``out[index] = part``."""


def run(
    ex: SlabExecutor,
    op: Operation,
    data: Any,
    plan: SlabPlan,
    kg: KernelGeometry,
    *,
    weighting: int = 0,
) -> Any:
    """Run one operation on ``data`` (one leading batch axis) work item by work item.

    Parameters
    ----------
    ex : SlabExecutor
        The device.
    op : Operation
        What to compute.
    data : array
        Volumes ``(B, *vol_shape)`` for the forward, projections ``(B, *proj_shape)`` else.
    plan : SlabPlan
        From :func:`plan_slabs`.
    kg : KernelGeometry
        The geometry.
    weighting : int
        Backprojection weighting (0 none, 1 fdk).

    Returns
    -------
    array
        The float32 result, as :meth:`SlabExecutor.finish` / :meth:`SlabExecutor.new_output`
        make it.
    """
    n_batch = int(data.shape[0])
    three_d = kg.ndim == 3
    nz = kg.vol_shape[0] if three_d else 1
    all_views = (0, kg.n_views)
    if plan.n_items == 1:
        whole = ex.load(data, (slice(None),))
        if op is Operation.FORWARD:
            return ex.finish(ex.forward(whole, 0, all_views))
        if op is Operation.ADJOINT:
            out = ex.zeros((n_batch, *kg.vol_shape))
            ex.adjoint(whole, out, 0, all_views)
            return ex.finish(out)
        return ex.finish(ex.backproject(whole, 0, nz, all_views, weighting))

    def vol_index(b0: int, b1: int, z0: int, z1: int) -> tuple[slice, ...]:
        return (slice(b0, b1), slice(z0, z1)) if three_d else (slice(b0, b1),)

    if op is Operation.FORWARD:
        result = ex.new_output((n_batch, *kg.proj_shape))
        for b0, b1 in plan.batches:
            for v0, v1 in plan.views:
                acc = None
                for z0, z1 in plan.slabs:
                    part = ex.forward(ex.load(data, vol_index(b0, b1, z0, z1)), z0, (v0, v1))
                    if acc is None:
                        acc = part
                    else:
                        ex.iadd(acc, part)
                    del part
                ex.store(result, (slice(b0, b1), slice(v0, v1)), acc)
                del acc
        return result

    result = ex.new_output((n_batch, *kg.vol_shape))
    for b0, b1 in plan.batches:
        for z0, z1 in plan.slabs:
            slab_shape = (
                (b1 - b0, z1 - z0, *kg.vol_shape[1:]) if three_d else (b1 - b0, *kg.vol_shape)
            )
            acc = ex.zeros(slab_shape) if op is Operation.ADJOINT else None
            for v0, v1 in plan.views:
                chunk = ex.load(data, (slice(b0, b1), slice(v0, v1)))
                if op is Operation.ADJOINT:
                    ex.adjoint(chunk, acc, z0, (v0, v1))
                else:
                    part = ex.backproject(chunk, z0, z1 - z0, (v0, v1), weighting)
                    if acc is None:
                        acc = part
                    else:
                        ex.iadd(acc, part)
                    del part
                del chunk
            ex.store(result, vol_index(b0, b1, z0, z1), acc)
            del acc
    return result


# --------------------------------------------------------------------- the host executor


class HostExecutor:
    """:class:`SlabExecutor` on the CPU through the host build of the kernels.

    The reference executor of the tests: the same planner and assembly as on the GPU, with the
    kernels' per-thread bodies run by :mod:`medrecon.projectors.cuda._host`. Matched mode only
    (Joseph forward, its transpose, voxel-driven backprojection).

    Parameters
    ----------
    kernels : HostKernels
        A loaded host library (:func:`medrecon.projectors.cuda._host.load`).
    kg : KernelGeometry
        The geometry.
    """

    def __init__(self, kernels: Any, kg: KernelGeometry) -> None:
        self.k = kernels
        self.kg = kg
        #: number of kernel launches so far (the tests check that a plan really split)
        self.launches = 0

    def _vecs(self, views: tuple[int, int]) -> tuple[np.ndarray, ...]:
        v0, v1 = views
        return tuple(np.ascontiguousarray(v[v0:v1]) for v in self.kg.vectors)

    def load(self, data: Any, index: tuple[slice, ...]) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(data)[index], dtype=np.float32)

    def forward(self, x: np.ndarray, z0: int, views: tuple[int, int]) -> np.ndarray:
        self.launches += 1
        kg = self.kg
        args = (kg.mode, self._vecs(views), kg.slab_origin(z0), kg.spacing)
        if kg.ndim == 2:
            return self.k.forward_2d(x, *args, kg.det_shape[0])
        return self.k.forward_3d(x, *args, kg.det_shape)

    def adjoint(self, y: np.ndarray, out: np.ndarray, z0: int, views: tuple[int, int]) -> None:
        self.launches += 1
        kg = self.kg
        args = (kg.mode, self._vecs(views), kg.slab_origin(z0), kg.spacing, out.shape[1:])
        out += self.k.adjoint_2d(y, *args) if kg.ndim == 2 else self.k.adjoint_3d(y, *args)

    def backproject(
        self, y: np.ndarray, z0: int, nz: int, views: tuple[int, int], weighting: int
    ) -> np.ndarray:
        self.launches += 1
        kg = self.kg
        if kg.ndim == 2:
            args2 = (kg.mode, self._vecs(views), kg.origin, kg.spacing, kg.vol_shape)
            return self.k.backproject_2d(y, *args2, weighting)
        shape = (nz, *kg.vol_shape[1:])
        args3 = (kg.mode, self._vecs(views), kg.slab_origin(z0), kg.spacing, shape)
        return self.k.backproject_3d(y, *args3, weighting)

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, dtype=np.float32)

    def iadd(self, acc: np.ndarray, part: np.ndarray) -> None:
        acc += part

    def finish(self, result: np.ndarray) -> np.ndarray:
        return result

    def new_output(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, dtype=np.float32)

    def store(self, out: np.ndarray, index: tuple[slice, ...], part: np.ndarray) -> None:
        out[index] = part


def describe(plan: SlabPlan) -> str:
    """One line describing a plan (for logs and error messages)."""

    def sizes(r: Sequence[tuple[int, int]]) -> str:
        return f"{len(r)} x {max(b - a for a, b in r)}"

    return (
        f"{plan.n_items} work item(s): batch {sizes(plan.batches)}, z-slabs {sizes(plan.slabs)}, "
        f"views {sizes(plan.views)}; about {plan.peak_bytes / 2**20:.1f} MiB each"
    )
