"""The optimised training step computes what a plain step computes (issue 7).

Trainer.train_step() runs one Algorithm-1 iteration with the optimisations of train.py and nets.py (one D
forward over the real and generated rows, D frozen during G's step, fused maxout, fast dropout masks, ...).
Each test here records the real batch, the noise and the dropout keep-patterns that step used, then recomputes
the iteration the plain way: G and D written out as matrix products, separate D calls on the real and the
generated rows (dropout applied as x * keep / p, the reference's inverted dropout), the losses as binary
cross-entropies, plain .backward(), SGD with momentum by its formula. Losses, gradients and updated
parameters must agree, against a float32 and a float64 recomputation.

The recomputation takes only the recorded inputs, the Trainer's weights and optimiser state before the step
and the config from advnets, so it fails when an optimisation changes what is computed; the last tests plant
two such changes and check that it does.
"""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F

from advnets.config import override
from advnets.data import Dataset
from advnets.presets import PRESETS
from advnets.train import Trainer
from conftest import tiny_config

# Error allowed. Losses: relative. Gradients and updates: relative to the largest value of the same kind in
# the same net (a bias gradient can be a near-cancelling sum, tiny on its own), plus, for updates, the float32
# rounding of the updated weight (G's first updates are smaller than an ulp of some of its weights).
LOSS_TOL = 1e-5
TOL = {torch.float32: 3e-4, torch.float64: 1e-4}


def _close(
    name: str, got: torch.Tensor, want: torch.Tensor, tol: float, scale: float | None = None, slack: float = 0.0
) -> None:
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    scale = want.abs().max().item() if scale is None else scale
    excess = ((got - want).abs() - slack).max().item()
    assert excess <= tol * max(scale, 1e-12), f"{name}: max abs error {excess:.3g} (beyond rounding), scale {scale:.3g}"


def _scale(tensors) -> float:
    return max(t.detach().abs().max().item() for t in tensors)


class Recorder:
    """Wraps a Trainer's data, noise and dropout streams and keeps what each step drew."""

    def __init__(self, trainer: Trainer) -> None:
        self.batches: list[torch.Tensor] = []
        self.noises: list[torch.Tensor] = []
        self.keeps: list[torch.Tensor] = []  # one per dropout layer call, in call order: 0/1 patterns
        next_real_batch, noise, dropout_mask = trainer.next_real_batch, trainer.noise, trainer.d.dropout_mask

        def record_batch():
            x = next_real_batch()
            self.batches.append(x.detach().clone())
            return x

        def record_noise(n):
            z = noise(n)
            self.noises.append(z.detach().clone())
            return z

        def record_mask(d, shape, include_prob, device, dtype):
            mask = dropout_mask(shape, include_prob, device, dtype)
            self.keeps.append((mask != 0).clone())  # the scale is the reference's business, not recorded
            return mask

        trainer.next_real_batch = record_batch
        trainer.noise = record_noise
        trainer.d.dropout_mask = types.MethodType(record_mask, trainer.d)

    def clear(self) -> None:
        self.batches.clear()
        self.noises.clear()
        self.keeps.clear()


