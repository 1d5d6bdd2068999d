"""Array helpers shared by every layer: numpy/torch detection and checks.

medrecon's numerical kernels work on numpy arrays (CPU) or device arrays
(CUDA backend). Users may pass numpy arrays or torch tensors; these helpers
convert without copying where possible and give the result back in the type
the user passed.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from medrecon.errors import DeviceError, DtypeError, NonFiniteError, ShapeError

__all__ = [
    "SUPPORTED_DTYPES",
    "check_dtype",
    "check_finite",
    "is_torch",
    "like",
    "split_batch",
    "to_numpy",
]

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def is_torch(x: Any) -> bool:
    """True if ``x`` is a ``torch.Tensor`` (without importing torch needlessly)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def to_numpy(x: Any) -> np.ndarray:
    """View ``x`` as a numpy array without copying when possible.

    CPU torch tensors are shared through ``Tensor.numpy()`` (zero copy, after
    ``detach``). Tensors on another device and CuPy arrays raise
    :class:`DeviceError`; use a backend that runs there instead.
    """
    if is_torch(x):
        if x.device.type != "cpu":
            raise DeviceError(
                f"expected a CPU tensor for this backend, got a tensor on {x.device}; "
                "move it with .cpu() or use backend='cuda'"
            )
        return np.asarray(x.detach().resolve_conj().numpy())
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(x, cupy.ndarray):
        raise DeviceError(
            "expected a host array for this backend, got a CuPy array on the GPU; "
            "move it with cupy.asnumpy() or use backend='cuda'"
        )
    if isinstance(x, np.ndarray):
        return x
    if np.isscalar(x):
        raise ShapeError(f"expected an array, got the scalar {x!r}")
    return np.asarray(x)


def like(result: np.ndarray, template: Any) -> Any:
    """Return ``result`` as the same kind of array as ``template``.

    numpy in gives numpy out; a torch tensor in gives a torch tensor out
    (sharing memory with ``result``).
    """
    if is_torch(template):
        import torch

        return torch.from_numpy(np.ascontiguousarray(result))
    return result


def check_dtype(arr: np.ndarray, name: str = "input") -> np.dtype:
    """Check that ``arr`` is float32 or float64 and return its dtype."""
    dt = np.dtype(arr.dtype)
    if dt not in SUPPORTED_DTYPES:
        raise DtypeError(
            f"{name}: expected dtype float32 or float64, got {dt}; "
            "convert explicitly (e.g. x.astype(np.float32))"
        )
    return dt


def check_finite(arr: Any, name: str = "input", xp: Any = np) -> None:
    """Raise :class:`NonFiniteError` if ``arr`` holds NaN or infinity.

    ``xp`` is the array module of ``arr`` (numpy by default; CuPy for device arrays).
    """
    if not bool(xp.isfinite(arr).all()):
        n_nan = int(xp.count_nonzero(xp.isnan(arr)))
        n_inf = int(xp.count_nonzero(xp.isinf(arr)))
        raise NonFiniteError(
            f"{name}: expected finite values, got {n_nan} NaN and {n_inf} infinite entries"
        )


def split_batch(
    shape: tuple[int, ...], core: tuple[int, ...], name: str = "input"
) -> tuple[int, ...]:
    """Split ``shape`` into batch dimensions and the trailing ``core`` shape.

    Returns the batch shape; raises :class:`ShapeError` when the trailing
    dimensions are not ``core``.
    """
    k = len(core)
    if len(shape) < k or tuple(shape[len(shape) - k :]) != tuple(core):
        raise ShapeError(
            f"{name}: expected shape (..., {', '.join(map(str, core))}), got {tuple(shape)}"
        )
    return tuple(shape[: len(shape) - k])
