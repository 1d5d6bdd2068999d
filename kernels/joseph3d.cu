// medrecon kernels: 3D projectors (parallel and cone beam, arbitrary per-view vectors).
//
// `matched` mode: the Joseph ray-driven forward projector (one bilinear sample per voxel plane
// perpendicular to the ray's dominant axis) and its exact transpose (a ray-driven scatter:
// atomicAdd on the device, a sequential scatter on the host), the projector model of
// src/medrecon/projectors/cpu/joseph3d.py. `fast` mode forward: trilinear sampling at a fixed
// step along each ray. ABI, thread mapping and model: kernels/README.md.
//
// Geometry (per view, C-contiguous double arrays (n_views, 3), components (z, y, x), mm):
//   mode 0 parallel: a = ray direction, ray through the detector pixel centre;
//   mode 1 cone:     a = source, ray from the source through the detector pixel centre;
// pixel (row i, col j) has its centre at c + (j - (n_cols - 1) / 2) * u + (i - (n_rows - 1) / 2)
// * w. origin (3,) is the centre of voxel (0, 0, 0) and spacing (3,) the voxel size, (z, y, x).

#include "common.cuh"

// A ray in world coordinates: point p and direction d, components (z, y, x), mm.
struct MrLine3 {
    double pz, py, px, dz, dy, dx;
};

// The ray through pixel (i, j) of view v. Same arithmetic as joseph3d._ray.
MR_FUNC MrLine3 mr_line3d(int mode, const double* a, const double* c, const double* u,
                          const double* w, int v, int i, int j, int n_rows, int n_cols) {
    double t = j - 0.5 * (n_cols - 1);
    double s = i - 0.5 * (n_rows - 1);
    double qz = mr_vec(c, v, 3, 0) + t * mr_vec(u, v, 3, 0) + s * mr_vec(w, v, 3, 0);
    double qy = mr_vec(c, v, 3, 1) + t * mr_vec(u, v, 3, 1) + s * mr_vec(w, v, 3, 1);
    double qx = mr_vec(c, v, 3, 2) + t * mr_vec(u, v, 3, 2) + s * mr_vec(w, v, 3, 2);
    double az = mr_vec(a, v, 3, 0), ay = mr_vec(a, v, 3, 1), ax = mr_vec(a, v, 3, 2);
    MrLine3 r;
    if (mode == 0) {
        r.pz = qz;
        r.py = qy;
        r.px = qx;
        r.dz = az;
        r.dy = ay;
        r.dx = ax;
    } else {
        r.pz = az;
        r.py = ay;
        r.px = ax;
        r.dz = qz - az;
        r.dy = qy - ay;
        r.dx = qx - ax;
    }
    return r;
}

// Joseph sampling parameters: dominant axis m (0 z, 1 y, 2 x; ties go to x, then y); at plane k
// along m the ray sits at minor indices (b1 + k * s1, b2 + k * s2), the minor axes being
// (y, x) for m = 0, (z, x) for m = 1 and (z, y) for m = 2; weight is the ray length between
// planes (mm). Same arithmetic as joseph3d._setup.
struct MrJoseph3 {
    int m;
    double b1, s1, b2, s2, weight;
};

MR_FUNC MrJoseph3 mr_joseph3d_params(MrLine3 r, const double* origin, const double* spacing) {
    double spz = MR_LDG(spacing), spy = MR_LDG(spacing + 1), spx = MR_LDG(spacing + 2);
    double iz = (r.pz - MR_LDG(origin)) / spz;
    double iy = (r.py - MR_LDG(origin + 1)) / spy;
    double ix = (r.px - MR_LDG(origin + 2)) / spx;
    double nz = r.dz / spz;
    double ny = r.dy / spy;
    double nx = r.dx / spx;
    double length = sqrt(r.dz * r.dz + r.dy * r.dy + r.dx * r.dx);
    double az = fabs(nz), ay = fabs(ny), ax = fabs(nx);
    MrJoseph3 p;
    if (ax >= ay && ax >= az) {
        p.m = 2;
        p.s1 = nz / nx;
        p.s2 = ny / nx;
        p.b1 = iz - ix * p.s1;
        p.b2 = iy - ix * p.s2;
        p.weight = spx * length / fabs(r.dx);
    } else if (ay >= az) {
        p.m = 1;
        p.s1 = nz / ny;
        p.s2 = nx / ny;
        p.b1 = iz - iy * p.s1;
        p.b2 = ix - iy * p.s2;
        p.weight = spy * length / fabs(r.dy);
    } else {
        p.m = 0;
        p.s1 = ny / nz;
        p.s2 = nx / nz;
        p.b1 = iy - iz * p.s1;
        p.b2 = ix - iz * p.s2;
        p.weight = spz * length / fabs(r.dz);
    }
    return p;
}