class PlainStep:
    """One Algorithm-1 iteration written out plainly, in ``dtype``, from a Trainer's state before the step."""

    def __init__(self, trainer: Trainer, dtype: torch.dtype) -> None:
        cfg = trainer.cfg
        self.cfg, self.dtype = cfg, dtype
        self.g = {k: v.detach().to(dtype).clone().requires_grad_() for k, v in trainer.g.named_parameters()}
        self.d = {k: v.detach().to(dtype).clone().requires_grad_() for k, v in trainer.d.named_parameters()}
        # G's linear layers in order (the last one is registered as ``output`` too, and named so)
        self.g_layers = [
            "output" if layer is trainer.g.output else f"net.{i}"
            for i, layer in enumerate(trainer.g.net)
            if isinstance(layer, torch.nn.Linear)
        ]
        self.buffers = {}  # SGD momentum buffers, by "g." or "d." + parameter name
        for prefix, net, opt in (("g.", trainer.g, trainer.opt_g), ("d.", trainer.d, trainer.opt_d)):
            names = {id(p): n for n, p in net.named_parameters()}
            for p in net.parameters():
                buf = opt.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    self.buffers[prefix + names[id(p)]] = buf.detach().to(dtype).clone()
        o = cfg.optim
        self.lr = o.lr / o.lr_decay**trainer.step
        self.momentum = o.momentum_start + (o.momentum_end - o.momentum_start) * min(
            trainer.epoch / o.momentum_saturate_epoch, 1.0
        )

    # ----- the players, as matrix products
    def G(self, z: torch.Tensor) -> torch.Tensor:
        acts = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "linear": lambda h: h}
        gc = self.cfg.generator
        h = z.to(self.dtype)
        for layer, act in zip(self.g_layers, [*gc.hidden_activations, gc.output_activation], strict=True):
            h = acts[act](h @ self.g[f"{layer}.weight"].T + self.g[f"{layer}.bias"])
        return h

    def D(self, x: torch.Tensor, keeps: list[torch.Tensor]) -> torch.Tensor:
        dc = self.cfg.discriminator
        probs = [dc.input_include_prob] + [dc.hidden_include_prob] * len(dc.hidden_units)
        h = x.reshape(len(x), -1).to(self.dtype)
        for i, (units, pieces) in enumerate(zip(dc.hidden_units, dc.pieces, strict=True)):
            h = h * keeps[i].to(self.dtype) / probs[i]  # inverted dropout on the layer's input
            z = h @ self.d[f"hidden.{i}.linear.weight"].T + self.d[f"hidden.{i}.linear.bias"]
            h = z.view(len(x), units, pieces).max(dim=-1).values  # maxout: a unit's pieces are adjacent columns
        h = h * keeps[-1].to(self.dtype) / probs[-1]
        return (h @ self.d["output.weight"].T + self.d["output.bias"]).squeeze(-1)

    # ----- losses (Eq. 1 and §3) as binary cross-entropies of D's logits
    @staticmethod
    def d_loss(real_logits, fake_logits):
        real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        return 0.5 * (real + fake)

    def g_loss(self, fake_logits):
        if self.cfg.train.g_loss == "nonsaturating":  # maximise log D(G(z))
            return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))  # log(1 - D(G(z)))

    def grads(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The gradients .backward() left in ``params`` (then cleared)."""
        out = {name: p.grad.clone() for name, p in params.items()}
        for p in params.values():
            p.grad = None
        return out

    @torch.no_grad()
    def sgd(self, prefix: str, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor]) -> None:
        """SGD with momentum as torch's SGD defines it: v <- mu v + g (v = g at first), p <- p - lr v."""
        for name, p in params.items():
            buf = self.buffers.get(prefix + name)
            buf = grads[name].clone() if buf is None else self.momentum * buf + grads[name]
            self.buffers[prefix + name] = buf
            p -= self.lr * buf

    @staticmethod
    def split(keeps: list[torch.Tensor], m: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Masks drawn for the concatenated [real; generated] rows, split for two separate D calls."""
        return [k[:m] for k in keeps], [k[m:] for k in keeps]

    def run(self, rec: Recorder, update: str, k: int) -> dict:
        m = self.cfg.train.batch_size
        layers = len(self.cfg.discriminator.hidden_units) + 1  # dropout masks per D call
        if update == "simultaneous":  # one batch of G samples; both players step from the same forward pass
            assert len(rec.keeps) == layers, "one dropout mask per D layer"
            keep_real, keep_fake = self.split(rec.keeps, m)
            fake = self.G(rec.noises[0])
            real_logits, fake_logits = self.D(rec.batches[0], keep_real), self.D(fake, keep_fake)
            loss_d, loss_g = self.d_loss(real_logits, fake_logits), self.g_loss(fake_logits)
            loss_d.backward(retain_graph=True)
            d_grads = self.grads(self.d)
            self.grads(self.g)  # G's gradient is that of G's loss only
            loss_g.backward()
            g_grads = self.grads(self.g)
            self.sgd("d.", self.d, d_grads)
            self.sgd("g.", self.g, g_grads)
            return {"d_loss": loss_d, "g_loss": loss_g, "d_grads": d_grads, "g_grads": g_grads}
        assert len(rec.keeps) == (k + 1) * layers, "one dropout mask per D layer and D call"
        for i in range(k):  # Algorithm 1's inner loop: k D updates, each on a fresh minibatch and fresh noise
            with torch.no_grad():
                fake = self.G(rec.noises[i])
            keep_real, keep_fake = self.split(rec.keeps[i * layers : (i + 1) * layers], m)
            loss_d = self.d_loss(self.D(rec.batches[i], keep_real), self.D(fake, keep_fake))
            loss_d.backward()
            d_grads = self.grads(self.d)
            self.sgd("d.", self.d, d_grads)
        # then G's update on fresh noise, through the updated D (D does not step here)
        loss_g = self.g_loss(self.D(self.G(rec.noises[k]), rec.keeps[k * layers :]))
        loss_g.backward()
        g_grads = self.grads(self.g)
        self.grads(self.d)
        self.sgd("g.", self.g, g_grads)
        return {"d_loss": loss_d, "g_loss": loss_g, "d_grads": d_grads, "g_grads": g_grads}


def check_steps(trainer: Trainer, steps: int = 2) -> None:
    """Run ``steps`` train_step()s; after each, compare with the plain step in float32 and float64."""
    cfg = trainer.cfg
    update, k = cfg.train.update, cfg.train.k
    rec = Recorder(trainer)
    for _ in range(steps):
        plain = {dtype: PlainStep(trainer, dtype) for dtype in (torch.float32, torch.float64)}
        before = {net: {n: p.detach().clone() for n, p in net.named_parameters()} for net in (trainer.d, trainer.g)}
        rec.clear()
        out = trainer.train_step()
        assert len(rec.batches) == k and len(rec.noises) == (k + 1 if update == "alternating" else 1)
        for dtype, ref in plain.items():
            want = ref.run(rec, update, k)
            tol = TOL[dtype]
            _close(f"D's loss ({dtype})", out["d_loss"], want["d_loss"], LOSS_TOL)
            _close(f"G's loss ({dtype})", out["g_loss"], want["g_loss"], LOSS_TOL)
            for prefix, net, params, grads in (
                ("D", trainer.d, ref.d, want["d_grads"]),
                ("G", trainer.g, ref.g, want["g_grads"]),
            ):
                old = before[net]
                grad_scale = _scale(grads.values())
                step_scale = _scale(params[n].double() - old[n].double() for n in params)
                for name, p in net.named_parameters():
                    _close(f"{prefix} {name} gradient ({dtype})", p.grad, grads[name], tol, grad_scale)
                    # the update itself, p_after - p_before (p_after alone would hide it: steps are small)
                    _close(
                        f"{prefix} {name} update ({dtype})",
                        p.double() - old[name].double(),
                        params[name].double() - old[name].double(),
                        tol,
                        step_scale,
                        slack=2 * torch.finfo(torch.float32).eps * old[name].double().abs(),
                    )


def mnist_architecture(**train) -> tuple:
    """The paper's MNIST G and D (784-d, maxout 240x5) with a small batch, on random 28x28 images."""
    base = PRESETS["mnist"]
    cfg = override(base, train=override(base.train, **{"batch_size": 8, "epochs": 1, **train}))
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(64, 1, 28, 28, generator=gen)
    labels = torch.full((64,), -1)
    data = Dataset("random-28x28", images, images[:8], images[:8], labels, labels[:8], labels[:8])
    return cfg, data


CASES = [
    pytest.param({"update": "alternating", "k": 1}, id="alternating"),
    pytest.param({"update": "alternating", "k": 2}, id="alternating-k2"),
    pytest.param({"update": "simultaneous"}, id="simultaneous"),
    pytest.param({"update": "alternating", "k": 1, "g_loss": "minimax"}, id="alternating-minimax"),
]


@pytest.mark.parametrize("train", CASES)
def test_tiny_config_step_equals_the_plain_step(digits, train):
    check_steps(Trainer(tiny_config(**train), digits, device="cpu"))


@pytest.mark.parametrize("train", CASES[:3])
def test_mnist_architecture_step_equals_the_plain_step(train):
    cfg, data = mnist_architecture(**train)
    check_steps(Trainer(cfg, data, device="cpu"))


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16-autocast"])
def test_d_forward_on_row_blocks_equals_one_call_on_their_concatenation(bf16):
    """D(x, fake) (no input gradient for the real rows) gives the values, masks and gradients of D(cat),
    also under bfloat16 autocast (--precision bf16)."""
    cfg, data = mnist_architecture()
    d = Trainer(cfg, data, device="cpu").d
    real = torch.rand(8, 784)
    fake = torch.rand(8, 784, requires_grad=True)
    state = d.dropout_generator.get_state()
    results = []
    for blocks in ([torch.cat([real, fake])], [real, fake]):
        d.dropout_generator.set_state(state)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = d(*blocks)
        (g_fake,) = torch.autograd.grad(logits.float().square().sum(), fake, retain_graph=True)
        g_params = torch.autograd.grad(logits.float().sum(), list(d.parameters()))
        results.append((logits, g_fake, *g_params))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b)


# ----- the comparison catches what it is there to catch


def test_it_catches_d_weights_getting_gradients_from_g_loss(digits):
    trainer = Trainer(tiny_config(update="alternating"), digits, device="cpu")
    # G's step freezes the parameters in trainer.d_params; with none listed, G's loss adds to D's gradients
    # (and the check must say so even though D's weights do not move in G's step)
    trainer.d_params = []
    with pytest.raises(AssertionError, match="D .* gradient"):
        check_steps(trainer, steps=1)


def test_it_catches_a_wrong_dropout_scale(digits):
    trainer = Trainer(tiny_config(update="simultaneous"), digits, device="cpu")
    correct = trainer.d.dropout_mask

    def unscaled(self, shape, include_prob, device, dtype):  # keeps the right inputs, forgets the 1/p
        return (correct(shape, include_prob, device, dtype) != 0).to(dtype)

    trainer.d.dropout_mask = types.MethodType(unscaled, trainer.d)
    with pytest.raises(AssertionError, match="loss|gradient"):
        check_steps(trainer, steps=1)


# ----- the compiled step (advnets.train.compiled, issue 28): the same comparison, and against the eager step


def compiled_trainer(cfg, data, compiled: bool = True, mode: str | None = None) -> Trainer:
    """A Trainer with the step of advnets.train.compiled (``compiled=False``: its functions run uncompiled)."""
    from advnets.train.compiled import CompiledSteps

    trainer = Trainer(cfg, data, device="cpu")
    trainer.updates = CompiledSteps(trainer, compiled=compiled, mode=mode)
    return trainer


def _params(trainer: Trainer) -> list[torch.Tensor]:
    return [*trainer.g.parameters(), *trainer.d.parameters()]


HAND_CASES = [
    *CASES,
    pytest.param({"update": "simultaneous", "g_loss": "minimax"}, id="simultaneous-minimax"),
]


@pytest.mark.parametrize("train", HAND_CASES)
def test_hand_written_step_equals_the_plain_step(digits, train):
    """The compiled step's functions, run uncompiled: their written-out backward pass and SGD are the plain
    step's autograd and optimiser."""
    check_steps(compiled_trainer(tiny_config(**train), digits, compiled=False))


def test_hand_written_step_keeps_the_max_col_norm_constraint(digits):
    cfg = tiny_config(update="simultaneous")
    cfg = override(cfg, discriminator=override(cfg.discriminator, max_col_norm=0.02))
    cfg = override(cfg, generator=override(cfg.generator, max_col_norm=0.3))
    eager, hand = Trainer(cfg, digits, device="cpu"), compiled_trainer(cfg, digits, compiled=False)
    for _ in range(3):
        eager.train_step(), hand.train_step()
    for a, b in zip(_params(eager), _params(hand), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    norms = hand.d.hidden[0].linear.weight.norm(dim=1)
    assert 0.0199 < norms.max() <= 0.02 + 1e-6  # the constraint is active and kept


@pytest.mark.slow
@pytest.mark.parametrize("train", CASES[:3])
def test_compiled_step_equals_the_plain_step(train):
    """torch.compile'd (inductor, fullgraph), at the MNIST architecture: losses, gradients and updates."""
    cfg, data = mnist_architecture(**train)
    check_steps(compiled_trainer(cfg, data), steps=3)


@pytest.mark.slow
def test_compiled_step_with_the_cuda_graph_mode_equals_the_plain_step(digits):
    """mode="reduce-overhead" (CUDA graphs on a GPU) compiles the same step; on the CPU it runs without graphs."""
    check_steps(compiled_trainer(tiny_config(update="simultaneous"), digits, mode="reduce-overhead"), steps=3)


def _eager_and_other(cfg, data, compiled: bool, steps: int = 3):
    eager, other = Trainer(cfg, data, device="cpu"), compiled_trainer(cfg, data, compiled=compiled)
    outs = [(eager.train_step(), other.train_step()) for _ in range(steps)]
    return eager, other, outs


@pytest.mark.parametrize(
    "compiled", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["uncompiled", "compiled"]
)
@pytest.mark.parametrize(
    "train",
    [{"update": "simultaneous"}, {"update": "alternating", "k": 2}, {"update": "simultaneous", "real_label": 0.9}],
    ids=["simultaneous", "alternating-k2", "label-smoothing"],
)
def test_fp32_step_equals_the_eager_step_from_the_same_seed(digits, train, compiled):
    """Same seed, same streams: the eager and the compiled run draw the same batches, noise and masks, so
    their losses and weights agree to float rounding step after step."""
    eager, other, outs = _eager_and_other(tiny_config(**train), digits, compiled)
    for a, b in outs:
        for key in ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm", "d_real", "d_fake", "value"):
            torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)
    for a, b in zip(_params(eager), _params(other), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize(
    "compiled", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["uncompiled", "compiled"]
)
def test_bf16_step_agrees_with_the_eager_bf16_step(digits, compiled):
    """--precision bf16: products in bfloat16 as under autocast; not bit-equal to autocast's (another order of
    casts), so compared at bfloat16's resolution: losses, gradient norms and each step's update."""
    cfg = tiny_config(update="simultaneous", precision="bf16")
    eager, other = Trainer(cfg, digits, device="cpu"), compiled_trainer(cfg, digits, compiled=compiled)
    for _ in range(3):
        before = [p.detach().clone() for p in _params(eager)]
        a, b = eager.train_step(), other.train_step()
        for key in ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm"):
            torch.testing.assert_close(b[key], a[key], rtol=3e-2, atol=1e-3)
        for old, pa, pb in zip(before, _params(eager), _params(other), strict=True):
            step_a, step_b = pa.detach() - old, pb.detach() - old
            assert (step_b - step_a).norm() <= 5e-2 * step_a.norm() + 1e-7
        for pa, pb in zip(_params(eager), _params(other), strict=True):  # the next step starts from the same weights
            with torch.no_grad():
                pb.copy_(pa)
