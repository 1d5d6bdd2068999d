"""Iterative CT reconstruction: SIRT, CGLS, OS-SART, PDHG-TV and FISTA-TV.

Every solver takes any :class:`~medrecon.linop.LinearOperator` ``A`` (a
projector, a composition, a dense test matrix) and data ``y`` of shape
``A.range_shape``, as a numpy array or a torch tensor, and returns the
reconstruction as the same kind of array with the same dtype. The common
signature, keyword-only after the first two arguments::

    solver(A, y, *, x0=None, n_iter=..., tol=None, callback=None,
           progress=True, return_info=False, ...)

* ``tol``: stop early when the solver's convergence measure falls below it
  (relative change of the residual norm for SIRT, CGLS and OS-SART; of the
  objective for FISTA-TV; relative primal-dual gap for PDHG-TV).
* ``callback(k, x)``: called after every iteration; return True to stop.
* ``progress``: tqdm progress bar on stderr (``progress=False`` turns it off).
* ``return_info=True``: return ``(x, info)`` with a :class:`SolverInfo`
  (residual norms ``||A x_k - y||``, objective, gap, step sizes, number of
  iterations, whether ``tol`` was met).

The solvers only use ``A(x)``, ``A.T(y)``, ``A.norm()`` and the shapes; none
imports a projector class. OS-SART splits a projector into view subsets
through its ``geometry``, ``volume`` and ``backend`` attributes, or takes
explicit ``(operator, view indices)`` pairs.

Examples
--------
>>> import numpy as np
>>> from medrecon.testing import MatrixOperator
>>> A = MatrixOperator([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
>>> x, info = cgls(A, np.array([3.0, 2.0, 1.0]), n_iter=5, progress=False,
...                return_info=True)
>>> np.round(x, 6).tolist(), info.stop_reason
([1.0, 2.0], 'exact')
"""

from __future__ import annotations

from medrecon.ct.iterative._common import SolverInfo
from medrecon.ct.iterative.cgls import cgls
from medrecon.ct.iterative.fista import fista_tv, prox_tv
from medrecon.ct.iterative.gradient import Gradient, total_variation
from medrecon.ct.iterative.os_sart import os_sart
from medrecon.ct.iterative.pdhg import pdhg_tv
from medrecon.ct.iterative.sirt import sirt, sirt_weights

__all__ = [
    "Gradient",
    "SolverInfo",
    "cgls",
    "fista_tv",
    "os_sart",
    "pdhg_tv",
    "prox_tv",
    "sirt",
    "sirt_weights",
    "total_variation",
]
