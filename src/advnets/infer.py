"""Learned approximate inference (paper §7, item 2).

"Learned approximate inference can be performed by training an auxiliary
network to predict z given x ... for a fixed generator net after the
generator net has finished training." The reference code calls this network
an "inferer". Here it is an MLP encoder E(x) -> z:

- *regression on G's own samples*: for the fixed, trained G (eval mode, no
  gradient into its weights), draw a fresh batch z ~ p_z every step and
  minimise ||E(G(z)) - z||^2 with Adam (cosine-decayed learning rate);
- *optional fine-tuning on real images*: minimise ||G(E(x)) - x||^2 over real
  training images, the gradient flowing through the frozen G into E.

E's outputs are mapped into the prior's support: sqrt(3)·tanh for the
uniform prior U[-sqrt(3), sqrt(3)] (the reference code's), linear for N(0, I).

:func:`evaluate_encoder` measures what it learned:

- **z recovery** on fresh samples of G: the mean squared error of E(G(z))
  against z per dimension, divided by the prior's variance (1 for both
  priors). Predicting the prior mean (0) scores 1; a perfect inverse scores 0.
  Beside it, :func:`jacobian_rank`: how many directions of z G uses at all
  (singular values of dG/dz). A trained GAN ignores most of them; those are
  unrecoverable, and the z error stays near 1 even when G(E(G(z))) = G(z).
- **reconstruction** of real test images x by G(E(x)): the mean Euclidean
  distance ||G(E(x)) - x|| against the *random-pair baseline*, the mean
  distance between two random test images (a reconstruction that is no better
  than an unrelated image scores 1). For reference also the distance to the
  mean training image and to the nearest training image (a perfect memory).
- the same ratio for G's own samples, x = G(z) (reconstructed by G(E(G(z)))).

:func:`run_inference` is what ``advnets infer`` calls: it trains E for a run's
latest checkpoint and writes ``RUN/encoder.safetensors`` + ``RUN/encoder.json``
(weights first, each atomically; the JSON, written last, commits them), the
figure ``RUN/inference/reconstructions.png`` (rows of test images, each
followed by a row of their reconstructions) and ``RUN/inference/metrics.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advnets import __version__
from advnets.errors import CheckpointError, ConfigError
from advnets.nets import Generator, sample_noise

ENCODER_WEIGHTS = "encoder.safetensors"
ENCODER_META = "encoder.json"
INFERENCE_DIR = "inference"
ENCODER_FORMAT = 1
_EVAL_BATCH = 1000


@dataclass(frozen=True)
class InferConfig:
    """How the encoder is built and trained (§7.2)."""

    hidden_sizes: tuple[int, ...] = (1200, 1200)  # ReLU layers of E, as wide as the mnist preset's G
    steps: int = 5000  # regression steps on fresh z ~ p_z
    batch_size: int = 100
    lr: float = 1e-3  # Adam, cosine-decayed to 0 over the steps
    finetune_steps: int = 0  # then this many steps of ||G(E(x)) - x||^2 on real training images
    finetune_lr: float = 3e-4
    seed: int = 0
    eval_samples: int = 1000  # samples of G for the z-recovery error
    pairs: int = 20000  # random pairs of images for the random-pair baseline

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_samples", "pairs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"infer.{name} must be at least 1, got {getattr(self, name)}")
        if self.finetune_steps < 0:
            raise ConfigError(f"infer.finetune_steps must be >= 0, got {self.finetune_steps}")
        if not (self.lr > 0 and self.finetune_lr > 0):
            raise ConfigError(f"infer.lr and infer.finetune_lr must be positive, got {self.lr}, {self.finetune_lr}")
        if any(h < 1 for h in self.hidden_sizes):
            raise ConfigError(f"infer.hidden_sizes must be positive, got {self.hidden_sizes}")


class Encoder(nn.Module):
    """E(x) -> z: ReLU hidden layers, a linear output mapped into the prior's support."""

    def __init__(self, data_dim: int, noise_dim: int, noise: str = "uniform", hidden_sizes=(1200, 1200)) -> None:
        super().__init__()
        if noise not in ("uniform", "normal"):
            raise ConfigError(f"unknown prior {noise!r}; expected uniform or normal")
        self.data_dim, self.noise_dim, self.noise = int(data_dim), int(noise_dim), noise
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.hidden = nn.ModuleList()
        width = self.data_dim
        for size in self.hidden_sizes:
            self.hidden.append(nn.Linear(width, size))
            width = size
        self.output = nn.Linear(width, self.noise_dim)

    @property
    def architecture(self) -> dict[str, Any]:
        return {
            "kind": "mlp",
            "data_dim": self.data_dim,
            "noise_dim": self.noise_dim,
            "noise": self.noise,
            "hidden_sizes": list(self.hidden_sizes),
        }

    @classmethod
    def from_architecture(cls, arch: dict[str, Any]) -> Encoder:
        if arch.get("kind") != "mlp":
            raise CheckpointError(f"unknown encoder architecture {arch.get('kind')!r}; expected 'mlp'")
        return cls(int(arch["data_dim"]), int(arch["noise_dim"]), str(arch["noise"]), tuple(arch["hidden_sizes"]))

    def _to_prior(self, a: torch.Tensor) -> torch.Tensor:
        # Into the support of p_z: U[-sqrt(3), sqrt(3)] -> sqrt(3) tanh; N(0, I) -> identity.
        return math.sqrt(3.0) * torch.tanh(a) if self.noise == "uniform" else a

    def hidden_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every hidden layer's ReLU activations, then the code z = E(x)."""
        h = x.reshape(len(x), -1)
        out = []
        for layer in self.hidden:
            h = torch.relu(layer(h))
            out.append(h)
        out.append(self._to_prior(self.output(h)))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden_features(x)[-1]


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


