// medrecon kernels: voxel-driven (pixel-driven) backprojection for FBP/FDK, and the `fast`
// mode's backprojector.
//
// Each voxel centre is projected onto the detector of every view and the projection is read
// there with linear (2D) or bilinear (3D) interpolation, zero outside the detector; one thread
// owns one voxel, so no atomics are needed and the result is deterministic. This is *not* the
// exact transpose of the Joseph projector. The projector model is that of
// src/medrecon/projectors/cpu/backproject.py; ABI and thread mapping: kernels/README.md.
//
// weighting 0 ("none"): plain sum over views. weighting 1 ("fdk"): divergent-beam distance
// weight, (D_sd / L)^2 on flat detectors (D_sd source-to-detector-plane distance, L the voxel's
// depth along the detector normal), (R / |X - S|)^2 on arc detectors; 1 for parallel beams.

#include "common.cuh"

// linear read of a detector row at position t (element units), zero outside; in double
MR_FUNC double mr_bp_lerp_row(const float* row, double t, int n) {
    if (t <= -1.0 || t >= n) return 0.0;
    double fl = floor(t);
    int i0 = (int)fl;
    double f = t - fl;
    double val = 0.0;
    if (i0 >= 0) val += (1.0 - f) * MR_LDG(row + i0);
    if (i0 + 1 < n) val += f * MR_LDG(row + i0 + 1);
    return val;
}

// ---------------------------------------------------------------------- per-thread bodies

// 2D: thread index idx = (b * ny + iy) * nx + ix, one pixel; img[idx] is overwritten.
MR_FUNC void mr_backproject2d_body(long long idx, const float* sino, float* img, int ny, int nx,
                                   int n_views, int n_det, int mode, const double* a,
                                   const double* c, const double* u, const double* origin,
                                   const double* spacing, int weighting) {
    int ix = (int)(idx % nx);
    int iy = (int)((idx / nx) % ny);
    long long b = idx / ((long long)nx * ny);
    double half = 0.5 * (n_det - 1);
    double y = MR_LDG(origin) + iy * MR_LDG(spacing);
    double x = MR_LDG(origin + 1) + ix * MR_LDG(spacing + 1);
    double acc = 0.0;
    for (int v = 0; v < n_views; ++v) {
        double uy = mr_vec(u, v, 2, 0), ux = mr_vec(u, v, 2, 1);
        double cy0 = mr_vec(c, v, 2, 0), cx0 = mr_vec(c, v, 2, 1);
        double uu = uy * uy + ux * ux;
        const float* row = sino + (b * n_views + v) * n_det;
        if (mode == 0) {
            double t = ((y - cy0) * uy + (x - cx0) * ux) / uu + half;
            acc += mr_bp_lerp_row(row, t, n_det);
        } else if (mode == 1) {
            double sy = mr_vec(a, v, 2, 0), sx = mr_vec(a, v, 2, 1);
            // unit normal of the detector line, pointing away from the source
            double ny_ = -ux, nx_ = uy;
            double nlen = sqrt(ny_ * ny_ + nx_ * nx_);
            ny_ /= nlen;
            nx_ /= nlen;
            double d_sd = (cy0 - sy) * ny_ + (cx0 - sx) * nx_;
            if (d_sd < 0.0) {
                ny_ = -ny_;
                nx_ = -nx_;
                d_sd = -d_sd;
            }
            double ry = y - sy, rx = x - sx;
            double depth = ry * ny_ + rx * nx_;
            if (depth <= 0.0) continue;
            double lam = d_sd / depth;
            double qy = sy + lam * ry - cy0;
            double qx = sx + lam * rx - cx0;
            double t = (qy * uy + qx * ux) / uu + half;
            double val = mr_bp_lerp_row(row, t, n_det);
            if (weighting == 1) val *= lam * lam;
            acc += val;
        } else {
            double sy = mr_vec(a, v, 2, 0), sx = mr_vec(a, v, 2, 1);
            double cy = cy0 - sy, cx = cx0 - sx;
            double radius = sqrt(cy * cy + cx * cx);
            cy /= radius;
            cx /= radius;
            double py = -cx, px = cy;
            if (py * uy + px * ux < 0.0) {
                py = -py;
                px = -px;
            }
            double scale = radius / sqrt(uu);
            double ry = y - sy, rx = x - sx;
            double along = ry * cy + rx * cx;
            if (along <= 0.0) continue;
            double gamma = atan2(ry * py + rx * px, along);
            double t = gamma * scale + half;
            double val = mr_bp_lerp_row(row, t, n_det);
            if (weighting == 1) val *= radius * radius / (ry * ry + rx * rx);
            acc += val;
        }
    }
    img[idx] = (float)acc;
}

