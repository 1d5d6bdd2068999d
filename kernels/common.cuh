// medrecon kernels: shared inline helpers.
//
// Every file in kernels/ compiles three ways:
//   * nvcc / NVRTC (device):   __CUDACC__ defined; the extern "C" __global__ kernels exist;
//   * g++ -DMEDRECON_HOST_BUILD (host): __host__/__device__/__global__ are defined away below and
//     the extern "C" *_host launchers run the same per-thread bodies in plain loops;
//   * nvcc -DMEDRECON_HOST_BUILD: both of the above.
// The per-thread bodies are `MR_FUNC` (__host__ __device__ inline) functions, so the device and
// the host run the same arithmetic. See kernels/README.md for the ABI and the projector model
// (the model of the numba backend, src/medrecon/projectors/cpu/, and docs/conventions.md).
//
// Only builtins are used on the device (no #include), so NVRTC needs no headers.

#ifndef MEDRECON_COMMON_CUH
#define MEDRECON_COMMON_CUH

#if !defined(__CUDACC__)
#if !defined(MEDRECON_HOST_BUILD)
#error "compile kernels/ with nvcc or NVRTC, or with a C++ compiler and -DMEDRECON_HOST_BUILD"
#endif
#include <math.h>
#define __host__
#define __device__
#define __global__
#define __forceinline__ inline
#endif

// every per-thread body and helper: one definition for the device and the host
#define MR_FUNC static __host__ __device__ __forceinline__

// read-only load: through the read-only data cache on the device, a plain load on the host
#if defined(__CUDA_ARCH__)
#define MR_LDG(ptr) __ldg(ptr)
#else
#define MR_LDG(ptr) (*(ptr))
#endif

// zero padding (in samples) that the numba twins put before the minor axis; adding it before
// taking the integer part reproduces their rounding of the sample positions exactly
#define MR_PAD 2.0

// atomic on the device; a plain add on the host, where the scatter runs sequentially
MR_FUNC void mr_atomic_add(float* ptr, float value) {
#if defined(__CUDA_ARCH__)
    atomicAdd(ptr, value);
#else
    *ptr += value;
#endif
}

// ------------------------------------------------------------------------------ index math

#if defined(__CUDACC__)
// 1D grid-stride loops: a kernel may be launched with any grid that covers >= 1 thread
__device__ __forceinline__ long long mr_thread_index() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ long long mr_thread_stride() {
    return (long long)gridDim.x * blockDim.x;
}
#endif

// component k of row `row` of an (n, dim) C-contiguous double array
MR_FUNC double mr_vec(const double* arr, int row, int dim, int k) {
    return MR_LDG(arr + (long long)row * dim + k);
}

// integer part and fraction of a (padded) sample position, as the numba twins compute them
MR_FUNC int mr_split(double pos, float* frac) {
    double p = pos + MR_PAD;
    double fl = floor(p);
    *frac = (float)(p - fl);
    return (int)fl - (int)MR_PAD;
}

// ------------------------------------------------------------------- interpolated reads

// linear interpolation along one axis at position `pos` (index units), zero outside [0, n):
// the value between samples i0 and i0+1 is v0 + f * (v1 - v0), in float32
MR_FUNC float mr_lerp1(const float* base, long long stride, int n, double pos) {
    float f;
    int i0 = mr_split(pos, &f);
    float v0 = (i0 >= 0 && i0 < n) ? MR_LDG(base + (long long)i0 * stride) : 0.0f;
    float v1 = (i0 + 1 >= 0 && i0 + 1 < n) ? MR_LDG(base + (long long)(i0 + 1) * stride) : 0.0f;
    return v0 + f * (v1 - v0);
}

// bilinear interpolation in a plane at (p1, p2), zero outside [0, n1) x [0, n2)
MR_FUNC float mr_lerp2(const float* base, long long s1, int n1, long long s2, int n2, double p1,
                       double p2) {
    float f1, f2;
    int i1 = mr_split(p1, &f1);
    int i2 = mr_split(p2, &f2);
    bool a1 = i1 >= 0 && i1 < n1, b1 = i1 + 1 >= 0 && i1 + 1 < n1;
    bool a2 = i2 >= 0 && i2 < n2, b2 = i2 + 1 >= 0 && i2 + 1 < n2;
    long long o = (long long)i1 * s1 + (long long)i2 * s2;  // may lie outside: checked first
    float v00 = (a1 && a2) ? MR_LDG(base + o) : 0.0f;
    float v01 = (a1 && b2) ? MR_LDG(base + o + s2) : 0.0f;
    float v10 = (b1 && a2) ? MR_LDG(base + o + s1) : 0.0f;
    float v11 = (b1 && b2) ? MR_LDG(base + o + s1 + s2) : 0.0f;
    float r0 = v00 + f2 * (v01 - v00);
    float r1 = v10 + f2 * (v11 - v10);
    return r0 + f1 * (r1 - r0);
}

// transpose of mr_lerp1: scatter `val` onto the two samples it was read from
MR_FUNC void mr_scatter1(float* base, long long stride, int n, double pos, float val) {
    float f;
    int i0 = mr_split(pos, &f);
    if (i0 >= 0 && i0 < n) mr_atomic_add(base + (long long)i0 * stride, val - f * val);
    if (i0 + 1 >= 0 && i0 + 1 < n) mr_atomic_add(base + (long long)(i0 + 1) * stride, f * val);
}

