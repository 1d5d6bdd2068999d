"""Voxel-driven (pixel-driven) backprojection for analytic reconstruction (numba).

Each voxel centre is projected onto the detector of every view and the
projection is read there with linear (2D) or bilinear (3D) interpolation,
zero outside the detector. This is the backprojection used by FBP and FDK;
it is *not* the exact transpose of the Joseph forward projector (use
``Projector.adjoint`` for that).

Weightings (``weighting`` argument):

* ``0`` (``"none"``): plain sum over views.
* ``1`` (``"fdk"``): divergent-beam distance weight. Flat detectors:
  ``(D_sd / L)^2`` with ``D_sd`` the source-to-detector-plane distance and
  ``L`` the depth of the voxel along the detector normal, both measured from
  the source. Arc detectors: ``(R / |X - S|)^2`` with ``R`` the source-to-
  detector radius. Parallel beams: weight 1.

Per-view vectors are in world coordinates with components in array-axis
order, exactly as for the Joseph projectors.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["backproject_2d", "backproject_3d", "detector_frames_3d"]

_JIT = {"nogil": True, "cache": True, "error_model": "numpy"}
_FAST = {"reassoc", "contract"}


@nb.njit(inline="always")
def _lerp_row(row, t, n):  # type: ignore[no-untyped-def]
    if t <= -1.0 or t >= n:
        return 0.0
    i0 = math.floor(t)
    f = t - i0
    val = 0.0
    if i0 >= 0:
        val += (1.0 - f) * row[i0]
    if i0 + 1 < n:
        val += f * row[i0 + 1]
    return val


@nb.njit(parallel=True, fastmath=_FAST, **_JIT)
def _bp2d_kernel(sino, mode, a, c, u, origin, spacing, weighting, out):  # type: ignore[no-untyped-def]
    n_batch, n_views, n_det = sino.shape
    _, ny, nx = out.shape
    half = 0.5 * (n_det - 1)
    for task in nb.prange(n_batch * ny):
        b = task // ny
        iy = task % ny
        y = origin[0] + iy * spacing[0]
        for v in range(n_views):
            uy = u[v, 0]
            ux = u[v, 1]
            uu = uy * uy + ux * ux
            row = sino[b, v]
            if mode == 0:
                for ix in range(nx):
                    x = origin[1] + ix * spacing[1]
                    t = ((y - c[v, 0]) * uy + (x - c[v, 1]) * ux) / uu + half
                    out[b, iy, ix] += _lerp_row(row, t, n_det)
            elif mode == 1:
                sy = a[v, 0]
                sx = a[v, 1]
                # unit normal of the detector line, pointing away from the source
                ny_ = -ux
                nx_ = uy
                nlen = math.sqrt(ny_ * ny_ + nx_ * nx_)
                ny_ /= nlen
                nx_ /= nlen
                d_sd = (c[v, 0] - sy) * ny_ + (c[v, 1] - sx) * nx_
                if d_sd < 0.0:
                    ny_ = -ny_
                    nx_ = -nx_
                    d_sd = -d_sd
                for ix in range(nx):
                    x = origin[1] + ix * spacing[1]
                    ry = y - sy
                    rx = x - sx
                    depth = ry * ny_ + rx * nx_
                    if depth <= 0.0:
                        continue
                    lam = d_sd / depth
                    qy = sy + lam * ry - c[v, 0]
                    qx = sx + lam * rx - c[v, 1]
                    t = (qy * uy + qx * ux) / uu + half
                    val = _lerp_row(row, t, n_det)
                    if weighting == 1:
                        val *= lam * lam
                    out[b, iy, ix] += val
            else:
                sy = a[v, 0]
                sx = a[v, 1]
                cy = c[v, 0] - sy
                cx = c[v, 1] - sx
                radius = math.sqrt(cy * cy + cx * cx)
                cy /= radius
                cx /= radius
                py = -cx
                px = cy
                if py * uy + px * ux < 0.0:
                    py = -py
                    px = -px
                scale = radius / math.sqrt(uu)
                for ix in range(nx):
                    x = origin[1] + ix * spacing[1]
                    ry = y - sy
                    rx = x - sx
                    along = ry * cy + rx * cx
                    if along <= 0.0:
                        continue
                    gamma = math.atan2(ry * py + rx * px, along)
                    t = gamma * scale + half
                    val = _lerp_row(row, t, n_det)
                    if weighting == 1:
                        val *= radius * radius / (ry * ry + rx * rx)
                    out[b, iy, ix] += val


def backproject_2d(
    sino: np.ndarray,
    mode: int,
    vectors: tuple[np.ndarray, np.ndarray, np.ndarray],
    origin: np.ndarray,
    spacing: np.ndarray,
    shape: tuple[int, int],
    weighting: int,
) -> np.ndarray:
    """Voxel-driven backprojection of ``sino`` (B, n_views, n_det) -> (B, ny, nx)."""
    a, c, u = vectors
    out = np.zeros((sino.shape[0], *shape), dtype=np.float64)
    _bp2d_kernel(sino, mode, a, c, u, origin, spacing, weighting, out)
    return out.astype(sino.dtype)


def detector_frames_3d(
    mode: int, a: np.ndarray, c: np.ndarray, u: np.ndarray, v: np.ndarray
) -> np.ndarray:
    """Per-view detector frame for voxel-driven 3D backprojection.

    Returns (n_views, 8): unit normal (3, pointing away from the source, or
    along the rays for parallel beams), the source-to-detector distance
    along it (cone) or 0 (parallel), and the inverse Gram matrix of (u, v)
    as (g_uu, g_uv, g_vv) so that ``(q - c) = a u + b v`` is solved for
    non-orthogonal detector axes.
    """
    n = np.cross(u, v)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    if mode == 0:
        sign = np.sign(np.einsum("ij,ij->i", n, a))
        d_sd = np.zeros(len(a))
    else:
        sign = np.sign(np.einsum("ij,ij->i", n, c - a))
        d_sd = np.abs(np.einsum("ij,ij->i", n, c - a))
    sign[sign == 0] = 1.0
    n *= sign[:, None]
    guu = np.einsum("ij,ij->i", u, u)
    guv = np.einsum("ij,ij->i", u, v)
    gvv = np.einsum("ij,ij->i", v, v)
    det = guu * gvv - guv * guv
    return np.ascontiguousarray(
        np.column_stack([n, d_sd, gvv / det, -guv / det, guu / det, np.zeros(len(a))])
    )


@nb.njit(parallel=True, fastmath=_FAST, **_JIT)
def _bp3d_kernel(proj, mode, a, c, u, w, frames, origin, spacing, weighting, out):  # type: ignore[no-untyped-def]
    n_batch, n_views, n_r, n_c = proj.shape
    _, nz, ny, nx = out.shape
    half_r = 0.5 * (n_r - 1)
    half_c = 0.5 * (n_c - 1)
    dx = spacing[2]
    for task in nb.prange(n_batch * nz * ny):
        b = task // (nz * ny)
        iz = (task // ny) % nz
        iy = task % ny
        z = origin[0] + iz * spacing[0]
        y = origin[1] + iy * spacing[1]
        x0 = origin[2]
        for vi in range(n_views):
            n0 = frames[vi, 0]
            n1 = frames[vi, 1]
            n2 = frames[vi, 2]
            d_sd = frames[vi, 3]
            g00 = frames[vi, 4]
            g01 = frames[vi, 5]
            g11 = frames[vi, 6]
            u0 = u[vi, 0]
            u1 = u[vi, 1]
            u2 = u[vi, 2]
            w0 = w[vi, 0]
            w1 = w[vi, 1]
            w2 = w[vi, 2]
            img = proj[b, vi]
            # every quantity below is affine in the voxel's x index
            if mode == 0:
                # r = X - c, moved along the ray onto the detector plane:
                # q = r + mu * a with mu = -(r . n) / (a . n)
                rz = z - c[vi, 0]
                ry = y - c[vi, 1]
                rx0 = x0 - c[vi, 2]
                dn = a[vi, 0] * n0 + a[vi, 1] * n1 + a[vi, 2] * n2
                au = a[vi, 0] * u0 + a[vi, 1] * u1 + a[vi, 2] * u2
                av = a[vi, 0] * w0 + a[vi, 1] * w1 + a[vi, 2] * w2
            else:
                # r = X - s, detector point q - c = lam * r - (c - s), lam = d_sd / (r . n)
                rz = z - a[vi, 0]
                ry = y - a[vi, 1]
                rx0 = x0 - a[vi, 2]
                ez = c[vi, 0] - a[vi, 0]
                ey = c[vi, 1] - a[vi, 1]
                ex = c[vi, 2] - a[vi, 2]
                eu = ez * u0 + ey * u1 + ex * u2
                ev = ez * w0 + ey * w1 + ex * w2
            rn0 = rz * n0 + ry * n1 + rx0 * n2
            ru0 = rz * u0 + ry * u1 + rx0 * u2
            rv0 = rz * w0 + ry * w1 + rx0 * w2
            for ix in range(nx):
                step = ix * dx
                rn = rn0 + step * n2
                ru = ru0 + step * u2
                rv = rv0 + step * w2
                weight = 1.0
                if mode == 0:
                    mu = -rn / dn
                    pu = ru + mu * au
                    pv = rv + mu * av
                else:
                    if rn <= 0.0:
                        continue
                    lam = d_sd / rn
                    pu = lam * ru - eu
                    pv = lam * rv - ev
                    if weighting == 1:
                        weight = lam * lam
                tc = g00 * pu + g01 * pv + half_c
                tr = g01 * pu + g11 * pv + half_r
                if tc <= -1.0 or tc >= n_c or tr <= -1.0 or tr >= n_r:
                    continue
                j0 = math.floor(tc)
                i0 = math.floor(tr)
                fc = tc - j0
                fr = tr - i0
                val = 0.0
                if i0 >= 0:
                    if j0 >= 0:
                        val += (1.0 - fr) * (1.0 - fc) * img[i0, j0]
                    if j0 + 1 < n_c:
                        val += (1.0 - fr) * fc * img[i0, j0 + 1]
                if i0 + 1 < n_r:
                    if j0 >= 0:
                        val += fr * (1.0 - fc) * img[i0 + 1, j0]
                    if j0 + 1 < n_c:
                        val += fr * fc * img[i0 + 1, j0 + 1]
                out[b, iz, iy, ix] += weight * val


def backproject_3d(
    proj: np.ndarray,
    mode: int,
    vectors: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    origin: np.ndarray,
    spacing: np.ndarray,
    shape: tuple[int, int, int],
    weighting: int,
) -> np.ndarray:
    """Voxel-driven backprojection of ``proj`` (B, n_views, n_rows, n_cols) -> (B, nz, ny, nx)."""
    a, c, u, w = vectors
    frames = detector_frames_3d(mode, a, c, u, w)
    out = np.zeros((proj.shape[0], *shape), dtype=np.float64)
    _bp3d_kernel(proj, mode, a, c, u, w, frames, origin, spacing, weighting, out)
    return out.astype(proj.dtype)
