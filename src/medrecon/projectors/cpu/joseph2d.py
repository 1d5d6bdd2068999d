"""Joseph ray-driven projector for 2D geometries and its exact transpose (numba).

Geometry enters as per-view vectors in world coordinates, components
``(y, x)`` (see docs/conventions.md):

* ``mode 0`` parallel: ``a`` = ray direction, ray through ``c + t*u``;
* ``mode 1`` flat fan: ``a`` = source, ray from the source through ``c + t*u``;
* ``mode 2`` arc fan: ``a`` = source, ray from the source at angle
  ``t*|u|/|c-a|`` from the central ray, turning towards ``u``,

with ``t = j - (n_det-1)/2`` for detector element ``j``.

The model (Joseph 1982): a ray whose direction is dominated by x (in voxel
units) is sampled once per image column ``ix`` at its crossing with the
plane ``x = x_ix``; the image is interpolated linearly along y there, and
each sample is weighted by the ray length between neighbouring planes,
``dx * |D| / |D_x|`` (mm). Rays dominated by y are treated the same way with
the roles of x and y swapped. Values outside the image are zero.

The transpose scatters each sample back with the same weights. To do this
in parallel without atomics, it is organised by the image plane that
receives the values: one thread owns a block of columns (for x-dominated
rays) or rows (for y-dominated rays) and loops over all rays, so no two
threads write the same pixel. Forward and transpose compute the sample
positions with the same arithmetic, which makes the pair an exact
transpose up to floating-point rounding.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["adjoint_2d", "forward_2d", "ray_params_2d"]

_MAX_PLANE_BLOCK = 64

_JIT = {"nogil": True, "cache": True, "error_model": "numpy"}
# reassociation lets LLVM vectorise the sums; forward and transpose stay
# transposes of each other up to rounding
_FAST = {"reassoc", "contract"}


@nb.njit(parallel=True, **_JIT)
def ray_params_2d(mode, a, c, u, origin, spacing, n_det):  # type: ignore[no-untyped-def]
    """Per-ray sampling parameters.

    Returns ``params`` of shape ``(n_views, n_det, 3)`` holding
    ``(offset, slope, weight)`` such that the minor-axis index of the ray at
    major-axis plane ``k`` is ``offset + k * slope``, and ``major`` of shape
    ``(n_views, n_det)``: 1 when x (axis 1) dominates, 0 when y does.
    """
    n_views = a.shape[0]
    params = np.empty((n_views, n_det, 3))
    major = np.empty((n_views, n_det), dtype=np.int8)
    half = 0.5 * (n_det - 1)
    for v in nb.prange(n_views):
        uy = u[v, 0]
        ux = u[v, 1]
        if mode == 2:
            cy = c[v, 0] - a[v, 0]
            cx = c[v, 1] - a[v, 1]
            radius = math.sqrt(cy * cy + cx * cx)
            ulen = math.sqrt(uy * uy + ux * ux)
            # unit vector perpendicular to the central ray, on the side of u
            py = -cx / radius
            px = cy / radius
            if py * uy + px * ux < 0.0:
                py = -py
                px = -px
        for j in range(n_det):
            t = j - half
            if mode == 0:
                py0 = c[v, 0] + t * uy
                px0 = c[v, 1] + t * ux
                dy = a[v, 0]
                dx = a[v, 1]
            elif mode == 1:
                py0 = a[v, 0]
                px0 = a[v, 1]
                dy = c[v, 0] + t * uy - py0
                dx = c[v, 1] + t * ux - px0
            else:
                py0 = a[v, 0]
                px0 = a[v, 1]
                gamma = t * ulen / radius
                cg = math.cos(gamma)
                sg = math.sin(gamma)
                dy = cg * cy + sg * radius * py
                dx = cg * cx + sg * radius * px
            length = math.sqrt(dy * dy + dx * dx)
            # to continuous index coordinates
            iy0 = (py0 - origin[0]) / spacing[0]
            ix0 = (px0 - origin[1]) / spacing[1]
            diy = dy / spacing[0]
            dix = dx / spacing[1]
            if abs(dix) >= abs(diy):
                slope = diy / dix
                params[v, j, 0] = iy0 - ix0 * slope
                params[v, j, 1] = slope
                params[v, j, 2] = spacing[1] * length / abs(dx)
                major[v, j] = 1
            else:
                slope = dix / diy
                params[v, j, 0] = ix0 - iy0 * slope
                params[v, j, 1] = slope
                params[v, j, 2] = spacing[0] * length / abs(dy)
                major[v, j] = 0
    return params, major


@nb.njit(inline="always")
def plane_range(offset, slope, n_minor, n_major):  # type: ignore[no-untyped-def]
    """Planes ``k`` in [0, n_major) where ``offset + k*slope`` lies in [-1, n_minor]."""
    if slope == 0.0:
        if offset >= -1.0 and offset <= n_minor:
            return 0, n_major - 1
        return 0, -1
    t1 = (-1.0 - offset) / slope
    t2 = (n_minor - offset) / slope
    lo = np.floor(min(t1, t2))
    hi = np.ceil(max(t1, t2))
    # clamp as floats first: the bounds may be huge for nearly flat rays
    if lo < 0.0:
        lo = 0.0
    if hi > n_major - 1.0:
        hi = n_major - 1.0
    if hi < lo:
        return 0, -1
    return int(lo), int(hi)


@nb.njit(parallel=True, **_JIT)
def plane_ranges_2d(params, major, ny, nx):  # type: ignore[no-untyped-def]
    """First and last plane (inclusive) each ray samples, shape (n_views, n_det, 2).

    Computed once per projector so that the transpose, which visits every
    ray once per block of planes, does not repeat the divisions.
    """
    n_views, n_det = major.shape
    ranges = np.empty((n_views, n_det, 2), dtype=np.int64)
    for v in nb.prange(n_views):
        for j in range(n_det):
            if major[v, j] == 1:
                lo, hi = plane_range(params[v, j, 0], params[v, j, 1], ny, nx)
            else:
                lo, hi = plane_range(params[v, j, 0], params[v, j, 1], nx, ny)
            ranges[v, j, 0] = lo
            ranges[v, j, 1] = hi
    return ranges


PAD_LO = 2
"""Zero padding (in samples) before the minor axis; the plane range keeps
sample positions within [-2, n+1], so padded arrays need no bounds checks."""
PAD_HI = 3


def pad_minor(arr: np.ndarray) -> np.ndarray:
    """Copy ``arr`` (..., n) into a zero-padded (..., n + PAD_LO + PAD_HI) array."""
    out = np.zeros((*arr.shape[:-1], arr.shape[-1] + PAD_LO + PAD_HI), dtype=arr.dtype)
    out[..., PAD_LO : PAD_LO + arr.shape[-1]] = arr
    return out


@nb.njit(parallel=True, fastmath=_FAST, **_JIT)
def _forward_kernel(img_p, img_t_p, params, major, ranges, out):  # type: ignore[no-untyped-def]
    n_batch = img_p.shape[0]
    n_views, n_det = major.shape
    cast = img_p.dtype.type  # float32 data is interpolated and summed in float32
    for bv in nb.prange(n_batch * n_views):
        b = bv // n_views
        v = bv % n_views
        for j in range(n_det):
            offset = params[v, j, 0] + PAD_LO
            slope = params[v, j, 1]
            acc = cast(0.0)
            lo = ranges[v, j, 0]
            hi = ranges[v, j, 1]
            if major[v, j] == 1:
                for k in range(lo, hi + 1):
                    pos = offset + k * slope
                    i0 = int(pos)
                    f = cast(pos - i0)
                    lo_val = img_t_p[b, k, i0]
                    acc += lo_val + f * (img_t_p[b, k, i0 + 1] - lo_val)
            else:
                for k in range(lo, hi + 1):
                    pos = offset + k * slope
                    i0 = int(pos)
                    f = cast(pos - i0)
                    lo_val = img_p[b, k, i0]
                    acc += lo_val + f * (img_p[b, k, i0 + 1] - lo_val)
            out[b, v, j] = acc * params[v, j, 2]


def forward_2d(
    img: np.ndarray, params: np.ndarray, major: np.ndarray, ranges: np.ndarray
) -> np.ndarray:
    """Forward projection of ``img`` (B, ny, nx) -> (B, n_views, n_det), in img's dtype."""
    n_batch = img.shape[0]
    img_p = pad_minor(img)
    img_t_p = pad_minor(np.ascontiguousarray(img.transpose(0, 2, 1)))
    out = np.empty((n_batch, *major.shape), dtype=img.dtype)
    _forward_kernel(img_p, img_t_p, params, major, ranges, out)
    return out


