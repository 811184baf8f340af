"""Algorithm 1's updates for the MLP presets as whole functional steps, compiled by torch.compile (issue 28).

The eager updates (advnets.train.algorithm) run ~300 small operations per iteration around the matrix products:
autograd bookkeeping, dropout and maxout passes, the losses' elementwise work, one optimiser pass per tensor.
Here one update is one pure function of the weights, the momentum buffers, the batch, G's noise and D's dropout
masks, with the backward pass written out (G: Linear + activation layers; D: dropout, maxout, a linear logit;
the losses' derivatives by their formulas), SGD with momentum and the max-col-norm constraint applied in place at
the end. Compiled whole (``fullgraph=True``: a graph break is an error), inductor fuses each layer's elementwise
work into the products' neighbours; nothing in it touches autograd, so nothing is frozen and unfrozen per step.

What stays outside, in the same order and from the same streams as the eager step: the real batch (the data
order), the noise (``noise``) and the dropout masks (``dropout``, via ``Discriminator.dropout_mask``). So the
compiled and the eager step consume the run's random streams identically, a checkpoint moves between them, and
a resumed compiled run repeats an uninterrupted compiled run bit for bit (the CPU kernels are deterministic).
Learning rate and momentum enter as a tensor, so the schedules never cause a recompile.

Only the products the algorithm needs are computed (benchmarks/NOTES.md, the floor): no weight gradients for D
in G's step, no input gradient for the first layer of either net on data or noise, D's input gradients only for
the generated rows; D's output layer's input gradient is an outer product, not a matrix product.

Supported: MLP G (``hidden_activations`` and ``output_activation`` in relu/sigmoid/tanh/linear, no deconv), MLP
maxout D (no conv), no conditioning, SGD, no instance noise, ``skip_nonfinite`` 0, one process, CPU or CUDA;
:func:`unsupported` names what else a config asks for. On CUDA the step can be captured as a CUDA graph
(``mode="reduce-overhead"``); on the CPU that mode compiles the same step without graphs.
"""

from __future__ import annotations

import itertools
import shutil
import sys
import time
import types
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.functional import softplus

from advnets.errors import AdvnetsError
from advnets.losses import value_function

#: ``train.compile = "auto"`` compiles a run with at least this many steps to go (compile time ~1 minute on a
#: 2-core CPU without a cache, a few seconds with one, against ~10 ms saved per step: benchmarks/NOTES.md).
AUTO_MIN_STEPS = 10_000


class CompileError(AdvnetsError):
    """``--compile on`` for a run the compiled step cannot train, or compilation failed."""


# --------------------------------------------------------------------------- which runs it can train


def unsupported(trainer: Any) -> str | None:
    """Why the compiled step cannot train ``trainer``'s run (one line), or None when it can."""
    cfg, t = trainer.cfg, trainer.cfg.train
    g, d = cfg.generator, cfg.discriminator
    reasons = [
        (trainer.device.type not in ("cpu", "cuda"), f"device {trainer.device.type} (CPU or CUDA only)"),
        (g.deconv_shape is not None, "a deconvolutional G"),
        (bool(d.conv), "a convolutional D"),
        (g.condition != "none", f"conditioning ({g.condition})"),
        (cfg.optim.optimizer != "sgd", f"optimizer {cfg.optim.optimizer} (SGD only)"),
        (t.instance_noise != 0, "instance noise"),
        (t.skip_nonfinite != 0, "--skip-nonfinite"),
        (trainer.parallel.world_size != 1, "several processes"),
    ]
    found = [why for bad, why in reasons if bad]
    return ", ".join(found) if found else None


def compiler_missing(device: torch.device) -> str | None:
    """What torch.compile lacks here to compile for ``device`` (a C++ compiler on the CPU, Triton on CUDA)."""
    if device.type == "cpu":
        return None if shutil.which("g++") or shutil.which("c++") or shutil.which("clang++") else "no C++ compiler"
    from torch.utils._triton import has_triton

    return None if has_triton() else "no Triton"