// Memory layout of the planes perpendicular to axis m of a (nz, ny, nx) volume: stride between
// planes, and stride and size of both minor axes; [lo, hi] = planes the ray samples.
struct MrPlanes3 {
    long long plane, st1, st2;
    int n1, n2, lo, hi;
};

MR_FUNC MrPlanes3 mr_joseph3d_planes(MrJoseph3 p, int nz, int ny, int nx) {
    MrPlanes3 q;
    int n_major;
    long long sz = (long long)ny * nx;
    if (p.m == 2) {
        q.plane = 1, q.st1 = sz, q.st2 = nx, q.n1 = nz, q.n2 = ny, n_major = nx;
    } else if (p.m == 1) {
        q.plane = nx, q.st1 = sz, q.st2 = 1, q.n1 = nz, q.n2 = nx, n_major = ny;
    } else {
        q.plane = sz, q.st1 = nx, q.st2 = 1, q.n1 = ny, q.n2 = nx, n_major = nz;
    }
    int lo1, hi1, lo2, hi2;
    mr_plane_range(p.b1, p.s1, q.n1, n_major, &lo1, &hi1);
    mr_plane_range(p.b2, p.s2, q.n2, n_major, &lo2, &hi2);
    q.lo = lo1 > lo2 ? lo1 : lo2;
    q.hi = hi1 < hi2 ? hi1 : hi2;
    return q;
}

// ---------------------------------------------------------------------- per-thread bodies
// Thread index idx = ((b * n_views + v) * n_rows + i) * n_cols + j: one ray of one batch item.

MR_FUNC void mr_joseph3d_forward_body(long long idx, const float* vol, float* proj, int nz,
                                      int ny, int nx, int n_views, int n_rows, int n_cols,
                                      int mode, const double* a, const double* c,
                                      const double* u, const double* w, const double* origin,
                                      const double* spacing) {
    int j = (int)(idx % n_cols);
    int i = (int)((idx / n_cols) % n_rows);
    int v = (int)((idx / ((long long)n_cols * n_rows)) % n_views);
    long long b = idx / ((long long)n_cols * n_rows * n_views);
    const float* vb = vol + b * nz * ny * nx;
    MrJoseph3 p =
        mr_joseph3d_params(mr_line3d(mode, a, c, u, w, v, i, j, n_rows, n_cols), origin, spacing);
    MrPlanes3 q = mr_joseph3d_planes(p, nz, ny, nx);
    double acc = 0.0;
    for (int k = q.lo; k <= q.hi; ++k)
        acc += mr_lerp2(vb + k * q.plane, q.st1, q.n1, q.st2, q.n2, p.b1 + k * p.s1,
                        p.b2 + k * p.s2);
    proj[idx] = (float)(acc * p.weight);
}

// Exact transpose of mr_joseph3d_forward_body: adds this ray's contribution to vol.
MR_FUNC void mr_joseph3d_adjoint_body(long long idx, const float* proj, float* vol, int nz,
                                      int ny, int nx, int n_views, int n_rows, int n_cols,
                                      int mode, const double* a, const double* c,
                                      const double* u, const double* w, const double* origin,
                                      const double* spacing) {
    int j = (int)(idx % n_cols);
    int i = (int)((idx / n_cols) % n_rows);
    int v = (int)((idx / ((long long)n_cols * n_rows)) % n_views);
    long long b = idx / ((long long)n_cols * n_rows * n_views);
    float* vb = vol + b * nz * ny * nx;
    MrJoseph3 p =
        mr_joseph3d_params(mr_line3d(mode, a, c, u, w, v, i, j, n_rows, n_cols), origin, spacing);
    float val = (float)(MR_LDG(proj + idx) * p.weight);
    if (val == 0.0f) return;
    MrPlanes3 q = mr_joseph3d_planes(p, nz, ny, nx);
    for (int k = q.lo; k <= q.hi; ++k)
        mr_scatter2(vb + k * q.plane, q.st1, q.n1, q.st2, q.n2, p.b1 + k * p.s1, p.b2 + k * p.s2,
                    val);
}

