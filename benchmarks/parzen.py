"""Benchmark: the paper's Parzen-window protocol on 784-d data (issue 3).

One run, one printed markdown table. The protocol (Goodfellow et al. 2014,
reference code): σ from numpy.logspace(-1, 0, 10) chosen by the mean
log-likelihood of 1,000 validation points, then 10,000 test points scored,
against a Parzen window on 10,000 samples. Data: synthetic "digit-like" 28×28
images in [0, 1] (scikit-learn's 8×8 digits upsampled, shifted, rescaled and
noised), so that distances have a realistic spread.

Rows (each measured in a fresh subprocess; the peak-memory column is that
process's peak-RSS increase during the method: VmHWM, the high-water mark that
``ru_maxrss`` reports, reset through /proc/self/clear_refs just before it):

* advnets, float64 (default) and float32 fast mode: the full protocol, best of
  several runs, alternating with the GEMM-rate measurement (shared machines).
* the reference code's algorithm: for each σ and each batch of 10 queries,
  explicit differences ``(x[:, None, :] − μ[None]) / σ`` in NumPy, then a
  log-mean-exp. Timed on a subset of queries, extrapolated linearly.
* scikit-learn ``KernelDensity`` (Gaussian, bandwidth σ, rtol = atol = 0),
  one fit per σ: timed on a subset, extrapolated linearly.
* the floor: 2·Q·M·d FLOPs (Q = 11,000 queries: each distance computed once)
  at the float64 GEMM rate measured in this run with ``torch.mm``.

Max abs error: over a check subset of test queries × all 10 σ, against the
direct formula evaluated in 80-bit long double.

Usage: python benchmarks/parzen.py [--quick] [--write]
(--write replaces the "## Parzen-window evaluation (issue 3)" section of
benchmarks/RESULTS.md with the table.)
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import cpu_model  # benchmarks/machine.py (the scripts run from this directory)

HEADING = "## Parzen-window evaluation (issue 3)"
SIGMAS = np.logspace(-1, 0, 10)


# --------------------------------------------------------------------------- data


def digit_like(n: int, rng: np.random.Generator) -> np.ndarray:
    """n synthetic 28×28 digit-like images in [0, 1], flattened to 784-d float64.

    scikit-learn's 8×8 digits, each drawn with a random rotation (±20°), zoom
    (2.4–3.6×), shift (±3 px), blur and contrast, plus pixel noise (σ = 0.1).
    """
    from scipy.ndimage import affine_transform, gaussian_filter
    from sklearn.datasets import load_digits

    base = load_digits().images / 16.0  # 1797 × 8 × 8
    out = np.empty((n, 28, 28))
    pick = rng.integers(0, len(base), n)
    for i in range(n):
        ang = np.deg2rad(rng.uniform(-20, 20))
        z = rng.uniform(2.4, 3.6)
        rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]]) / z
        centre_out = np.array([13.5, 13.5]) + rng.uniform(-3, 3, 2)
        offset = np.array([3.5, 3.5]) - rot @ centre_out
        im = affine_transform(base[pick[i]], rot, offset=offset, output_shape=(28, 28), order=1, mode="constant")
        im = gaussian_filter(im, rng.uniform(0.3, 1.0))
        out[i] = im / max(im.max(), 1e-6) * rng.uniform(0.6, 1.0)
    out += rng.normal(0, 0.1, out.shape)
    return np.clip(out, 0, 1).reshape(n, 784)


def exact_longdouble(x: np.ndarray, mu: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Direct formula in 80-bit long double: (len(sigmas), len(x))."""
    mu_l = mu.astype(np.longdouble)
    d = x.shape[1]
    out = np.empty((len(sigmas), len(x)), dtype=np.longdouble)
    for i in range(len(x)):
        diff = mu_l - x[i].astype(np.longdouble)
        sq = np.einsum("ij,ij->i", diff, diff)
        for k, s in enumerate(sigmas):
            s = np.longdouble(s)
            e = -sq / (2 * s * s)
            mx = e.max()
            out[k, i] = (
                mx
                + np.log(np.exp(e - mx).sum())
                - np.log(np.longdouble(len(mu)))
                - np.longdouble(d) / 2 * np.log(2 * np.longdouble(math.pi) * s * s)
            )
    return out


