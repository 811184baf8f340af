"""Latency of `advnets explore`'s answers and the toy's update rate (issue 29), through the real app.

Each request goes through the whole server stack (token check, JSON, the library call, JSON back) with
Starlette's test client, in one process, torch on one thread as `advnets explore` runs it. Prints a table of the
median and 90th percentile over ``--repeats`` requests after one warm-up:

- a new grid of 64 samples, a path of 10, a drawn digit's verdict (D and the nearest training images), a
  sample's nearest training images, a z-slider move;
- toy updates per second: requests of one Algorithm-1 iteration each, as the page sends them while playing
  (``iterations / frame`` 1), for the 1-D world and the 2-D ring.

    python benchmarks/explore.py                         # mnist-paper, its neighbours in the embedded digits
    python benchmarks/explore.py --data mnist --repeats 50

No timed assertion anywhere: the numbers depend on the machine and its load (say both when quoting them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def timed(call, repeats: int) -> list[float]:
    call()  # warm-up
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        response = call()
        out.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise SystemExit(f"request failed: {response.status_code} {response.text[:200]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrained", default="mnist-paper")
    parser.add_argument("--data", default="embedded", help="training images for the neighbours (default embedded)")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)

    from starlette.testclient import TestClient

    from advnets.explore.app import create_app
    from advnets.explore.models import ModelSession

    torch.set_num_threads(1)
    model = ModelSession.from_pretrained(args.pretrained, args.data)
    c = TestClient(create_app("bench", model=model, threads=1))
    h = {"X-Advnets-Token": "bench"}
    digit = torch.rand(784, generator=torch.Generator().manual_seed(0)).tolist()
    directions = model.info()["directions"]
    rows = [
        ("grid of 64 samples", lambda: c.post("/api/model/grid", json={"seed": 0, "n": 64}, headers=h)),
        ("path of 10", lambda: c.post("/api/model/path", json={"seed": 0, "a": 0, "b": 1, "steps": 10}, headers=h)),
        ("drawn digit's verdict", lambda: c.post("/api/model/verdict", json={"pixels": digit}, headers=h)),
        ("nearest training images", lambda: c.post("/api/model/neighbours", json={"seed": 0, "index": 3}, headers=h)),
        (
            "z slider move",
            lambda: c.post("/api/model/move", json={"seed": 0, "index": 3, "amounts": [1.0] * directions}, headers=h),
        ),
    ]
    print(
        f"advnets explore latency, {args.pretrained}, neighbours among {model.info()['training_images']} "
        f"training images ({args.data}); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'request':28s} {'median ms':>10s} {'p90 ms':>8s}")
    for name, call in rows:
        t = sorted(timed(call, args.repeats))
        print(f"{name:28s} {1e3 * statistics.median(t):10.1f} {1e3 * t[int(0.9 * (len(t) - 1))]:8.1f}")
    for dataset in ("gaussian", "ring8"):
        c.post("/api/toy/settings", json={"dataset": dataset}, headers=h)
        t = timed(lambda: c.post("/api/toy/step", json={"kind": "iteration", "n": 1}, headers=h), args.repeats * 3)
        print(f"{'toy updates/s, ' + dataset:28s} {len(t) / sum(t):10.1f} {'':8s} (1 iteration + a full view each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