@nb.njit(parallel=True, fastmath=_FAST, **_JIT)
def _adjoint_pass(sino, params, major, ranges, which, n_major, block, out):  # type: ignore[no-untyped-def]
    """Scatter the rays with ``major == which`` into padded ``out`` (B, n_major, n_minor+5)."""
    n_batch = sino.shape[0]
    n_views, n_det = major.shape
    n_blocks = (n_major + block - 1) // block
    cast = out.dtype.type
    for task in nb.prange(n_batch * n_blocks):
        b = task // n_blocks
        k_lo = (task % n_blocks) * block
        k_hi = min(k_lo + block, n_major) - 1
        for v in range(n_views):
            for j in range(n_det):
                if major[v, j] != which:
                    continue
                slope = params[v, j, 1]
                lo = ranges[v, j, 0]
                hi = ranges[v, j, 1]
                if lo < k_lo:
                    lo = k_lo
                if hi > k_hi:
                    hi = k_hi
                if lo > hi:
                    continue
                offset = params[v, j, 0] + PAD_LO
                val = cast(sino[b, v, j] * params[v, j, 2])
                for k in range(lo, hi + 1):
                    pos = offset + k * slope
                    i0 = int(pos)
                    f = cast(pos - i0)
                    out[b, k, i0] += val - f * val
                    out[b, k, i0 + 1] += f * val


def _block(n_major: int) -> int:
    return max(1, min(_MAX_PLANE_BLOCK, -(-n_major // (4 * nb.get_num_threads()))))


def adjoint_2d(
    sino: np.ndarray,
    params: np.ndarray,
    major: np.ndarray,
    ranges: np.ndarray,
    shape: tuple[int, int],
) -> np.ndarray:
    """Exact transpose of :func:`forward_2d`: (B, n_views, n_det) -> (B, ny, nx)."""
    ny, nx = shape
    n_batch = sino.shape[0]
    # accumulate in the data's precision (float32 data: float32 sums)
    acc_x = np.zeros((n_batch, nx, ny + PAD_LO + PAD_HI), dtype=sino.dtype)
    # every task reads the whole ray table once, so blocks are as thick as
    # the thread count allows (about four tasks per thread)
    _adjoint_pass(sino, params, major, ranges, 1, nx, _block(nx), acc_x)
    acc_y = np.zeros((n_batch, ny, nx + PAD_LO + PAD_HI), dtype=sino.dtype)
    _adjoint_pass(sino, params, major, ranges, 0, ny, _block(ny), acc_y)
    out = acc_y[:, :, PAD_LO : PAD_LO + nx] + acc_x[:, :, PAD_LO : PAD_LO + ny].transpose(0, 2, 1)
    return out
