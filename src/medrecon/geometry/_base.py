"""Validation helpers and the immutable base classes shared by every geometry.

Nothing here is public API; :mod:`medrecon.geometry` re-exports what users need.
Every check raises :class:`~medrecon.errors.GeometryError` with a message that
states what was expected and what was received.
"""

from __future__ import annotations

import enum
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Self

import numpy as np

from medrecon.errors import GeometryError

if TYPE_CHECKING:
    from medrecon.geometry.volume import VolumeGeometry

__all__ = ["DetectorShape", "Frozen", "ProjectionGeometry"]

#: a shape: a sequence (or 1-D array) of positive integers
IntsLike = Sequence[int] | np.ndarray
#: a per-axis length: one number for every axis, or one per axis
FloatsLike = float | Sequence[float] | np.ndarray

# relative tolerance below which two directions count as parallel, or a point
# as lying on a line or plane
_DEGENERATE_RTOL = 1e-9


class DetectorShape(enum.StrEnum):
    """Shape of a 2D fan-beam detector.

    ``FLAT``: the elements lie on a straight line. ``ARC``: the elements lie on
    a circle around the source, equally spaced in angle (a curved CT detector).
    """

    FLAT = "flat"
    ARC = "arc"


def check_detector_shape(value: Any) -> DetectorShape:
    """Parse ``"flat"``/``"arc"`` (any case) or a :class:`DetectorShape`."""
    if isinstance(value, DetectorShape):
        return value
    if isinstance(value, str):
        try:
            return DetectorShape(value.lower())
        except ValueError:
            pass
    options = ", ".join(repr(m.value) for m in DetectorShape)
    raise GeometryError(f"detector: expected one of {options}, got {_describe(value)}")


# --------------------------------------------------------------------------
# scalar checks
# --------------------------------------------------------------------------


def _describe(value: Any) -> str:
    """Short text for a received value in an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` as an int ``>= minimum``; bools and floats are refused."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise GeometryError(f"{name}: expected an integer >= {minimum}, got {_describe(value)}")
    out = int(value)
    if out < minimum:
        raise GeometryError(f"{name}: expected an integer >= {minimum}, got {out}")
    return out


def check_float(name: str, value: Any, *, positive: bool = False, unit: str = "") -> float:
    """Return ``value`` as a finite float (strictly positive if ``positive``)."""
    what = "a finite number > 0" if positive else "a finite number"
    if unit:
        what += f" (in {unit})"
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise GeometryError(f"{name}: expected {what}, got {_describe(value)}")
    out = float(value)
    if not np.isfinite(out) or (positive and out <= 0.0):
        raise GeometryError(f"{name}: expected {what}, got {out}")
    return out


def check_per_axis(
    name: str, value: Any, ndim: int, *, positive: bool = False, unit: str = ""
) -> tuple[float, ...]:
    """A scalar (used for every axis) or a sequence of ``ndim`` numbers."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        return (check_float(name, value, positive=positive, unit=unit),) * ndim
    if isinstance(value, Sequence | np.ndarray) and not isinstance(value, str):
        items = list(value)
        if len(items) != ndim:
            raise GeometryError(
                f"{name}: expected a scalar or {ndim} values (one per axis), "
                f"got {len(items)} values {_describe(value)}"
            )
        return tuple(
            check_float(f"{name}[{i}]", v, positive=positive, unit=unit)
            for i, v in enumerate(items)
        )
    raise GeometryError(
        f"{name}: expected a scalar or a sequence of {ndim} numbers, got {_describe(value)}"
    )