// transpose of mr_lerp2
MR_FUNC void mr_scatter2(float* base, long long s1, int n1, long long s2, int n2, double p1,
                         double p2, float val) {
    float f1, f2;
    int i1 = mr_split(p1, &f1);
    int i2 = mr_split(p2, &f2);
    bool a1 = i1 >= 0 && i1 < n1, b1 = i1 + 1 >= 0 && i1 + 1 < n1;
    bool a2 = i2 >= 0 && i2 < n2, b2 = i2 + 1 >= 0 && i2 + 1 < n2;
    long long o = (long long)i1 * s1 + (long long)i2 * s2;  // may lie outside: checked first
    float g1 = val * f1;
    float g0 = val - g1;
    if (a1 && a2) mr_atomic_add(base + o, g0 - g0 * f2);
    if (a1 && b2) mr_atomic_add(base + o + s2, g0 * f2);
    if (b1 && a2) mr_atomic_add(base + o + s1, g1 - g1 * f2);
    if (b1 && b2) mr_atomic_add(base + o + s1 + s2, g1 * f2);
}

// Software bilinear read of a 2D image (ny, nx) at index coordinates (y, x), voxel centres at
// integers, zero outside: what a texture with linear filtering and a zero border returns at
// (x + 0.5, y + 0.5), without the texture unit's 8-bit weights. Used by `fast` mode on the host
// and by the pointer variants of the `fast` kernels on the device.
MR_FUNC float mr_fetch2d(const float* img, int ny, int nx, double y, double x) {
    return mr_lerp2(img, nx, ny, 1, nx, y, x);
}

// software trilinear read of a volume (nz, ny, nx) at index coordinates (z, y, x), zero outside
MR_FUNC float mr_fetch3d(const float* vol, int nz, int ny, int nx, double z, double y, double x) {
    float fz;
    int iz = mr_split(z, &fz);
    long long plane = (long long)ny * nx;
    float v0 = (iz >= 0 && iz < nz) ? mr_lerp2(vol + iz * plane, nx, ny, 1, nx, y, x) : 0.0f;
    float v1 =
        (iz + 1 >= 0 && iz + 1 < nz) ? mr_lerp2(vol + (iz + 1) * plane, nx, ny, 1, nx, y, x) : 0.0f;
    return v0 + fz * (v1 - v0);
}

#if defined(__CUDACC__)
// Hardware-filtered reads for the *_tex variants of the `fast` kernels (device only). The
// texture must use unnormalised coordinates, cudaFilterModeLinear, cudaAddressModeBorder (zero)
// and cudaReadModeElementType on float32 data. 2D: a layered texture, layer = batch index.
// The texture unit's interpolation weights have 8 fractional bits.
__device__ __forceinline__ float mr_tex_fetch2d(cudaTextureObject_t tex, int layer, double y,
                                                double x) {
    return tex2DLayered<float>(tex, (float)x + 0.5f, (float)y + 0.5f, layer);
}
__device__ __forceinline__ float mr_tex_fetch3d(cudaTextureObject_t tex, double z, double y,
                                                double x) {
    return tex3D<float>(tex, (float)x + 0.5f, (float)y + 0.5f, (float)z + 0.5f);
}
#endif

// ------------------------------------------------------------------------ ray helpers

// Planes k in [0, n_major) at which offset + k * slope lies in [-1, n_minor], as [*lo, *hi]
// (empty when *hi < *lo). Identical to joseph2d.plane_range of the numba backend.
MR_FUNC void mr_plane_range(double offset, double slope, int n_minor, int n_major, int* lo,
                            int* hi) {
    if (slope == 0.0) {
        if (offset >= -1.0 && offset <= (double)n_minor) {
            *lo = 0;
            *hi = n_major - 1;
        } else {
            *lo = 0;
            *hi = -1;
        }
        return;
    }
    double t1 = (-1.0 - offset) / slope;
    double t2 = ((double)n_minor - offset) / slope;
    double l = floor(t1 < t2 ? t1 : t2);
    double h = ceil(t1 > t2 ? t1 : t2);
    // clamp as floats first: the bounds may be huge for nearly flat rays
    if (l < 0.0) l = 0.0;
    if (h > n_major - 1.0) h = n_major - 1.0;
    if (h < l) {
        *lo = 0;
        *hi = -1;
        return;
    }
    *lo = (int)l;
    *hi = (int)h;
}

// Clip the line p + s * d (index coordinates, per axis) to the box where an interpolated read
// with a zero border can be non-zero, (-1, n_axis) on every axis. Returns false when the line
// misses it; otherwise [*s_in, *s_out] is the parameter interval.
MR_FUNC bool mr_clip_axis(double p, double d, int n, double* s_in, double* s_out) {
    if (d == 0.0) return p > -1.0 && p < (double)n;
    double t1 = (-1.0 - p) / d;
    double t2 = ((double)n - p) / d;
    double lo = t1 < t2 ? t1 : t2;
    double hi = t1 > t2 ? t1 : t2;
    if (lo > *s_in) *s_in = lo;
    if (hi < *s_out) *s_out = hi;
    return *s_in < *s_out;
}

#endif  // MEDRECON_COMMON_CUH
