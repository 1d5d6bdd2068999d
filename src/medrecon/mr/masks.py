"""Cartesian undersampling masks that reproduce fastMRI's mask functions.

The masks select whole phase-encode lines along the last k-space axis
(``kx`` of ``(..., ky, kx)``), as fastMRI's mask functions do for its k-space
tensors ``(..., rows, cols, 2)`` (its ``num_cols = shape[-2]`` is the last
complex axis). Each mask is a fully sampled low-frequency band plus lines
chosen by an acceleration rule:

* number of low-frequency lines ``num_low = round(num_cols * center_fraction)``
  (Python's ``round``, which rounds halves to even);
* the band starts at ``pad = (num_cols - num_low + 1) // 2`` and covers
  ``pad <= j < pad + num_low``.

The random generator is ``numpy.random.RandomState(seed)``, seeded afresh on
every call, which is what fastMRI does when its mask function is called with
``seed=...`` and a single (center fraction, acceleration) pair (its
``choose_acceleration`` then calls ``rng.randint(1)``, which draws nothing
from the generator, so the sequence of draws is the same). For the same
``shape``, ``center_fraction``, ``acceleration`` and ``seed`` the masks are
the ones fastMRI 0.3 (``fastmri/data/subsample.py``; the 0.1 rules agree,
see each function) gives, without depending on fastMRI or torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from medrecon.errors import ShapeError

__all__ = ["center_lines", "equispaced_mask", "random_mask"]

Seed = int | Sequence[int] | None


def _num_cols(shape: Sequence[int]) -> int:
    shape = tuple(int(s) for s in shape)
    if len(shape) < 1 or any(s < 1 for s in shape):
        raise ShapeError(f"shape: expected a non-empty k-space shape (..., ky, kx), got {shape}")
    return shape[-1]


def _check(center_fraction: float, acceleration: float) -> None:
    if not (math.isfinite(center_fraction) and 0.0 <= center_fraction <= 1.0):
        raise ValueError(f"center_fraction: expected a number in [0, 1], got {center_fraction!r}")
    if not (math.isfinite(acceleration) and acceleration >= 1.0):
        raise ValueError(f"acceleration: expected a number >= 1, got {acceleration!r}")


def center_lines(num_cols: int, center_fraction: float) -> tuple[int, int]:
    """The fully sampled low-frequency band: ``(pad, num_low)``.

    ``num_low = round(num_cols * center_fraction)`` lines starting at index
    ``pad = (num_cols - num_low + 1) // 2`` (fastMRI's ``calculate_center_mask``).

    Examples
    --------
    >>> center_lines(16, 0.25)
    (6, 4)
    >>> center_lines(368, 0.08)
    (170, 29)
    """
    num_low = round(int(num_cols) * float(center_fraction))
    return (int(num_cols) - num_low + 1) // 2, num_low


def _finish(line: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Reshape a 1D line mask to ``(1, ..., 1, num_cols)`` matching ``len(shape)``."""
    return line.astype(bool).reshape((1,) * (len(tuple(shape)) - 1) + (line.size,))


def random_mask(
    shape: Sequence[int],
    center_fraction: float,
    acceleration: float,
    seed: Seed = None,
) -> np.ndarray:
    """Random Cartesian mask with fastMRI's ``RandomMaskFunc`` rules.

    Outside the low-frequency band (see :func:`center_lines`) every line is
    kept independently with probability
    ``(num_cols / acceleration - num_low) / (num_cols - num_low)``, so the
    expected total number of lines is ``num_cols / acceleration``. Line ``j``
    is kept when ``RandomState(seed).uniform(size=num_cols)[j] < prob`` (all
    ``num_cols`` numbers are drawn, the band's included), then the band is
    set. These are the rules of fastMRI 0.3 ``RandomMaskFunc`` (and of 0.1,
    where the same draws happened in ``__call__``).

    Parameters
    ----------
    shape : sequence of int
        k-space shape ``(..., ky, kx)``; lines are chosen along the last axis.
    center_fraction : float
        Fraction of lines in the fully sampled centre band, in [0, 1].
    acceleration : float
        Target acceleration (>= 1); it must leave room for the band,
        ``num_cols / acceleration >= num_low``.
    seed : int or sequence of int, optional
        Seed of ``numpy.random.RandomState`` (None: fresh entropy, not reproducible).

    Returns
    -------
    ndarray of bool, shape (1, ..., 1, kx)
        Broadcasts against k-space of shape ``shape``.

    Raises
    ------
    ShapeError
        ``shape`` is empty or has a size < 1.
    ValueError
        ``center_fraction`` or ``acceleration`` out of range, or the band
        alone exceeds ``num_cols / acceleration`` lines.

    Examples
    --------
    >>> m = random_mask((8, 16), 0.25, 4, seed=0)
    >>> m.shape, bool(m[0, 6:10].all())
    ((1, 16), True)
    """
    _check(center_fraction, acceleration)
    num_cols = _num_cols(shape)
    pad, num_low = center_lines(num_cols, center_fraction)
    if num_low >= num_cols:
        line = np.ones(num_cols, dtype=bool)
        # fastMRI would divide by zero here; the band covers everything anyway
        return _finish(line, shape)
    prob = (num_cols / acceleration - num_low) / (num_cols - num_low)
    if prob < 0:
        raise ValueError(
            f"acceleration {acceleration} asks for {num_cols / acceleration:.3g} lines, fewer "
            f"than the {num_low} centre lines of center_fraction {center_fraction}"
        )
    rng = np.random.RandomState(seed)
    line = rng.uniform(size=num_cols) < prob
    line[pad : pad + num_low] = True
    return _finish(line, shape)


