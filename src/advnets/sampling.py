"""Drawing from a trained G: fair sample grids, the paper's Figure 2 (samples
beside their nearest training example) and Figure 3 (paths in z space).

Every function takes a seed, never a cherry-picked batch: the same seed gives
the same picture, and the seed is printed and stored by the CLI.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from advnets.conditioning import grid_labels, with_condition
from advnets.config import GeneratorConfig
from advnets.errors import AdvnetsError
from advnets.nets import Generator, sample_noise


def g_input(g: Generator, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """G's input: z, and for a conditional G (§7.1) the one-hot labels (default: one class per grid row)."""
    if g.cfg.condition == "inpaint":
        raise AdvnetsError("this model completes images rather than drawing them: use `advnets inpaint --run DIR`")
    if g.cfg.condition != "class":
        if labels is not None:
            raise AdvnetsError("--class needs a conditional model (trained with --conditional)")
        return z
    if labels is None:
        labels = grid_labels(len(z), g.cfg.cond_dim, grid_columns(len(z)))
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= g.cfg.cond_dim):
        raise AdvnetsError(f"--class must lie in 0..{g.cfg.cond_dim - 1} for this model")
    return with_condition(z, labels.to(z.device), g.cfg.cond_dim)


@torch.no_grad()
def draw(
    g: Generator, z: torch.Tensor, image_shape: tuple[int, ...], labels: torch.Tensor | None = None, batch: int = 1000
) -> torch.Tensor:
    """G's images (N x C x H x W, on G's device) for the noise rows ``z``: the one way every part of advnets draws
    from G. G runs in eval mode for the call and in batches of ``batch`` rows; a conditional G draws ``labels``
    (default: one class per row of a square grid). Raises AdvnetsError for an inpainting G (use
    advnets.inpaint.completions) and for labels that do not fit G."""
    device = next(g.parameters()).device
    z = g_input(g, z, labels)
    was_training = g.training
    g.eval()
    try:
        out = [g(z[i : i + batch].to(device)) for i in range(0, len(z), batch)]
    finally:
        g.train(was_training)
    return torch.cat(out).reshape(len(z), *image_shape)


def generate(
    g: Generator,
    n: int,
    seed: int,
    image_shape: tuple[int, ...],
    batch: int = 1000,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """n samples of G as N x C x H x W on the CPU, from noise drawn with ``seed`` (see :func:`draw`)."""
    z = sample_noise(g.cfg, n, generator=torch.Generator().manual_seed(seed))
    return draw(g, z, image_shape, labels=labels, batch=batch).cpu()


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of z0 and z1 at fractions t (an
    addition, not the paper's: it keeps the path at the prior's typical norm)."""
    cos = ((z0 * z1).sum(-1, keepdim=True) / (z0.norm(dim=-1, keepdim=True) * z1.norm(dim=-1, keepdim=True))).clamp(
        -1, 1
    )
    omega = torch.acos(cos).unsqueeze(1)  # rows x 1 x 1, against t: 1 x steps x 1
    so = torch.sin(omega)
    t = t.reshape(1, -1, 1)
    # Nearly parallel endpoints: slerp tends to lerp, which avoids 0/0.
    w0 = torch.where(so > 1e-6, torch.sin((1 - t) * omega) / so, 1 - t)
    w1 = torch.where(so > 1e-6, torch.sin(t * omega) / so, t)
    return w0 * z0.unsqueeze(1) + w1 * z1.unsqueeze(1)


def interpolation_noise(
    cfg: GeneratorConfig, rows: int, steps: int, seed: int, spherical: bool = False
) -> torch.Tensor:
    """rows x steps noise vectors: each row a path from one random z to another
    (Figure 3: linear in z space; spherical as an option). Endpoints are exact."""
    if rows < 1 or steps < 2:
        raise ValueError(f"interpolation needs rows >= 1 and steps >= 2, got rows={rows}, steps={steps}")
    gen = torch.Generator().manual_seed(seed)
    z0 = sample_noise(cfg, rows, generator=gen)
    z1 = sample_noise(cfg, rows, generator=gen)
    t = torch.linspace(0, 1, steps)
    if spherical:
        path = slerp(z0, z1, t)
    else:
        path = z0.unsqueeze(1) + t.reshape(1, -1, 1) * (z1 - z0).unsqueeze(1)
    path[:, 0], path[:, -1] = z0, z1
    return path.reshape(rows * steps, cfg.noise_dim)


@torch.no_grad()
def interpolate(
    g: Generator, rows: int, steps: int, seed: int, image_shape: tuple[int, ...], spherical: bool = False
) -> torch.Tensor:
    z = interpolation_noise(g.cfg, rows, steps, seed, spherical=spherical)
    labels = None
    if g.cfg.condition == "class":  # each path keeps one class: row r shows class r mod K
        labels = (torch.arange(rows) % g.cfg.cond_dim).repeat_interleave(steps)
    return draw(g, z, image_shape, labels=labels, batch=len(z)).cpu()


def nearest_figure(samples: torch.Tensor, train: torch.Tensor, columns: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """The layout of the paper's Figure 2: rows of ``columns - 1`` samples and,
    in the rightmost column, the training example nearest (Euclidean distance
    in pixel space, exact, over the whole training split) to the sample beside it.
    Returns the images in row-major order and the neighbour indices/distances."""
    from advnets.evaluate.nearest import nearest_neighbors

    per_row = columns - 1
    rows = len(samples) // per_row
    samples = samples[: rows * per_row]
    last = samples[per_row - 1 :: per_row]
    idx, dist = nearest_neighbors(last.reshape(rows, -1), train.reshape(len(train), -1))
    grid = []
    for r in range(rows):
        grid.extend([*samples[r * per_row : (r + 1) * per_row], train[idx[r]]])
    return torch.stack(grid), {"train_index": idx.tolist(), "distance": dist.tolist()}


def grid_columns(n: int) -> int:
    return math.ceil(math.sqrt(n))
