"""Exact linear CKA at the JARVIS test-split size: feature space vs the n x n Gram computation.

Usage: python bench/cka.py [--n 5572] [--d 256] [--repeat 3]

Both compute the same number (checked); time is the best of --repeat, memory is the peak of
Python/NumPy allocations (tracemalloc) during one computation.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from fusion_tuner.analysis.cka_estimators import gram_cka, linear_cka


def measure(fn, repeat: int) -> tuple[float, float, float]:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return value, best, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5572)
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.n, args.d)).astype(np.float32)
    y = (0.5 * x + rng.normal(size=(args.n, args.d))).astype(np.float32)
    feat = measure(lambda: linear_cka(x, y), args.repeat)
    gram = measure(
        lambda: gram_cka(
            x.astype(np.float64) @ x.T.astype(np.float64),
            y.astype(np.float64) @ y.T.astype(np.float64),
        ),
        args.repeat,
    )
    assert abs(feat[0] - gram[0]) < 1e-9, (feat[0], gram[0])
    print(f"n={args.n}, d={args.d}, CKA={feat[0]:.6f} (both)")
    print(f"feature space : {feat[1] * 1e3:8.1f} ms, peak {feat[2]:8.1f} MiB")
    print(f"n x n Gram    : {gram[1] * 1e3:8.1f} ms, peak {gram[2]:8.1f} MiB")
    print(f"speed-up {gram[1] / feat[1]:.1f}x, memory {gram[2] / feat[2]:.0f}x smaller")


if __name__ == "__main__":
    main()
