"""Backends are chosen by name; each is imported only when first asked for."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from medrecon.errors import BackendUnavailableError, UnknownBackendError
from medrecon.projectors.base import ProjectorBackend

__all__ = ["available_backends", "get_backend", "register_backend", "registered_backends"]


@dataclass(frozen=True)
class _Entry:
    name: str
    target: str  # "module:attribute"
    install_hint: str
    description: str


_REGISTRY: dict[str, _Entry] = {}


def register_backend(name: str, target: str, *, install_hint: str, description: str) -> None:
    """Register a backend class given as ``"package.module:ClassName"``.

    The module is imported lazily by :func:`get_backend`. An ``ImportError``
    raised while importing it (a missing optional package, no GPU driver)
    becomes :class:`~medrecon.errors.BackendUnavailableError` carrying
    ``install_hint``.
    """
    if ":" not in target:
        raise ValueError(f"target must look like 'module:attribute', got {target!r}")
    _REGISTRY[name] = _Entry(name, target, install_hint, description)


def registered_backends() -> dict[str, str]:
    """Names of all registered backends with their descriptions."""
    return {name: e.description for name, e in _REGISTRY.items()}


def get_backend(name: str) -> type[ProjectorBackend]:
    """Return the backend class registered under ``name``."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UnknownBackendError(
            f"unknown projector backend {name!r}; expected one of {sorted(_REGISTRY)}"
        )
    entry = _REGISTRY[name]
    module_name, attr = entry.target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"projector backend {name!r} is not available: {exc}. {entry.install_hint}"
        ) from exc
    cls: type[ProjectorBackend] = getattr(module, attr)
    return cls


def available_backends() -> list[str]:
    """Names of the backends that can be loaded in this environment.

    A backend class may define a static ``unavailable_reason()`` that returns why it cannot
    run here (for example no GPU) or None; its module importing is then not enough.
    """
    names = []
    for name in _REGISTRY:
        try:
            cls = get_backend(name)
        except BackendUnavailableError:
            continue
        reason = getattr(cls, "unavailable_reason", None)
        if callable(reason) and reason() is not None:
            continue
        names.append(name)
    return names


register_backend(
    "cpu",
    "medrecon.projectors.cpu:CpuBackend",
    install_hint="It ships with medrecon and needs numba: pip install numba",
    description="numba Joseph projector with its exact transpose (2D and 3D)",
)
register_backend(
    "cuda",
    "medrecon.projectors.cuda.backend:CudaBackend",
    install_hint="It needs CuPy and an NVIDIA GPU: pip install medrecon[cuda] "
    "(cupy-cuda12x; cupy-cuda13x for CUDA 13)",
    description="CUDA kernels from kernels/ through CuPy: 'matched' (exact transpose, the cpu "
    "model) or 'fast' (texture forward, voxel-driven backprojection); 2D and 3D",
)
register_backend(
    "astra",
    "medrecon.projectors.astra_backend:AstraBackend",
    install_hint="Install the optional GPL package with: pip install astra-toolbox "
    "(or pip install medrecon[astra])",
    description="adapter around astra-toolbox (2D on CPU; 3D needs ASTRA's CUDA build)",
)