// 3D detector frame of view v (as backproject.detector_frames_3d): frames[8 v + 0..7] =
// unit normal (z, y, x; away from the source, or along the rays for parallel beams),
// source-to-detector distance along it (cone; 0 for parallel), inverse Gram matrix of (u, w)
// as (g_uu, g_uv, g_vv), and 0.
MR_FUNC void mr_backproject3d_frame_body(int v, double* frames, int mode, const double* a,
                                         const double* c, const double* u, const double* w) {
    double u0 = mr_vec(u, v, 3, 0), u1 = mr_vec(u, v, 3, 1), u2 = mr_vec(u, v, 3, 2);
    double w0 = mr_vec(w, v, 3, 0), w1 = mr_vec(w, v, 3, 1), w2 = mr_vec(w, v, 3, 2);
    double n0 = u1 * w2 - u2 * w1;
    double n1 = u2 * w0 - u0 * w2;
    double n2 = u0 * w1 - u1 * w0;
    double nlen = sqrt(n0 * n0 + n1 * n1 + n2 * n2);
    n0 /= nlen;
    n1 /= nlen;
    n2 /= nlen;
    double e0 = mr_vec(a, v, 3, 0), e1 = mr_vec(a, v, 3, 1), e2 = mr_vec(a, v, 3, 2);
    if (mode != 0) {  // c - a
        e0 = mr_vec(c, v, 3, 0) - e0;
        e1 = mr_vec(c, v, 3, 1) - e1;
        e2 = mr_vec(c, v, 3, 2) - e2;
    }
    double dot = n0 * e0 + n1 * e1 + n2 * e2;
    double sign = dot < 0.0 ? -1.0 : 1.0;
    double guu = u0 * u0 + u1 * u1 + u2 * u2;
    double guv = u0 * w0 + u1 * w1 + u2 * w2;
    double gvv = w0 * w0 + w1 * w1 + w2 * w2;
    double det = guu * gvv - guv * guv;
    double* f = frames + 8LL * v;
    f[0] = sign * n0;
    f[1] = sign * n1;
    f[2] = sign * n2;
    f[3] = mode == 0 ? 0.0 : fabs(dot);
    f[4] = gvv / det;
    f[5] = -guv / det;
    f[6] = guu / det;
    f[7] = 0.0;
}

