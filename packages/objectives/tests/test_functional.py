"""The functional estimators against naive step-by-step reference loops.

The references (``_references.py``) follow the textbook recurrences one time
step at a time (in float64); ``test_estimators.py`` uses them too.
"""

from __future__ import annotations

import pytest
import torch
from _references import assert_matches
from _references import make_data
from _references import ref_cumsum
from _references import ref_gae
from _references import ref_td0
from _references import ref_td_lambda
from _references import ref_vtrace
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from rlbricks.objectives.value import ValueEstimatorError
from rlbricks.objectives.value import functional as F

Tensor = torch.Tensor

BATCHES = [(), (3,), (2, 3)]
DTYPES = [torch.float32, torch.float64]
PATTERNS = ["mixed", "all", "none"]
FACTORS = [(0.0, 0.0), (0.5, 1.0), (0.99, 0.95), (1.0, 0.0), (1.0, 1.0)]


# --------------------------------------------------------------------------- #
# golden values against the references
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("steps", [1, 2, 17])
def test_gae(batch, dtype, pattern, steps):
    d = make_data(batch, steps, dtype, pattern, seed=steps)
    for gamma, lmbda in FACTORS:
        args = (d["value"], d["next_value"], d["reward"], d["done"], d["terminated"])
        adv, target = F.generalized_advantage_estimate(gamma, lmbda, *args)
        ref_adv, ref_target = ref_gae(gamma, lmbda, *args)
        assert_matches(adv, ref_adv, dtype)
        assert_matches(target, ref_target, dtype)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("steps", [1, 2, 17])
def test_td_lambda_and_td1(batch, dtype, pattern, steps):
    d = make_data(batch, steps, dtype, pattern, seed=steps + 1)
    args = (d["next_value"], d["reward"], d["done"], d["terminated"])
    for gamma, lmbda in FACTORS:
        returns = F.td_lambda_return_estimate(gamma, lmbda, *args)
        assert_matches(returns, ref_td_lambda(gamma, lmbda, *args), dtype)
        advantage = F.td_lambda_advantage_estimate(gamma, lmbda, d["value"], *args)
        assert_matches(advantage, ref_td_lambda(gamma, lmbda, *args) - d["value"].double(), dtype)
        assert_matches(F.td1_return_estimate(gamma, *args), ref_td_lambda(gamma, 1.0, *args), dtype)
        td1_adv = F.td1_advantage_estimate(gamma, d["value"], *args)
        assert_matches(td1_adv, ref_td_lambda(gamma, 1.0, *args) - d["value"].double(), dtype)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_td0(batch, dtype, pattern):
    d = make_data(batch, 9, dtype, pattern)
    for gamma in (0.0, 0.9, 1.0):
        ours = F.td0_return_estimate(gamma, d["next_value"], d["reward"], d["terminated"])
        ref = ref_td0(gamma, d["next_value"], d["reward"], d["terminated"])
        assert_matches(ours, ref, dtype)
        adv = F.td0_advantage_estimate(
            gamma, d["value"], d["next_value"], d["reward"], d["terminated"]
        )
        assert_matches(adv, ref - d["value"].double(), dtype)


def test_td_lambda_limits_are_td0_and_td1():
    d = make_data((4,), 12, torch.float64)
    args = (d["next_value"], d["reward"], d["done"], d["terminated"])
    td0 = F.td0_return_estimate(0.9, d["next_value"], d["reward"], d["terminated"])
    torch.testing.assert_close(F.td_lambda_return_estimate(0.9, 0.0, *args), td0)
    torch.testing.assert_close(
        F.td_lambda_return_estimate(0.9, 1.0, *args), F.td1_return_estimate(0.9, *args)
    )


def test_gae_target_is_td_lambda_return_when_values_chain():
    # with V(s_{t+1}) == V'(s_t), GAE + V is the TD(lambda) return
    d = make_data((3,), 15, torch.float64)
    nv = d["next_value"]
    value = torch.cat([torch.randn(3, 1, 1, dtype=torch.float64), nv[:, :-1]], 1)
    flags = (d["done"], d["terminated"])
    _, target = F.generalized_advantage_estimate(0.9, 0.8, value, nv, d["reward"], *flags)
    assert d["done"].any()
    returns = F.td_lambda_return_estimate(0.9, 0.8, nv, d["reward"], *flags)
    torch.testing.assert_close(target, returns)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("steps", [1, 2, 17])
