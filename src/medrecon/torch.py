"""The one autograd bridge: any :class:`~medrecon.linop.LinearOperator` in torch.

The backward of a linear map ``A`` is its adjoint: for ``y = A x`` the
gradient of a loss ``L`` is ``dL/dx = A^T dL/dy``. The bridge applies the
adjoint through the bridge again, so gradients of gradients work too.

>>> import torch
>>> from medrecon.linop import Identity
>>> x = torch.ones(3, dtype=torch.float64, requires_grad=True)
>>> (apply_linear(Identity((3,)), x) ** 2).sum().backward()
>>> x.grad.tolist()
[2.0, 2.0, 2.0]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from medrecon.linop import LinearOperator

__all__ = ["OperatorModule", "apply_linear", "to_autograd"]


class _LinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, op: LinearOperator) -> torch.Tensor:
        ctx.op = op
        with torch.no_grad():
            out = op.forward(x.detach())
        return out.to(x.device)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        op: LinearOperator = ctx.op
        grad_in = _LinearFunction.apply(grad_out.contiguous(), op.T)
        return grad_in, None


def apply_linear(op: LinearOperator, x: torch.Tensor) -> torch.Tensor:
    """Apply ``op`` to the tensor ``x`` so that autograd's backward uses ``op.T``."""
    return _LinearFunction.apply(x, op)


def to_autograd(op: LinearOperator) -> Any:
    """Return ``f(x) = op(x)`` as a differentiable torch function."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        return apply_linear(op, x)

    fn.__doc__ = f"Differentiable application of {op!r}."
    return fn


class OperatorModule(torch.nn.Module):
    """A :class:`torch.nn.Module` wrapping a linear operator (no parameters)."""

    def __init__(self, op: LinearOperator) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_linear(self.op, x)
