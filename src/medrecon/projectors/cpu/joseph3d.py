"""Joseph ray-driven projector for 3D geometries and its exact transpose (numba).

Geometry enters as per-view vectors in world coordinates, components
``(z, y, x)`` (see docs/conventions.md):

* ``mode 0`` parallel: ``a`` = ray direction, ray through the detector pixel;
* ``mode 1`` cone (flat panel): ``a`` = source, ray from the source through
  the detector pixel centre,

where detector pixel ``(row i, col j)`` has its centre at
``c + (j - (n_cols-1)/2) * u + (i - (n_rows-1)/2) * v``.

Each ray is sampled once per voxel plane perpendicular to its dominant axis
(the axis along which it moves fastest, in voxel units), with bilinear
interpolation in that plane and the ray length between neighbouring planes
as weight (Joseph 1982, in 3D). The transpose is organised by receiving
plane, as in :mod:`.joseph2d`: one thread owns a block of planes and loops
over every ray whose dominant axis is perpendicular to them, so the scatter
needs no atomics, and both directions use the same arithmetic.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from medrecon.projectors.cpu.joseph2d import PAD_HI, PAD_LO, plane_range

__all__ = ["adjoint_3d", "dominant_axes_3d", "forward_3d"]

_MAX_PLANE_BLOCK = 16
_JIT = {"nogil": True, "cache": True, "error_model": "numpy"}
_FAST = {"reassoc", "contract"}

# minor axes (in array order) for each dominant axis m = 0 (z), 1 (y), 2 (x)
_MINORS = ((1, 2), (0, 2), (0, 1))


@nb.njit(inline="always")
def _ray(mode, a, c, u, w, vi, i, j, half_r, half_c):  # type: ignore[no-untyped-def]
    """World point and direction of the ray through detector pixel (i, j) of view vi."""
    t = j - half_c
    s = i - half_r
    qz = c[vi, 0] + t * u[vi, 0] + s * w[vi, 0]
    qy = c[vi, 1] + t * u[vi, 1] + s * w[vi, 1]
    qx = c[vi, 2] + t * u[vi, 2] + s * w[vi, 2]
    if mode == 0:
        return qz, qy, qx, a[vi, 0], a[vi, 1], a[vi, 2]
    return a[vi, 0], a[vi, 1], a[vi, 2], qz - a[vi, 0], qy - a[vi, 1], qx - a[vi, 2]


@nb.njit(inline="always")
def _setup(pz, py, px, dz, dy, dx, origin, spacing):  # type: ignore[no-untyped-def]
    """Dominant axis m and sampling parameters of a ray.

    Returns ``(m, b1, s1, b2, s2, weight)``: at plane ``k`` along axis ``m`` the
    ray sits at minor indices ``(b1 + k*s1, b2 + k*s2)``; the minor axes are
    ``_MINORS[m]``; ``weight`` is the ray length between planes (mm).
    """
    iz = (pz - origin[0]) / spacing[0]
    iy = (py - origin[1]) / spacing[1]
    ix = (px - origin[2]) / spacing[2]
    nz_ = dz / spacing[0]
    ny_ = dy / spacing[1]
    nx_ = dx / spacing[2]
    length = math.sqrt(dz * dz + dy * dy + dx * dx)
    az = abs(nz_)
    ay = abs(ny_)
    ax = abs(nx_)
    if ax >= ay and ax >= az:
        s1 = nz_ / nx_
        s2 = ny_ / nx_
        return 2, iz - ix * s1, s1, iy - ix * s2, s2, spacing[2] * length / abs(dx)
    if ay >= az:
        s1 = nz_ / ny_
        s2 = nx_ / ny_
        return 1, iz - iy * s1, s1, ix - iy * s2, s2, spacing[1] * length / abs(dy)
    s1 = ny_ / nz_
    s2 = nx_ / nz_
    return 0, iy - iz * s1, s1, ix - iz * s2, s2, spacing[0] * length / abs(dz)


@nb.njit(inline="always")
def _range2(b1, s1, n1, b2, s2, n2, n_major):  # type: ignore[no-untyped-def]
    lo1, hi1 = plane_range(b1, s1, n1, n_major)
    lo2, hi2 = plane_range(b2, s2, n2, n_major)
    return max(lo1, lo2), min(hi1, hi2)


@nb.njit(parallel=True, **_JIT)
def dominant_axes_3d(mode, a, c, u, w, origin, spacing, det_shape):  # type: ignore[no-untyped-def]
    """Boolean (3,) array: which axes dominate at least one ray."""
    n_views = a.shape[0]
    n_r, n_c = det_shape
    half_r = 0.5 * (n_r - 1)
    half_c = 0.5 * (n_c - 1)
    counts = np.zeros((n_views, 3), dtype=np.int64)
    for vi in nb.prange(n_views):
        for i in range(n_r):
            for j in range(n_c):
                pz, py, px, dz, dy, dx = _ray(mode, a, c, u, w, vi, i, j, half_r, half_c)
                m, _, _, _, _, _ = _setup(pz, py, px, dz, dy, dx, origin, spacing)
                counts[vi, m] += 1
    return counts.sum(axis=0) > 0


@nb.njit(parallel=True, fastmath=_FAST, **_JIT)
def _forward_kernel(vol_z, vol_y, vol_x, shape, mode, a, c, u, w, origin, spacing, out):  # type: ignore[no-untyped-def]
    n_batch, n_views, n_r, n_c = out.shape
    half_r = 0.5 * (n_r - 1)
    half_c = 0.5 * (n_c - 1)
    cast = out.dtype.type  # float32 data is interpolated and summed in float32
    for task in nb.prange(n_batch * n_views * n_r):
        b = task // (n_views * n_r)
        vi = (task // n_r) % n_views
        i = task % n_r
        for j in range(n_c):
            pz, py, px, dz, dy, dx = _ray(mode, a, c, u, w, vi, i, j, half_r, half_c)
            m, b1, s1, b2, s2, weight = _setup(pz, py, px, dz, dy, dx, origin, spacing)
            if m == 2:
                vol = vol_x
                n1 = shape[0]
                n2 = shape[1]
                n_major = shape[2]
            elif m == 1:
                vol = vol_y
                n1 = shape[0]
                n2 = shape[2]
                n_major = shape[1]
            else:
                vol = vol_z
                n1 = shape[1]
                n2 = shape[2]
                n_major = shape[0]
            lo, hi = _range2(b1, s1, n1, b2, s2, n2, n_major)
            acc = cast(0.0)
            o1 = b1 + PAD_LO
            o2 = b2 + PAD_LO
            for k in range(lo, hi + 1):
                p1 = o1 + k * s1
                p2 = o2 + k * s2
                i1 = int(p1)
                i2 = int(p2)
                f1 = cast(p1 - i1)
                f2 = cast(p2 - i2)
                v00 = vol[b, k, i1, i2]
                v01 = vol[b, k, i1, i2 + 1]
                v10 = vol[b, k, i1 + 1, i2]
                v11 = vol[b, k, i1 + 1, i2 + 1]
                r0 = v00 + f2 * (v01 - v00)
                r1 = v10 + f2 * (v11 - v10)
                acc += r0 + f1 * (r1 - r0)
            out[b, vi, i, j] = acc * weight


def _slab(vol: np.ndarray, m: int) -> np.ndarray:
    """Copy (B, nz, ny, nx) with axis m first and both minor axes zero-padded."""
    n1_axis, n2_axis = _MINORS[m]
    t = vol.transpose(0, 1 + m, 1 + n1_axis, 1 + n2_axis)
    n_b, n_m, n1, n2 = t.shape
    out = np.zeros((n_b, n_m, n1 + PAD_LO + PAD_HI, n2 + PAD_LO + PAD_HI), dtype=vol.dtype)
    out[:, :, PAD_LO : PAD_LO + n1, PAD_LO : PAD_LO + n2] = t
    return out


def forward_3d(
    vol: np.ndarray,
    mode: int,
    vectors: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    origin: np.ndarray,
    spacing: np.ndarray,
    det_shape: tuple[int, int],
    axes: np.ndarray,
) -> np.ndarray:
    """Forward projection of ``vol`` (B, nz, ny, nx) -> (B, n_views, n_rows, n_cols)."""
    a, c, u, w = vectors
    empty = np.zeros((1, 1, 1, 1), dtype=vol.dtype)
    slabs = [_slab(vol, m) if axes[m] else empty for m in range(3)]
    out = np.empty((vol.shape[0], a.shape[0], det_shape[0], det_shape[1]), dtype=vol.dtype)
    shape = np.array(vol.shape[1:], dtype=np.int64)
    _forward_kernel(slabs[0], slabs[1], slabs[2], shape, mode, a, c, u, w, origin, spacing, out)
    return out


@nb.njit(parallel=True, fastmath=_FAST, **_JIT)
def _adjoint_pass(proj, which, shape, mode, a, c, u, w, origin, spacing, block, out):  # type: ignore[no-untyped-def]
    """Scatter rays dominated by axis ``which`` into padded ``out`` (B, n_m, n1+5, n2+5)."""
    n_batch, n_views, n_r, n_c = proj.shape
    half_r = 0.5 * (n_r - 1)
    half_c = 0.5 * (n_c - 1)
    if which == 2:
        n1 = shape[0]
        n2 = shape[1]
    elif which == 1:
        n1 = shape[0]
        n2 = shape[2]
    else:
        n1 = shape[1]
        n2 = shape[2]
    n_major = shape[which]
    n_blocks = (n_major + block - 1) // block
    cast = out.dtype.type
    for task in nb.prange(n_batch * n_blocks):
        b = task // n_blocks
        k_lo = (task % n_blocks) * block
        k_hi = min(k_lo + block, n_major) - 1
        for vi in range(n_views):
            for i in range(n_r):
                for j in range(n_c):
                    pz, py, px, dz, dy, dx = _ray(mode, a, c, u, w, vi, i, j, half_r, half_c)
                    m, b1, s1, b2, s2, weight = _setup(pz, py, px, dz, dy, dx, origin, spacing)
                    if m != which:
                        continue
                    lo, hi = _range2(b1, s1, n1, b2, s2, n2, n_major)
                    if lo < k_lo:
                        lo = k_lo
                    if hi > k_hi:
                        hi = k_hi
                    if lo > hi:
                        continue
                    val = cast(proj[b, vi, i, j] * weight)
                    o1 = b1 + PAD_LO
                    o2 = b2 + PAD_LO
                    for k in range(lo, hi + 1):
                        p1 = o1 + k * s1
                        p2 = o2 + k * s2
                        i1 = int(p1)
                        i2 = int(p2)
                        f1 = cast(p1 - i1)
                        f2 = cast(p2 - i2)
                        g1 = val * f1
                        g0 = val - g1
                        out[b, k, i1, i2] += g0 - g0 * f2
                        out[b, k, i1, i2 + 1] += g0 * f2
                        out[b, k, i1 + 1, i2] += g1 - g1 * f2
                        out[b, k, i1 + 1, i2 + 1] += g1 * f2


def adjoint_3d(
    proj: np.ndarray,
    mode: int,
    vectors: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    origin: np.ndarray,
    spacing: np.ndarray,
    shape: tuple[int, int, int],
    axes: np.ndarray,
) -> np.ndarray:
    """Exact transpose of :func:`forward_3d`: (B, n_views, n_rows, n_cols) -> (B, nz, ny, nx)."""
    a, c, u, w = vectors
    n_batch = proj.shape[0]
    shape_arr = np.array(shape, dtype=np.int64)
    # accumulate in the data's precision (float32 data: float32 sums)
    out = np.zeros((n_batch, *shape), dtype=proj.dtype)
    for m in range(3):
        if not axes[m]:
            continue
        n1_axis, n2_axis = _MINORS[m]
        n1, n2 = shape[n1_axis], shape[n2_axis]
        acc = np.zeros(
            (n_batch, shape[m], n1 + PAD_LO + PAD_HI, n2 + PAD_LO + PAD_HI), dtype=proj.dtype
        )
        # each task recomputes every ray once, so blocks are as thick as the
        # thread count allows (about four tasks per thread)
        block = max(1, min(_MAX_PLANE_BLOCK, -(-shape[m] // (4 * nb.get_num_threads()))))
        _adjoint_pass(proj, m, shape_arr, mode, a, c, u, w, origin, spacing, block, acc)
        core = acc[:, :, PAD_LO : PAD_LO + n1, PAD_LO : PAD_LO + n2]
        # core axes are (B, m, n1_axis, n2_axis): put them back in (z, y, x) order
        order = [0, 0, 0]
        order[m], order[n1_axis], order[n2_axis] = 1, 2, 3
        out += core.transpose(0, *order)
    return out