def select(trainer: Any, setting: str) -> Any:
    """The update functions for ``trainer``: advnets.train.algorithm (eager), or a :class:`CompiledSteps`.

    ``setting`` is train.compile: "off" eager; "on" compiled, CompileError when the run is unsupported or there
    is no compiler; "auto" compiled when supported, a compiler is there and at least AUTO_MIN_STEPS steps are to
    go (compile time is then a small part of the run), eager otherwise."""
    from advnets.train import algorithm

    if setting == "off":
        return algorithm
    why = unsupported(trainer) or compiler_missing(trainer.device)
    if setting == "on":
        if why is not None:
            raise CompileError(f"--compile on: the compiled step cannot train this run ({why}); use --compile off")
        return CompiledSteps(trainer)
    if why is not None or trainer.total_steps - trainer.step < AUTO_MIN_STEPS:
        return algorithm
    return CompiledSteps(trainer, fallback=True)


# --------------------------------------------------------------------------- the step as pure functions


@dataclass(frozen=True)
class Spec:
    """What the step functions take as constants (compiled into the graph)."""

    g_acts: tuple[str, ...]  # one per G layer, the output's last
    pieces: tuple[int, ...]  # D's maxout layers
    include: tuple[float, ...]  # D's keep probabilities per layer input (input, hidden..., output layer)
    real_label: float
    g_loss: str  # "nonsaturating" | "minimax"
    g_max_col_norm: float | None
    d_max_col_norm: float | None
    dtype: torch.dtype  # products' dtype: float32, or bfloat16 (train.precision = "bf16", as autocast)