// `fast` forward: the line clipped to the volume's support, split into the fewest equal steps
// no longer than `step` mm, one trilinear read at the middle of each step.
template <class Fetch>
MR_FUNC float mr_fast3d_ray(MrLine3 r, int nz, int ny, int nx, const double* origin,
                            const double* spacing, double step, const Fetch& fetch) {
    double spz = MR_LDG(spacing), spy = MR_LDG(spacing + 1), spx = MR_LDG(spacing + 2);
    double iz = (r.pz - MR_LDG(origin)) / spz;
    double iy = (r.py - MR_LDG(origin + 1)) / spy;
    double ix = (r.px - MR_LDG(origin + 2)) / spx;
    double dz = r.dz / spz, dy = r.dy / spy, dx = r.dx / spx;
    double s_in = -1e300, s_out = 1e300;
    if (!mr_clip_axis(iz, dz, nz, &s_in, &s_out)) return 0.0f;
    if (!mr_clip_axis(iy, dy, ny, &s_in, &s_out)) return 0.0f;
    if (!mr_clip_axis(ix, dx, nx, &s_in, &s_out)) return 0.0f;
    double length = sqrt(r.dz * r.dz + r.dy * r.dy + r.dx * r.dx);  // mm per unit of s
    int n = (int)ceil((s_out - s_in) * length / step);
    if (n < 1) n = 1;
    double h = (s_out - s_in) / n;
    double acc = 0.0;
    for (int q = 0; q < n; ++q) {
        double s = s_in + (q + 0.5) * h;
        acc += fetch(iz + s * dz, iy + s * dy, ix + s * dx);
    }
    return (float)(acc * h * length);
}

struct MrSoftFetch3 {
    const float* vol;
    int nz, ny, nx;
    __host__ __device__ float operator()(double z, double y, double x) const {
        return mr_fetch3d(vol, nz, ny, nx, z, y, x);
    }
};

MR_FUNC void mr_fast3d_forward_body(long long idx, const float* vol, float* proj, int nz, int ny,
                                    int nx, int n_views, int n_rows, int n_cols, int mode,
                                    const double* a, const double* c, const double* u,
                                    const double* w, const double* origin,
                                    const double* spacing, double step) {
    int j = (int)(idx % n_cols);
    int i = (int)((idx / n_cols) % n_rows);
    int v = (int)((idx / ((long long)n_cols * n_rows)) % n_views);
    long long b = idx / ((long long)n_cols * n_rows * n_views);
    MrSoftFetch3 fetch = {vol + b * nz * ny * nx, nz, ny, nx};
    proj[idx] = mr_fast3d_ray(mr_line3d(mode, a, c, u, w, v, i, j, n_rows, n_cols), nz, ny, nx,
                              origin, spacing, step, fetch);
}

// ------------------------------------------------------------------------ device kernels
#if defined(__CUDACC__)

extern "C" __global__ void medrecon_joseph3d_forward(const float* vol, float* proj, int n_batch,
                                                     int nz, int ny, int nx, int n_views,
                                                     int n_rows, int n_cols, int mode,
                                                     const double* a, const double* c,
                                                     const double* u, const double* w,
                                                     const double* origin,
                                                     const double* spacing) {
    long long total = (long long)n_batch * n_views * n_rows * n_cols;
    for (long long idx = mr_thread_index(); idx < total; idx += mr_thread_stride())
        mr_joseph3d_forward_body(idx, vol, proj, nz, ny, nx, n_views, n_rows, n_cols, mode, a, c,
                                 u, w, origin, spacing);
}

extern "C" __global__ void medrecon_joseph3d_adjoint(const float* proj, float* vol, int n_batch,
                                                     int nz, int ny, int nx, int n_views,
                                                     int n_rows, int n_cols, int mode,
                                                     const double* a, const double* c,
                                                     const double* u, const double* w,
                                                     const double* origin,
                                                     const double* spacing) {
    long long total = (long long)n_batch * n_views * n_rows * n_cols;
    for (long long idx = mr_thread_index(); idx < total; idx += mr_thread_stride())
        mr_joseph3d_adjoint_body(idx, proj, vol, nz, ny, nx, n_views, n_rows, n_cols, mode, a, c,
                                 u, w, origin, spacing);
}