# --------------------------------------------------------------------------- workers


def _status_mib(field: str) -> float:
    """A memory field of /proc/self/status (VmHWM: peak RSS, VmRSS: current) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def _rss_mib() -> float:
    """Peak RSS since the last reset (VmHWM, the kernel's ru_maxrss high-water mark)."""
    try:
        return _status_mib("VmHWM")
    except (OSError, RuntimeError):  # not Linux: the process-lifetime peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak() -> float:
    """Reset the peak-RSS high-water mark (/proc/self/clear_refs); return its new level."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # not permitted: the Δ is then a lower bound
        pass
    return _rss_mib()


def reference_algorithm(x: np.ndarray, mu: np.ndarray, sigma: float, batch: int = 10):
    """The reference code's algorithm, in NumPy: explicit differences per σ and batch."""
    d = x.shape[1]
    out = np.empty(len(x))
    for i in range(0, len(x), batch):
        a = (x[i : i + batch, None, :] - mu[None, :, :]) / sigma
        e = -0.5 * (a**2).sum(axis=2)
        mx = e.max(axis=1, keepdims=True)
        out[i : i + batch] = mx[:, 0] + np.log(np.exp(e - mx).mean(axis=1))
    return out - d * math.log(sigma * math.sqrt(2 * math.pi))


def worker(kind: str, data_dir: Path) -> dict:
    import torch

    load = {k: np.load(data_dir / f"{k}.npy") for k in ("samples", "valid", "test", "check")}
    samples, valid, test, check = (load[k] for k in ("samples", "valid", "test", "check"))
    exact = np.load(data_dir / "exact.npy")  # (10, n_check), float64 of long double
    res: dict = {"kind": kind}

    if kind == "gemm":
        m, d = samples.shape
        a = torch.rand(2048, d, dtype=torch.float64)
        b = torch.from_numpy(samples)
        best = 0.0
        for _ in range(4):
            t0 = time.perf_counter()
            torch.mm(a, b.T)
            best = max(best, 2 * 2048 * m * d / (time.perf_counter() - t0))
        res["gflops"] = best / 1e9
        return res

    if kind.startswith("advnets"):
        from advnets.evaluate.parzen import parzen_evaluate, parzen_log_likelihood

        dtype = torch.float64 if kind == "advnets64" else torch.float32
        parzen_evaluate(test[:50], samples[:500], valid[:50], dtype=dtype, device="cpu")  # warm-up
        times, rss = [], 0.0
        for _ in range(3):  # best of 3 full runs (the machine is shared)
            rss0 = _reset_peak()
            t0 = time.perf_counter()
            r = parzen_evaluate(test, samples, valid, dtype=dtype, device="cpu")
            times.append(time.perf_counter() - t0)
            rss = max(rss, _rss_mib() - rss0)
        res.update(
            time=min(times),
            times=times,
            rss=rss,
            sigma=r["sigma"],
            mean=r["mean"],
            se=r["se"],
            valid_means=r["valid_means"],
        )
        vals = np.stack([parzen_log_likelihood(check, samples, s, dtype=dtype, device="cpu").numpy() for s in SIGMAS])
        res["err"] = float(np.abs(vals - exact).max())
        return res

    n_eval = len(SIGMAS) * len(valid) + len(test)  # query evaluations in the protocol
    if kind == "reference":
        reference_algorithm(check[:2], samples, 0.5)  # warm-up
        rss0 = _reset_peak()
        t0 = time.perf_counter()
        vals = np.stack([reference_algorithm(check, samples, s) for s in SIGMAS])
        el = time.perf_counter() - t0
        per_eval = el / (len(SIGMAS) * len(check))
        res.update(
            time=per_eval * n_eval,
            measured=el,
            n_sub=len(check),
            rss=_rss_mib() - rss0,
            err=float(np.abs(vals - exact).max()),
        )
        return res

    if kind == "sklearn":
        from sklearn.neighbors import KernelDensity

        rss0 = _reset_peak()
        fit_t, score_t, vals = 0.0, 0.0, []
        for s in SIGMAS:
            t0 = time.perf_counter()
            kde = KernelDensity(kernel="gaussian", bandwidth=float(s), rtol=0, atol=0).fit(samples)
            t1 = time.perf_counter()
            vals.append(kde.score_samples(check))
            score_t += time.perf_counter() - t1
            fit_t += t1 - t0
        vals = np.stack(vals)
        per_eval = score_t / (len(SIGMAS) * len(check))
        res.update(
            time=fit_t + per_eval * n_eval,
            measured=fit_t + score_t,
            n_sub=len(check),
            rss=_rss_mib() - rss0,
            err=float(np.abs(vals - exact).max()),
            algorithm=type(kde.tree_).__name__,
        )
        return res

    if kind == "nearest":
        from advnets.evaluate.nearest import nearest_neighbors

        rng = np.random.default_rng(7)
        reps = -(-60000 // len(samples))
        train = np.clip(np.concatenate([samples] * reps)[:60000] + rng.normal(0, 0.02, (60000, 784)), 0, 1).astype(
            np.float32
        )
        q = test[:100].astype(np.float32)
        nearest_neighbors(q[:5], train[:1000], device="cpu")  # warm-up
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            nearest_neighbors(q, train, device="cpu")
            times.append(time.perf_counter() - t0)
        res.update(time=min(times), times=times)
        return res

    raise SystemExit(f"unknown worker {kind}")


def run_worker(kind: str, data_dir: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--data", str(data_dir)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"worker {kind} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main


def fmt_time(t: float) -> str:
    return f"{t:.2f} s" if t < 100 else f"{t:,.0f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shrink the sizes (M=2000, V=200, T=2000)")
    ap.add_argument("--write", action="store_true", help="write the table into RESULTS.md")
    ap.add_argument("--check", type=int, default=None, help="queries in the check/timing subset")
    ap.add_argument("--rounds", type=int, default=2, help="alternating GEMM/advnets rounds")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.data))))
        return

    import scipy
    import sklearn
    import torch

    m, v, t = (2000, 200, 2000) if args.quick else (10000, 1000, 10000)
    n_check = args.check or (10 if args.quick else 20)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    allx = digit_like(m + v + t, rng)
    samples, valid, test = allx[:m], allx[m : m + v], allx[m + v :]
    check = test[:n_check]
    exact = exact_longdouble(check, samples, SIGMAS)
    print(f"data + long-double reference: {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for k, a in dict(samples=samples, valid=valid, test=test, check=check).items():
            np.save(tmp / f"{k}.npy", a)
        np.save(tmp / "exact.npy", exact.astype(np.float64))
        load0 = os.getloadavg()[0]
        res: dict = {}
        # The machine may be shared: GEMM rate and advnets are measured in alternating
        # rounds, and the best of each is kept.
        for rnd in range(args.rounds):
            for kind in ("gemm", "advnets64", "advnets32"):
                print(f"round {rnd + 1}: {kind} ...", file=sys.stderr)
                r = run_worker(kind, tmp)
                old = res.get(kind)
                if old is None or (r["gflops"] > old["gflops"] if kind == "gemm" else r["time"] < old["time"]):
                    res[kind] = r
        for kind in ("reference", "sklearn", "nearest"):
            print(f"{kind} ...", file=sys.stderr)
            res[kind] = run_worker(kind, tmp)
        load1 = os.getloadavg()[0]

    d = 784
    q_total = v + t
    gflops = res["gemm"]["gflops"]
    floor = 2 * q_total * m * d / (gflops * 1e9)
    base = res["advnets64"]["time"]
    how = f"measured, full protocol (best of {3 * args.rounds})"
    rows = [
        (
            "advnets, float64 (default)",
            res["advnets64"]["time"],
            res["advnets64"]["err"],
            f"{res['advnets64']['rss']:.0f} MiB",
            how,
        ),
        (
            "advnets, float32 fast mode",
            res["advnets32"]["time"],
            res["advnets32"]["err"],
            f"{res['advnets32']['rss']:.0f} MiB",
            how,
        ),
        (
            "reference algorithm (NumPy, explicit differences per σ)",
            res["reference"]["time"],
            res["reference"]["err"],
            f"{res['reference']['rss']:.0f} MiB",
            f"extrapolated from {res['reference']['n_sub']} queries × 10 σ ({res['reference']['measured']:.1f} s)",
        ),
        (
            f"scikit-learn KernelDensity ({res['sklearn']['algorithm']}, rtol = atol = 0)",
            res["sklearn"]["time"],
            res["sklearn"]["err"],
            f"{res['sklearn']['rss']:.0f} MiB",
            f"extrapolated from {res['sklearn']['n_sub']} queries × 10 σ + 10 fits "
            f"({res['sklearn']['measured']:.1f} s)",
        ),
        (
            f"floor: 2·Q·M·d FLOPs at {gflops:.0f} GFLOP/s (float64 torch.mm)",
            floor,
            None,
            "—",
            f"Q = {q_total:,} (distances computed once), M = {m:,}, d = {d}",
        ),
    ]
    lines = [
        f"Protocol: 10 σ (numpy.logspace(-1, 0, 10)) × {v:,} validation + {t:,} test queries "
        f"against {m:,} samples, d = 784 (synthetic digit-like 28×28 images in [0, 1])"
        + (" — `--quick` sizes" if args.quick else "")
        + ".",
        "",
        "| method | time | ratio to advnets | max abs error | peak RSS Δ (VmHWM) | how |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, tm, err, mem, how in rows:
        e = "—" if err is None else f"{err:.1e}"
        lines.append(f"| {name} | {fmt_time(tm)} | {tm / base:.2f}× | {e} | {mem} | {how} |")
    r64 = res["advnets64"]
    lines += [
        "",
        f"- advnets / floor = {base / floor:.2f}× (target ≤ 1.5×); scikit-learn / advnets = "
        f"{res['sklearn']['time'] / base:.0f}× (target ≥ 50×); reference / advnets = "
        f"{res['reference']['time'] / base:.0f}× (target ≥ 100×).",
        f"- Result: σ = {r64['sigma']:.4f}, test mean log-likelihood "
        f"{r64['mean']:.2f} ± {r64['se']:.2f} (SE = std/√N, ddof = 0); float32: "
        f"{res['advnets32']['mean']:.2f}.",
        f"- Max abs error: per-point log p̂ of {n_check} test queries at all 10 σ, against the "
        f"direct formula in 80-bit long double.",
        "- Peak memory: increase of the worker process's peak RSS during the method: "
        "VmHWM (the high-water mark behind ru_maxrss), reset via /proc/self/clear_refs "
        "just before the method, minus the RSS at that point (each row in a fresh "
        "process, data already loaded; for the extrapolated rows, measured on the subset, "
        "which already has the per-batch peak).",
        f"- Nearest neighbours (Figure 2): 100 queries vs 60,000 784-d images, float64, exact: "
        f"{res['nearest']['time']:.3f} s (best of 3).",
        f"- scikit-learn's tree KDE is exact in low dimension (see tests/test_parzen.py) but "
        f"at d = 784 and these σ its scores are off by up to {res['sklearn']['err']:.0f} nats "
        "(cf. scikit-learn issue #25799); the reference algorithm is accurate, only slow.",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores "
        f"(torch threads {torch.get_num_threads()}), shared: load average "
        f"{load0:.1f} → {load1:.1f} during the run; Python {platform.python_version()}, "
        f"torch {torch.__version__}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"scikit-learn {sklearn.__version__}; {datetime.date.today().isoformat()}.",
        "- Command: `python benchmarks/parzen.py" + (" --quick" if args.quick else "") + "`.",
    ]
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_section(Path(__file__).with_name("RESULTS.md"), table)


def write_section(path: Path, body: str) -> None:
    """Replace (or append) this benchmark's section of RESULTS.md, leaving others alone."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"{HEADING}\n\n{body}\n"
    start = text.find(HEADING)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + len(HEADING))
        rest = text[nxt + 1 :] if nxt >= 0 else ""
        text = text[:start] + section + ("\n" + rest if rest else "")
    path.write_text(text)


if __name__ == "__main__":
    main()