def equispaced_mask(
    shape: Sequence[int],
    center_fraction: float,
    acceleration: float,
    seed: Seed = None,
    *,
    match_fraction: bool = True,
    offset: int | None = None,
) -> np.ndarray:
    """Equispaced Cartesian mask with fastMRI's equispaced rules.

    With ``match_fraction=True`` (default) the spacing is adjusted so that the
    band plus the equispaced lines make up about ``1 / acceleration`` of all
    lines: ``adjusted = acceleration * (num_low - num_cols) /
    (num_low * acceleration - num_cols)``, ``offset =
    RandomState(seed).randint(0, round(adjusted))``, and the lines
    ``round(offset + i * adjusted)`` for ``offset + i * adjusted < num_cols - 1``
    (``numpy.around``, halves to even) are kept. These are the rules of
    fastMRI 0.3 ``EquispacedMaskFractionFunc`` and of fastMRI 0.1
    ``EquispacedMaskFunc``.

    With ``match_fraction=False`` every ``acceleration``-th line is kept,
    ``offset::acceleration`` with ``offset = RandomState(seed).randint(0,
    round(acceleration))``, besides the band (so more than ``1 /
    acceleration`` of the lines): fastMRI 0.3 ``EquispacedMaskFunc``, which
    needs an integer ``acceleration``.

    Parameters
    ----------
    shape : sequence of int
        k-space shape ``(..., ky, kx)``; lines are chosen along the last axis.
    center_fraction : float
        Fraction of lines in the fully sampled centre band, in [0, 1].
    acceleration : float
        Target acceleration (>= 1; an integer when ``match_fraction=False``).
    seed : int or sequence of int, optional
        Seed of ``numpy.random.RandomState`` for the offset.
    match_fraction : bool
        Adjust the spacing so that the total fraction is ``1 / acceleration``.
    offset : int, optional
        Index of the first equispaced line; drawn from the generator when None
        (fastMRI's ``offset`` argument). No number is drawn when it is given.

    Returns
    -------
    ndarray of bool, shape (1, ..., 1, kx)

    Raises
    ------
    ShapeError
        ``shape`` is empty or has a size < 1.
    ValueError
        Parameters out of range, a non-integer ``acceleration`` with
        ``match_fraction=False``, or a band too large for ``acceleration``.

    Notes
    -----
    When the band alone is exactly the budget (``num_low * acceleration ==
    num_cols``), ``match_fraction=True`` returns the band only; fastMRI raises
    ``ZeroDivisionError`` there.

    Examples
    --------
    >>> m = equispaced_mask((8, 16), 0.125, 4, offset=0)
    >>> np.flatnonzero(m[0]).tolist()
    [0, 7, 8, 14]
    >>> m = equispaced_mask((8, 16), 0.25, 4, match_fraction=False, offset=0)
    >>> np.flatnonzero(m[0]).tolist()
    [0, 4, 6, 7, 8, 9, 12]
    """
    _check(center_fraction, acceleration)
    num_cols = _num_cols(shape)
    pad, num_low = center_lines(num_cols, center_fraction)
    line = np.zeros(num_cols, dtype=bool)
    rng = np.random.RandomState(seed)
    if match_fraction:
        if num_low * acceleration >= num_cols:
            if num_low * acceleration == num_cols or num_low >= num_cols:
                # the band alone is the whole budget (fastMRI divides by zero here)
                line[pad : pad + num_low] = True
                return _finish(line, shape)
            raise ValueError(
                f"acceleration {acceleration} asks for {num_cols / acceleration:.3g} lines, not "
                f"more than the {num_low} centre lines of center_fraction {center_fraction}"
            )
        adjusted = acceleration * (num_low - num_cols) / (num_low * acceleration - num_cols)
        if offset is None:
            offset = int(rng.randint(0, high=round(adjusted)))
        samples = np.around(np.arange(offset, num_cols - 1, adjusted)).astype(np.intp)
        line[samples] = True
    else:
        if float(acceleration) != int(acceleration):
            raise ValueError(
                f"acceleration: expected an integer with match_fraction=False, got {acceleration!r}"
            )
        step = int(acceleration)
        if offset is None:
            offset = int(rng.randint(0, high=step))
        line[int(offset) :: step] = True
    line[pad : pad + num_low] = True
    return _finish(line, shape)