def test_vtrace(batch, dtype, pattern, steps):
    d = make_data(batch, steps, dtype, pattern, seed=steps + 2)
    for gamma, rho, cbar in [(0.99, 1.0, 1.0), (0.9, 2.0, 0.5), (0.0, 1.0, 1.0), (1.0, 0.8, 1.2)]:
        args = (
            d["log_pi"],
            d["log_mu"],
            d["value"],
            d["next_value"],
            d["reward"],
            d["done"],
            d["terminated"],
        )
        adv, vs = F.vtrace_advantage_estimate(gamma, *args, rho_thresh=rho, c_thresh=cbar)
        ref_adv, ref_vs = ref_vtrace(gamma, *args, rho, cbar)
        assert_matches(vs, ref_vs, dtype)
        assert_matches(adv, ref_adv, dtype)


def test_vtrace_on_policy_is_td1():
    # pi == mu and no clipping: vs is the TD(1) return (Espeholt et al., remark 1)
    d = make_data((3,), 11, torch.float64)
    zeros = torch.zeros_like(d["value"])
    nv = d["next_value"]
    value = torch.cat([d["value"][:, :1], nv[:, :-1]], 1)  # V(s_{t+1}) == V'(s_t)
    flags = d["done"] & False  # one trajectory per row
    _, vs = F.vtrace_advantage_estimate(0.9, zeros, zeros, value, nv, d["reward"], flags, flags)
    torch.testing.assert_close(vs, F.td1_return_estimate(0.9, nv, d["reward"], flags, flags))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_done", [False, True])
def test_discounted_cumsum(dtype, with_done):
    d = make_data((2, 3), 13, dtype)
    done = d["done"] if with_done else None
    for gamma in (0.0, 0.7, 1.0):
        assert_matches(
            F.discounted_cumsum(d["reward"], gamma, done),
            ref_cumsum(d["reward"], gamma, done),
            dtype,
        )


# --------------------------------------------------------------------------- #
# conventions: done vs terminated, shapes, factors
# --------------------------------------------------------------------------- #


def test_truncation_bootstraps_termination_does_not():
    reward = torch.zeros(1, 2, 1)
    value = torch.zeros(1, 2, 1)
    next_value = torch.full((1, 2, 1), 10.0)
    done = torch.tensor([[[True], [False]]])
    truncated_adv, _ = F.generalized_advantage_estimate(
        0.5, 1.0, value, next_value, reward, done, torch.zeros_like(done)
    )
    terminated_adv, _ = F.generalized_advantage_estimate(
        0.5, 1.0, value, next_value, reward, done, done
    )
    # truncated at t=0: bootstrap 0.5 * 10 and stop; terminated: nothing to bootstrap
    assert truncated_adv[0, 0, 0].item() == 5.0
    assert terminated_adv[0, 0, 0].item() == 0.0
    # neither recursion crosses from t=1 (the next episode) into t=0
    assert truncated_adv[0, 1, 0].item() == terminated_adv[0, 1, 0].item() == 5.0


def test_terminated_without_done_still_ends_the_trajectory():
    d = make_data((2,), 10, torch.float64)
    terminated = d["terminated"] | (torch.rand(2, 10, 1) < 0.3)
    args = (d["value"], d["next_value"], d["reward"])
    lax = F.generalized_advantage_estimate(0.9, 0.9, *args, d["done"] & False, terminated)
    strict = F.generalized_advantage_estimate(0.9, 0.9, *args, terminated, terminated)
    torch.testing.assert_close(lax, strict)


@pytest.mark.parametrize("time_dim", [-1, 1])
def test_time_dim_for_flat_inputs(time_dim):
    d = make_data((3,), 8, torch.float64)
    flat = {k: v.squeeze(-1) for k, v in d.items()}
    args = ("value", "next_value", "reward", "done", "terminated")
    adv, target = F.generalized_advantage_estimate(
        0.9, 0.7, *(flat[k] for k in args), time_dim=time_dim
    )
    ref_adv, ref_target = ref_gae(0.9, 0.7, *(d[k] for k in args))
    torch.testing.assert_close(adv, ref_adv.squeeze(-1))
    torch.testing.assert_close(target, ref_target.squeeze(-1))


