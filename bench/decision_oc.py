"""Operating characteristics of the sweep's decision rule, by simulation (no training).

Per-seed differences of validation MAE (experiment − baseline) are drawn from normal
distributions with a known true change and a per-seed sd in % of the baseline's mean; five
experiments share one baseline run per seed (their differences correlate by 0.5). Three rules:

* ``before``: the rule before the sequential design: 3 seeds, a 95% paired t interval
  per experiment (no multiplicity control), ⚠️ unchanged when it lies within ±τ (τ = 2%);
* ``fixed 3 seeds``: the current rule with ``sweep.max_seeds=3`` (Holm over the five
  experiments at family level 0.05, TOST at ±5%, one look);
* ``sequential 3+2..10``: the defaults (looks at 3, 5, 7, 9, 10 seeds, O'Brien–Fleming-type
  alpha spending, Holm, TOST at ±5%).

    python bench/decision_oc.py [--phases 20000] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy import stats

from fusion_tuner.sweeps.sequential import DOWN, SAME, UP, Design, PhaseResult, simulate


def today(effects: list[float], sd: float, phases: int, rng: np.random.Generator) -> PhaseResult:
    """The rule before the sequential design, vectorised (see the module docstring)."""
    k, n, tau = len(effects), 3, 0.02
    v = sd**2 / 2
    d = (
        rng.normal(0, math.sqrt(v), (phases, k, n))
        - rng.normal(0, math.sqrt(v), (phases, 1, n))
        + np.asarray(effects)[None, :, None]
    )
    m, s = d.mean(-1), d.std(-1, ddof=1)
    half = stats.t.isf(0.025, n - 1) * s / math.sqrt(n)
    verdict = np.zeros((phases, k), int)
    verdict[(m + half < 0) & (m < -tau)] = DOWN
    verdict[(m - half > 0) & (m > tau)] = UP
    verdict[(m - half >= -tau) & (m + half <= tau)] = SAME
    z = np.zeros((phases, k), bool)
    return PhaseResult(verdict, np.full((phases, k), n), z.astype(int), z.astype(int), z)


RULES = {
    "before (3 seeds, 95% per experiment, ±τ band)": None,
    "fixed 3 seeds (sweep.max_seeds=3)": Design(max_seeds=3),
    "sequential 3+2..10 (defaults)": Design(),
}


def run(phases: int, seed: int) -> list[list[str]]:
    rows = []
    for name, design in RULES.items():
        rng = np.random.default_rng(seed)

        def sim(
            effects: list[float],
            sd: float,
            design: Design | None = design,
            rng: np.random.Generator = rng,
        ) -> PhaseResult:
            if design is None:
                return today(effects, sd, phases, rng)
            return simulate(design, effects, sd, phases, rng)

        row = [name]
        for sd in (0.02, 0.03, 0.05):
            r = sim([0.0] * 5, sd)
            row.append(f"{((r.verdict == DOWN) | (r.verdict == UP)).any(1).mean():.3f}")
        null3 = sim([0.0] * 5, 0.03)
        row.append(f"{(null3.verdict == SAME).mean():.3f}")
        for sd in (0.02, 0.03, 0.05):
            r = sim([-0.05, 0.0, 0.0, 0.0, 0.0], sd)
            row.append(f"{(r.verdict[:, 0] == DOWN).mean():.3f}")
        eff = sim([-0.05, 0.0, 0.0, 0.0, 0.0], 0.03)
        row.append(f"{null3.seeds.mean():.2f} / {eff.seeds[:, 0].mean():.2f}")
        rows.append(row)
    return rows


HEADER = [
    "rule",
    "P(any false ✅/❌), no change, sd 2%",
    "sd 3%",
    "sd 5%",
    "P(⚠️ unchanged), no change, sd 3%",
    "P(✅ down), true −5% (1 of 5), sd 2%",
    "sd 3%",
    "sd 5%",
    "mean seeds per arm: no change / −5% arm (sd 3%)",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phases", type=int, default=20000, help="simulated phases per cell")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    start = time.perf_counter()
    rows = run(args.phases, args.seed)
    se = math.sqrt(0.05 * 0.95 / args.phases)
    print(f"{args.phases} simulated phases of 5 experiments per cell (MC error at 0.05: {se:.4f})")
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