// 3D: thread index idx = ((b * nz + iz) * ny + iy) * nx + ix, one voxel; vol[idx] is
// overwritten. frames: (n_views, 8) from mr_backproject3d_frame_body.
MR_FUNC void mr_backproject3d_body(long long idx, const float* proj, float* vol, int nz, int ny,
                                   int nx, int n_views, int n_rows, int n_cols, int mode,
                                   const double* a, const double* c, const double* u,
                                   const double* w, const double* frames, const double* origin,
                                   const double* spacing, int weighting) {
    int ix = (int)(idx % nx);
    int iy = (int)((idx / nx) % ny);
    int iz = (int)((idx / ((long long)nx * ny)) % nz);
    long long b = idx / ((long long)nx * ny * nz);
    double half_r = 0.5 * (n_rows - 1);
    double half_c = 0.5 * (n_cols - 1);
    double z = MR_LDG(origin) + iz * MR_LDG(spacing);
    double y = MR_LDG(origin + 1) + iy * MR_LDG(spacing + 1);
    double x0 = MR_LDG(origin + 2);
    double step = ix * MR_LDG(spacing + 2);
    double acc = 0.0;
    for (int v = 0; v < n_views; ++v) {
        const double* f = frames + 8LL * v;
        double n0 = MR_LDG(f), n1 = MR_LDG(f + 1), n2 = MR_LDG(f + 2), d_sd = MR_LDG(f + 3);
        double g00 = MR_LDG(f + 4), g01 = MR_LDG(f + 5), g11 = MR_LDG(f + 6);
        double u0 = mr_vec(u, v, 3, 0), u1 = mr_vec(u, v, 3, 1), u2 = mr_vec(u, v, 3, 2);
        double w0 = mr_vec(w, v, 3, 0), w1 = mr_vec(w, v, 3, 1), w2 = mr_vec(w, v, 3, 2);
        double a0 = mr_vec(a, v, 3, 0), a1 = mr_vec(a, v, 3, 1), a2 = mr_vec(a, v, 3, 2);
        double rz, ry, rx0, dn = 0.0, au = 0.0, av = 0.0, eu = 0.0, ev = 0.0;
        if (mode == 0) {
            // r = X - c, moved along the ray onto the detector plane
            rz = z - mr_vec(c, v, 3, 0);
            ry = y - mr_vec(c, v, 3, 1);
            rx0 = x0 - mr_vec(c, v, 3, 2);
            dn = a0 * n0 + a1 * n1 + a2 * n2;
            au = a0 * u0 + a1 * u1 + a2 * u2;
            av = a0 * w0 + a1 * w1 + a2 * w2;
        } else {
            // r = X - s; detector point q - c = lam * r - (c - s), lam = d_sd / (r . n)
            rz = z - a0;
            ry = y - a1;
            rx0 = x0 - a2;
            double ez = mr_vec(c, v, 3, 0) - a0;
            double ey = mr_vec(c, v, 3, 1) - a1;
            double ex = mr_vec(c, v, 3, 2) - a2;
            eu = ez * u0 + ey * u1 + ex * u2;
            ev = ez * w0 + ey * w1 + ex * w2;
        }
        double rn = (rz * n0 + ry * n1 + rx0 * n2) + step * n2;
        double ru = (rz * u0 + ry * u1 + rx0 * u2) + step * u2;
        double rv = (rz * w0 + ry * w1 + rx0 * w2) + step * w2;
        double weight = 1.0, pu, pv;
        if (mode == 0) {
            double mu = -rn / dn;
            pu = ru + mu * au;
            pv = rv + mu * av;
        } else {
            if (rn <= 0.0) continue;
            double lam = d_sd / rn;
            pu = lam * ru - eu;
            pv = lam * rv - ev;
            if (weighting == 1) weight = lam * lam;
        }
        double tc = g00 * pu + g01 * pv + half_c;
        double tr = g01 * pu + g11 * pv + half_r;
        if (tc <= -1.0 || tc >= n_cols || tr <= -1.0 || tr >= n_rows) continue;
        double jf = floor(tc), irf = floor(tr);
        int j0 = (int)jf, i0 = (int)irf;
        double fc = tc - jf, fr = tr - irf;
        const float* img = proj + (b * n_views + v) * n_rows * n_cols;
        double val = 0.0;
        if (i0 >= 0) {
            const float* r0 = img + (long long)i0 * n_cols;
            if (j0 >= 0) val += (1.0 - fr) * (1.0 - fc) * MR_LDG(r0 + j0);
            if (j0 + 1 < n_cols) val += (1.0 - fr) * fc * MR_LDG(r0 + j0 + 1);
        }
        if (i0 + 1 < n_rows) {
            const float* r1 = img + (long long)(i0 + 1) * n_cols;
            if (j0 >= 0) val += fr * (1.0 - fc) * MR_LDG(r1 + j0);
            if (j0 + 1 < n_cols) val += fr * fc * MR_LDG(r1 + j0 + 1);
        }
        acc += weight * val;
    }
    vol[idx] = (float)acc;
}

