"""The live toy game of ``advnets explore``: Algorithm 1 on Figure 1's 1-D world or a 2-D mixture, one
iteration (or one D step, or one G step) at a time, and the views the page draws.

The training is :mod:`advnets.toy`'s own: :func:`advnets.toy.start_game` builds the players exactly as
:func:`advnets.toy.train_toy` does and :func:`advnets.toy.iterate` takes its iterations, so N iterations here
equal N iterations of ``advnets toy`` with the same seed and settings (tests/test_explore.py checks it). Settings
change while it runs (:meth:`ToySession.configure`): k, G steps per iteration, the G loss, learning rates and the
batch size take effect at the next step; a new optimiser starts with fresh state; a new seed, dataset or set of
drawn points restarts.

The ``simultaneous`` update rule (an addition, not Algorithm 1 as printed): G's steps are taken against D as it
was before this iteration's D steps, so both players move from the same point (G does not see D's update).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import numpy as np
import torch

from advnets.data.toy import GaussianMixture2D
from advnets.errors import ConfigError
from advnets.evaluate.modes import mode_coverage
from advnets.losses import GENERATOR_LOSSES, value_function
from advnets.nets import sample_noise
from advnets.theory import js_divergence, optimal_discriminator
from advnets.toy import EVAL_SEED_OFFSET, TOY_DATASETS, iterate, start_game, toy_config
from advnets.toy.game import make_optimizer
from advnets.toy.measures import d_prob, samples_of, snapshot

__all__ = ["DATASETS", "RULES", "ToySession"]

#: The page's targets: advnets.toy's four, and points the user draws (a 2-D mixture around them).
DATASETS = (*TOY_DATASETS, "drawn")
RULES = ("alternating", "simultaneous")
#: Drawn points: at most this many, in the square [-DRAW_BOX, DRAW_BOX]^2, each a mode of this std.
MAX_POINTS, DRAW_BOX, DRAWN_STD = 200, 4.0, 0.1
#: Samples behind the live views: fewer than advnets.toy's final measures, to keep >= 20 frames a second.
N_LIVE_1D, N_LIVE_2D, N_SHOWN, HEAT = 5000, 600, 500, 32
MAX_HISTORY = 2000
#: Settings that apply to a running game (the others restart it).
_LIVE = ("k", "g_steps_per_d_step", "g_loss", "optimizer", "lr", "g_lr", "batch_size")
_LIMITS = {"k": (1, 100), "g_steps_per_d_step": (1, 100), "batch_size": (1, 4096), "seed": (0, 2**31 - 1)}


def _int_in(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


def _rate(value: Any, name: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0 < value <= 1:
        raise ConfigError(f"{name} must be a number in (0, 1], got {value!r}")
    return float(value)


def _choice(value: Any, name: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ConfigError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return value


def drawn_toy(points: Any) -> GaussianMixture2D:
    """A 2-D mixture with one small Gaussian (std :data:`DRAWN_STD`) at each drawn point.

    Raises ConfigError unless ``points`` is a list of 1..MAX_POINTS pairs of numbers within the drawing box."""
    if not isinstance(points, list) or not 1 <= len(points) <= MAX_POINTS:
        raise ConfigError(f"points must be a list of 1..{MAX_POINTS} [x, y] pairs")
    ok = all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) and abs(v) <= DRAW_BOX for v in p)
        for p in points
    )
    if not ok:
        raise ConfigError(f"each point must be [x, y] with |x|, |y| <= {DRAW_BOX}")
    return GaussianMixture2D(np.asarray(points, dtype=np.float64), DRAWN_STD, name="drawn")


class ToySession:
    """One live game: its settings, the players (advnets.toy's ``_Game``), counters and curves."""

    def __init__(self, dataset: str = "gaussian", seed: int = 0) -> None:
        self.settings: dict[str, Any] = {"dataset": dataset, "seed": seed, "rule": "alternating", "points": None}
        self.reset()

    # ----------------------------------------------------------------- state

    def reset(self) -> None:
        """Restart from fresh players: the dataset's defaults (advnets.toy.toy_config) and the chosen settings."""
        s = self.settings
        base = "ring8" if s["dataset"] == "drawn" else s["dataset"]
        keep = {k: s[k] for k in _LIVE if k in s}
        self.cfg = toy_config(base, seed=s["seed"], **keep)
        data = drawn_toy(s["points"]) if s["dataset"] == "drawn" else None
        self.game = start_game(self.cfg, data)
        s.update({k: getattr(self.cfg, k) for k in _LIVE})
        if s["g_lr"] is None:
            s["g_lr"] = self.cfg.lr
        eval_gen = torch.Generator().manual_seed(self.cfg.seed + EVAL_SEED_OFFSET)
        self.eval_z = sample_noise(self.game.g.cfg, N_LIVE_1D if self.dim == 1 else N_LIVE_2D, generator=eval_gen)
        self.eval_x = self.game.data.sample(len(self.eval_z), generator=eval_gen)
        self.iterations = 0
        self.history: list[dict[str, float]] = []
        self.last: dict[str, float] = {}
        self.ever_covered: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return self.cfg.dim

    def configure(self, changes: dict[str, Any]) -> None:
        """Apply setting changes (see the module docstring); raises ConfigError naming a bad one."""
        if not isinstance(changes, dict):
            raise ConfigError("settings must be a JSON object")
        unknown = sorted(set(changes) - {"dataset", "seed", "rule", "points", *_LIVE})
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        new = dict(changes)
        for name, (low, high) in _LIMITS.items():
            if name in new:
                _int_in(new[name], name, low, high)
        for name in ("lr", "g_lr"):
            if name in new:
                new[name] = _rate(new[name], name)
        checks = {"dataset": DATASETS, "rule": RULES, "g_loss": tuple(GENERATOR_LOSSES), "optimizer": ("adam", "sgd")}
        for name, options in checks.items():
            if name in new:
                _choice(new[name], name, options)
        if "points" in new:
            drawn_toy(new["points"])
        restart = any(name in new and new[name] != self.settings.get(name) for name in ("dataset", "seed", "points"))
        if new.get("dataset", self.settings["dataset"]) == "drawn" and not new.get("points", self.settings["points"]):
            raise ConfigError("the drawn dataset needs points: draw some on the canvas first")
        if restart and "dataset" in new and new["dataset"] != self.settings["dataset"]:
            for name in _LIVE:  # a new toy: its own defaults
                if name not in new:
                    self.settings.pop(name, None)
        self.settings.update(new)
        if restart:
            self.reset()
            return
        self._apply_live(new)

    def _apply_live(self, new: dict[str, Any]) -> None:
        fields = {k: new[k] for k in _LIVE if k in new}
        if not fields:
            return
        self.cfg = dataclasses.replace(self.cfg, **fields)
        game = self.game
        game.cfg = self.cfg
        game.g_loss_fn = GENERATOR_LOSSES[self.cfg.g_loss]
        if "optimizer" in fields:  # a new rule: fresh optimiser state
            game.opt_g = make_optimizer(self.cfg, game.g.parameters(), self.settings["g_lr"])
            game.opt_d = make_optimizer(self.cfg, game.d.parameters(), self.cfg.lr)
        game.scale_lr(1.0)

    # ----------------------------------------------------------------- steps

    def step(self, kind: str = "iteration", n: int = 1) -> None:
        """``n`` Algorithm-1 iterations (``kind`` "iteration"), or ``n`` lone D or G steps ("d", "g")."""
        _choice(kind, "kind", ("iteration", "d", "g"))
        _int_in(n, "n", 1, 1000)
        for _ in range(n):
            if kind == "d":
                out = self.game.d_step(self.cfg.batch_size)
                self.last["d_loss"] = float(out["d_loss"])
            elif kind == "g":
                self.last["g_loss"] = float(self.game.g_step(self.cfg.batch_size))
            else:
                self.iterations += 1
                row = self._iteration()
                self.last.update(d_loss=float(row["d_loss"]), g_loss=float(row["g_loss"]))

    def _iteration(self) -> dict[str, torch.Tensor]:
        if self.settings["rule"] == "alternating":
            return iterate(self.game, self.cfg, self.iterations)
        game, cfg = self.game, self.cfg
        d_before = copy.deepcopy(game.d)
        for _ in range(cfg.k):
            out = game.d_step(cfg.batch_size)
        d_now, d_params = game.d, game.d_params
        game.d, game.d_params = d_before, list(d_before.parameters())
        try:
            for _ in range(cfg.g_steps_per_d_step):
                g_loss = game.g_step(cfg.batch_size)
        finally:
            game.d, game.d_params = d_now, d_params
        return {"d_loss": out["d_loss"], "g_loss": g_loss}

    # ----------------------------------------------------------------- views

    def view(self) -> dict[str, Any]:
        """What the page draws now, JSON-ready: counters, settings, the curves, and the 1-D or 2-D picture."""
        game = self.game
        with torch.no_grad():
            real = game.d(self.eval_x).float()
            fake_x = game.g(self.eval_z)
            fake = game.d(fake_x).float()
        point = {"iteration": self.iterations, "v": float(value_function(real, fake)), **self.last}
        picture = self._view_1d(fake_x) if self.dim == 1 else self._view_2d(fake_x)
        point.update({k: picture[k] for k in ("jsd", "c_g", "modes_covered") if k in picture})
        self._record(point)
        settings = {k: v for k, v in self.settings.items() if k != "points"}
        return {
            "dim": self.dim,
            "iterations": self.iterations,
            "d_updates": game.d_updates,
            "g_updates": game.g_updates,
            "settings": settings,
            "history": self.history,
            "neg_log4": -math.log(4.0),
            **picture,
        }

    def _record(self, point: dict[str, float]) -> None:
        if self.history and self.history[-1]["iteration"] == point["iteration"] and len(self.history) > 1:
            self.history[-1] = point  # a redraw without training: replace, not append
        else:
            self.history.append(point)
        if len(self.history) > MAX_HISTORY:
            self.history = self.history[::2]

    def _view_1d(self, fake_x: torch.Tensor) -> dict[str, Any]:
        snap = snapshot("", self.iterations, self.game.data, self.game.g, self.game.d, self.eval_z)
        # JSD of the drawn densities' cell masses on the view's grid (which spans p_data and G's samples): the
        # same quantity as advnets.toy's final measure, without its slower sample KDE, so that frames stay fast.
        p, q = snap.p_data / snap.p_data.sum(), snap.p_g / max(snap.p_g.sum(), 1e-300)
        jsd = js_divergence(p, q)
        return {
            "x": snap.x.tolist(),
            "p_data": snap.p_data.tolist(),
            "p_g": snap.p_g.tolist(),
            "d": snap.d.tolist(),
            "d_star": optimal_discriminator(snap.p_data, snap.p_g).tolist(),
            "z": None if snap.z is None else snap.z.tolist(),
            "gz": None if snap.gz is None else snap.gz.tolist(),
            "jsd": jsd,
            "c_g": -math.log(4.0) + 2 * jsd,  # Theorem 1: C(G) = -log 4 + 2 JSD(p_data || p_g)
        }

    def _view_2d(self, fake_x: torch.Tensor) -> dict[str, Any]:
        data = self.game.data
        samples = fake_x.double().numpy()
        cov = mode_coverage(samples, data.modes, data.std)
        covered = np.asarray(cov["covered"])
        self.ever_covered = covered.copy() if self.ever_covered is None else self.ever_covered | covered
        lost = np.flatnonzero(self.ever_covered & ~covered)
        (x0, x1), (y0, y1) = data.bounds(3.0)
        span = max(x1 - x0, y1 - y0, 1.0) / 2 * 1.3
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        box = [cx - span, cx + span, cy - span, cy + span]
        gx, gy = np.meshgrid(np.linspace(box[0], box[1], HEAT), np.linspace(box[2], box[3], HEAT))
        heat = d_prob(self.game.d, np.stack([gx.ravel(), gy.ravel()], axis=1)).reshape(HEAT, HEAT)
        return {
            "box": box,
            "real": self.eval_x[:N_SHOWN].tolist(),
            "fake": samples[:N_SHOWN].tolist(),
            "heat": heat.tolist(),
            "z_grid": self._z_grid(),
            "modes": data.modes.tolist(),
            "covered": covered.tolist(),
            "lost": lost.tolist(),
            "modes_covered": int(cov["modes_covered"]),
            "n_modes": int(cov["n_modes"]),
        }

    def _z_grid(self, lines: int = 9, points: int = 25) -> list[list[list[float]]]:
        """G's image of a grid of z in the first two noise coordinates (the others 0): rows then columns."""
        a = math.sqrt(3.0)
        t = torch.linspace(-a, a, points)
        levels = torch.linspace(-a, a, lines)
        nz = self.game.g.cfg.noise_dim
        z = torch.zeros(2, lines, points, nz)  # one forward pass for every line
        for axis in (0, 1):
            z[axis, :, :, axis] = t
            if nz > 1:
                z[axis, :, :, 1 - axis] = levels[:, None]
        return samples_of(self.game.g, z.reshape(-1, nz)).reshape(2 * lines, points, -1).tolist()
