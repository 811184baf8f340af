"""The peer of benchmarks/train_throughput.py: the paper's MNIST GAN as the usual PyTorch examples write it.

Same architecture, dropout, losses, optimiser and update order as advnets' ``mnist`` preset
(Goodfellow et al. 2014, §5 and the reference code):

* G: z ~ U[-sqrt(3), sqrt(3)]^100 -> ReLU 1200 -> ReLU 1200 -> sigmoid 784, init U(+-0.05), zero biases,
  output bias = logit of the mean training pixel;
* D: dropout(0.2) -> maxout 240x5 -> dropout(0.5) -> maxout 240x5 -> dropout(0.5) -> linear 1 (a logit),
  init U(+-0.005), zero biases; ``nn.Dropout`` is inverted dropout (kept inputs scaled by 1/keep), as the
  reference's;
* D's loss: the mean of the two cross-entropies, 0.5 * (BCE(D(x), 1) + BCE(D(G(z)), 0)); G's loss: the
  non-saturating BCE(D(G(z)), 1) (§3);
* SGD, lr 0.1 divided by 1.000004 per iteration (ExponentialLR), momentum 0.5 -> 0.7 over 250 epochs;
* Algorithm 1: k D updates, each on a fresh minibatch and fresh noise, then one G update on fresh noise
  ("alternating"); or the reference code's "simultaneous" update (one batch of G samples, both players
  step from one forward pass).

Written the way the usual examples write it, on purpose: separate D calls on the real and the generated
batch, ``.backward()`` on each loss, G's samples for D's step built with a graph and ``.detach()``-ed, D's
weights left trainable during G's step, a ``DataLoader`` over a ``TensorDataset``, ``.item()`` of the
losses every iteration for the logs. Nothing here is tuned.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Maxout(nn.Module):
    def __init__(self, in_features: int, units: int, pieces: int) -> None:
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        return z.view(-1, self.units, self.pieces).max(dim=2)[0]


def make_generator() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(100, 1200),
        nn.ReLU(),
        nn.Linear(1200, 1200),
        nn.ReLU(),
        nn.Linear(1200, 784),
        nn.Sigmoid(),
    )


def make_discriminator() -> nn.Sequential:
    return nn.Sequential(
        nn.Dropout(0.2),
        Maxout(784, 240, 5),
        nn.Dropout(0.5),
        Maxout(240, 240, 5),
        nn.Dropout(0.5),
        nn.Linear(240, 1),
    )


def init_weights(net: nn.Module, init_range: float) -> None:
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, -init_range, init_range)
            nn.init.zeros_(m.bias)


class PlainGAN:
    """One training run; ``step()`` is one Algorithm-1 iteration."""

    def __init__(
        self,
        train_images: torch.Tensor,
        device: str | torch.device = "cpu",
        update: str = "alternating",
        k: int = 1,
        batch_size: int = 100,
        seed: int = 0,
    ) -> None:
        torch.manual_seed(seed)
        self.device = torch.device(device)
        self.update, self.k, self.batch_size = update, k, batch_size
        self.G = make_generator()
        self.D = make_discriminator()
        init_weights(self.G, 0.05)
        init_weights(self.D, 0.005)
        images = train_images.reshape(len(train_images), -1).float()
        mean = images.mean(0).clamp(1e-3, 1 - 1e-3)
        with torch.no_grad():
            self.G[4].bias.copy_(torch.log(mean / (1 - mean)))
        self.G.to(self.device).train()
        self.D.to(self.device).train()

        self.loader = DataLoader(TensorDataset(images), batch_size=batch_size, shuffle=True, drop_last=True)
        self.batches = iter(self.loader)
        self.epoch = 0
        self.criterion = nn.BCEWithLogitsLoss()
        self.opt_d = torch.optim.SGD(self.D.parameters(), lr=0.1, momentum=0.5)
        self.opt_g = torch.optim.SGD(self.G.parameters(), lr=0.1, momentum=0.5)
        self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.opt_d, gamma=1 / 1.000004)
        self.sched_g = torch.optim.lr_scheduler.ExponentialLR(self.opt_g, gamma=1 / 1.000004)
        self.d_losses: list[float] = []
        self.g_losses: list[float] = []

    def next_batch(self) -> torch.Tensor:
        try:
            (x,) = next(self.batches)
        except StopIteration:
            self.epoch += 1
            momentum = 0.5 + 0.2 * min(self.epoch / 250, 1.0)
            for opt in (self.opt_d, self.opt_g):
                for group in opt.param_groups:
                    group["momentum"] = momentum
            self.batches = iter(self.loader)
            (x,) = next(self.batches)
        return x.to(self.device)

    def noise(self, n: int) -> torch.Tensor:
        return (torch.rand(n, 100, device=self.device) * 2 - 1) * math.sqrt(3)

    def d_step(self) -> torch.Tensor:
        x = self.next_batch()
        m = x.size(0)
        real_label = torch.ones(m, 1, device=self.device)
        fake_label = torch.zeros(m, 1, device=self.device)
        self.D.zero_grad()
        loss_real = 0.5 * self.criterion(self.D(x), real_label)
        loss_real.backward()
        fake = self.G(self.noise(m))
        loss_fake = 0.5 * self.criterion(self.D(fake.detach()), fake_label)
        loss_fake.backward()
        self.opt_d.step()
        return loss_real + loss_fake

    def g_step(self) -> torch.Tensor:
        m = self.batch_size
        self.G.zero_grad()
        loss_g = self.criterion(self.D(self.G(self.noise(m))), torch.ones(m, 1, device=self.device))
        loss_g.backward()
        self.opt_g.step()
        return loss_g

    def simultaneous_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.next_batch()
        m = x.size(0)
        fake = self.G(self.noise(m))
        out_real = self.D(x)
        out_fake = self.D(fake)
        loss_d = 0.5 * (
            self.criterion(out_real, torch.ones(m, 1, device=self.device))
            + self.criterion(out_fake, torch.zeros(m, 1, device=self.device))
        )
        loss_g = self.criterion(out_fake, torch.ones(m, 1, device=self.device))
        self.D.zero_grad()
        self.G.zero_grad()
        loss_d.backward(retain_graph=True, inputs=list(self.D.parameters()))
        loss_g.backward(inputs=list(self.G.parameters()))
        self.opt_d.step()
        self.opt_g.step()
        return loss_d, loss_g

    def step(self) -> None:
        if self.update == "simultaneous":
            loss_d, loss_g = self.simultaneous_step()
        else:
            for _ in range(self.k):
                loss_d = self.d_step()
            loss_g = self.g_step()
        self.sched_d.step()
        self.sched_g.step()
        self.d_losses.append(loss_d.item())
        self.g_losses.append(loss_g.item())