def _mm(spec: Spec, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.mm(a.to(spec.dtype), b.to(spec.dtype))


def _linear(spec: Spec, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.addmm(b.to(spec.dtype), x.to(spec.dtype), w.to(spec.dtype).t())


def _act(kind: str, u: torch.Tensor) -> torch.Tensor:
    if kind == "relu":
        return torch.relu(u)
    if kind == "sigmoid":
        return torch.sigmoid(u)
    if kind == "tanh":
        return torch.tanh(u)
    return u


def _act_backward(kind: str, h: torch.Tensor, dh: torch.Tensor) -> torch.Tensor:
    """The gradient at an activation's input from its output ``h`` (as torch's own backward formulas)."""
    if kind == "relu":
        return torch.where(h > 0, dh, 0)
    if kind == "sigmoid":
        return dh * h * (1 - h)
    if kind == "tanh":
        return dh * (1 - h * h)
    return dh


def g_forward(spec: Spec, gw: list[torch.Tensor], z: torch.Tensor) -> list[torch.Tensor]:
    """G's activations [z, h1, ..., G(z)] (N x width each); ``gw`` = [W1, b1, W2, b2, ...] (torch Linear's)."""
    hs = [z]
    for i, kind in enumerate(spec.g_acts):
        hs.append(_act(kind, _linear(spec, hs[-1], gw[2 * i], gw[2 * i + 1])))
    return hs


def g_backward(spec: Spec, gw: list[torch.Tensor], hs: list[torch.Tensor], d_out: torch.Tensor) -> list[torch.Tensor]:
    """G's weight and bias gradients (in the products' dtype, in ``gw``'s order) from the gradient ``d_out`` at G(z); no
    gradient w.r.t. the noise."""
    grads: list[torch.Tensor] = []
    d = d_out
    for i in reversed(range(len(spec.g_acts))):
        du = _act_backward(spec.g_acts[i], hs[i + 1], d.to(hs[i + 1].dtype))
        grads = [_mm(spec, du.t(), hs[i]), du.sum(0), *grads]
        if i > 0:
            d = _mm(spec, du, gw[2 * i])
    return grads


def d_forward(spec: Spec, dw: list[torch.Tensor], x: torch.Tensor, masks: list[torch.Tensor | None]):
    """D's logits (float32, N) for rows ``x`` with dropout ``masks`` (scaled keep masks, one per layer input,
    None for no dropout), and what the backward pass reuses: per maxout layer (its input, pre-max values, output)
    and the output layer's input."""
    cache = []
    a = x if masks[0] is None else x * masks[0]
    n = len(x)
    for i, pieces in enumerate(spec.pieces):
        z = _linear(spec, a, dw[2 * i], dw[2 * i + 1])
        h = z.view(n, -1, pieces).amax(-1)  # a unit's pieces are adjacent columns (pylearn2's Maxout)
        cache.append((a, z, h))
        a = h if masks[i + 1] is None else h * masks[i + 1].to(h.dtype)
    logits = _linear(spec, a, dw[-2], dw[-1]).squeeze(-1).float()
    return logits, cache, a


def d_backward(spec, dw, masks, cache, a_out, d_logits, start: int, weights: bool, inputs: bool):
    """Backward through D from ``d_logits`` (float32) for the rows from ``start`` on: the weight gradients
    (``weights``; in the products' dtype, in ``dw``'s order, else []) and the input gradient (``inputs``, else None).

    Maxout's gradient goes to the winning piece (each of tied pieces gets it all, as Theano's max and
    advnets.nets._MaxOverPieces)."""
    n = len(d_logits)
    sel = (lambda t: t) if start == 0 else (lambda t: t[start:])
    dl = d_logits.to(spec.dtype)[:, None]  # n x 1
    grads: list[torch.Tensor] = []
    if weights:
        grads = [_mm(spec, dl.t(), sel(a_out)), dl.sum(0)]
    da = dl * dw[-2].to(spec.dtype)  # the output layer's input gradient: an outer product
    for i in reversed(range(len(spec.pieces))):
        a, z, h = (sel(t) for t in cache[i])
        mask = masks[i + 1]
        dh = da if mask is None else da * sel(mask).to(da.dtype)
        pieces = spec.pieces[i]
        dz = ((z.view(n, -1, pieces) == h.unsqueeze(-1)) * dh.unsqueeze(-1)).view(n, -1)
        if weights:
            grads = [_mm(spec, dz.t(), a), dz.sum(0), *grads]
        if i > 0 or inputs:
            da = _mm(spec, dz, dw[2 * i])
    if not inputs:
        return grads, None
    return grads, (da if masks[0] is None else da * sel(masks[0]).to(da.dtype))


def _d_loss_and_grad(spec: Spec, logits: torch.Tensor, m: int):
    """D's loss (advnets.losses.discriminator_loss) on [real; generated] logits and its gradient w.r.t. them."""
    r, f = logits[:m], logits[m:]
    t = spec.real_label
    real = softplus(-r).mean()
    if t != 1.0:
        real = t * real + (1.0 - t) * softplus(r).mean()
    loss = 0.5 * (real + softplus(f).mean())
    grad = torch.cat([(torch.sigmoid(r) - t) * (0.5 / m), torch.sigmoid(f) * (0.5 / len(f))])
    return loss, grad


def _g_loss_and_grad(spec: Spec, f: torch.Tensor):
    """G's loss (advnets.losses.GENERATOR_LOSSES[spec.g_loss]) on D's logits for G's rows, and its gradient."""
    n = len(f)
    if spec.g_loss == "nonsaturating":
        return softplus(-f).mean(), (torch.sigmoid(f) - 1) / n
    return -softplus(f).mean(), -torch.sigmoid(f) / n


def _logged(logits: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """D's mean outputs on the m real and the generated rows and V(D, G), as advnets.train.algorithm.logged
    computes them from the logits; here inside the graph, where they cost no kernels of their own."""
    r, f = logits[:m], logits[m:]
    return torch.sigmoid(r).mean(), torch.sigmoid(f).mean(), value_function(r, f)


def _norm(grads: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([g.float().square().sum() for g in grads]).sum().sqrt()


def sgd_(params, bufs, grads, lr: torch.Tensor, momentum: torch.Tensor, max_col_norm: float | None) -> None:
    """torch's SGD with momentum (v <- mu v + g, p <- p - lr v; a zero v before the first step gives torch's
    v = g), then the max-col-norm constraint on the weight matrices (advnets.nets.apply_max_col_norm), in place.
    A bfloat16 gradient is widened inside the update (as autocast's float32 .grad, without storing one)."""
    for p, v, g in zip(params, bufs, grads, strict=True):
        v.mul_(momentum).add_(g.float())
        p.sub_(lr * v)
        if max_col_norm is not None and p.dim() == 2:
            p.mul_(torch.clamp(max_col_norm / (p.norm(dim=1, keepdim=True) + 1e-7), max=1.0))


def simultaneous_update(spec, gw, dw, g_bufs, d_bufs, x, z, masks, hyper):
    """The reference code's step (advnets.train.algorithm.simultaneous_step) on batch ``x`` (m rows), noise ``z``
    and masks for the 2m rows [x; G(z)]; ``hyper`` = [lr_g, lr_d, momentum]. Updates ``gw``, ``dw`` and the
    buffers in place; returns (loss_d, loss_g, logits, |grad_d|, |grad_g|, d_grads, g_grads, :func:`_logged`)."""
    m = len(x)
    hs = g_forward(spec, gw, z)
    logits, cache, a_out = d_forward(spec, dw, torch.cat([x.to(hs[-1].dtype), hs[-1]]), masks)
    loss_d, dl_d = _d_loss_and_grad(spec, logits, m)
    loss_g, dl_g = _g_loss_and_grad(spec, logits[m:])
    d_grads, _ = d_backward(spec, dw, masks, cache, a_out, dl_d, 0, weights=True, inputs=False)
    _, d_fake = d_backward(spec, dw, masks, cache, a_out, dl_g, m, weights=False, inputs=True)
    g_grads = g_backward(spec, gw, hs, d_fake)
    d_norm, g_norm = _norm(d_grads), _norm(g_grads)
    sgd_(dw, d_bufs, d_grads, hyper[1], hyper[2], spec.d_max_col_norm)
    sgd_(gw, g_bufs, g_grads, hyper[0], hyper[2], spec.g_max_col_norm)
    return loss_d, loss_g, logits, d_norm, g_norm, d_grads, g_grads, _logged(logits, m)


def d_update(spec, gw, dw, d_bufs, x, z, masks, hyper):
    """Algorithm 1's D step (advnets.train.algorithm.d_step): G(z) without gradients, D on [x; G(z)], D's
    update. Returns (loss_d, logits, |grad_d|, d_grads, :func:`_logged`)."""
    fake = g_forward(spec, gw, z)[-1]
    logits, cache, a_out = d_forward(spec, dw, torch.cat([x.to(fake.dtype), fake]), masks)
    loss_d, dl_d = _d_loss_and_grad(spec, logits, len(x))
    d_grads, _ = d_backward(spec, dw, masks, cache, a_out, dl_d, 0, weights=True, inputs=False)
    d_norm = _norm(d_grads)
    sgd_(dw, d_bufs, d_grads, hyper[1], hyper[2], spec.d_max_col_norm)
    return loss_d, logits, d_norm, d_grads, _logged(logits, len(x))


def g_update(spec, gw, dw, g_bufs, z, masks, hyper):
    """Algorithm 1's G step (advnets.train.algorithm.g_step): D held fixed, G's update. Returns (loss_g,
    |grad_g|, g_grads)."""
    hs = g_forward(spec, gw, z)
    logits, cache, a_out = d_forward(spec, dw, hs[-1], masks)
    loss_g, dl_g = _g_loss_and_grad(spec, logits)
    _, d_fake = d_backward(spec, dw, masks, cache, a_out, dl_g, 0, weights=False, inputs=True)
    g_grads = g_backward(spec, gw, hs, d_fake)
    g_norm = _norm(g_grads)
    sgd_(gw, g_bufs, g_grads, hyper[0], hyper[2], spec.g_max_col_norm)
    return loss_g, g_norm, g_grads


# --------------------------------------------------------------------------- the trainer's side


def spec_of(trainer: Any) -> Spec:
    """The constants of ``trainer``'s step."""
    cfg = trainer.cfg
    g, d = cfg.generator, cfg.discriminator
    return Spec(
        g_acts=(*g.hidden_activations, g.output_activation),
        pieces=tuple(d.pieces),
        include=(d.input_include_prob, *[d.hidden_include_prob] * len(d.hidden_units)),
        real_label=float(cfg.train.real_label),
        g_loss=cfg.train.g_loss,
        g_max_col_norm=g.max_col_norm,
        d_max_col_norm=d.max_col_norm,
        dtype=torch.bfloat16 if cfg.train.precision == "bf16" else torch.float32,
    )


_instances = itertools.count()


def _own_copy(fn: Any, tag: int) -> Any:
    """``fn`` with its own code object: torch.compile keeps its compiled graphs, guards and recompile limit per
    code object, so each CompiledSteps guards and compiles (or loads from the cache) its own step functions."""
    code = fn.__code__.replace(co_name=f"{fn.__code__.co_name}_{tag}")
    return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)


def replay_safe(out: Any) -> Any:
    """A step function's outputs with every tensor in them, also in nested tuples (:func:`_logged`'s), copied;
    lists (the gradients, which are not read under CUDA graphs) are left as they are, uncopied."""
    if isinstance(out, torch.Tensor):
        return out.clone()
    if isinstance(out, tuple):
        return tuple(replay_safe(o) for o in out)
    return out


def _d_outputs(m: int, loss_d: torch.Tensor, d_norm: torch.Tensor, logits: torch.Tensor, logged: tuple) -> dict:
    """What D's update reports (advnets.train.algorithm.Updates), with :func:`_logged`'s values."""
    d_real, d_fake, value = logged
    return {"d_loss": loss_d, "d_grad_norm": d_norm, "real_logits": logits[:m], "fake_logits": logits[m:],
            "d_real": d_real, "d_fake": d_fake, "value": value}  # fmt: skip


class CompiledSteps:
    """d_step, g_step and simultaneous_step with the signatures of advnets.train.algorithm's, for a Trainer
    whose run :func:`unsupported` accepts; each calls one compiled step function.

    ``mode``: torch.compile's mode (default: "reduce-overhead", CUDA graphs, on CUDA; "default" on the CPU);
    ``compiled=False`` runs the same functions uncompiled (tests, and the fallback). With ``fallback``, a
    failure to compile (train.compile = "auto") is reported on stderr and the run goes on eagerly: that step
    with the uncompiled functions on the inputs already drawn, the later ones with advnets.train.algorithm.
    ``compile_seconds``: the first call's wall time per step function (compilation or a cache load, and one
    step)."""

    def __init__(self, trainer: Any, mode: str | None = None, compiled: bool = True, fallback: bool = False) -> None:
        self.spec = spec_of(trainer)
        self.device = trainer.device
        self.mode = mode or ("reduce-overhead" if trainer.device.type == "cuda" else "default")
        # CUDA graphs' bookkeeping (static weights and buffers, a step mark per call, copies of the outputs read
        # later) runs whenever that mode is asked for, so that the CPU tests exercise it; graphs exist on CUDA only.
        self.static = self.mode == "reduce-overhead"
        self.graphs = self.static and trainer.device.type == "cuda"
        self.fallback, self.compiled = fallback, compiled
        g_linear = [m for m in trainer.g.net if isinstance(m, nn.Linear)]
        d_linear = [layer.linear for layer in trainer.d.hidden] + [trainer.d.output]
        self.g_params = [t for layer in g_linear for t in (layer.weight, layer.bias)]
        self.d_params = [t for layer in d_linear for t in (layer.weight, layer.bias)]
        # The weights as the step functions see them: the same storage outside autograd, updated in place. Under
        # CUDA graphs they (and the momentum buffers) are static inputs, updated where they are, not copied in.
        self.gw = [self._static(w.detach()) for w in self.g_params]
        self.dw = [self._static(w.detach()) for w in self.d_params]
        self.widths = (trainer.d.data_dim, *trainer.cfg.discriminator.hidden_units)
        spec = self.spec
        plain = {
            "simultaneous": lambda *a: simultaneous_update(spec, *a),
            "d": lambda *a: d_update(spec, *a),
            "g": lambda *a: g_update(spec, *a),
        }
        self.plain = plain
        self.fns = dict(plain)
        if compiled:
            tag = next(_instances)
            self.fns = {
                k: torch.compile(_own_copy(f, tag), fullgraph=True, dynamic=False, mode=self.mode)
                for k, f in plain.items()
            }
        self.compile_seconds: dict[str, float] = {}

    # ----- inputs
    def _masks(self, p: Any, rows: int) -> list[torch.Tensor | None]:
        """D's dropout masks for ``rows`` rows, drawn as D's eager forward draws them (same order, same stream)."""
        d = p.d
        return [
            d.dropout_mask((rows, width), q, self.device, torch.float32) if d.training and q < 1 else None
            for width, q in zip(self.widths, self.spec.include, strict=True)
        ]

    def _static(self, t: torch.Tensor) -> torch.Tensor:
        if self.static and getattr(t, "_dynamo_static_input_type", None) is None:
            torch._dynamo.mark_static_address(t)
        return t

    def _bufs(self, opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """The optimiser's momentum buffers (zeros before the first step: v = mu 0 + g = g, as torch's first).
        Looked up every step: loading a checkpoint replaces them."""
        out = []
        for w in params:
            state = opt.state[w]
            if state.get("momentum_buffer") is None:
                state["momentum_buffer"] = torch.zeros_like(w)
            out.append(self._static(state["momentum_buffer"]))
        return out

    def _hyper(self, p: Any) -> torch.Tensor:
        g, d = p.opt_g.param_groups[0], p.opt_d.param_groups[0]
        return torch.tensor([g["lr"], d["lr"], g["momentum"]], dtype=torch.float32, device=self.device)

    # ----- one call
    def _call(self, p: Any, name: str, *args: Any) -> tuple:
        first = name not in self.compile_seconds
        t0 = time.perf_counter()
        with torch.no_grad():
            if self.static:
                torch.compiler.cudagraph_mark_step_begin()
            try:
                out = self.fns[name](*args)
            except Exception as exc:
                if not first:  # compiled and run before: a bug, with its traceback
                    raise
                if not self.fallback:
                    raise CompileError(f"compiling the training step failed: {type(exc).__name__}: {exc}") from exc
                print(
                    f"advnets: compiling the training step failed ({type(exc).__name__}); training eagerly "
                    "(--compile off avoids the attempt)",
                    file=sys.stderr,
                )
                out = self.plain[name](*args)
                from advnets.train import algorithm

                p.updates = algorithm
        if first:
            self.compile_seconds[name] = time.perf_counter() - t0
        if self.static:  # CUDA graphs reuse their output memory at the next replay: copies of what is read later
            out = replay_safe(out)
        return out

    def _set_grads(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        """``.grad`` as the eager step leaves it, in float32; not under CUDA graphs (their memory is reused at the
        next replay) nor with bf16 products (a float32 copy of every gradient would cost a pass over them)."""
        if self.graphs or grads[0].dtype != params[0].dtype:
            return
        for w, g in zip(params, grads, strict=True):
            w.grad = g

    # ----- advnets.train.algorithm's interface
    def simultaneous_step(self, p: Any) -> dict[str, torch.Tensor]:
        """advnets.train.algorithm.simultaneous_step, compiled."""
        m = p.m
        x = p.next_real_batch()
        z = p.noise(m)
        masks = self._masks(p, 2 * m)
        gw, dw = self.gw, self.dw
        g_bufs, d_bufs = self._bufs(p.opt_g, self.g_params), self._bufs(p.opt_d, self.d_params)
        out = self._call(p, "simultaneous", gw, dw, g_bufs, d_bufs, x, z, masks, self._hyper(p))
        loss_d, loss_g, logits, d_norm, g_norm, d_grads, g_grads, logged = out
        self._set_grads(self.d_params, d_grads)
        self._set_grads(self.g_params, g_grads)
        p.d_updates += 1
        p.g_updates += 1
        return {**_d_outputs(m, loss_d, d_norm, logits, logged), "g_loss": loss_g, "g_grad_norm": g_norm}

    def d_step(self, p: Any) -> dict[str, torch.Tensor]:
        """advnets.train.algorithm.d_step, compiled."""
        m = p.m
        x = p.next_real_batch()
        z = p.noise(m)
        masks = self._masks(p, 2 * m)
        gw, dw = self.gw, self.dw
        out = self._call(p, "d", gw, dw, self._bufs(p.opt_d, self.d_params), x, z, masks, self._hyper(p))
        loss_d, logits, d_norm, d_grads, logged = out
        self._set_grads(self.d_params, d_grads)
        p.d_updates += 1
        return _d_outputs(m, loss_d, d_norm, logits, logged)

    def g_step(self, p: Any) -> dict[str, torch.Tensor]:
        """advnets.train.algorithm.g_step, compiled."""
        z = p.noise(p.m)
        masks = self._masks(p, p.m)
        gw, dw = self.gw, self.dw
        out = self._call(p, "g", gw, dw, self._bufs(p.opt_g, self.g_params), z, masks, self._hyper(p))
        loss_g, g_norm, g_grads = out
        self._set_grads(self.g_params, g_grads)
        p.g_updates += 1
        return {"g_loss": loss_g, "g_grad_norm": g_norm}
