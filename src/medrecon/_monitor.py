"""One solver run's bookkeeping, shared by the CT and MR iterative solvers.

:class:`Monitor` appends to the history lists of a result record, drives the
tqdm progress bar, calls the user's callback and applies the stopping rule.
It sits below both ``medrecon.ct`` and ``medrecon.mr`` so that neither imports
the other; each wraps it with its own result record (``SolverInfo``,
``CSInfo``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tqdm import tqdm

__all__ = ["Monitor"]


class Monitor:
    """History, progress bar, callback and stopping rule of one solver run.

    Parameters
    ----------
    info : object
        The result record: a dataclass with ``n_iter``, ``converged``,
        ``stop_reason`` and one list per history name passed to :meth:`step`.
    n_iter : int
        Maximum number of iterations (the bar's length).
    tol : float or None
        Stop when the measure passed to :meth:`step` falls below ``tol``.
    callback : callable or None
        ``callback(k, x)``, called after every iteration; a truthy return stops.
    progress : bool
        Show a tqdm progress bar (stderr).
    view : callable or None
        Applied to the iterate before it is handed to the callback and returned
        by :meth:`finish` (e.g. back to the caller's array type).
    """

    def __init__(
        self,
        info: Any,
        n_iter: int,
        *,
        tol: float | None,
        callback: Callable[[int, Any], Any] | None,
        progress: bool,
        view: Callable[[Any], Any] | None = None,
    ) -> None:
        if callback is not None and not callable(callback):
            raise TypeError(f"callback: expected a callable or None, got {callback!r}")
        self.info = info
        self.tol = tol
        self.callback = callback
        self.view = view
        self.bar = tqdm(total=n_iter, desc=info.algorithm, disable=not progress, leave=False)

    def _view(self, x: Any) -> Any:
        return x if self.view is None else self.view(x)

    def record(self, **values: float) -> None:
        """Append one entry to each named history list of :attr:`info`."""
        for name, value in values.items():
            getattr(self.info, name).append(float(value))

    def step(self, k: int, x: Any, measure: float | None = None, **values: float) -> bool:
        """Record iteration ``k``; return True when the solver should stop.

        ``measure`` is compared with ``tol``; ``values`` are appended to the
        history (and the first one is shown by the progress bar). The callback
        runs every iteration, also the last one.
        """
        self.record(**values)
        self.info.n_iter = k
        self.bar.update(1)
        if values and not self.bar.disable:
            name, value = next(iter(values.items()))
            self.bar.set_postfix({name: f"{value:.4g}"}, refresh=False)
        stop_user = bool(self.callback(k, self._view(x))) if self.callback is not None else False
        if self.tol is not None and measure is not None and measure < self.tol:
            self.info.converged = True
            self.info.stop_reason = "tol"
            return True
        if stop_user:
            self.info.stop_reason = "callback"
            return True
        return False

    def stop_exact(self) -> None:
        """Mark that the solver stopped because it reached an exact solution."""
        self.info.converged = True
        self.info.stop_reason = "exact"

    def finish(self, x: Any, return_info: bool) -> Any:
        """Close the bar; return ``x`` or ``(x, info)`` (``x`` through ``view``)."""
        self.bar.close()
        out = self._view(x)
        if return_info:
            return out, self.info
        return out
