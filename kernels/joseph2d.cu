// medrecon kernels: 2D projectors on batched slices (parallel, flat fan, arc fan).
//
// `matched` mode: the Joseph ray-driven forward projector and its exact transpose (a ray-driven
// scatter: atomicAdd on the device, a sequential scatter on the host), the projector model of
// src/medrecon/projectors/cpu/joseph2d.py. `fast` mode forward: interpolated (bilinear) sampling
// at a fixed step along each ray. ABI, thread mapping and model: kernels/README.md.
//
// Geometry (per view, C-contiguous double arrays (n_views, 2), components (y, x), mm):
//   mode 0 parallel: a = ray direction, ray through c + t * u;
//   mode 1 flat fan: a = source, ray from the source through c + t * u;
//   mode 2 arc fan:  a = source, ray from the source at angle t * |u| / |c - a| from the central
//                    ray, turning towards u;
// with t = j - (n_det - 1) / 2 for detector element j. origin (2,) is the centre of pixel
// (0, 0) and spacing (2,) the pixel size, both (y, x) in mm.

#include "common.cuh"

// A ray in world coordinates: point (py, px) and direction (dy, dx), mm.
struct MrLine2 {
    double py, px, dy, dx;
};

// The ray of detector element j of view v. Same arithmetic as joseph2d.ray_params_2d.
MR_FUNC MrLine2 mr_line2d(int mode, const double* a, const double* c, const double* u, int v,
                          int j, int n_det) {
    double half = 0.5 * (n_det - 1);
    double t = j - half;
    double uy = mr_vec(u, v, 2, 0);
    double ux = mr_vec(u, v, 2, 1);
    double ay = mr_vec(a, v, 2, 0);
    double ax = mr_vec(a, v, 2, 1);
    double cy0 = mr_vec(c, v, 2, 0);
    double cx0 = mr_vec(c, v, 2, 1);
    MrLine2 r;
    if (mode == 0) {
        r.py = cy0 + t * uy;
        r.px = cx0 + t * ux;
        r.dy = ay;
        r.dx = ax;
    } else if (mode == 1) {
        r.py = ay;
        r.px = ax;
        r.dy = cy0 + t * uy - r.py;
        r.dx = cx0 + t * ux - r.px;
    } else {
        double cy = cy0 - ay;
        double cx = cx0 - ax;
        double radius = sqrt(cy * cy + cx * cx);
        double ulen = sqrt(uy * uy + ux * ux);
        // unit vector perpendicular to the central ray, on the side of u
        double py = -cx / radius;
        double px = cy / radius;
        if (py * uy + px * ux < 0.0) {
            py = -py;
            px = -px;
        }
        double gamma = t * ulen / radius;
        double cg = cos(gamma);
        double sg = sin(gamma);
        r.py = ay;
        r.px = ax;
        r.dy = cg * cy + sg * radius * py;
        r.dx = cg * cx + sg * radius * px;
    }
    return r;
}

// Joseph sampling parameters of a ray: at plane k of the major axis the ray sits at minor index
// offset + k * slope; weight is the ray length between planes (mm); major = 1 when x (axis 1)
// dominates in voxel units, 0 when y does (ties go to x).
struct MrJoseph2 {
    double offset, slope, weight;
    int major;
};

MR_FUNC MrJoseph2 mr_joseph2d_params(MrLine2 r, const double* origin, const double* spacing) {
    double sy = MR_LDG(spacing), sx = MR_LDG(spacing + 1);
    double length = sqrt(r.dy * r.dy + r.dx * r.dx);
    double iy0 = (r.py - MR_LDG(origin)) / sy;
    double ix0 = (r.px - MR_LDG(origin + 1)) / sx;
    double diy = r.dy / sy;
    double dix = r.dx / sx;
    MrJoseph2 p;
    if (fabs(dix) >= fabs(diy)) {
        p.slope = diy / dix;
        p.offset = iy0 - ix0 * p.slope;
        p.weight = sx * length / fabs(r.dx);
        p.major = 1;
    } else {
        p.slope = dix / diy;
        p.offset = ix0 - iy0 * p.slope;
        p.weight = sy * length / fabs(r.dy);
        p.major = 0;
    }
    return p;
}

// ---------------------------------------------------------------------- per-thread bodies
// Thread index idx = (b * n_views + v) * n_det + j: one ray of one batch item.