def test_feature_dims_are_independent_sequences():
    d = make_data((2,), 6, torch.float64, features=3)
    args = (d["value"], d["next_value"], d["reward"], d["done"], d["terminated"])
    adv, _ = F.generalized_advantage_estimate(0.9, 0.5, *args)
    for f in range(3):
        one = [a[..., f : f + 1] for a in args]
        torch.testing.assert_close(adv[..., f : f + 1], ref_gae(0.9, 0.5, *one)[0])


def test_tensor_factors_per_step():
    d = make_data((3,), 10, torch.float64)
    gamma = torch.rand(3, 10, 1, dtype=torch.float64)
    lmbda = torch.rand(1, 10, 1, dtype=torch.float64)
    gae_args = (d["value"], d["next_value"], d["reward"], d["done"], d["terminated"])
    torch.testing.assert_close(
        F.generalized_advantage_estimate(gamma, lmbda, *gae_args),
        ref_gae(gamma, lmbda, *gae_args),
    )
    td_args = (d["next_value"], d["reward"], d["done"], d["terminated"])
    torch.testing.assert_close(
        F.td_lambda_return_estimate(gamma, lmbda, *td_args), ref_td_lambda(gamma, lmbda, *td_args)
    )
    rho = torch.full((3, 1, 1), 0.9, dtype=torch.float64)
    vt_args = (d["log_pi"], d["log_mu"], *gae_args)
    torch.testing.assert_close(
        F.vtrace_advantage_estimate(gamma, *vt_args, rho_thresh=rho, c_thresh=rho),
        ref_vtrace(gamma, *vt_args, rho, rho),
    )
    torch.testing.assert_close(
        F.discounted_cumsum(d["reward"], gamma), ref_cumsum(d["reward"], gamma)
    )


def test_numeric_done_flags_are_accepted():
    d = make_data((2,), 7, torch.float64)
    args = (d["value"], d["next_value"], d["reward"])
    as_bool = F.generalized_advantage_estimate(0.9, 0.9, *args, d["done"], d["terminated"])
    as_float = F.generalized_advantage_estimate(
        0.9, 0.9, *args, d["done"].double(), d["terminated"].long()
    )
    torch.testing.assert_close(as_bool, as_float)


def test_non_contiguous_inputs():
    d = make_data((4,), 6, torch.float64)
    # the same data, time-major in memory: every argument is a strided view
    strided = {k: v.transpose(0, 1).contiguous().transpose(0, 1) for k, v in d.items()}
    assert not strided["done"].is_contiguous()
    keys = ("value", "next_value", "reward", "done", "terminated")
    torch.testing.assert_close(
        F.generalized_advantage_estimate(0.9, 0.8, *(strided[k] for k in keys)),
        ref_gae(0.9, 0.8, *(d[k] for k in keys)),
    )


def test_inputs_are_not_modified():
    d = make_data((2,), 9, torch.float32)
    before = {k: v.clone() for k, v in d.items()}
    F.generalized_advantage_estimate(
        0.9, 0.9, d["value"], d["next_value"], d["reward"], d["done"], d["terminated"]
    )
    F.td_lambda_return_estimate(0.9, 0.9, d["next_value"], d["reward"], d["done"], d["terminated"])
    for key, value in before.items():
        assert torch.equal(d[key], value), key


def test_empty_time_dim():
    d = make_data((2,), 0, torch.float32)
    adv, target = F.generalized_advantage_estimate(
        0.9, 0.9, d["value"], d["next_value"], d["reward"], d["done"], d["terminated"]
    )
    assert adv.shape == target.shape == (2, 0, 1)
    returns = F.td_lambda_return_estimate(
        0.9, 0.9, d["next_value"], d["reward"], d["done"], d["terminated"]
    )
    assert returns.shape == (2, 0, 1)


