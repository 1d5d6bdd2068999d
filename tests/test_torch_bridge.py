"""The autograd bridge: backward is the adjoint, to any order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medrecon.testing import MatrixOperator, gradcheck
from medrecon.torch import OperatorModule, apply_linear, to_autograd


@pytest.fixture
def op(rng: np.random.Generator) -> MatrixOperator:
    return MatrixOperator(rng.standard_normal((5, 6)), domain_shape=(2, 3), range_shape=(5,))


def test_torch_gradcheck_on_apply_linear(op: MatrixOperator, rng: np.random.Generator) -> None:
    x = torch.tensor(rng.standard_normal((4, 2, 3)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: apply_linear(op, t), (x,))
    y = torch.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: apply_linear(op.T, t), (y,))


def test_testing_gradcheck_with_double_backward(op: MatrixOperator) -> None:
    assert gradcheck(op, (3, 2, 3), double_backward=True)


def test_gradient_is_the_adjoint(op: MatrixOperator, rng: np.random.Generator) -> None:
    x = torch.tensor(rng.random((2, 3)), requires_grad=True)
    g = torch.tensor(rng.random(5))
    apply_linear(op, x).backward(g)
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), op.T(g.numpy()), rtol=1e-13)


def test_double_backward_gives_the_normal_operator(
    op: MatrixOperator, rng: np.random.Generator
) -> None:
    # grad of 1/2||Ax - y||^2 is A^T(Ax - y); its derivative along v is A^T A v
    x = torch.tensor(rng.random((2, 3)), requires_grad=True)
    y = torch.tensor(rng.random(5))
    v = torch.tensor(rng.random((2, 3)))
    loss = 0.5 * ((apply_linear(op, x) - y) ** 2).sum()
    (grad,) = torch.autograd.grad(loss, x, create_graph=True)
    assert grad.requires_grad
    (hvp,) = torch.autograd.grad((grad * v).sum(), x)
    np.testing.assert_allclose(hvp.numpy(), op.T(op(v.numpy())), rtol=1e-12)


def test_float32_gradients_stay_float32(op: MatrixOperator, rng: np.random.Generator) -> None:
    x = torch.tensor(rng.random((2, 3)), dtype=torch.float32, requires_grad=True)
    out = apply_linear(op, x)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float32


def test_to_autograd(op: MatrixOperator, rng: np.random.Generator) -> None:
    fn = to_autograd(op)
    assert "MatrixOperator" in (fn.__doc__ or "")
    x = torch.tensor(rng.random((3, 2, 3)), requires_grad=True)
    out = fn(x)
    assert out.shape == (3, 5) and out.grad_fn is not None
    np.testing.assert_allclose(out.detach().numpy(), op(x.detach().numpy()), rtol=1e-13)
    out.sum().backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), op.T(np.ones((3, 5))), rtol=1e-13)


def test_operator_module_in_a_network(op: MatrixOperator, rng: np.random.Generator) -> None:
    module = OperatorModule(op)
    assert isinstance(module, torch.nn.Module)
    assert list(module.parameters()) == []
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(6, 6, dtype=torch.float64),
        torch.nn.Unflatten(-1, (2, 3)),
        module,
    )
    x = torch.tensor(rng.random((4, 6)))
    out = net(x)
    assert out.shape == (4, 5)
    out.pow(2).sum().backward()
    weight = net[0].weight
    assert weight.grad is not None
    # d/dW of ||A (W x + b)||^2 = 2 A^T A (W x + b) x^T, summed over the batch
    hidden = (x @ weight.detach().T + net[0].bias.detach()).numpy()
    residual = op.T(op(hidden.reshape(4, 2, 3))).reshape(4, 6)
    np.testing.assert_allclose(weight.grad.numpy(), 2 * residual.T @ x.numpy(), rtol=1e-10)


def test_no_grad_mode_skips_the_bridge(op: MatrixOperator, rng: np.random.Generator) -> None:
    x = torch.tensor(rng.random((2, 3)), requires_grad=True)
    with torch.no_grad():
        out = op(x)
    assert not out.requires_grad and out.grad_fn is None
