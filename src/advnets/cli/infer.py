"""``advnets infer``: learned approximate inference, an encoder E(x) -> z for a trained G (§7.2)."""

from __future__ import annotations

import argparse

from advnets.cli.common import add_command, add_data_dir, add_run, nonneg_int, positive_float, positive_int, seed_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    # Section 7 extensions (paper §7): learned approximate inference (§7.2), semi-supervised learning (§7.4).
    inf = add_command(
        sub,
        "infer",
        help="learned approximate inference: train an encoder E(x) -> z for a trained G (§7.2)",
        description="Train an MLP encoder E(x) -> z for a run's fixed, trained G by regressing z from G(z) on fresh "
        "noise (the paper's Section 7.2; the reference code's 'inferer'), optionally fine-tune it on real training "
        "images through ||G(E(x)) - x||^2, and measure it: the z-recovery error on G's own samples (relative to "
        "the prior's variance: 1 = predicting the prior mean) and the reconstruction error of real test images "
        "(relative to the mean distance between two random test images). Writes RUN/encoder.safetensors + "
        "encoder.json, RUN/inference/reconstructions.png (rows of test images, each followed by G(E(x))) and "
        "RUN/inference/metrics.json.",
        epilog="examples:\n  advnets infer --run runs/00001-mnist-embedded\n"
        "  advnets infer --run runs/00001-mnist-embedded --steps 2000 --finetune-steps 1000\n"
        "  advnets semisup --run runs/00001-mnist-embedded --labels 100,600,1000 --with-encoder\n",
    )
    add_run(inf)
    add_data_dir(inf)
    inf.add_argument("--steps", type=positive_int, default=5000, help="regression steps on fresh z (default 5000)")
    inf.add_argument(
        "--finetune-steps",
        type=nonneg_int,
        default=0,
        metavar="N",
        help="then N steps on real training images through ||G(E(x)) - x||^2 (default 0: none)",
    )
    inf.add_argument("--batch-size", type=positive_int, default=100, metavar="M", help="minibatch size (default 100)")
    inf.add_argument(
        "--lr", type=positive_float, default=1e-3, help="Adam learning rate, cosine-decayed (default 1e-3)"
    )
    inf.add_argument(
        "--finetune-lr", type=positive_float, default=3e-4, help="Adam learning rate of the fine-tuning (default 3e-4)"
    )
    inf.add_argument(
        "--hidden",
        default="1200,1200",
        metavar="SIZES",
        help="widths of E's ReLU hidden layers, comma-separated (default 1200,1200)",
    )
    inf.add_argument("--seed", type=seed_int, default=0, help="seed of E's initialisation and noise (default 0)")
    inf.add_argument(
        "--eval-samples",
        type=positive_int,
        default=1000,
        metavar="N",
        help="samples of G for the z-recovery error (default 1000)",
    )
    inf.add_argument(
        "--show", type=positive_int, default=50, metavar="N", help="test images in the figure (default 50)"
    )
    inf.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"), help="default: auto")
    inf.add_argument("--no-progress", action="store_true", help="no progress bar")
    inf.set_defaults(func=cmd_infer)


def cmd_infer(args: argparse.Namespace) -> int:
    from advnets.errors import AdvnetsError
    from advnets.infer import InferConfig, run_inference

    try:
        hidden = tuple(int(h) for h in args.hidden.split(","))
    except ValueError:
        raise AdvnetsError(f"--hidden {args.hidden!r}: expected comma-separated positive integers") from None
    if any(h < 1 for h in hidden):
        raise AdvnetsError(f"--hidden {args.hidden!r}: expected comma-separated positive integers")
    cfg = InferConfig(
        hidden_sizes=hidden,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        finetune_steps=args.finetune_steps,
        finetune_lr=args.finetune_lr,
        seed=args.seed,
        eval_samples=args.eval_samples,
    )
    r = run_inference(
        args.run, cfg, data_dir=args.data_dir, device=args.device, show=args.show, progress=not args.no_progress
    )
    _print_result(r)
    return 0


def _print_result(r: dict) -> None:
    z, s, t = r["z_recovery"], r["sample_reconstruction"], r["test_reconstruction"]
    tr = r["training"]
    print(f"encoder E(x) -> z for {r['checkpoint']} (step {r['step']}), {tr['steps']} regression steps", end="")
    print(f" + {tr['finetune_steps']} fine-tuning steps" if tr["finetune_steps"] else "", end="")
    print(f" in {tr['seconds']:.0f} s")
    before = (
        f" ({tr['z_rel_error_before_finetune']:.3f} before fine-tuning)" if "z_rel_error_before_finetune" in tr else ""
    )
    print(
        f"  z recovery on {z['n']} samples of G: mean squared error / prior variance {z['rel_error']:.3f}{before}"
        f"   (prior mean: {z['prior_mean_rel_error']:.3f})"
    )
    jac = z["g_jacobian"]
    print(
        f"    G uses about {jac['used_directions']:.1f} of its {jac['noise_dim']} directions of z (singular values of "
        f"dG/dz above {jac['rel_tol']:g} x the largest, mean over {jac['n']} z); the others cannot be recovered"
    )
    print(
        f"  G's own samples, ||G(E(G(z))) - G(z)||: {s['mean_distance']:.3f}, "
        f"random pair {s['random_pair_distance']:.3f}   ratio {s['ratio_to_random_pair']:.3f}"
    )
    print(
        f"  {t['n']} test images, ||G(E(x)) - x||: {t['mean_distance']:.3f} (MSE per pixel {t['mse_per_pixel']:.4f}), "
        f"random pair {t['random_pair_distance']:.3f}   ratio {t['ratio_to_random_pair']:.3f}"
        + (
            f" ({tr['before_finetune']['test_reconstruction']['ratio_to_random_pair']:.3f} before fine-tuning)"
            if "before_finetune" in tr
            else ""
        )
    )
    if "nearest_train_distance" in t:
        print(
            f"    for reference: distance to the mean training image {t['mean_image_distance']:.3f}, "
            f"to the nearest training image {t['nearest_train_distance']:.3f}"
        )
    print(f"-> {r['figure']}\n-> {r['metrics_file']}\n-> {r['encoder']}")
