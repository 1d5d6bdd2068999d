"""The user-facing projector: one interface, backends behind it."""

from __future__ import annotations

from typing import Any

import numpy as np

from medrecon._array import check_dtype, check_finite, is_torch, like, split_batch, to_numpy
from medrecon.errors import DtypeError, GeometryError, NotDifferentiableError
from medrecon.geometry import VolumeGeometry
from medrecon.linop import LinearOperator
from medrecon.projectors.base import ProjectorBackend, Weighting
from medrecon.projectors.registry import get_backend

__all__ = ["Projector"]


class Projector(LinearOperator):
    """X-ray transform of a volume for a projection geometry.

    Parameters
    ----------
    geometry : ParallelBeam2D, FanBeam2D, ParallelBeam3D, ConeBeam3D, or a vector geometry
        Where the rays go (mm, radians; see docs/conventions.md).
    volume : VolumeGeometry
        The voxel grid (shape ``(ny, nx)`` or ``(nz, ny, nx)``, voxel size and
        centre in mm). Its dimension must match the geometry's.
    backend : str
        ``"cpu"`` (default; numba, exact adjoint), ``"cuda"`` (CUDA kernels
        through CuPy; options ``mode="matched"|"fast"``, ``device``,
        ``max_bytes``, see :class:`~medrecon.projectors.cuda.backend.CudaBackend`)
        or ``"astra"`` (optional astra-toolbox adapter). See
        :func:`medrecon.projectors.available_backends`.
    dtype : {None, numpy.float32, numpy.float64}
        If given, inputs must have this dtype (others raise
        :class:`~medrecon.errors.DtypeError`). By default float32 and float64
        are both accepted and the output has the input's dtype.
    check_finite : bool
        Reject inputs with NaN or infinity (default True).
    **options
        Backend-specific options; unknown ones raise ``TypeError``.

    Notes
    -----
    ``forward(x)`` maps ``x`` of shape ``(*batch, *volume.shape)`` to line
    integrals of shape ``(*batch, *geometry.proj_shape)``: with ``x`` in 1/mm
    the result is dimensionless. ``adjoint(y)`` is the exact transpose of
    ``forward`` for backends whose ``exact_adjoint`` is True (the CPU backend
    is). numpy in gives numpy out; torch in gives torch out, and tensors
    that require gradients are differentiated through the adjoint.

    Device arrays: with a backend that computes on the GPU itself (its class
    attribute ``device_arrays`` is True, as for ``"cuda"``), torch CUDA
    tensors and CuPy arrays are handed to the backend without a host copy
    (:meth:`_device_apply`) and the result has the input's kind and device:
    a CUDA tensor in gives a CUDA tensor out. Other backends refuse them with
    :class:`~medrecon.errors.DeviceError`.

    Examples
    --------
    >>> import numpy as np
    >>> from medrecon import ParallelBeam2D, Projector, VolumeGeometry
    >>> vol = VolumeGeometry(shape=(32, 32), voxel_size=1.0)
    >>> geom = ParallelBeam2D(angles=np.linspace(0, np.pi, 16, endpoint=False), n_det=48)
    >>> A = Projector(geom, vol)
    >>> A(np.ones((32, 32))).shape
    (16, 48)
    >>> A.T(np.ones((16, 48))).shape
    (32, 32)
    """

    def __init__(
        self,
        geometry: Any,
        volume: VolumeGeometry,
        *,
        backend: str = "cpu",
        dtype: Any = None,
        check_finite: bool = True,
        **options: Any,
    ) -> None:
        if not isinstance(volume, VolumeGeometry):
            raise GeometryError(f"volume: expected a VolumeGeometry, got {type(volume).__name__}")
        if not hasattr(geometry, "to_vectors") or not hasattr(geometry, "proj_shape"):
            raise GeometryError(
                f"geometry: expected a projection geometry, got {type(geometry).__name__}"
            )
        if geometry.ndim != volume.ndim:
            raise GeometryError(
                f"geometry and volume dimensions differ: geometry is {geometry.ndim}D, "
                f"volume is {volume.ndim}D (shape {volume.shape})"
            )
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
                raise DtypeError(f"dtype: expected None, float32 or float64, got {dtype}")
        super().__init__(
            domain_shape=volume.shape,
            range_shape=geometry.proj_shape,
            check_finite=check_finite,
        )
        self.geometry = geometry
        self.volume = volume
        self.dtype = dtype
        backend_cls = get_backend(backend)
        self.backend: ProjectorBackend = backend_cls(geometry.to_vectors(), volume, **options)

    @property
    def exact_adjoint(self) -> bool:
        """True when :meth:`adjoint` is the exact transpose of :meth:`forward`."""
        return self.backend.exact_adjoint

    def __repr__(self) -> str:
        return (
            f"Projector({type(self.geometry).__name__}, volume shape {self.volume.shape}, "
            f"backend={self.backend.name!r})"
        )

    # ------------------------------------------------------------------ device arrays
    def _is_device_input(self, x: Any) -> bool:
        backend = self.backend
        return bool(getattr(backend, "device_arrays", False)) and backend.is_device_array(x)  # type: ignore[attr-defined]

    def _device_apply(self, x: Any, *, adjoint: bool) -> Any:
        if adjoint:
            return self._on_device(x, self.range_shape, "adjoint input", self.backend.adjoint)
        return self._on_device(x, self.domain_shape, "forward input", self.backend.forward)

    def _on_device(self, x: Any, core: tuple[int, ...], name: str, fn: Any) -> Any:
        """Run ``fn`` on the backend's device view of ``x``; return the result as ``x``'s kind.

        The backend's ``exchange(x)`` context yields ``(array, wrap)``: ``x`` as the backend's
        device array (zero copy) and the conversion of a result back to ``x``'s kind.
        """
        backend: Any = self.backend
        with backend.exchange(x) as (arr, wrap):
            batch = split_batch(tuple(arr.shape), core, name)
            self._check_own_dtype(check_dtype(arr, name))
            if self.check_finite:
                check_finite(arr, name, xp=backend.array_module())
            out = fn(arr.reshape((-1, *core)))
            return wrap(out.reshape(batch + tuple(out.shape[1:])))

    # ------------------------------------------------------------------ core
    def _check_own_dtype(self, dt: Any) -> None:
        """Refuse inputs of another dtype than the one this projector was created for."""
        if self.dtype is not None and dt != self.dtype:
            raise DtypeError(
                f"this projector was created for {self.dtype}, got an input of dtype {dt}"
            )

    def _batched(self, arr: np.ndarray, core: tuple[int, ...], fn: Any) -> np.ndarray:
        batch = arr.shape[: arr.ndim - len(core)]
        self._check_own_dtype(arr.dtype)
        flat = np.ascontiguousarray(arr.reshape((-1, *core)))
        out: np.ndarray = fn(flat)
        return out.reshape(batch + out.shape[1:])

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return self._batched(x, self.domain_shape, self.backend.forward)

    def _adjoint(self, y: np.ndarray) -> np.ndarray:
        return self._batched(y, self.range_shape, self.backend.adjoint)

    def backproject(self, y: Any, *, weighting: str | Weighting = "none") -> Any:
        """Voxel-driven backprojection (for FBP/FDK), not the exact adjoint.

        Parameters
        ----------
        y : array of shape (*batch, *geometry.proj_shape)
            (Filtered) projections.
        weighting : {"none", "fdk"}
            ``"fdk"`` applies the divergent-beam distance weight, see
            :class:`~medrecon.projectors.base.Weighting`.

        Returns
        -------
        array of shape (*batch, *volume.shape), same kind and dtype as ``y``.
        """
        try:
            w = Weighting(weighting)
        except ValueError as exc:
            raise ValueError(
                f"weighting: expected one of {[m.value for m in Weighting]}, got {weighting!r}"
            ) from exc
        if is_torch(y) and y.requires_grad:
            raise NotDifferentiableError(
                "backproject is not differentiable; use Projector.adjoint (exact transpose) "
                "inside autograd graphs"
            )
        if self._is_device_input(y):
            return self._on_device(
                y, self.range_shape, "backproject input", lambda a: self.backend.backproject(a, w)
            )
        arr = to_numpy(y)
        split_batch(arr.shape, self.range_shape, "backproject input")
        check_dtype(arr, "backproject input")
        if self.check_finite:
            check_finite(arr, "backproject input")
        out = self._batched(arr, self.range_shape, lambda a: self.backend.backproject(a, w))
        return like(out, y)
