"""Shared test set-up: markers that skip without hardware or packages, a seeded RNG.

* ``@pytest.mark.gpu``: skipped unless CUDA is usable through CuPy or torch.
* ``@pytest.mark.astra``: skipped unless astra-toolbox can be imported.
* ``rng``: a :class:`numpy.random.Generator` with a fixed seed.

Test files have unique basenames and no ``__init__.py`` (pytest's default
import mode puts each test directory on ``sys.path``). Helpers shared between
test files live in plain modules here (``_geometries``, ``_mr_data``,
``_dicom_data``, ``_bench``), imported by name.
"""

from __future__ import annotations

import functools
import importlib

import numpy as np
import pytest

SEED = 20240611

# the helper modules assert too: rewrite their asserts so failures explain themselves
pytest.register_assert_rewrite("_bench", "_dicom_data", "_geometries", "_mr_data")


@functools.cache
def cuda_reason() -> str | None:
    """Why CUDA tests cannot run here, or None when a CUDA device is usable."""
    try:
        cupy = importlib.import_module("cupy")
        if cupy.cuda.runtime.getDeviceCount() > 0:
            return None
    except Exception:  # no cupy, no driver, no device: all mean "skip"
        pass
    try:
        import torch

        if torch.cuda.is_available():
            return None
    except Exception:
        pass
    return "needs a CUDA device (through cupy or torch.cuda); none is available"


@functools.cache
def astra_reason() -> str | None:
    """Why ASTRA tests cannot run here, or None when astra-toolbox imports."""
    try:
        importlib.import_module("astra")
    except ImportError as exc:
        return f"needs astra-toolbox (pip install astra-toolbox): {exc}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            reason = cuda_reason()
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))
        if item.get_closest_marker("astra") is not None:
            reason = astra_reason()
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def rng() -> np.random.Generator:
    """A random generator with a fixed seed, fresh for every test."""
    return np.random.default_rng(SEED)