def check_shape(name: str, value: Any, ndims: tuple[int, ...]) -> tuple[int, ...]:
    """A tuple of positive ints whose length is one of ``ndims``.

    A plain int is accepted where ``1`` is an allowed length.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
        value = (value,)
    allowed = " or ".join(str(n) for n in ndims)
    if not isinstance(value, Sequence | np.ndarray) or isinstance(value, str):
        raise GeometryError(
            f"{name}: expected a tuple of {allowed} positive integers, got {_describe(value)}"
        )
    items = list(value)
    if len(items) not in ndims:
        raise GeometryError(
            f"{name}: expected a tuple of {allowed} positive integers, "
            f"got {len(items)} entries {_describe(value)}"
        )
    return tuple(check_int(f"{name}[{i}]", v) for i, v in enumerate(items))


# --------------------------------------------------------------------------
# array checks
# --------------------------------------------------------------------------


def float_array(name: str, value: Any) -> np.ndarray:
    """A fresh float64 copy of ``value`` (never a view of the caller's array)."""
    if isinstance(value, str):
        raise GeometryError(f"{name}: expected an array of numbers, got {_describe(value)}")
    try:
        arr = np.array(value, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise GeometryError(
            f"{name}: expected an array of real numbers, got {_describe(value)}"
        ) from exc
    return arr


def _freeze(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


def check_angles(value: Any) -> np.ndarray:
    """A read-only 1-D float64 copy of the projection angles (radians)."""
    if isinstance(value, numbers.Number):
        raise GeometryError(
            f"angles: expected a 1-D sequence of angles in radians, got the scalar "
            f"{_describe(value)}; pass [theta] for a single view"
        )
    arr = float_array("angles", value)
    if arr.ndim != 1:
        raise GeometryError(f"angles: expected a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise GeometryError("angles: expected at least one angle, got an empty array")
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise GeometryError(f"angles: expected finite values (radians), got {bad} non-finite")
    return _freeze(arr)


def check_vectors(name: str, value: Any, ndim: int, n_views: int | None = None) -> np.ndarray:
    """A read-only float64 copy of per-view vectors, shape ``(n_views, ndim)``."""
    arr = float_array(name, value)
    n_txt = "n_views" if n_views is None else str(n_views)
    if arr.ndim != 2 or arr.shape[1] != ndim or (n_views is not None and arr.shape[0] != n_views):
        raise GeometryError(f"{name}: expected shape ({n_txt}, {ndim}), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise GeometryError(f"{name}: expected at least one view, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad_rows = np.flatnonzero(~np.all(np.isfinite(arr), axis=1))
        raise GeometryError(
            f"{name}: expected finite values, got non-finite entries in views "
            f"{bad_rows[:5].tolist()}"
        )
    return _freeze(arr)


def check_nonzero_rows(name: str, arr: np.ndarray) -> np.ndarray:
    """Row norms of ``arr``; raise if any row has length zero."""
    norms = np.linalg.norm(arr, axis=1)
    zero = np.flatnonzero(norms == 0.0)
    if zero.size:
        raise GeometryError(
            f"{name}: expected non-zero vectors, got zero length in views {zero[:5].tolist()}"
        )
    return norms


def first_degenerate(measure: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Views where ``|measure| <= rtol * scale`` (a degenerate configuration)."""
    return np.flatnonzero(np.abs(measure) <= _DEGENERATE_RTOL * scale)


def cross2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise 2D cross product; works for any component order up to sign."""
    return np.asarray(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])


# --------------------------------------------------------------------------
# view selection
# --------------------------------------------------------------------------


def view_index(idx: Any, n_views: int) -> np.ndarray:
    """Turn an int, slice, int array or bool mask into an array of view indices."""
    if isinstance(idx, bool | np.bool_):
        raise TypeError("geometry views: a bool is not a view index; use a bool mask array")
    if isinstance(idx, numbers.Integral):
        i = int(idx)
        if not -n_views <= i < n_views:
            raise IndexError(f"view index: expected an integer in [{-n_views}, {n_views}), got {i}")
        return np.array([i % n_views])
    if isinstance(idx, slice):
        return np.arange(n_views)[idx]
    if isinstance(idx, tuple):
        raise TypeError(
            "geometry views: expected one index over views (int, slice, int array or "
            f"bool mask), got a tuple of {len(idx)} indices"
        )
    arr = np.asarray(idx)
    if arr.dtype == np.bool_:
        if arr.shape != (n_views,):
            raise IndexError(
                f"view mask: expected a bool array of shape ({n_views},), got shape {arr.shape}"
            )
        return np.flatnonzero(arr)
    if arr.ndim == 1 and (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
        arr = arr.astype(np.intp)
        bad = arr[(arr < -n_views) | (arr >= n_views)]
        if bad.size:
            raise IndexError(
                f"view indices: expected integers in [{-n_views}, {n_views}), "
                f"got {bad[:5].tolist()}"
            )
        return np.asarray(arr % n_views)
    raise TypeError(
        f"geometry views: expected an int, slice, 1-D int array or bool mask, got {_describe(idx)}"
    )


# --------------------------------------------------------------------------
# base classes
# --------------------------------------------------------------------------


def _rebuild(cls: type, kwargs: dict[str, Any]) -> Any:
    """Pickle support: call the keyword-only constructor again."""
    return cls(**kwargs)


def _hashable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        # + 0.0 maps -0.0 to 0.0 so that equal arrays hash alike
        return (value.shape, (value + 0.0).tobytes())
    return value


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        return a.shape == b.shape and bool(np.array_equal(a, b))
    return bool(a == b)


def _repr_value(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.ndim == 1 and value.size <= 6:
            return "array(" + np.array2string(value, separator=", ") + ")"
        if value.ndim == 1:
            return f"<{value.size} values in [{value.min():.6g}, {value.max():.6g}]>"
        return f"<array of shape {value.shape}>"
    if hasattr(value, "value") and isinstance(value.value, str):  # enums
        return repr(value.value)
    return repr(value)


class Frozen:
    """Immutable object whose constructor arguments are its identity.

    Subclasses list their constructor keywords in ``_params``, store each in
    the slot ``"_" + name`` with :meth:`_set`, and expose it as a property.
    Equality, hashing, ``repr`` and pickling follow from ``_params``.
    """

    __slots__ = ()
    _params: ClassVar[tuple[str, ...]] = ()

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, "_" + name, value)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(
            f"{type(self).__name__} is immutable; build a new one instead of setting {name!r}"
        )

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable; cannot delete {name!r}")

    def _kwargs(self) -> dict[str, Any]:
        return {name: getattr(self, "_" + name) for name in self._params}

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        mine, theirs = self._kwargs(), other._kwargs()
        return all(_equal(mine[k], theirs[k]) for k in self._params)

    def __hash__(self) -> int:
        return hash((type(self).__name__, *(_hashable(v) for v in self._kwargs().values())))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_repr_value(v)}" for k, v in self._kwargs().items())
        return f"{type(self).__name__}({args})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self._kwargs()))


class ProjectionGeometry(Frozen):
    """Common interface of every projection geometry (circular and vector).

    A projection geometry describes, per view, where the rays come from and
    where the detector lies. Concrete classes: :class:`ParallelBeam2D`,
    :class:`FanBeam2D`, :class:`ParallelBeam3D`, :class:`ConeBeam3D` and the
    vector forms :class:`ParallelVec`, :class:`FanBeamVec`,
    :class:`ConeBeamVec`. Indexing selects views and returns the same class.
    """

    __slots__ = ()
    #: constructor keywords that hold one entry per view
    _per_view: ClassVar[tuple[str, ...]] = ()

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions: 2 or 3."""
        raise NotImplementedError

    @property
    def n_views(self) -> int:
        """Number of views (projections)."""
        return int(getattr(self, "_" + self._per_view[0]).shape[0])

    @property
    def det_shape(self) -> tuple[int, ...]:
        """Detector shape: ``(n_det,)`` in 2D, ``(n_rows, n_cols)`` in 3D."""
        raise NotImplementedError

    @property
    def proj_shape(self) -> tuple[int, ...]:
        """Shape of the projection data: ``(n_views, *det_shape)``."""
        return (self.n_views, *self.det_shape)

    def to_vectors(self) -> ProjectionGeometry:
        """The equivalent vector geometry (per-view positions and directions)."""
        raise NotImplementedError

    def to_astra(self, volume: VolumeGeometry) -> tuple[dict[str, Any], dict[str, Any]]:
        """ASTRA ``(proj_geom, vol_geom)`` dicts; see :func:`medrecon.geometry.astra.to_astra`."""
        from medrecon.geometry.astra import to_astra

        return to_astra(self, volume)

    def __len__(self) -> int:
        return self.n_views

    def __getitem__(self, idx: Any) -> Self:
        views = view_index(idx, self.n_views)
        if views.size == 0:
            raise GeometryError(
                f"view selection: expected at least one view, the index {_describe(idx)} "
                f"selects none of {self.n_views}"
            )
        kwargs = self._kwargs()
        for name in self._per_view:
            if kwargs[name] is not None:
                kwargs[name] = kwargs[name][views]
        return type(self)(**kwargs)