# --------------------------------------------------------------------------- #
# gradients
# --------------------------------------------------------------------------- #


def test_gradients_flow_like_the_reference():
    d = make_data((2,), 9, torch.float64)
    value = d["value"].clone().requires_grad_()
    next_value = d["next_value"].clone().requires_grad_()
    gamma = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 9, 1, dtype=torch.float64)

    def grads(fn):
        for t in (value, next_value, gamma):
            t.grad = None
        adv, target = fn(gamma, 0.8, value, next_value, d["reward"], d["done"], d["terminated"])
        ((adv + target) * weights).sum().backward()
        return value.grad.clone(), next_value.grad.clone(), gamma.grad.clone()

    for ours, ref in zip(grads(F.generalized_advantage_estimate), grads(ref_gae)):
        torch.testing.assert_close(ours, ref)


def test_td_lambda_gradient_wrt_next_value():
    d = make_data((2,), 9, torch.float64)
    next_value = d["next_value"].clone().requires_grad_()
    args = (d["reward"], d["done"], d["terminated"])
    F.td_lambda_return_estimate(0.9, 0.7, next_value, *args).sum().backward()
    ours = next_value.grad.clone()
    next_value.grad = None
    ref_td_lambda(0.9, 0.7, next_value, *args).sum().backward()
    torch.testing.assert_close(ours, next_value.grad)


# --------------------------------------------------------------------------- #
# errors
# --------------------------------------------------------------------------- #


def test_shape_mismatch_names_both():
    d = make_data((2,), 5, torch.float32)
    with pytest.raises(ValueEstimatorError, match=r"reward has shape \(2, 4, 1\).*\(2, 5, 1\)"):
        F.generalized_advantage_estimate(
            0.9, 0.9, d["value"], d["next_value"], d["reward"][:, :4], d["done"], d["terminated"]
        )


def test_time_dim_out_of_range_tells_the_fix():
    with pytest.raises(ValueEstimatorError, match="time_dim=-1"):
        F.td_lambda_return_estimate(
            0.9, 0.9, torch.zeros(5), torch.zeros(5), torch.zeros(5), torch.zeros(5)
        )


def test_bad_factor_shape():
    d = make_data((2,), 5, torch.float32)
    with pytest.raises(ValueEstimatorError, match="gamma has shape"):
        F.discounted_cumsum(d["reward"], torch.ones(3))


def test_non_tensor_and_non_float_inputs():
    with pytest.raises(ValueEstimatorError, match=r"must be a torch\.Tensor"):
        F.td0_return_estimate(0.9, [1.0], torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueEstimatorError, match="floating-point"):
        F.td0_return_estimate(0.9, torch.zeros(1), torch.zeros(1, dtype=torch.long), torch.zeros(1))
    with pytest.raises(ValueEstimatorError, match="number or a tensor"):
        F.td0_return_estimate("0.9", torch.zeros(1), torch.zeros(1), torch.zeros(1))


# --------------------------------------------------------------------------- #
# property tests
# --------------------------------------------------------------------------- #


@settings(max_examples=30, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    steps=st.integers(1, 40),
    gamma=st.floats(0.0, 1.0),
    lmbda=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_property_gae_and_td_lambda(batch, steps, gamma, lmbda, seed):
    d = make_data(tuple(batch), steps, torch.float64, seed=seed)
    args = (d["value"], d["next_value"], d["reward"], d["done"], d["terminated"])
    torch.testing.assert_close(
        F.generalized_advantage_estimate(gamma, lmbda, *args), ref_gae(gamma, lmbda, *args)
    )
    td_args = args[1:]
    torch.testing.assert_close(
        F.td_lambda_return_estimate(gamma, lmbda, *td_args), ref_td_lambda(gamma, lmbda, *td_args)
    )


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    d = make_data((4,), 50, torch.float32)
    args = (d["value"], d["next_value"], d["reward"], d["done"], d["terminated"])
    on_gpu = F.generalized_advantage_estimate(0.99, 0.95, *(a.cuda() for a in args))
    on_cpu = F.generalized_advantage_estimate(0.99, 0.95, *args)
    for gpu, cpu in zip(on_gpu, on_cpu):
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu)