MR_FUNC void mr_joseph2d_forward_body(long long idx, const float* img, float* sino, int ny,
                                      int nx, int n_views, int n_det, int mode, const double* a,
                                      const double* c, const double* u, const double* origin,
                                      const double* spacing) {
    int j = (int)(idx % n_det);
    int v = (int)((idx / n_det) % n_views);
    long long b = idx / ((long long)n_det * n_views);
    const float* im = img + b * ny * nx;
    MrJoseph2 p = mr_joseph2d_params(mr_line2d(mode, a, c, u, v, j, n_det), origin, spacing);
    double acc = 0.0;
    int lo, hi;
    if (p.major == 1) {  // one sample per column k, linear along y
        mr_plane_range(p.offset, p.slope, ny, nx, &lo, &hi);
        for (int k = lo; k <= hi; ++k) acc += mr_lerp1(im + k, nx, ny, p.offset + k * p.slope);
    } else {  // one sample per row k, linear along x
        mr_plane_range(p.offset, p.slope, nx, ny, &lo, &hi);
        for (int k = lo; k <= hi; ++k)
            acc += mr_lerp1(im + (long long)k * nx, 1, nx, p.offset + k * p.slope);
    }
    sino[idx] = (float)(acc * p.weight);
}

// Exact transpose of mr_joseph2d_forward_body: adds this ray's contribution to img.
MR_FUNC void mr_joseph2d_adjoint_body(long long idx, const float* sino, float* img, int ny,
                                      int nx, int n_views, int n_det, int mode, const double* a,
                                      const double* c, const double* u, const double* origin,
                                      const double* spacing) {
    int j = (int)(idx % n_det);
    int v = (int)((idx / n_det) % n_views);
    long long b = idx / ((long long)n_det * n_views);
    float* im = img + b * ny * nx;
    MrJoseph2 p = mr_joseph2d_params(mr_line2d(mode, a, c, u, v, j, n_det), origin, spacing);
    float val = (float)(MR_LDG(sino + idx) * p.weight);
    if (val == 0.0f) return;
    int lo, hi;
    if (p.major == 1) {
        mr_plane_range(p.offset, p.slope, ny, nx, &lo, &hi);
        for (int k = lo; k <= hi; ++k) mr_scatter1(im + k, nx, ny, p.offset + k * p.slope, val);
    } else {
        mr_plane_range(p.offset, p.slope, nx, ny, &lo, &hi);
        for (int k = lo; k <= hi; ++k)
            mr_scatter1(im + (long long)k * nx, 1, nx, p.offset + k * p.slope, val);
    }
}

// `fast` forward: the line clipped to the image's support, split into the fewest equal steps no
// longer than `step` mm, one bilinear read at the middle of each step. `fetch(y, x)` reads the
// image at index coordinates.
template <class Fetch>
MR_FUNC float mr_fast2d_ray(MrLine2 r, int ny, int nx, const double* origin,
                            const double* spacing, double step, const Fetch& fetch) {
    double sy = MR_LDG(spacing), sx = MR_LDG(spacing + 1);
    double iy0 = (r.py - MR_LDG(origin)) / sy;
    double ix0 = (r.px - MR_LDG(origin + 1)) / sx;
    double diy = r.dy / sy;
    double dix = r.dx / sx;
    double s_in = -1e300, s_out = 1e300;
    if (!mr_clip_axis(iy0, diy, ny, &s_in, &s_out)) return 0.0f;
    if (!mr_clip_axis(ix0, dix, nx, &s_in, &s_out)) return 0.0f;
    double length = sqrt(r.dy * r.dy + r.dx * r.dx);  // mm per unit of s
    double span = (s_out - s_in) * length;
    int n = (int)ceil(span / step);
    if (n < 1) n = 1;
    double h = (s_out - s_in) / n;
    double acc = 0.0;
    for (int q = 0; q < n; ++q) {
        double s = s_in + (q + 0.5) * h;
        acc += fetch(iy0 + s * diy, ix0 + s * dix);
    }
    return (float)(acc * h * length);
}

struct MrSoftFetch2 {
    const float* img;
    int ny, nx;
    __host__ __device__ float operator()(double y, double x) const {
        return mr_fetch2d(img, ny, nx, y, x);
    }
};

MR_FUNC void mr_fast2d_forward_body(long long idx, const float* img, float* sino, int ny, int nx,
                                    int n_views, int n_det, int mode, const double* a,
                                    const double* c, const double* u, const double* origin,
                                    const double* spacing, double step) {
    int j = (int)(idx % n_det);
    int v = (int)((idx / n_det) % n_views);
    long long b = idx / ((long long)n_det * n_views);
    MrSoftFetch2 fetch = {img + b * ny * nx, ny, nx};
    sino[idx] = mr_fast2d_ray(mr_line2d(mode, a, c, u, v, j, n_det), ny, nx, origin, spacing,
                              step, fetch);
}

// ------------------------------------------------------------------------ device kernels
#if defined(__CUDACC__)

extern "C" __global__ void medrecon_joseph2d_forward(const float* img, float* sino, int n_batch,
                                                     int ny, int nx, int n_views, int n_det,
                                                     int mode, const double* a, const double* c,
                                                     const double* u, const double* origin,
                                                     const double* spacing) {
    long long total = (long long)n_batch * n_views * n_det;
    for (long long idx = mr_thread_index(); idx < total; idx += mr_thread_stride())
        mr_joseph2d_forward_body(idx, img, sino, ny, nx, n_views, n_det, mode, a, c, u, origin,
                                 spacing);
}

