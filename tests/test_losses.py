"""Losses (losses.py) against a float64 hand computation, and §3's saturation claim."""

import math

import torch

from advnets.losses import (
    discriminator_loss,
    generator_loss_minimax,
    generator_loss_nonsaturating,
    value_function,
)


def _sig(a):
    return 1 / (1 + math.exp(-a))


def test_losses_match_float64_hand_computation():
    real = [2.0, -1.0, 0.3, 4.0]
    fake = [-3.0, 0.5, 1.5]
    r, f = torch.tensor(real, dtype=torch.float64), torch.tensor(fake, dtype=torch.float64)
    e_log_d_real = sum(math.log(_sig(a)) for a in real) / len(real)
    e_log_1m_d_fake = sum(math.log(1 - _sig(a)) for a in fake) / len(fake)
    e_log_d_fake = sum(math.log(_sig(a)) for a in fake) / len(fake)
    assert math.isclose(value_function(r, f).item(), e_log_d_real + e_log_1m_d_fake, rel_tol=1e-12)
    assert math.isclose(discriminator_loss(r, f).item(), -0.5 * (e_log_d_real + e_log_1m_d_fake), rel_tol=1e-12)
    assert math.isclose(generator_loss_minimax(f).item(), e_log_1m_d_fake, rel_tol=1e-12)
    assert math.isclose(generator_loss_nonsaturating(f).item(), -e_log_d_fake, rel_tol=1e-12)


def test_losses_stay_finite_where_d_saturates():
    huge = torch.tensor([200.0, -200.0])
    for value in (discriminator_loss(huge, huge), generator_loss_minimax(huge), generator_loss_nonsaturating(huge)):
        assert torch.isfinite(value)
    # -log D(G(z)) at a logit of -200 is 200 (no overflow to inf, no log(0))
    assert math.isclose(generator_loss_nonsaturating(torch.tensor([-200.0])).item(), 200.0, rel_tol=1e-6)


def test_value_function_is_minus_log4_when_d_is_one_half():
    zeros = torch.zeros(10, dtype=torch.float64)
    assert math.isclose(value_function(zeros, zeros).item(), -math.log(4), rel_tol=1e-15)


def test_minimax_gradient_saturates_where_nonsaturating_does_not():
    """§3: early on D rejects samples (D(G(z)) ~ 0); log(1 - D(G(z))) then gives
    G almost no gradient, while -log D(G(z)) gives a gradient of about -1."""
    a = torch.tensor([-12.0], dtype=torch.float64, requires_grad=True)  # D(G(z)) ~ 6e-6
    (g_minimax,) = torch.autograd.grad(generator_loss_minimax(a), a)
    (g_ns,) = torch.autograd.grad(generator_loss_nonsaturating(a), a)
    assert abs(g_minimax.item()) < 1e-5
    assert abs(g_ns.item() + 1) < 1e-5
    # both point the same way: raise D's logit on the samples
    assert g_minimax.item() < 0 and g_ns.item() < 0


def test_label_smoothing_matches_float64_cross_entropy_against_the_smoothed_target():
    """One-sided label smoothing: real rows are scored against t, generated rows still against 0."""
    real, fake, t = [2.0, -1.0, 0.3, 4.0], [-3.0, 0.5], 0.9
    r, f = torch.tensor(real, dtype=torch.float64), torch.tensor(fake, dtype=torch.float64)
    real_ce = sum(-t * math.log(_sig(a)) - (1 - t) * math.log(1 - _sig(a)) for a in real) / len(real)
    fake_ce = sum(-math.log(1 - _sig(a)) for a in fake) / len(fake)
    assert math.isclose(discriminator_loss(r, f, real_label=t).item(), 0.5 * (real_ce + fake_ce), rel_tol=1e-12)
    assert discriminator_loss(r, f, real_label=1.0).item() == discriminator_loss(r, f).item()


def test_label_smoothing_stops_rewarding_d_beyond_the_target():
    """The smoothed loss is minimised where D(x) = t: its gradient w.r.t. the real logit vanishes at
    logit(t) and pushes back (positive) beyond it, where the paper's loss keeps pushing up."""
    t = 0.9
    at = torch.tensor([math.log(t / (1 - t))], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(discriminator_loss(at, torch.zeros(1, dtype=torch.float64), real_label=t), at)
    assert abs(g.item()) < 1e-12
    beyond = torch.tensor([5.0], dtype=torch.float64, requires_grad=True)
    (g_smooth,) = torch.autograd.grad(discriminator_loss(beyond, torch.zeros(1), real_label=t), beyond)
    (g_paper,) = torch.autograd.grad(discriminator_loss(beyond, torch.zeros(1)), beyond)
    assert g_smooth.item() > 0 > g_paper.item()
