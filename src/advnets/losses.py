"""The value function and the players' losses, as pure functions of D's logits.

With D(x) = sigmoid(a) for a logit a, the logs in Eq. 1 are softplus terms:
    log D(x)       = -softplus(-a)
    log(1 - D(x))  = -softplus(a)
which stay finite and accurate where D saturates (a -> +-inf), unlike
log(sigmoid(a)). Every function here takes logits, never probabilities.
"""

from __future__ import annotations

import torch
from torch.nn.functional import softplus


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    """D's loss: Eq. 1 negated, as the mean of the two cross-entropies
    (real -> 1, generated -> 0), as the reference code computes it:
        0.5 * (E_x[-log D(x)] + E_z[-log(1 - D(G(z)))])
    Minimising it is Algorithm 1's ascent of D's gradient, scaled by 1/2.

    With real_label = t < 1 (one-sided label smoothing) the real rows'
    cross-entropy is against t instead: -t log D(x) - (1 - t) log(1 - D(x)),
    minimised at D(x) = t; generated rows keep the target 0."""
    real = softplus(-real_logits).mean()
    if real_label != 1.0:
        real = real_label * real + (1.0 - real_label) * softplus(real_logits).mean()
    return 0.5 * (real + softplus(fake_logits).mean())


def generator_loss_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's loss in the minimax game of Eq. 1: E_z[log(1 - D(G(z)))], minimised.
    Its gradient w.r.t. the logit is -sigmoid(a), which vanishes when D
    confidently rejects G's samples (the saturation that §3 warns about)."""
    return -softplus(fake_logits).mean()


def generator_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's non-saturating loss (§3): maximise log D(G(z)), i.e. minimise
    E_z[-log D(G(z))], the cross-entropy of D(G(z)) against 1. Its gradient
    w.r.t. the logit is sigmoid(a) - 1, close to -1 early in training."""
    return softplus(-fake_logits).mean()


GENERATOR_LOSSES = {
    "nonsaturating": generator_loss_nonsaturating,
    "minimax": generator_loss_minimax,
}


def value_function(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """A minibatch estimate of V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))] (Eq. 1).
    At the global optimum (p_g = p_data, D = 1/2) it equals -log 4 (Thm. 1)."""
    return -softplus(-real_logits).mean() - softplus(fake_logits).mean()