extern "C" __global__ void medrecon_fast3d_forward(const float* vol, float* proj, int n_batch,
                                                   int nz, int ny, int nx, int n_views,
                                                   int n_rows, int n_cols, int mode,
                                                   const double* a, const double* c,
                                                   const double* u, const double* w,
                                                   const double* origin, const double* spacing,
                                                   double step) {
    long long total = (long long)n_batch * n_views * n_rows * n_cols;
    for (long long idx = mr_thread_index(); idx < total; idx += mr_thread_stride())
        mr_fast3d_forward_body(idx, vol, proj, nz, ny, nx, n_views, n_rows, n_cols, mode, a, c, u,
                               w, origin, spacing, step);
}

struct MrTexFetch3 {
    cudaTextureObject_t tex;
    __device__ float operator()(double z, double y, double x) const {
        return mr_tex_fetch3d(tex, z, y, x);
    }
};

__device__ __forceinline__ void mr_fast3d_forward_tex_body(
    long long idx, cudaTextureObject_t tex, float* proj, int nz, int ny, int nx, int n_views,
    int n_rows, int n_cols, int mode, const double* a, const double* c, const double* u,
    const double* w, const double* origin, const double* spacing, double step) {
    int j = (int)(idx % n_cols);
    int i = (int)((idx / n_cols) % n_rows);
    int v = (int)(idx / ((long long)n_cols * n_rows));
    MrTexFetch3 fetch = {tex};
    proj[idx] = mr_fast3d_ray(mr_line3d(mode, a, c, u, w, v, i, j, n_rows, n_cols), nz, ny, nx,
                              origin, spacing, step, fetch);
}

// As medrecon_fast3d_forward for one volume (no batch), read from a 3D texture instead.
extern "C" __global__ void medrecon_fast3d_forward_tex(cudaTextureObject_t tex, float* proj,
                                                       int nz, int ny, int nx, int n_views,
                                                       int n_rows, int n_cols, int mode,
                                                       const double* a, const double* c,
                                                       const double* u, const double* w,
                                                       const double* origin,
                                                       const double* spacing, double step) {
    long long total = (long long)n_views * n_rows * n_cols;
    for (long long idx = mr_thread_index(); idx < total; idx += mr_thread_stride())
        mr_fast3d_forward_tex_body(idx, tex, proj, nz, ny, nx, n_views, n_rows, n_cols, mode, a,
                                   c, u, w, origin, spacing, step);
}

#endif  // __CUDACC__

// -------------------------------------------------------------------------- host launchers
#if defined(MEDRECON_HOST_BUILD)

extern "C" void medrecon_joseph3d_forward_host(const float* vol, float* proj, int n_batch, int nz,
                                               int ny, int nx, int n_views, int n_rows,
                                               int n_cols, int mode, const double* a,
                                               const double* c, const double* u,
                                               const double* w, const double* origin,
                                               const double* spacing) {
    long long total = (long long)n_batch * n_views * n_rows * n_cols;
#pragma omp parallel for schedule(static)
    for (long long idx = 0; idx < total; ++idx)
        mr_joseph3d_forward_body(idx, vol, proj, nz, ny, nx, n_views, n_rows, n_cols, mode, a, c,
                                 u, w, origin, spacing);
}

// vol must be zero-initialised (the transpose accumulates). Batch items run in parallel; the
// rays of one item are scattered sequentially, in index order.
extern "C" void medrecon_joseph3d_adjoint_host(const float* proj, float* vol, int n_batch, int nz,
                                               int ny, int nx, int n_views, int n_rows,
                                               int n_cols, int mode, const double* a,
                                               const double* c, const double* u,
                                               const double* w, const double* origin,
                                               const double* spacing) {
    long long rays = (long long)n_views * n_rows * n_cols;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < n_batch; ++b)
        for (long long r = 0; r < rays; ++r)
            mr_joseph3d_adjoint_body(b * rays + r, proj, vol, nz, ny, nx, n_views, n_rows, n_cols,
                                     mode, a, c, u, w, origin, spacing);
}

extern "C" void medrecon_fast3d_forward_host(const float* vol, float* proj, int n_batch, int nz,
                                             int ny, int nx, int n_views, int n_rows, int n_cols,
                                             int mode, const double* a, const double* c,
                                             const double* u, const double* w,
                                             const double* origin, const double* spacing,
                                             double step) {
    long long total = (long long)n_batch * n_views * n_rows * n_cols;
#pragma omp parallel for schedule(static)
    for (long long idx = 0; idx < total; ++idx)
        mr_fast3d_forward_body(idx, vol, proj, nz, ny, nx, n_views, n_rows, n_cols, mode, a, c, u,
                               w, origin, spacing, step);
}

#endif  // MEDRECON_HOST_BUILD