// ------------------------------------------------------------------------ device kernels
#if defined(__CUDACC__)

extern "C" __global__ void medrecon_backproject2d(const float* sino, float* img, int n_batch,
                                                  int ny, int nx, int n_views, int n_det,
                                                  int mode, const double* a, const double* c,
                                                  const double* u, const double* origin,
                                                  const double* spacing, int weighting) {
    long long total = (long long)n_batch * ny * nx;
    for (long long idx = mr_thread_index(); idx < total; idx += mr_thread_stride())
        mr_backproject2d_body(idx, sino, img, ny, nx, n_views, n_det, mode, a, c, u, origin,
                              spacing, weighting);
}

extern "C" __global__ void medrecon_backproject3d_frames(double* frames, int n_views, int mode,
                                                         const double* a, const double* c,
                                                         const double* u, const double* w) {
    for (long long v = mr_thread_index(); v < n_views; v += mr_thread_stride())
        mr_backproject3d_frame_body((int)v, frames, mode, a, c, u, w);
}

extern "C" __global__ void medrecon_backproject3d(const float* proj, float* vol, int n_batch,
                                                  int nz, int ny, int nx, int n_views, int n_rows,
                                                  int n_cols, int mode, const double* a,
                                                  const double* c, const double* u,
                                                  const double* w, const double* frames,
                                                  const double* origin, const double* spacing,
                                                  int weighting) {
    long long total = (long long)n_batch * nz * ny * nx;
    for (long long idx = mr_thread_index(); idx < total; idx += mr_thread_stride())
        mr_backproject3d_body(idx, proj, vol, nz, ny, nx, n_views, n_rows, n_cols, mode, a, c, u,
                              w, frames, origin, spacing, weighting);
}

#endif  // __CUDACC__

// -------------------------------------------------------------------------- host launchers
#if defined(MEDRECON_HOST_BUILD)

extern "C" void medrecon_backproject2d_host(const float* sino, float* img, int n_batch, int ny,
                                            int nx, int n_views, int n_det, int mode,
                                            const double* a, const double* c, const double* u,
                                            const double* origin, const double* spacing,
                                            int weighting) {
    long long total = (long long)n_batch * ny * nx;
#pragma omp parallel for schedule(static)
    for (long long idx = 0; idx < total; ++idx)
        mr_backproject2d_body(idx, sino, img, ny, nx, n_views, n_det, mode, a, c, u, origin,
                              spacing, weighting);
}

extern "C" void medrecon_backproject3d_frames_host(double* frames, int n_views, int mode,
                                                   const double* a, const double* c,
                                                   const double* u, const double* w) {
    for (int v = 0; v < n_views; ++v) mr_backproject3d_frame_body(v, frames, mode, a, c, u, w);
}

extern "C" void medrecon_backproject3d_host(const float* proj, float* vol, int n_batch, int nz,
                                            int ny, int nx, int n_views, int n_rows, int n_cols,
                                            int mode, const double* a, const double* c,
                                            const double* u, const double* w,
                                            const double* frames, const double* origin,
                                            const double* spacing, int weighting) {
    long long total = (long long)n_batch * nz * ny * nx;
#pragma omp parallel for schedule(static)
    for (long long idx = 0; idx < total; ++idx)
        mr_backproject3d_body(idx, proj, vol, nz, ny, nx, n_views, n_rows, n_cols, mode, a, c, u,
                              w, frames, origin, spacing, weighting);
}

#endif  // MEDRECON_HOST_BUILD
