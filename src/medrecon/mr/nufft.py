"""Non-Cartesian MR: the NUFFT encoding operator, its Toeplitz normal operator and CG-SENSE.

Conventions
-----------
An image ``x`` of shape ``(..., ny, nx)`` (or ``(..., nz, ny, nx)``, or ``(..., n)``) is
sampled at non-uniform k-space locations ``coords`` of shape ``(*traj, d)``::

    y_j = 1 / sqrt(N) * sum_r x[r] * exp(-i k_j . (r - c))          (N = ny * nx)

where ``r`` runs over the pixel indices, ``c = (ny // 2, nx // 2)`` is the centre pixel (the
same DC convention as :func:`~medrecon.mr.fft.fft2c`) and ``k_j = coords[j]`` is in **radians
per sample**, in ``[-pi, pi]``: the last axis of ``coords`` lists the frequency of each image
axis **in the order of the image axes**, i.e. ``coords[..., 0]`` is ``ky`` (conjugate to the
row index, axis ``-2``) and ``coords[..., 1]`` is ``kx`` (axis ``-1``); in 3D
``(kz, ky, kx)``. ``k = pi`` is the Nyquist frequency of the pixel grid. On the Cartesian
grid ``k = 2 pi (m - n // 2) / n`` the operator equals :func:`~medrecon.mr.fft.fft2c` (the
``1 / sqrt(N)`` scaling makes it "unitary-like": ``A^H A = I`` for fully sampled Cartesian
coordinates). The adjoint is the type-1 NUFFT with the same ``1 / sqrt(N)`` scale.

The transforms are computed by FINUFFT (type 2 forward, type 1 adjoint, plans created once
per operator and batch size, accuracy ``eps``); for CUDA tensors or CuPy arrays by cuFINUFFT
with the same scaling (``pip install cufinufft``).

Other libraries' conventions (for comparison; see the tests):

* SigPy ``sigpy.nufft(x, coord)``: ``coord`` in cycles per FOV, ``coord = k * n / (2 pi)``,
  same axis order and centre, the same orthonormal ``1 / sqrt(N)`` scale; its default
  Kaiser-Bessel kernel (width 4, oversampling 1.25) is accurate to ~1e-2.
* torchkbnufft ``KbNufft(im_size)(x, omega)``: ``omega`` is ``coords`` transposed, shape
  ``(d, n_samples)``, radians per sample; without ``norm`` it is unscaled (``sqrt(N) * A``);
  its ``norm="ortho"`` divides by the square root of the *oversampled* grid size (2x per axis
  by default), not of the image size. Accurate to ~1e-3 with its default table interpolation.

Autograd
--------
:func:`nufft` and :func:`nufft_adjoint` (and calls of a :class:`NufftOperator` on tensors that
require gradients) are differentiable with respect to the image / k-space values, with the
adjoint as backward. The coordinates are **not** differentiated (no gradient flows to them).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np
import numpy.typing as npt

from medrecon._array import check_finite as _check_finite
from medrecon._array import is_torch, like, split_batch, to_numpy
from medrecon.errors import (
    BackendUnavailableError,
    DtypeError,
    GeometryError,
    ShapeError,
)
from medrecon.mr._linop import (
    _COMPLEX,
    ComplexOperator,
    _ComplexAdjoint,
    check_solver_args,
    conjugate_gradient,
)

__all__ = [
    "NufftOperator",
    "ToeplitzNormal",
    "check_coords",
    "nufft",
    "nufft_adjoint",
    "nufft_sense_recon",
]

_MAX_PLANS = 8
#: the smallest eps FINUFFT accepts without a warning, per precision (smaller ones are clamped)
_MIN_EPS = {np.dtype(np.complex64): 2e-7, np.dtype(np.complex128): 1e-15}
_CUFINUFFT_HINT = "cuFINUFFT is needed for CUDA inputs of the NUFFT: pip install cufinufft"


# ----------------------------------------------------------------------------- validation
def _complex_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise DtypeError(f"dtype: expected complex64 or complex128, got {dtype!r}") from exc
    if dt not in (np.dtype(np.complex64), np.dtype(np.complex128)):
        raise DtypeError(f"dtype: expected complex64 or complex128, got {dt}")
    return dt


def _image_shape(image_shape: Any) -> tuple[int, ...]:
    try:
        shape = tuple(int(n) for n in image_shape)
    except TypeError as exc:
        raise ShapeError(
            f"image_shape: expected a tuple of 1 to 3 ints, got {image_shape!r}"
        ) from exc
    if not 1 <= len(shape) <= 3 or any(n < 1 for n in shape):
        raise ShapeError(f"image_shape: expected 1 to 3 positive sizes, got {shape}")
    return shape


def check_coords(coords: Any, ndim: int | None = None) -> np.ndarray:
    """Validate k-space coordinates and return them as a float64 array of shape ``(*traj, d)``.

    Parameters
    ----------
    coords : array_like of shape (..., d)
        Coordinates in radians per sample, in ``[-pi, pi]``; ``d`` in 1..3.
    ndim : int, optional
        The required ``d`` (the number of image axes).

    Returns
    -------
    ndarray of shape (..., d), float64

    Raises
    ------
    ShapeError
        Not at least 2-D, no samples, or the last axis is not ``ndim`` (1 to 3).
    DtypeError
        Not a real floating-point (or integer) array.
    NonFiniteError
        NaN or infinity.
    GeometryError
        A coordinate outside ``[-pi, pi]`` (a :class:`ValueError`).

    Examples
    --------
    >>> check_coords([[0.0, 3.0], [-1.0, 1.0]], ndim=2).shape
    (2, 2)
    """
    if is_torch(coords):
        coords = coords.detach().cpu()
    elif _is_cupy(coords):
        coords = coords.get()
    k = to_numpy(coords)
    if k.dtype.kind not in "fiu":
        raise DtypeError(f"coords: expected real floating-point coordinates, got {k.dtype}")
    if k.ndim < 2 or not 1 <= k.shape[-1] <= 3 or k.size == 0:
        raise ShapeError(
            f"coords: expected shape (..., d) with d in 1..3 and at least one sample, "
            f"got {tuple(k.shape)}"
        )
    if ndim is not None and k.shape[-1] != ndim:
        raise ShapeError(
            f"coords: the last axis must have one entry per image axis ({ndim}), "
            f"got shape {tuple(k.shape)}"
        )
    k = np.asarray(k, dtype=np.float64)
    _check_finite(k, "coords")
    lo, hi = float(k.min()), float(k.max())
    if lo < -math.pi or hi > math.pi:
        raise GeometryError(
            f"coords: expected radians per sample in [-pi, pi], got values in [{lo:.6g}, {hi:.6g}]"
            "; scale cycles-per-FOV coordinates by 2 pi / n"
        )
    return k


def _check_weights(weights: Any, traj_shape: tuple[int, ...], real: type) -> np.ndarray:
    w = to_numpy(weights)
    if w.dtype.kind not in "biuf":
        raise DtypeError(f"weights: expected real non-negative weights, got {w.dtype}")
    try:
        w = np.broadcast_to(w, traj_shape)
    except ValueError as exc:
        raise ShapeError(
            f"weights: expected a shape that broadcasts to the trajectory {traj_shape}, "
            f"got {tuple(w.shape)}"
        ) from exc
    _check_finite(w, "weights")
    if np.any(w < 0):
        raise ValueError("weights: expected non-negative density compensation weights")
    return np.ascontiguousarray(w, dtype=real)


# ------------------------------------------------------------------------ device helpers
def _is_cupy(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "cupy"


def _is_cuda(x: Any) -> bool:
    if is_torch(x):
        return bool(x.device.type == "cuda")
    return _is_cupy(x)


def _import_cufinufft() -> Any:
    try:
        import cufinufft
    except ImportError as exc:
        raise BackendUnavailableError(_CUFINUFFT_HINT) from exc
    return cufinufft


class _Device:
    """The few array operations the GPU paths need, for torch CUDA tensors or CuPy arrays."""

    def __init__(self, x: Any) -> None:
        self.key: tuple[str, Any, int]
        self.torch = is_torch(x)
        if self.torch:
            import torch

            self.mod: Any = torch
            self.device = x.device
            self.key = ("torch", str(x.device), torch.cuda.current_stream(x.device).cuda_stream)
        else:
            import cupy

            self.mod = cupy
            self.device = x.device
            self.key = ("cupy", int(x.device.id), int(cupy.cuda.get_current_stream().ptr))

    @property
    def stream(self) -> int:
        return int(self.key[2])

    @property
    def device_id(self) -> int:
        if self.torch:
            return int(self.device.index or 0)
        return int(self.device.id)

    def asarray(self, a: np.ndarray) -> Any:
        a = np.ascontiguousarray(a)
        if self.torch:
            return self.mod.as_tensor(a, device=self.device)
        with self.mod.cuda.Device(self.device_id):
            return self.mod.asarray(a)

    def dtype_of(self, x: Any) -> np.dtype:
        if self.torch:
            return np.dtype(str(x.dtype).removeprefix("torch."))
        return np.dtype(x.dtype)

    def cast(self, x: Any, dt: np.dtype) -> Any:
        if self.torch:
            return x.to(getattr(self.mod, dt.name)).resolve_conj().contiguous()
        return self.mod.ascontiguousarray(x.astype(dt, copy=False))

    def empty(self, shape: tuple[int, ...], dt: np.dtype) -> Any:
        if self.torch:
            return self.mod.empty(shape, dtype=getattr(self.mod, dt.name), device=self.device)
        with self.mod.cuda.Device(self.device_id):
            return self.mod.empty(shape, dtype=dt)

    def sum(self, x: Any, axis: int) -> Any:
        return x.sum(dim=axis) if self.torch else x.sum(axis=axis)

    def finite(self, x: Any) -> bool:
        return bool(self.mod.isfinite(x).all())

    def fftn(self, x: Any, s: tuple[int, ...], inverse: bool) -> Any:
        axes = tuple(range(-len(s), 0))
        if self.torch:
            fn = self.mod.fft.ifftn if inverse else self.mod.fft.fftn
            return fn(x, s=s, dim=axes)
        fn = self.mod.fft.ifftn if inverse else self.mod.fft.fftn
        return fn(x, s=s, axes=axes)


# ------------------------------------------------------------------------------ operator
class NufftOperator(ComplexOperator):
    """Non-uniform FFT encoding ``A x = 1/sqrt(N) * NUFFT(S * x)`` at arbitrary k-space points.

    Parameters
    ----------
    coords : array_like of shape (*traj, d)
        k-space coordinates in radians per sample, in ``[-pi, pi]``, one column per image
        axis in the image's axis order (``(ky, kx)`` for ``(ny, nx)`` images); e.g. the
        ``(n_spokes, n_readout, 2)`` output of :func:`medrecon.mr.trajectories.radial`.
    image_shape : tuple of int
        ``(ny, nx)``, ``(nz, ny, nx)`` (or ``(n,)``); ``d == len(image_shape)``.
    maps : array_like of shape (coils, *image_shape), optional
        Coil sensitivities (cast to ``dtype``). With maps the operator is multi-coil
        (SENSE + NUFFT) and the range is ``(coils, *traj)``; without, it is ``traj``.
    eps : float
        Requested relative accuracy of the NUFFT (FINUFFT's ``eps``); requests below what
        the precision allows are clamped to 2e-7 (complex64) or 1e-15 (complex128) on the
        CPU, 1e-6 / 1e-14 with cuFINUFFT.
    dtype : complex64 or complex128
        Precision of the operator (inputs must match, or be real float of the same
        precision family, taken as complex).
    check_finite : bool
        Refuse inputs with NaN or infinity (default True).
    n_threads : int, optional
        FINUFFT threads (default: FINUFFT's choice, all cores).

    Notes
    -----
    Maps ``(..., *image_shape)`` to ``(..., [coils,] *traj)`` with leading batch dimensions
    carried through (all batch entries and coils are transformed in one FINUFFT call).
    Density compensation is not part of the operator: pass ``weights`` to :meth:`normal`
    or ``dcf`` to :func:`nufft_sense_recon`. Plans are created on first use and cached per
    transform type and batch size (at most 8 plans). numpy in gives numpy out, torch in
    gives torch out; tensors that require gradients are differentiated through the
    autograd bridge of this module (backward = adjoint). CUDA tensors and CuPy arrays run
    on the GPU through cuFINUFFT (:class:`~medrecon.errors.BackendUnavailableError` if it is
    not installed).

    Examples
    --------
    >>> import numpy as np
    >>> from medrecon.mr.fft import fft2c
    >>> k = 2 * np.pi * (np.arange(8) - 4) / 8
    >>> coords = np.stack(np.meshgrid(k, k, indexing="ij"), axis=-1)  # (8, 8, 2) Cartesian
    >>> A = NufftOperator(coords, (8, 8), dtype=np.complex128, eps=1e-12)
    >>> x = np.random.default_rng(0).standard_normal((8, 8)) + 0j
    >>> A(x).shape, bool(np.allclose(A(x), fft2c(x)))
    ((8, 8), True)
    """

    def __init__(
        self,
        coords: npt.ArrayLike,
        image_shape: tuple[int, ...],
        *,
        maps: npt.ArrayLike | None = None,
        eps: float = 1e-6,
        dtype: npt.DTypeLike = np.complex64,
        check_finite: bool = True,
        n_threads: int | None = None,
    ) -> None:
        shape = _image_shape(image_shape)
        cdt = _complex_dtype(dtype)
        k = check_coords(coords, len(shape))
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps: expected a positive accuracy, got {eps!r}")
        if n_threads is not None and (
            isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1
        ):
            raise ValueError(f"n_threads: expected a positive int or None, got {n_threads!r}")
        traj = tuple(int(n) for n in k.shape[:-1])
        s: np.ndarray | None = None
        if maps is not None:
            s = to_numpy(maps)
            if s.ndim != len(shape) + 1 or tuple(s.shape[1:]) != shape or s.shape[0] < 1:
                raise ShapeError(
                    f"maps: expected shape (coils, {', '.join(map(str, shape))}), "
                    f"got {tuple(s.shape)}"
                )
            if np.dtype(s.dtype) not in _COMPLEX:
                raise DtypeError(f"maps: expected a complex or real float dtype, got {s.dtype}")
            _check_finite(s, "maps")
            s = np.ascontiguousarray(s, dtype=cdt)
            s.setflags(write=False)
        rng = ((int(s.shape[0]),) if s is not None else ()) + traj
        super().__init__(domain_shape=shape, range_shape=rng, check_finite=check_finite)
        self.dtype = cdt
        self.image_shape = shape
        self.traj_shape = traj
        self.eps = float(eps)
        self.n_threads = n_threads
        self.maps = s
        self._maps_conj = np.conj(s) if s is not None else None
        self.coords = k
        self.coords.setflags(write=False)
        real = np.float32 if cdt == np.complex64 else np.float64
        # one contiguous array per axis, in image-axis order (finufft's x pairs with axis 0)
        self._pts = [np.ascontiguousarray(k[..., i].ravel(), dtype=real) for i in range(len(shape))]
        self.scale = 1.0 / math.sqrt(math.prod(shape))
        self._plans: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    # ----------------------------------------------------------------- properties
    @property
    def n_coils(self) -> int | None:
        """Number of coils, or None for a single-coil operator without maps."""
        return None if self.maps is None else int(self.maps.shape[0])

    @property
    def n_samples(self) -> int:
        """Number of k-space samples (the product of the trajectory shape)."""
        return len(self._pts[0])

    def __repr__(self) -> str:
        coils = "" if self.maps is None else f"coils={self.n_coils}, "
        return (
            f"NufftOperator({coils}image_shape={self.image_shape}, traj_shape={self.traj_shape}, "
            f"eps={self.eps:g}, dtype={self.dtype})"
        )

    @property
    def T(self) -> Any:  # noqa: N802
        """The adjoint (type-1 NUFFT), cached; it keeps the GPU and autograd dispatch."""
        if self._adjoint_op is None:
            self._adjoint_op = _NufftAdjoint(self)
        return self._adjoint_op

    # ------------------------------------------------------------------- CPU path
    def _plan(self, nufft_type: int, n_trans: int) -> Any:
        key = (nufft_type, n_trans)
        plan = self._plans.get(key)
        if plan is None:
            import finufft

            opts: dict[str, Any] = {}
            if self.n_threads is not None:
                opts["nthreads"] = self.n_threads
            plan = finufft.Plan(
                nufft_type,
                self.image_shape,
                n_trans,
                eps=max(self.eps, _MIN_EPS[self._cdtype]),
                isign=-1 if nufft_type == 2 else 1,
                dtype=self._cdtype.name,
                **opts,
            )
            plan.setpts(*self._pts)
            self._plans[key] = plan
            while len(self._plans) > _MAX_PLANS:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return plan

    def _type2(self, img: np.ndarray) -> np.ndarray:
        """Type-2 NUFFT of ``(..., *image_shape)`` to ``(..., n_samples)``, scaled."""
        lead = img.shape[: img.ndim - len(self.image_shape)]
        b = math.prod(lead)
        if b == 0:
            return np.zeros((*lead, self.n_samples), self.dtype)
        data = np.ascontiguousarray(img.reshape(b, *self.image_shape), dtype=self.dtype)
        out = self._plan(2, b).execute(data if b > 1 else data[0])
        out = out.reshape(*lead, self.n_samples)
        out *= self._cdtype.type(self.scale)
        return out

    def _type1(self, ksp: np.ndarray) -> np.ndarray:
        """Type-1 NUFFT of ``(..., n_samples)`` to ``(..., *image_shape)``, scaled."""
        lead = ksp.shape[:-1]
        b = math.prod(lead)
        if b == 0:
            return np.zeros((*lead, *self.image_shape), self.dtype)
        data = np.ascontiguousarray(ksp.reshape(b, self.n_samples), dtype=self.dtype)
        out = self._plan(1, b).execute(data if b > 1 else data[0])
        out = out.reshape(*lead, *self.image_shape)
        out *= self._cdtype.type(self.scale)
        return out

    def _forward(self, x: np.ndarray) -> np.ndarray:
        d = len(self.image_shape)
        if self.maps is not None:
            x = self.maps * np.expand_dims(x, -d - 1)
        y = self._type2(x)
        return y.reshape(*y.shape[:-1], *self.traj_shape)

    def _adjoint(self, y: np.ndarray) -> np.ndarray:
        t = len(self.traj_shape)
        img = self._type1(y.reshape(*y.shape[: y.ndim - t], self.n_samples))
        if self._maps_conj is not None:
            img = np.sum(self._maps_conj * img, axis=-len(self.image_shape) - 1)
        return np.asarray(img, dtype=self.dtype)

    # ------------------------------------------------------------------- dispatch
    def _dispatch(self, x: Any, *, adjoint: bool) -> Any:
        if is_torch(x) and x.requires_grad:
            import torch

            if torch.is_grad_enabled():
                return _autograd_function().apply(x, self, adjoint)
        if _is_cuda(x):
            return self._gpu_apply(x, adjoint=adjoint)
        return super()._dispatch(x, adjoint=adjoint)

    # ------------------------------------------------------------------- GPU path
    def _gpu_check(self, x: Any, dev: _Device, core: tuple[int, ...], name: str) -> Any:
        split_batch(tuple(int(n) for n in x.shape), core, name)
        dt = dev.dtype_of(x)
        if dt not in _COMPLEX or (dt.kind == "c" and dt != self.dtype):
            raise DtypeError(
                f"{name}: expected dtype {self.dtype} (or real float32/float64, taken as "
                f"complex with zero imaginary part), got {dt}"
            )
        x = dev.cast(x, self._cdtype)
        if self.check_finite and not dev.finite(x):
            from medrecon.errors import NonFiniteError

            raise NonFiniteError(f"{name}: expected finite values, got NaN or infinity")
        return x

    def _gpu_cache(self, dev: _Device) -> dict[str, Any]:
        key = ("gpu", *dev.key)
        entry = self._plans.get(key)
        if entry is None:
            entry = {
                "pts": [dev.asarray(p) for p in self._pts],
                "maps": None if self.maps is None else dev.asarray(self.maps),
                "maps_conj": None if self._maps_conj is None else dev.asarray(self._maps_conj),
                "plans": {},
            }
            self._plans[key] = entry
            while len(self._plans) > _MAX_PLANS:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return entry

    def _gpu_plan(self, dev: _Device, nufft_type: int, n_trans: int) -> Any:
        entry = self._gpu_cache(dev)
        plan = entry["plans"].get((nufft_type, n_trans))
        if plan is None:
            cufinufft = _import_cufinufft()
            plan = cufinufft.Plan(
                nufft_type,
                self.image_shape,
                n_trans=n_trans,
                eps=max(self.eps, 1e-6 if self._cdtype == np.complex64 else 1e-14),
                isign=-1 if nufft_type == 2 else 1,
                dtype=self._cdtype.name,
                gpu_device_id=dev.device_id,
                gpu_stream=dev.stream,
            )
            plan.setpts(*entry["pts"])
            entry["plans"][(nufft_type, n_trans)] = plan
        return plan

    def _gpu_apply(self, x: Any, *, adjoint: bool) -> Any:
        _import_cufinufft()  # fail early, with the install hint
        dev = _Device(x)
        d, t = len(self.image_shape), len(self.traj_shape)
        name = "adjoint input" if adjoint else "forward input"
        x = self._gpu_check(x, dev, self.range_shape if adjoint else self.domain_shape, name)
        entry = self._gpu_cache(dev)
        m = self.n_samples
        if not adjoint:
            if entry["maps"] is not None:
                x = entry["maps"] * x.reshape(*x.shape[:-d], 1, *x.shape[-d:])
            lead = tuple(x.shape[:-d])
            b = math.prod(lead)
            out = dev.empty((b, m), self._cdtype)
            if b > 0:
                data = dev.cast(x.reshape(b, *self.image_shape), self._cdtype)
                self._gpu_plan(dev, 2, b).execute(data, out=out)
            return (out * self.scale).reshape(*lead, *self.traj_shape)
        lead = tuple(x.shape[: x.ndim - t])
        b = math.prod(lead)
        out = dev.empty((b, *self.image_shape), self._cdtype)
        if b > 0:
            data = dev.cast(x.reshape(b, m), self._cdtype)
            self._gpu_plan(dev, 1, b).execute(data, out=out)
        img = (out * self.scale).reshape(*lead, *self.image_shape)
        if entry["maps_conj"] is not None:
            img = dev.sum(entry["maps_conj"] * img, axis=-d - 1)
        return img

    # ---------------------------------------------------------------- normal op
    def normal(self, weights: npt.ArrayLike | None = None, *, toeplitz: bool = True) -> Any:
        """The normal operator ``A^H W A`` (``W`` = diagonal density weights, default 1).

        Parameters
        ----------
        weights : array_like, optional
            Real non-negative weights broadcasting to the trajectory shape (a DCF).
        toeplitz : bool
            If True (default) return a :class:`ToeplitzNormal` (2x oversampled FFT
            convolution, kernel computed once); else the explicit ``A^H (W (A x))``.

        Returns
        -------
        ComplexOperator
            Maps ``(..., *image_shape)`` to itself.

        Examples
        --------
        >>> import numpy as np
        >>> k = np.random.default_rng(0).uniform(-np.pi, np.pi, (100, 2))
        >>> A = NufftOperator(k, (8, 8), dtype=np.complex128, eps=1e-10)
        >>> x = np.ones((8, 8), np.complex128)
        >>> bool(np.allclose(A.normal()(x), A.T(A(x))))
        True
        """
        if toeplitz:
            return ToeplitzNormal(self, weights)
        return _ExplicitNormal(self, weights)


class _NufftAdjoint(_ComplexAdjoint):
    """``A^H`` that keeps the NUFFT's GPU and autograd dispatch."""

    op: NufftOperator

    def _dispatch(self, x: Any, *, adjoint: bool) -> Any:
        return self.op._dispatch(x, adjoint=not adjoint)


class _ExplicitNormal(ComplexOperator):
    """``A^H W A`` applied as two NUFFTs (the reference for :class:`ToeplitzNormal`)."""

    def __init__(self, op: NufftOperator, weights: Any = None) -> None:
        super().__init__(
            domain_shape=op.domain_shape, range_shape=op.domain_shape, check_finite=op.check_finite
        )
        self.dtype = op.dtype
        self.op = op
        real = np.float32 if op.dtype == np.complex64 else np.float64
        self.weights = None if weights is None else _check_weights(weights, op.traj_shape, real)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        y = self.op._forward(x)
        if self.weights is not None:
            y = y * self.weights
        return self.op._adjoint(y)

    def _adjoint(self, y: np.ndarray) -> np.ndarray:
        return self._forward(y)


class ToeplitzNormal(ComplexOperator):
    """``A^H W A`` of a :class:`NufftOperator` as a 2x oversampled FFT convolution.

    For ``A x = S x`` sampled at ``k_j`` with ``1/sqrt(N)`` scale, ``A^H W A`` is per coil a
    convolution of ``S_c x`` with the kernel ``T(d) = 1/N * sum_j w_j exp(i k_j . d)`` for
    pixel offsets ``|d| < n`` on every axis, followed by ``sum_c conj(S_c) .``. ``T`` is
    computed once by a type-1 NUFFT onto the ``2n`` grid; each application then costs one
    zero-padded FFT and one inverse FFT of size ``2n`` per coil and batch entry (no
    NUFFT). It equals the explicit ``A^H (W (A x))`` to about the NUFFT accuracy ``eps``.

    Parameters
    ----------
    op : NufftOperator
        The encoding operator (its maps, coordinates and precision are used).
    weights : array_like, optional
        Real non-negative weights broadcasting to ``op.traj_shape`` (default 1).

    Notes
    -----
    numpy and CPU torch inputs use :mod:`scipy.fft` (all cores); CUDA tensors and CuPy
    arrays use their own FFTs on the device (the kernel is moved there once; no cuFINUFFT
    needed). Not differentiable through autograd (:class:`NotDifferentiableError`).

    Examples
    --------
    >>> import numpy as np
    >>> k = np.random.default_rng(0).uniform(-np.pi, np.pi, (300, 2))
    >>> A = NufftOperator(k, (16, 12), dtype=np.complex128, eps=1e-12)
    >>> N = ToeplitzNormal(A)
    >>> x = np.random.default_rng(1).standard_normal((16, 12)) + 0j
    >>> ref = A.T(A(x))
    >>> bool(np.linalg.norm(N(x) - ref) < 1e-10 * np.linalg.norm(ref))
    True
    """

    def __init__(self, op: NufftOperator, weights: npt.ArrayLike | None = None) -> None:
        if not isinstance(op, NufftOperator):
            raise TypeError(f"op: expected a NufftOperator, got {type(op).__name__}")
        super().__init__(
            domain_shape=op.domain_shape, range_shape=op.domain_shape, check_finite=op.check_finite
        )
        self.dtype = op.dtype
        self.op = op
        w = (
            np.ones(op.traj_shape)
            if weights is None
            else _check_weights(weights, op.traj_shape, np.float64)
        )
        self.weights = w
        big = tuple(2 * n for n in op.image_shape)
        # the kernel in complex128 for every precision: one type-1 NUFFT onto the 2n grid
        kop = NufftOperator(op.coords, big, eps=min(op.eps, 1e-9), dtype=np.complex128)
        kern = kop._type1(w.reshape(-1).astype(np.complex128))
        # kop scales by 1/sqrt(prod(2n)); T needs 1/prod(n)
        kern *= math.sqrt(math.prod(big)) / math.prod(op.image_shape)
        # centre (offset 0 at index n) to FFT order (offset 0 at index 0)
        import scipy.fft

        self.kernel = np.ascontiguousarray(
            scipy.fft.fftn(np.fft.ifftshift(kern), workers=-1), dtype=op.dtype
        )
        self.kernel.setflags(write=False)
        self._device_kernels: dict[Any, Any] = {}

    def __repr__(self) -> str:
        return f"ToeplitzNormal({self.op!r})"

    def _conv(self, z: np.ndarray) -> np.ndarray:
        import scipy.fft

        d = len(self.op.image_shape)
        axes = tuple(range(-d, 0))
        big = self.kernel.shape
        f = scipy.fft.fftn(z, s=big, axes=axes, workers=-1)
        f *= self.kernel
        out = scipy.fft.ifftn(f, axes=axes, workers=-1, overwrite_x=True)
        return out[(..., *(slice(0, n) for n in self.op.image_shape))]

    def _forward(self, x: np.ndarray) -> np.ndarray:
        op = self.op
        d = len(op.image_shape)
        if op.maps is None or op._maps_conj is None:
            return np.asarray(self._conv(x), dtype=self.dtype)
        z = self._conv(op.maps * np.expand_dims(x, -d - 1))
        return np.asarray(np.sum(op._maps_conj * z, axis=-d - 1), dtype=self.dtype)

    def _adjoint(self, y: np.ndarray) -> np.ndarray:
        return self._forward(y)

    def _dispatch(self, x: Any, *, adjoint: bool) -> Any:
        if _is_cuda(x) and not (is_torch(x) and x.requires_grad):
            return self._gpu_apply(x)
        return super()._dispatch(x, adjoint=adjoint)

    def _gpu_apply(self, x: Any) -> Any:
        dev = _Device(x)
        op = self.op
        d = len(op.image_shape)
        x = op._gpu_check(x, dev, self.domain_shape, "forward input")
        if dev.key not in self._device_kernels:
            self._device_kernels[dev.key] = dev.asarray(self.kernel)
        kern = self._device_kernels[dev.key]
        entry = op._gpu_cache(dev)
        if entry["maps"] is not None:
            x = entry["maps"] * x.reshape(*x.shape[:-d], 1, *x.shape[-d:])
        f = dev.fftn(x, tuple(self.kernel.shape), inverse=False) * kern
        z = dev.fftn(f, tuple(self.kernel.shape), inverse=True)
        z = z[(..., *(slice(0, n) for n in op.image_shape))]
        if entry["maps_conj"] is not None:
            z = dev.sum(entry["maps_conj"] * z, axis=-d - 1)
        return z


# ------------------------------------------------------------------------------ autograd
_FUNCTION: Any = None


def _autograd_function() -> Any:
    """The torch.autograd.Function ``(x, op, adjoint) -> op(x)`` with backward = adjoint."""
    global _FUNCTION
    if _FUNCTION is None:
        import torch

        class _NufftFunction(torch.autograd.Function):
            @staticmethod
            def forward(ctx: Any, x: Any, op: NufftOperator, adjoint: bool) -> Any:
                ctx.op, ctx.adjoint = op, adjoint
                ctx.real_input = not x.is_complex()
                with torch.no_grad():
                    out = op._dispatch(x.detach(), adjoint=adjoint)
                return out.to(x.device) if is_torch(out) else torch.as_tensor(out)

            @staticmethod
            def backward(ctx: Any, grad: Any) -> Any:
                g = ctx.op._dispatch(grad.contiguous(), adjoint=not ctx.adjoint)
                if ctx.real_input:
                    g = g.real
                return g, None, None

        _FUNCTION = _NufftFunction
    return _FUNCTION


def _op_for(coords: Any, image_shape: tuple[int, ...], data: Any, eps: float, maps: Any) -> Any:
    dt = np.dtype(str(data.dtype).removeprefix("torch.")) if is_torch(data) else data.dtype
    if np.dtype(dt) not in _COMPLEX:
        raise DtypeError(f"expected complex64/complex128 (or real float) data, got {dt}")
    return NufftOperator(coords, image_shape, maps=maps, eps=eps, dtype=_COMPLEX[np.dtype(dt)])


def nufft(x: Any, coords: Any, *, maps: Any = None, eps: float = 1e-6) -> Any:
    """Forward NUFFT ``A x`` of images ``(..., *image_shape)``, differentiable in ``x``.

    Parameters
    ----------
    x : Tensor or ndarray of shape (..., *image_shape)
        Complex images (real float is taken as complex); the last ``d = coords.shape[-1]``
        axes are the image axes. Precision follows ``x``.
    coords : array_like or Tensor of shape (*traj, d)
        Coordinates in radians per sample (see the module docstring). Not differentiated:
        no gradient flows to them.
    maps : array_like of shape (coils, *image_shape), optional
        Coil sensitivities (multi-coil output ``(..., coils, *traj)``).
    eps : float
        NUFFT accuracy.

    Returns
    -------
    Tensor or ndarray of shape (..., [coils,] *traj)
        Same kind as ``x``; for a tensor that requires grad, the result carries the
        autograd graph (backward = :func:`nufft_adjoint`).

    Notes
    -----
    Each call plans the transform anew; for repeated use build a :class:`NufftOperator`
    once (its calls are differentiable in the same way).

    Examples
    --------
    >>> import torch
    >>> x = torch.ones(4, 4, dtype=torch.complex128, requires_grad=True)
    >>> y = nufft(x, torch.zeros(1, 2, dtype=torch.float64))
    >>> y.abs().sum().backward()
    >>> round(float(y.detach().abs().sum()), 6), round(float(x.grad.real.sum()), 6)
    (4.0, 4.0)
    """
    d = int(coords.shape[-1]) if hasattr(coords, "shape") else int(np.shape(coords)[-1])
    if int(x.ndim) < d:
        raise ShapeError(f"x: expected at least {d} image axes, got shape {tuple(x.shape)}")
    op = _op_for(coords, tuple(int(n) for n in x.shape[x.ndim - d :]), x, eps, maps)
    return op(x)


def nufft_adjoint(
    y: Any, coords: Any, image_shape: tuple[int, ...], *, maps: Any = None, eps: float = 1e-6
) -> Any:
    """Adjoint NUFFT ``A^H y`` of k-space ``(..., [coils,] *traj)``, differentiable in ``y``.

    Parameters
    ----------
    y : Tensor or ndarray of shape (..., [coils,] *traj)
        Complex k-space samples; ``traj = coords.shape[:-1]``.
    coords : array_like or Tensor of shape (*traj, d)
        Coordinates in radians per sample; not differentiated.
    image_shape : tuple of int
        The image shape (``d`` axes).
    maps : array_like of shape (coils, *image_shape), optional
        Coil sensitivities (coil combination ``sum_c conj(S_c) .``).
    eps : float
        NUFFT accuracy.

    Returns
    -------
    Tensor or ndarray of shape (..., *image_shape)

    Examples
    --------
    >>> import numpy as np
    >>> img = nufft_adjoint(np.ones(3, np.complex128), np.zeros((3, 2)), (4, 4))
    >>> img.shape, round(float(img[0, 0].real), 6)
    ((4, 4), 0.75)
    """
    return _op_for(coords, _image_shape(image_shape), y, eps, maps).T(y)


# ------------------------------------------------------------------------- reconstruction
def nufft_sense_recon(
    kspace: Any,
    coords: npt.ArrayLike,
    maps: npt.ArrayLike | None,
    *,
    image_shape: tuple[int, ...] | None = None,
    dcf: npt.ArrayLike | None = None,
    lam: float = 0.0,
    n_iter: int = 30,
    tol: float = 1e-6,
    toeplitz: bool = True,
    eps: float = 1e-6,
    progress: bool = False,
) -> Any:
    """Non-Cartesian CG-SENSE: solve ``(A^H W A + lam I) x = A^H W y`` by conjugate gradients.

    Parameters
    ----------
    kspace : ndarray or Tensor of shape (..., coils, *traj)
        Measured samples (``(..., *traj)`` when ``maps`` is None), with the precision of
        ``maps`` (complex, or real float taken as complex).
    coords : array_like of shape (*traj, d)
        k-space coordinates in radians per sample (see :class:`NufftOperator`).
    maps : array_like of shape (coils, *image_shape) or None
        Coil sensitivities; their complex dtype sets the precision. None: single coil
        (then ``image_shape`` is required and the precision follows ``kspace``).
    image_shape : tuple of int, optional
        Image shape when ``maps`` is None.
    dcf : array_like, optional
        Density compensation ``W`` broadcasting to ``traj`` (e.g. :func:`pipe_dcf`); it
        makes the system better conditioned (faster convergence) at the price of solving a
        weighted least-squares problem. Default: unweighted.
    lam : float
        Tikhonov weight (>= 0), in the units of ``A^H W A``.
    n_iter : int
        Maximum number of CG iterations (>= 0).
    tol : float
        Relative residual at which CG stops (>= 0).
    toeplitz : bool
        Apply ``A^H W A`` as a :class:`ToeplitzNormal` (default) or with two NUFFTs per
        iteration.
    eps : float
        NUFFT accuracy.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    ndarray or Tensor of shape (..., *image_shape)
        Complex image, same kind as ``kspace`` (a batch is solved as one block-diagonal
        system).

    Examples
    --------
    >>> import numpy as np
    >>> k = 2 * np.pi * (np.arange(8) - 4) / 8
    >>> coords = np.stack(np.meshgrid(k, k, indexing="ij"), axis=-1)
    >>> maps = np.ones((1, 8, 8), np.complex128)
    >>> x = np.arange(64.0).reshape(8, 8) + 0j
    >>> y = NufftOperator(coords, (8, 8), maps=maps, dtype=np.complex128)(x)
    >>> rec = nufft_sense_recon(y, coords, maps, n_iter=10)
    >>> bool(np.allclose(rec, x, atol=1e-4))
    True
    """
    lam, n_iter, tol = check_solver_args(lam, n_iter, tol)
    if maps is not None:
        s = to_numpy(maps)
        if s.ndim < 2:
            raise ShapeError(f"maps: expected shape (coils, *image_shape), got {tuple(s.shape)}")
        if np.dtype(s.dtype) not in _COMPLEX:
            raise DtypeError(f"maps: expected a complex or real float dtype, got {s.dtype}")
        op = NufftOperator(
            coords, tuple(s.shape[1:]), maps=s, eps=eps, dtype=_COMPLEX[np.dtype(s.dtype)]
        )
    else:
        if image_shape is None:
            raise ShapeError("image_shape: required when maps is None")
        op = _op_for(coords, _image_shape(image_shape), to_numpy(kspace), eps, None)
    y = to_numpy(kspace)
    normal = op.normal(dcf, toeplitz=toeplitz)
    if dcf is not None:
        real = np.float64 if op.dtype == np.complex128 else np.float32
        w = _check_weights(dcf, op.traj_shape, real)
        split_batch(y.shape, op.range_shape, "kspace")
        if np.dtype(y.dtype).kind in "fc":
            y = y * w
    b = np.asarray(op.adjoint(y))
    x = conjugate_gradient(
        lambda v: normal._forward(v) + lam * v, b, int(n_iter), tol, progress, "nufft-sense"
    )
    return like(x, kspace)
