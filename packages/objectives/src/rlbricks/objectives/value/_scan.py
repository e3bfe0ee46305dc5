"""The backward linear recurrence ``a_t = x_t + c_t * a_{t+1}`` as a parallel scan over time.

Every value estimator in :mod:`rlbricks.objectives.value.functional` reduces to
this recurrence, read backwards from the last step (``a_T = 0``).  A pair
``(c, x)`` stands for the affine map ``a -> x + c * a``; composing two adjacent
maps gives another one,

    (c_t, x_t) o (c_u, x_u) = (c_t * c_u, x_t + c_t * x_u),

and composition is associative, so the whole sequence can be folded in
``ceil(log2(T))`` vectorised doubling steps (Hillis and Steele, 1986): after
the step of offset ``s``, ``x_t`` holds the sum over ``[t, t + 2s)`` and
``c_t`` the product of the ``c`` over that span.  The products only ever
shrink towards zero (for ``|c| <= 1``), which is the correct limit; nothing is
ever divided by a cumulative product.

Two implementations share the maths:

* :func:`reverse_scan` ping-pongs between two preallocated, zero-padded
  buffer pairs with ``out=`` kernels: two fused kernels per step, no
  allocation per step, no Python loop over ``T``.  It is used whenever no
  gradient has to flow.
* ``_reverse_scan_autograd`` builds each step out of place, so autograd can
  differentiate through it (meta-gradients through ``gamma``, or a
  differentiable value target).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["reverse_scan"]


def reverse_scan(x: Tensor, c: Tensor, dim: int) -> Tensor:
    """Solve ``a_t = x_t + c_t * a_{t+1}`` backwards along ``dim`` with ``a_T = 0``.

    ``x`` and ``c`` must have the same shape; neither is modified.

    Args:
        x: the additive terms.
        c: the multiplicative (discount) terms, same shape as ``x``.
        dim: the time dimension (non-negative).

    Returns:
        ``a``, with the shape of ``x``.

    Example:
        >>> import torch
        >>> reverse_scan(torch.ones(4), torch.full((4,), 0.5), 0)
        tensor([1.8750, 1.7500, 1.5000, 1.0000])
    """
    steps = x.shape[dim]
    if steps <= 1:
        return x.clone()
    if torch.is_grad_enabled() and (x.requires_grad or c.requires_grad):
        return _reverse_scan_autograd(x, c, dim)
    # Two buffer pairs, each padded along time with `pad` zeros: the shifted
    # operand ``x[t + span]`` of every step is then one full-length view, and
    # past the end it reads zeros (a_T = 0), so no step needs a tail copy.
    pad = 1 << ((steps - 1).bit_length() - 1)  # the largest power of two below steps
    shape = list(x.shape)
    shape[dim] = steps + pad
    dtype = torch.result_type(x, c)
    x_buf = x.new_empty([2, *shape], dtype=dtype)
    c_buf = c.new_empty([2, *shape], dtype=dtype)
    x_buf.narrow(dim + 1, steps, pad).zero_()
    c_buf.narrow(dim + 1, steps, pad).zero_()
    xs = [x_buf[0].narrow(dim, 0, steps), x_buf[1].narrow(dim, 0, steps)]
    cs = [c_buf[0].narrow(dim, 0, steps), c_buf[1].narrow(dim, 0, steps)]
    xs[0].copy_(x)
    cs[0].copy_(c)
    # after the step of offset `span`, x holds the sums over [t, t + 2 span) and
    # c the products of the discounts over the same span
    cur, span = 0, 1
    while 2 * span < steps:
        nxt = 1 - cur
        torch.addcmul(xs[cur], cs[cur], x_buf[cur].narrow(dim, span, steps), out=xs[nxt])
        torch.mul(cs[cur], c_buf[cur].narrow(dim, span, steps), out=cs[nxt])
        cur, span = nxt, 2 * span
    # the last step needs no products, and writes a plain tensor laid out like x
    out = torch.empty_like(x, dtype=dtype)
    return torch.addcmul(xs[cur], cs[cur], x_buf[cur].narrow(dim, span, steps), out=out)


def _reverse_scan_autograd(x: Tensor, c: Tensor, dim: int) -> Tensor:
    """The same doubling steps, out of place, so that autograd records them."""
    steps = x.shape[dim]
    span = 1
    while span < steps:
        head = steps - span
        combined = torch.addcmul(
            x.narrow(dim, 0, head), c.narrow(dim, 0, head), x.narrow(dim, span, head)
        )
        x = torch.cat([combined, x.narrow(dim, head, span)], dim)
        if steps - 2 * span > 0:
            product = c.narrow(dim, 0, head) * c.narrow(dim, span, head)
            c = torch.cat([product, c.narrow(dim, head, span)], dim)
        span *= 2
    return x