@torch.no_grad()
def _batched(fn, x: torch.Tensor, device: torch.device, batch: int = _EVAL_BATCH) -> torch.Tensor:
    return torch.cat([fn(x[i : i + batch].to(device)).cpu() for i in range(0, len(x), batch)])


def train_encoder(
    g: Generator,
    cfg: InferConfig = InferConfig(),
    train_images: torch.Tensor | None = None,
    progress: bool = False,
    before_finetune: Callable[[Encoder], dict[str, Any]] | None = None,
) -> tuple[Encoder, dict[str, Any]]:
    """Train E for the fixed G (§7.2); returns E (eval mode) and a training summary.

    ``train_images`` (N x ...) are needed only when ``cfg.finetune_steps > 0``;
    ``before_finetune(E)``, if given, is called between the two phases and what
    it returns is kept in the summary. G's weights and mode are left as they were.
    """
    if cfg.finetune_steps > 0 and (train_images is None or len(train_images) == 0):
        raise ConfigError("--finetune-steps needs real training images")
    device = _device_of(g)
    data_dim = g.data_dim
    with torch.random.fork_rng(devices=[]):  # E's initial weights from the seed, the caller's RNG untouched
        torch.manual_seed(cfg.seed)
        enc = Encoder(data_dim, g.cfg.noise_dim, g.cfg.noise, cfg.hidden_sizes).to(device)
    noise_gen = torch.Generator(device="cpu").manual_seed(cfg.seed + 1)
    was_training = g.training
    flags = [p.requires_grad for p in g.parameters()]
    g.eval()
    for p in g.parameters():  # G is fixed: no gradient into its weights
        p.requires_grad_(False)
    start = time.perf_counter()
    summary: dict[str, Any] = {"steps": cfg.steps, "finetune_steps": cfg.finetune_steps}
    try:
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps + cfg.finetune_steps, desc="encoder", unit="step", leave=False)
        # Phase 1: regress z from G(z) on fresh noise; phase 2 (optional): fine-tune on real images.
        summary["regression_loss"] = _regress(g, enc, cfg, noise_gen, bar)
        if not math.isfinite(summary["regression_loss"]):
            raise ConfigError(f"encoder training diverged (loss {summary['regression_loss']}); try a lower --lr")
        # Phase 2 through G: ||G(E(x)) - x||^2.
        if cfg.finetune_steps > 0:
            summary["z_rel_error_before_finetune"] = z_recovery(g, enc, cfg.eval_samples, cfg.seed + 2)["rel_error"]
            if before_finetune is not None:
                summary["before_finetune"] = before_finetune(enc.eval())
            summary["finetune_loss"] = _finetune(g, enc, cfg, train_images, bar)
        if bar is not None:
            bar.close()
    finally:
        for p, flag in zip(g.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        g.train(was_training)
    summary["seconds"] = round(time.perf_counter() - start, 3)
    return enc.eval(), summary


def _regress(g: Generator, enc: Encoder, cfg: InferConfig, noise_gen: torch.Generator, bar: Any) -> float:
    """Phase 1: ``cfg.steps`` Adam steps (cosine schedule) regressing z from G(z) on fresh noise; the last loss."""
    device = _device_of(g)
    opt = torch.optim.Adam(enc.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
    enc.train()
    loss = torch.tensor(float("nan"))
    for _ in range(cfg.steps):
        z = sample_noise(g.cfg, cfg.batch_size, generator=noise_gen).to(device)
        with torch.no_grad():
            x = g(z)
        loss = ((enc(x) - z) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if bar is not None:
            bar.update()
    return float(loss.detach())


def _finetune(g: Generator, enc: Encoder, cfg: InferConfig, train_images: torch.Tensor, bar: Any) -> float:
    """Phase 2: ``cfg.finetune_steps`` Adam steps on ||G(E(x)) - x||^2 over shuffled real images; the last loss."""
    device = _device_of(g)
    data = train_images.reshape(len(train_images), -1)
    data_gen = torch.Generator(device="cpu").manual_seed(cfg.seed + 3)
    opt = torch.optim.Adam(enc.parameters(), lr=cfg.finetune_lr)
    enc.train()
    perm, pos = torch.randperm(len(data), generator=data_gen), 0
    for _ in range(cfg.finetune_steps):
        if pos + cfg.batch_size > len(data):
            perm, pos = torch.randperm(len(data), generator=data_gen), 0
        x = data[perm[pos : pos + cfg.batch_size]].to(device)
        pos += cfg.batch_size
        loss = ((g(enc(x)) - x) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if bar is not None:
            bar.update()
    return float(loss.detach())


@torch.no_grad()
def z_recovery(g: Generator, enc: Encoder, n: int, seed: int) -> dict[str, float]:
    """Error of E(G(z)) against z on n fresh z ~ p_z, per dimension, relative to
    the prior's variance (1 for both priors): 0 is a perfect inverse, 1 is what
    always answering the prior mean scores (also reported, as measured)."""
    device = _device_of(g)
    z = sample_noise(g.cfg, n, generator=torch.Generator(device="cpu").manual_seed(seed))
    z_hat = _batched(lambda b: enc(g(b)), z, device)
    variance = 1.0  # U[-sqrt(3), sqrt(3)] and N(0, 1) both have unit variance
    return {
        "rel_error": float(((z_hat - z) ** 2).mean() / variance),
        "prior_mean_rel_error": float((z**2).mean() / variance),
        "prior_variance": variance,
        "n": n,
    }


def jacobian_rank(g: Generator, n: int = 20, seed: int = 0, rel_tol: float = 0.01) -> dict[str, Any]:
    """How many directions of z G actually uses: the singular values of dG/dz at n points z ~ p_z; a
    direction counts when its singular value exceeds ``rel_tol`` times the largest at that point. Where
    G ignores directions of z (a trained GAN ignores most), no encoder can recover them: the z-recovery
    error is then near 1 however good E is, while G(E(G(z))) can still match G(z)."""
    import warnings

    import torch.autograd.forward_ad as fwad

    device = _device_of(g)
    z = sample_noise(g.cfg, n, generator=torch.Generator(device="cpu").manual_seed(seed)).to(device)
    k = g.cfg.noise_dim
    basis = torch.eye(k, device=device)
    was_training = g.training
    g.eval()
    jacs = []
    try:
        # Forward mode costs k directional derivatives per point, whatever the image size. Its first
        # use loads TorchScript decompositions, which newer torch versions flag as deprecated.
        with warnings.catch_warnings(), torch.no_grad(), fwad.dual_level():
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated", category=DeprecationWarning)
            for point in z:  # k copies of z with tangents e_1 .. e_k: the columns dG/dz e_i in one batch
                out = g(fwad.make_dual(point.expand(k, k).contiguous(), basis))
                jacs.append(fwad.unpack_dual(out).tangent.T)  # d x k
    finally:
        g.train(was_training)
    jac = torch.stack(jacs)  # n x d x k
    sv = torch.linalg.svdvals(jac.double().cpu())  # n x noise_dim, descending
    used = (sv > rel_tol * sv[:, :1]).sum(dim=1).double()
    return {
        "used_directions": float(used.mean()),
        "noise_dim": g.cfg.noise_dim,
        "rel_tol": rel_tol,
        "median_singular_values": [float(v) for v in sv.median(dim=0).values],
        "n": n,
    }


def random_pair_distance(x: torch.Tensor, pairs: int, seed: int) -> float:
    """Mean Euclidean distance between two different images drawn at random (with replacement over pairs)."""
    flat = x.reshape(len(x), -1).double()
    if len(flat) < 2:
        raise ConfigError("the random-pair baseline needs at least 2 images")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    i = torch.randint(len(flat), (pairs,), generator=gen)
    j = (i + torch.randint(1, len(flat), (pairs,), generator=gen)) % len(flat)  # j != i
    return float((flat[i] - flat[j]).norm(dim=1).mean())


@torch.no_grad()
def reconstruct(g: Generator, enc: Encoder, x: torch.Tensor) -> torch.Tensor:
    """G(E(x)) in the shape of x."""
    return _batched(lambda b: g(enc(b.reshape(len(b), -1))), x, _device_of(g)).reshape(x.shape)


def evaluate_encoder(
    g: Generator,
    enc: Encoder,
    test: torch.Tensor,
    train: torch.Tensor | None = None,
    eval_samples: int = 1000,
    pairs: int = 20000,
    seed: int = 0,
) -> dict[str, Any]:
    """The numbers of §7.2 as a plain dict (see the module docstring)."""
    from advnets.sampling import generate

    out: dict[str, Any] = {"z_recovery": z_recovery(g, enc, eval_samples, seed + 10)}
    out["z_recovery"]["g_jacobian"] = jacobian_rank(g, seed=seed + 14)
    # G's own samples: G(E(G(z))) against G(z).
    samples = generate(g, eval_samples, seed + 11, tuple(test.shape[1:]))
    rec = reconstruct(g, enc, samples)
    dist = (rec - samples).reshape(len(samples), -1).double().norm(dim=1)
    pair = random_pair_distance(samples, pairs, seed + 12)
    out["sample_reconstruction"] = {
        "mean_distance": float(dist.mean()),
        "random_pair_distance": pair,
        "ratio_to_random_pair": float(dist.mean()) / pair,
        "n": eval_samples,
    }
    # Real test images: G(E(x)) against x.
    rec = reconstruct(g, enc, test)
    diff = (rec - test).reshape(len(test), -1).double()
    dist = diff.norm(dim=1)
    pair = random_pair_distance(test, pairs, seed + 13)
    real: dict[str, Any] = {
        "mean_distance": float(dist.mean()),
        "mse_per_pixel": float((diff**2).mean()),
        "random_pair_distance": pair,
        "ratio_to_random_pair": float(dist.mean()) / pair,
        "n": len(test),
    }
    if train is not None:
        from advnets.evaluate.nearest import nearest_neighbors

        flat_test = test.reshape(len(test), -1).double()
        flat_train = train.reshape(len(train), -1).double()
        real["mean_image_distance"] = float((flat_test - flat_train.mean(dim=0)).norm(dim=1).mean())
        _, nn_dist = nearest_neighbors(flat_test, flat_train, dtype=torch.float32, device="cpu")
        real["nearest_train_distance"] = float(torch.as_tensor(nn_dist).double().mean())
    out["test_reconstruction"] = real
    return out


# --------------------------------------------------------------------------- files


def save_encoder(run_dir: Path, enc: Encoder, meta: dict[str, Any]) -> tuple[Path, Path]:
    """Write RUN/encoder.safetensors, then RUN/encoder.json (which commits it), atomically."""
    from safetensors.torch import save as save_safetensors

    from advnets.io import atomic_write_bytes

    run_dir = Path(run_dir)
    weights, meta_path = run_dir / ENCODER_WEIGHTS, run_dir / ENCODER_META
    data = save_safetensors({k: v.detach().cpu().contiguous() for k, v in enc.state_dict().items()})
    doc = {
        "format": ENCODER_FORMAT,
        "architecture": enc.architecture,
        "weights_file": weights.name,
        "weights_sha256": hashlib.sha256(data).hexdigest(),
        "advnets_version": __version__,
        **meta,
    }
    atomic_write_bytes(weights, data)
    atomic_write_bytes(meta_path, (json.dumps(doc, indent=2) + "\n").encode())
    return weights, meta_path


def load_encoder(run_dir: Path, map_location: str | torch.device = "cpu") -> tuple[Encoder, dict[str, Any]]:
    """The encoder ``advnets infer`` stored in a run directory (eval mode) and its metadata."""
    from safetensors.torch import load as load_safetensors

    run_dir = Path(run_dir)
    meta_path = run_dir / ENCODER_META
    if not meta_path.is_file():
        raise CheckpointError(f"{run_dir} has no encoder ({meta_path.name}); run `advnets infer --run {run_dir}` first")
    try:
        meta = json.loads(meta_path.read_text())
        weights = run_dir / meta["weights_file"]
        data = weights.read_bytes()
        if hashlib.sha256(data).hexdigest() != meta["weights_sha256"]:
            raise ValueError(f"{weights.name} does not match the SHA-256 recorded in {meta_path.name}")
        enc = Encoder.from_architecture(meta["architecture"])
        enc.load_state_dict(load_safetensors(data))
    except CheckpointError:
        raise
    except Exception as e:  # unreadable JSON, missing or truncated weights, wrong keys, ...
        msg = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointError(f"cannot load the encoder in {run_dir}: {type(e).__name__}: {msg}") from e
    return enc.to(map_location).eval(), meta


def run_inference(
    run: Path,
    cfg: InferConfig = InferConfig(),
    *,
    data_dir: Path | None = None,
    device: str = "auto",
    show: int = 50,
    progress: bool = False,
) -> dict[str, Any]:
    """``advnets infer``: train E for a run's latest G, evaluate it, write its files; returns the metrics."""
    from advnets.data import to_display
    from advnets.devices import resolve_device
    from advnets.figures import save_grid
    from advnets.generators import load_generator
    from advnets.io import atomic_write_json
    from advnets.runs import run_dir_of

    run = Path(run)
    run_dir = run_dir_of(run)
    model = load_generator(run, map_location=resolve_device(device))
    g, ckpt = model.generator, model.source
    data = model.load_data(data_dir=data_dir)  # DataError when its images are not G's shape

    def before(enc: Encoder) -> dict[str, Any]:  # the numbers of the regression alone, to compare
        m = evaluate_encoder(g, enc, data.test, None, cfg.eval_samples, cfg.pairs, cfg.seed)
        return {"z_recovery": m["z_recovery"], "test_reconstruction": m["test_reconstruction"]}

    enc, summary = train_encoder(g, cfg, data.train if cfg.finetune_steps else None, progress, before)
    metrics = evaluate_encoder(g, enc, data.test, data.train, cfg.eval_samples, cfg.pairs, cfg.seed)
    provenance = {
        "checkpoint": ckpt.name,
        "step": model.step,
        "dataset": data.name,
        "image_shape": list(data.image_shape),
        "config": asdict(cfg),
    }
    result = {**provenance, "training": summary, **metrics}
    save_encoder(run_dir, enc, {**provenance, "training": summary, "metrics": metrics})
    # The figure: rows of `cols` test images, each followed by their reconstructions G(E(x)); the images
    # are spread evenly over the test split (some splits are sorted by class).
    n = min(show, len(data.test))
    cols = min(10, n)
    n -= n % cols
    originals = data.test[torch.linspace(0, len(data.test) - 1, n).round().long()]
    recon = reconstruct(g, enc, originals)
    rows = []
    for r in range(0, n, cols):
        rows += [originals[r : r + cols], recon[r : r + cols]]
    out_dir = run_dir / INFERENCE_DIR
    figure = save_grid(
        to_display(torch.cat(rows), model.config.data.preprocess), out_dir / "reconstructions.png", cols, 2
    )
    result["figure"] = str(figure)
    result["encoder"] = str(run_dir / ENCODER_WEIGHTS)
    atomic_write_json(out_dir / "metrics.json", result)
    result["metrics_file"] = str(out_dir / "metrics.json")
    return result