extern "C" __global__ void medrecon_joseph2d_adjoint(const float* sino, float* img, int n_batch,
                                                     int ny, int nx, int n_views, int n_det,
                                                     int mode, const double* a, const double* c,
                                                     const double* u, const double* origin,
                                                     const double* spacing) {
    long long total = (long long)n_batch * n_views * n_det;
    for (long long idx = mr_thread_index(); idx < total; idx += mr_thread_stride())
        mr_joseph2d_adjoint_body(idx, sino, img, ny, nx, n_views, n_det, mode, a, c, u, origin,
                                 spacing);
}

extern "C" __global__ void medrecon_fast2d_forward(const float* img, float* sino, int n_batch,
                                                   int ny, int nx, int n_views, int n_det,
                                                   int mode, const double* a, const double* c,
                                                   const double* u, const double* origin,
                                                   const double* spacing, double step) {
    long long total = (long long)n_batch * n_views * n_det;
    for (long long idx = mr_thread_index(); idx < total; idx += mr_thread_stride())
        mr_fast2d_forward_body(idx, img, sino, ny, nx, n_views, n_det, mode, a, c, u, origin,
                               spacing, step);
}

struct MrTexFetch2 {
    cudaTextureObject_t tex;
    int layer;
    __device__ float operator()(double y, double x) const {
        return mr_tex_fetch2d(tex, layer, y, x);
    }
};

__device__ __forceinline__ void mr_fast2d_forward_tex_body(
    long long idx, cudaTextureObject_t tex, float* sino, int ny, int nx, int n_views, int n_det,
    int mode, const double* a, const double* c, const double* u, const double* origin,
    const double* spacing, double step) {
    int j = (int)(idx % n_det);
    int v = (int)((idx / n_det) % n_views);
    int b = (int)(idx / ((long long)n_det * n_views));
    MrTexFetch2 fetch = {tex, b};
    sino[idx] = mr_fast2d_ray(mr_line2d(mode, a, c, u, v, j, n_det), ny, nx, origin, spacing,
                              step, fetch);
}

// As medrecon_fast2d_forward, reading a layered 2D texture (layer = batch item) instead.
extern "C" __global__ void medrecon_fast2d_forward_tex(cudaTextureObject_t tex, float* sino,
                                                       int n_batch, int ny, int nx, int n_views,
                                                       int n_det, int mode, const double* a,
                                                       const double* c, const double* u,
                                                       const double* origin,
                                                       const double* spacing, double step) {
    long long total = (long long)n_batch * n_views * n_det;
    for (long long idx = mr_thread_index(); idx < total; idx += mr_thread_stride())
        mr_fast2d_forward_tex_body(idx, tex, sino, ny, nx, n_views, n_det, mode, a, c, u, origin,
                                   spacing, step);
}

#endif  // __CUDACC__

// -------------------------------------------------------------------------- host launchers
#if defined(MEDRECON_HOST_BUILD)

extern "C" void medrecon_joseph2d_forward_host(const float* img, float* sino, int n_batch, int ny,
                                               int nx, int n_views, int n_det, int mode,
                                               const double* a, const double* c,
                                               const double* u, const double* origin,
                                               const double* spacing) {
    long long total = (long long)n_batch * n_views * n_det;
#pragma omp parallel for schedule(static)
    for (long long idx = 0; idx < total; ++idx)
        mr_joseph2d_forward_body(idx, img, sino, ny, nx, n_views, n_det, mode, a, c, u, origin,
                                 spacing);
}

// img must be zero-initialised (the transpose accumulates). Batch items are independent and run
// in parallel; the rays of one item are scattered sequentially, in index order.
extern "C" void medrecon_joseph2d_adjoint_host(const float* sino, float* img, int n_batch, int ny,
                                               int nx, int n_views, int n_det, int mode,
                                               const double* a, const double* c,
                                               const double* u, const double* origin,
                                               const double* spacing) {
    long long rays = (long long)n_views * n_det;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < n_batch; ++b)
        for (long long r = 0; r < rays; ++r)
            mr_joseph2d_adjoint_body(b * rays + r, sino, img, ny, nx, n_views, n_det, mode, a, c,
                                     u, origin, spacing);
}

extern "C" void medrecon_fast2d_forward_host(const float* img, float* sino, int n_batch, int ny,
                                             int nx, int n_views, int n_det, int mode,
                                             const double* a, const double* c, const double* u,
                                             const double* origin, const double* spacing,
                                             double step) {
    long long total = (long long)n_batch * n_views * n_det;
#pragma omp parallel for schedule(static)
    for (long long idx = 0; idx < total; ++idx)
        mr_fast2d_forward_body(idx, img, sino, ny, nx, n_views, n_det, mode, a, c, u, origin,
                               spacing, step);
}

#endif  // MEDRECON_HOST_BUILD
