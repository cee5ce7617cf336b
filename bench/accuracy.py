"""Accuracy on real data: our graph-only model vs upstream ALIGNN vs the fused model vs baselines.

Usage: python bench/accuracy.py [--limit N] [--epochs E] [--seeds 0 1 2] [--batch 64]
                                [--out bench/results/accuracy] [--workdir DIR]

On the same crystals, the same seeded 80/10/10 split, the same batches in the same order, the
same loss (MSE on the standardised target), optimizer (AdamW, weight decay on weight matrices
only), one-cycle schedule, gradient clipping and epochs, for each seed:

  (a) graph     fusion_tuner with ``text=none`` (ALIGNN, mean readout, MLP head), the plan's
                baseline sizes (4 ALIGNN + 4 GCN layers, hidden 256, embedding 64, graph dropout
                0.15), trained by fusion_tuner's own loop (``fusion_tuner.train``)
  (b) upstream  ``alignn.models.alignn_atomwise_pure.ALIGNNAtomWisePure`` at the same sizes
                (``calculate_gradient=False``), on upstream's own k-nearest graphs of the same
                structures (``nearest_neighbor_edges`` + ``build_undirected_edgedata``, line graph
                by ``_line_graph_edges``: what ``Graph.atom_dgl_multigraph`` builds, as
                ``TorchGraph``s), trained by :func:`train_upstream`, a copy of our loop
  (c) fused     the full fused model (``text=tiny``: the offline tiny BERT on
                ``Atoms.describe()`` texts), trained like (a)
  (d) baselines the mean of the training targets; ridge regression and gradient-boosted trees
                on element fractions (composition only, no structure)
  (e) by site   ridge on per-site element one-hots and gradient-boosted trees on per-site CGCNN
                features (which element sits on which site, no geometry; the sites in the
                structure's own atom order): ``--baselines-only`` runs (d) and (e) alone

Every model is selected on validation MAE; the test MAE is that of the best validation epoch.
Printed and written (``<out>.json``, ``<out>.md``): test MAE mean ± sd over seeds per model,
the ratios (a)/(b) and (c)/(a) with 95 % t-intervals of the per-seed ratios, and the seconds
per training epoch. Finished runs are kept under ``--workdir`` and reused when the command is
rerun with the same settings, so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _upstream  # bench/_upstream.py: upstream ALIGNN's graph and model
import numpy as np
import torch

from fusion_tuner.paths import SAMPLES_DIR

ROOT = Path(__file__).resolve().parents[1]
PEROVSKITES = SAMPLES_DIR / "perov5_castelli" / "perov5_val.csv.zip"  # bundled with the package
MODELS = ("graph", "upstream", "fused")
LABELS = {
    "graph": "(a) fusion_tuner graph-only (text=none)",
    "upstream": "(b) upstream ALIGNNAtomWisePure",
    "fused": "(c) fusion_tuner fused (tiny text encoder)",
    "mean": "(d) mean of the training targets",
    "ridge": "(d) ridge on element fractions",
    "trees": "(d) gradient-boosted trees on element fractions",
    "site_ridge": "(e) ridge on per-site element one-hots",
    "site_trees": "(e) gradient-boosted trees on per-site CGCNN features",
}
log = logging.getLogger("bench.accuracy")


# ------------------------------------------------------------------------------------- data
@dataclass
class Prepared:
    """The data every model sees: one split, one set of structures.

    Attributes:
        overrides: fusion_tuner overrides selecting the data, the split and the training
            settings shared by (a) and (c).
        splits: ids per split (fusion_tuner's seeded split, the same for every model).
        targets: id -> target (eV/atom).
        upstream: id -> upstream's ``(g, lg)`` TorchGraph pair.
        fractions: id -> element-fraction vector (103,).
        warmup_steps, steps_per_epoch: of the one-cycle schedule shared by all.
        graph_check: do upstream's graphs have our sizes (atoms, directed bonds, line graph)?
    """

    overrides: list[str]
    splits: dict[str, list[str]]
    targets: dict[str, float]
    upstream: dict[str, Any] = field(repr=False)
    fractions: dict[str, np.ndarray] = field(repr=False)
    warmup_steps: int
    steps_per_epoch: int
    graph_check: dict[str, int]
    seconds: float
    # id -> atomic numbers in the structure's own atom order (the sites of (e))
    sites: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def prepare(args: argparse.Namespace) -> Prepared:
    """Load the table once through fusion_tuner (text=none: no descriptions), take its split,
    build upstream's graphs of the same structures and the composition features."""
    from jarvis.core.atoms import Atoms

    from fusion_tuner import build_datamodule, compose_config
    from fusion_tuner.data.graphs import line_graph
    from fusion_tuner.data.tables import load_table

    start = time.perf_counter()
    data = [
        "dataset=table",
        f"dataset.path={args.data}",
        "dataset.structure_column=cif",
        "dataset.id_column=material_id",
        "dataset.target=heat_ref",
        f"dataset.split_seed={args.split_seed}",
        f"dataset.cache_dir={args.workdir / 'cache'}",
        f"dataset.num_workers={args.threads}",
    ]
    if args.limit:
        data.append(f"dataset.limit={args.limit}")
    dm = build_datamodule(compose_config([*data, "text=none"]))
    splits = {k: list(v) for k, v in dm.splits.items()}
    # (c)'s texts: Atoms.describe() of every crystal and their tokens, cached once here
    fused = build_datamodule(compose_config(data))
    if fused.splits != splits:
        raise RuntimeError("the fused model's data has another split (a crystal without text?)")
    g = dm.graphs
    targets = {cid: float(g.targets[row]) for cid, row in g.row_of.items()}
    n_train = len(splits["train"])
    steps = math.ceil(n_train / args.batch)
    warmup = int(args.warmup_fraction * steps * args.epochs)
    shared = [
        *data,
        "arch=baseline",
        f"batch.batch_size={args.batch}",
        f"scheduler.epochs={args.epochs}",
        f"scheduler.warmup_steps={warmup}",
        f"scheduler.learning_rate={args.lr}",
        f"regularization.graph_dropout={args.graph_dropout}",
        f"trainer.num_threads={args.threads}",
        "trainer.device=cpu",
        "trainer.progress=line",
    ]
    crystals, _ = load_table(Path(args.data), "heat_ref", "cif", "material_id", args.limit or None)
    by_id = {c.id: c for c in crystals}
    upstream, fractions, sites = {}, {}, {}
    check = {"crystals": 0, "same_size": 0}
    for cid in (i for k in ("train", "val", "test") for i in splits[k]):
        c = by_id[cid]
        atoms = Atoms(lattice_mat=c.lattice, coords=c.cart, elements=c.elements, cartesian=True)
        upstream[cid] = _upstream.knearest_graph(atoms)
        row = g.row_of[cid]
        edge_index, _ = g.bonds(row)
        ours = (
            g.num_atoms(row),
            edge_index.shape[1],
            line_graph(edge_index, g.num_atoms(row)).shape[1],
        )
        theirs = (
            upstream[cid][0].num_nodes,
            upstream[cid][0].num_edges,
            upstream[cid][1].num_edges,
        )
        check["crystals"] += 1
        check["same_size"] += ours == theirs
        z = g.atomic_numbers(row).long().numpy()
        fractions[cid] = np.bincount(z, minlength=104)[1:104] / len(z)
        sites[cid] = z
    log.info(
        "data: %s crystals, upstream graphs of the same size as ours for %d of %d",
        {k: len(v) for k, v in splits.items()},
        check["same_size"],
        check["crystals"],
    )
    return Prepared(
        overrides=shared,
        splits=splits,
        targets=targets,
        upstream=upstream,
        fractions=fractions,
        warmup_steps=warmup,
        steps_per_epoch=steps,
        graph_check=check,
        seconds=time.perf_counter() - start,
        sites=sites,
    )


# ------------------------------------------------------------------------------ our models
def train_ours(variant: str, seed: int, prep: Prepared, args: argparse.Namespace) -> dict:
    """(a) ``text=none`` or (c) ``text=tiny``, trained by ``fusion_tuner.train`` into
    ``<workdir>/runs/<variant>-seed<seed>`` (a completed run there is reused)."""
    from fusion_tuner import compose_config, train
    from fusion_tuner.rundir import RunDir

    text = "none" if variant == "graph" else "tiny"
    cfg = compose_config(
        [*prep.overrides, f"text={text}", f"random_seed={seed}", f"experiment_name={variant}"]
    )
    run_dir = args.workdir / "runs" / f"{variant}-seed{seed}"
    start = time.perf_counter()
    metrics = train(cfg, run_dir)
    files = RunDir(run_dir)
    if files.read_split() != prep.splits:  # e.g. a crystal Atoms.describe() could not describe
        raise RuntimeError(f"{run_dir} trained on another split than the benchmark's")
    history = files.read_history()
    return {
        "model": variant,
        "seed": seed,
        "test_mae": metrics["test"]["mae"],
        "val_mae": metrics["val"]["mae"],
        "train_mae": metrics["train"]["mae"],
        "best_epoch": metrics["best_epoch"],
        "epochs": metrics["epochs_run"],
        "epoch_seconds": statistics.mean(float(h["epoch_seconds"]) for h in history),
        "wall_s": metrics.get("wall_time_s", time.perf_counter() - start),
        "params": None,
    }


# ------------------------------------------------------------------------------- upstream
def _upstream_batches(ids: list[str], prep: Prepared, batch: int, order: list[list[int]] | None):
    groups = order or [list(range(i, min(i + batch, len(ids)))) for i in range(0, len(ids), batch)]
    for idx in groups:
        chosen = [ids[i] for i in idx]
        yield (
            _upstream.batch([prep.upstream[c] for c in chosen]),
            torch.tensor([prep.targets[c] for c in chosen], dtype=torch.float32),
        )


@torch.no_grad()
def _upstream_mae(model, ids: list[str], prep: Prepared, batch: int, mean: float, std: float):
    model.eval()
    errors = []
    for inputs, y in _upstream_batches(ids, prep, batch, None):
        pred = model(inputs)["out"].float() * std + mean
        errors.append((pred.double() - y.double()).abs())
    return float(torch.cat(errors).mean())


def train_upstream(seed: int, prep: Prepared, args: argparse.Namespace) -> dict:
    """(b): upstream's model through a copy of fusion_tuner's loop (``training/trainer.py``,
    ``training/loop.py``): the same seeds per epoch, hence the same batches in the same order,
    the same standardisation, loss, optimizer groups, schedule, clipping and model selection."""
    from fusion_tuner.config import SchedulerConfig
    from fusion_tuner.runtime import seed_everything
    from fusion_tuner.training.optim import build_optimizer, build_scheduler

    out_file = args.workdir / "runs" / f"upstream-seed{seed}" / "result.json"
    key = _settings_key(prep, args)
    if out_file.is_file():
        saved = json.loads(out_file.read_text())
        if saved.get("settings") == key:
            return saved["result"]
    train_ids = prep.splits["train"]
    y = torch.tensor([prep.targets[c] for c in train_ids], dtype=torch.float64)
    mean, std = float(y.mean()), float(y.std())  # as Trainer.from_config: unbiased std
    seed_everything(seed)  # model init, as Trainer.from_config
    model = _upstream.model()
    sched = SchedulerConfig(
        learning_rate=args.lr,
        optimizer="adamw",
        scheduler="onecycle",
        warmup_steps=prep.warmup_steps,
        epochs=args.epochs,
    )
    optimizer = build_optimizer(model, sched, args.weight_decay)
    scheduler = build_scheduler(optimizer, sched, args.epochs, prep.steps_per_epoch)
    generator = torch.Generator()
    best, best_epoch, best_state, seconds = math.inf, -1, None, []
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        # as Trainer.fit: the loader's generator and torch's global seed per (seed, epoch)
        generator.manual_seed(seed * 100_003 + epoch)
        torch.manual_seed(seed * 100_003 + epoch)
        order = [
            idx.tolist()
            for idx in torch.utils.data.DataLoader(
                range(len(train_ids)), batch_size=args.batch, shuffle=True, generator=generator
            )
        ]
        model.train()
        t0 = time.perf_counter()
        for inputs, target in _upstream_batches(train_ids, prep, args.batch, order):
            pred = model(inputs)["out"]
            loss = torch.nn.functional.mse_loss(pred, (target - mean) / std)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)  # trainer.grad_clip_norm
            optimizer.step()
            scheduler.step()
        seconds.append(time.perf_counter() - t0)
        val = _upstream_mae(model, prep.splits["val"], prep, args.batch, mean, std)
        if val < best:
            best, best_epoch, best_state = val, epoch, copy.deepcopy(model.state_dict())
        log.info("upstream seed %d epoch %d: val MAE %.4f (%.1fs)", seed, epoch, val, seconds[-1])
    model.load_state_dict(best_state)
    result = {
        "model": "upstream",
        "seed": seed,
        "test_mae": _upstream_mae(model, prep.splits["test"], prep, args.batch, mean, std),
        "val_mae": best,
        "train_mae": _upstream_mae(model, train_ids, prep, args.batch, mean, std),
        "best_epoch": best_epoch,
        "epochs": args.epochs,
        "epoch_seconds": statistics.mean(seconds),
        "wall_s": time.perf_counter() - start,
        "params": sum(p.numel() for p in model.parameters()),
    }
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps({"settings": key, "result": result}, indent=1))
    return result


def _settings_key(prep: Prepared, args: argparse.Namespace) -> dict:
    return {
        "overrides": prep.overrides,
        "n": {k: len(v) for k, v in prep.splits.items()},
        "weight_decay": args.weight_decay,
    }


# ------------------------------------------------------------------------------- running
_PREP: Prepared | None = None  # the forked workers' copy of the prepared data


def _run_one(job: tuple[str, int], args: argparse.Namespace) -> dict:
    model, seed = job
    torch.set_num_threads(args.threads)
    log.info("training %s seed %d", model, seed)
    if model == "upstream":
        result = train_upstream(seed, _PREP, args)
    else:
        result = train_ours(model, seed, _PREP, args)
    log.info("result: %s", result)
    return result


def run_all(jobs: list[tuple[str, int]], prep: Prepared, args: argparse.Namespace) -> list[dict]:
    """Every (model, seed) run, ``args.jobs`` at a time in forked processes (``args.threads``
    torch threads each); results in job order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    global _PREP
    _PREP = prep
    if args.jobs <= 1:
        return [_run_one(job, args) for job in jobs]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
        futures = [pool.submit(_run_one, job, args) for job in jobs]
        return [f.result() for f in futures]


# ------------------------------------------------------------------------------ baselines
def baselines(prep: Prepared, seeds: list[int]) -> list[dict]:
    """(d): the training mean; ridge (alpha chosen on validation MAE) and gradient-boosted
    trees (one per seed) on element fractions."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge

    def xy(split: str) -> tuple[np.ndarray, np.ndarray]:
        ids = prep.splits[split]
        return np.stack([prep.fractions[i] for i in ids]), np.array([prep.targets[i] for i in ids])

    (xt, yt), (xv, yv), (xs, ys) = xy("train"), xy("val"), xy("test")

    out = []
    for seed in seeds:
        out.append(
            {"model": "mean", "seed": seed, "test_mae": mae(np.full_like(ys, yt.mean()), ys)}
        )
        fits = [Ridge(alpha=a).fit(xt, yt) for a in (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)]
        ridge = min(fits, key=lambda m: mae(m.predict(xv), yv))
        out.append({"model": "ridge", "seed": seed, "test_mae": mae(ridge.predict(xs), ys)})
        trees = HistGradientBoostingRegressor(loss="absolute_error", random_state=seed)
        trees.fit(xt, yt)
        out.append({"model": "trees", "seed": seed, "test_mae": mae(trees.predict(xs), ys)})
    return out


def mae(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.abs(pred - y).mean())


def site_features(z: np.ndarray, n_sites: int) -> tuple[np.ndarray, np.ndarray]:
    """Site-resolved composition, no geometry: the element on each site, the sites taken in the
    structure's own atom order (Perov-5 lists every crystal as A, B, then its three anion
    sites), padded with zeros (or cut) to ``n_sites``.

    Returns:
        (one-hot of the element per site, (n_sites * 103,); CGCNN's 92 atom features per site,
        (n_sites * 92,)).
    """
    from fusion_tuner.data.graphs import cgcnn_table

    table = np.nan_to_num(cgcnn_table(), nan=0.0)
    onehot = np.zeros((n_sites, 103))
    cgcnn = np.zeros((n_sites, table.shape[1]))
    for site, number in enumerate(z[:n_sites]):
        onehot[site, int(number) - 1] = 1.0
        cgcnn[site] = table[int(number)]
    return onehot.ravel(), cgcnn.ravel()


def site_baselines(
    splits: dict[str, list[str]],
    targets: dict[str, float],
    sites: dict[str, np.ndarray],
    seeds: list[int],
) -> list[dict]:
    """(e): composition resolved by site, still without geometry: ridge (alpha chosen on
    validation MAE) on per-site element one-hots, and gradient-boosted trees (one per seed) on
    per-site CGCNN features. Against (d) they show how much of what the graph models learn is
    which element sits on which site rather than the structure's geometry."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge

    n_sites = max(len(z) for z in sites.values())
    feats = {cid: site_features(z, n_sites) for cid, z in sites.items()}

    def xy(split: str, which: int) -> tuple[np.ndarray, np.ndarray]:
        ids = splits[split]
        return np.stack([feats[i][which] for i in ids]), np.array([targets[i] for i in ids])

    (xt, yt), (xv, yv), (xs, ys) = xy("train", 0), xy("val", 0), xy("test", 0)
    fits = [Ridge(alpha=a).fit(xt, yt) for a in (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)]
    ridge = min(fits, key=lambda m: mae(m.predict(xv), yv))
    (ct, _), (cs, _) = xy("train", 1), xy("test", 1)
    out = []
    for seed in seeds:
        out.append({"model": "site_ridge", "seed": seed, "test_mae": mae(ridge.predict(xs), ys)})
        trees = HistGradientBoostingRegressor(loss="absolute_error", random_state=seed)
        trees.fit(ct, yt)
        out.append({"model": "site_trees", "seed": seed, "test_mae": mae(trees.predict(cs), ys)})
    return out


def baselines_only(args: argparse.Namespace) -> dict:
    """(d) and (e) alone, on the same data and split as the full benchmark (no graph model, no
    upstream package needed): ``--baselines-only``."""
    from fusion_tuner import build_datamodule, compose_config

    cfg = compose_config(
        [
            "dataset=table",
            f"dataset.path={args.data}",
            "dataset.structure_column=cif",
            "dataset.id_column=material_id",
            "dataset.target=heat_ref",
            f"dataset.split_seed={args.split_seed}",
            f"dataset.cache_dir={args.workdir / 'cache'}",
            *([f"dataset.limit={args.limit}"] if args.limit else []),
            "text=none",
        ]
    )
    dm = build_datamodule(cfg)
    g = dm.graphs
    splits = {k: list(v) for k, v in dm.splits.items()}
    targets = {cid: float(g.targets[row]) for cid, row in g.row_of.items()}
    sites = {cid: g.atomic_numbers(row).long().numpy() for cid, row in g.row_of.items()}
    fractions = {cid: np.bincount(z, minlength=104)[1:104] / len(z) for cid, z in sites.items()}
    prep = Prepared([], splits, targets, {}, fractions, 0, 0, {}, 0.0, sites)
    results = baselines(prep, args.seeds) + site_baselines(splits, targets, sites, args.seeds)
    rows = {}
    for model in ("mean", "ridge", "trees", "site_ridge", "site_trees"):
        maes = [r["test_mae"] for r in results if r["model"] == model]
        rows[model] = {
            "label": LABELS[model],
            "test_mae_mean": statistics.mean(maes),
            "per_seed": maes,
        }
    return {
        "command": "python bench/accuracy.py " + " ".join(args.argv),
        "split_sizes": {k: len(v) for k, v in splits.items()},
        "split_seed": args.split_seed,
        "models": rows,
    }


# ------------------------------------------------------------------------------- report
def ratio_interval(num: list[float], den: list[float]) -> dict[str, float]:
    """Mean of the per-seed ratios num/den with a 95 % t-interval (n - 1 degrees of freedom)."""
    from scipy import stats

    r = [a / b for a, b in zip(num, den, strict=True)]
    m = statistics.mean(r)
    if len(r) < 2:
        return {"mean": m, "low": math.nan, "high": math.nan, "per_seed": r}
    half = stats.t.ppf(0.975, len(r) - 1) * statistics.stdev(r) / math.sqrt(len(r))
    return {"mean": m, "low": m - half, "high": m + half, "per_seed": r}


def summarize(results: list[dict], prep: Prepared, args: argparse.Namespace, wall: float) -> dict:
    by_model: dict[str, list[dict]] = {}
    for r in results:
        by_model.setdefault(r["model"], []).append(r)
    rows = {}
    for model, runs in by_model.items():
        maes = [r["test_mae"] for r in runs]
        rows[model] = {
            "label": LABELS[model],
            "test_mae_mean": statistics.mean(maes),
            "test_mae_sd": statistics.stdev(maes) if len(maes) > 1 else 0.0,
            "per_seed": maes,
            "epoch_seconds": statistics.mean(r["epoch_seconds"] for r in runs)
            if "epoch_seconds" in runs[0]
            else None,
            "best_epochs": [r.get("best_epoch") for r in runs],
        }

    def seeded(model: str) -> list[float]:
        return [r["test_mae"] for r in sorted(by_model[model], key=lambda r: r["seed"])]

    ratios = {}
    if "graph" in by_model and "upstream" in by_model:
        ratios["graph/upstream"] = ratio_interval(seeded("graph"), seeded("upstream"))
    if "graph" in by_model and "fused" in by_model:
        ratios["fused/graph"] = ratio_interval(seeded("fused"), seeded("graph"))
    return {
        "command": "python bench/accuracy.py " + " ".join(args.argv),
        "data": {
            "file": str(Path(args.data).name),
            "target": "heat_ref (eV/atom)",
            "split_sizes": {k: len(v) for k, v in prep.splits.items()},
            "split_seed": args.split_seed,
            "upstream_graphs_same_size": prep.graph_check,
        },
        "training": {
            "epochs": args.epochs,
            "batch_size": args.batch,
            "learning_rate": args.lr,
            "schedule": f"onecycle, {prep.warmup_steps} warm-up steps of "
            f"{prep.steps_per_epoch * args.epochs}",
            "weight_decay": args.weight_decay,
            "graph_dropout_ours": args.graph_dropout,
            "seeds": args.seeds,
            "threads_per_run": args.threads,
            "parallel_runs": args.jobs,
        },
        "models": rows,
        "ratios": ratios,
        "runs": results,
        "wall_time_s": wall,
        "data_preparation_s": prep.seconds,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }


def markdown(s: dict) -> str:
    t = s["training"]
    lines = [
        f"`{s['command']}`",
        "",
        f"Data: {s['data']['file']}, {s['data']['target']}, split "
        f"{s['data']['split_sizes']} (seed {s['data']['split_seed']}); {t['epochs']} epochs, "
        f"batch {t['batch_size']}, AdamW lr {t['learning_rate']}, {t['schedule']}, seeds "
        f"{t['seeds']}; {t['parallel_runs']} runs at a time, {t['threads_per_run']} torch "
        f"thread each. Upstream's graphs have our sizes for "
        f"{s['data']['upstream_graphs_same_size']['same_size']} of "
        f"{s['data']['upstream_graphs_same_size']['crystals']} crystals.",
        "",
        "| model | test MAE (eV/atom), mean ± sd | per seed | s per training epoch |",
        "|---|---|---|---|",
    ]
    for model in (
        "graph",
        "upstream",
        "fused",
        "mean",
        "ridge",
        "trees",
        "site_ridge",
        "site_trees",
    ):
        if model not in s["models"]:
            continue
        r = s["models"][model]
        sec = f"{r['epoch_seconds']:.1f}" if r["epoch_seconds"] is not None else "—"
        per = ", ".join(f"{v:.4f}" for v in r["per_seed"])
        lines.append(
            f"| {r['label']} | {r['test_mae_mean']:.4f} ± {r['test_mae_sd']:.4f} | {per} | {sec} |"
        )
    lines.append("")
    for name, r in s["ratios"].items():
        a, b = name.split("/")
        lines.append(
            f"- test MAE ratio {a}/{b}: **{r['mean']:.3f}**, 95 % interval "
            f"[{r['low']:.3f}, {r['high']:.3f}] (per seed "
            f"{', '.join(f'{v:.3f}' for v in r['per_seed'])})"
        )
    lines.append(
        f"- wall time {s['wall_time_s'] / 60:.1f} min (data preparation "
        f"{s['data_preparation_s'] / 60:.1f} min)"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(PEROVSKITES))
    # the default budget (1,000 crystals, 8 epochs, batch 32, 3 seeds, 2 runs at a time) is
    # sized to finish in about 45 minutes on an idle 2-core machine (README: Benchmarks)
    parser.add_argument("--limit", type=int, default=1000, help="first N crystals (0: all)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--weight-decay", type=float, default=0.0005)
    parser.add_argument("--graph-dropout", type=float, default=0.15)
    parser.add_argument("--warmup-fraction", type=float, default=0.1)
    parser.add_argument("--split-seed", type=int, default=123)
    parser.add_argument(
        "--jobs", type=int, default=2, help="runs in parallel processes (one per core)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "accuracy")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fusion_tuner_bench_accuracy"))
    parser.add_argument(
        "--baselines-only",
        action="store_true",
        help="only (d) and (e), written to <out>_baselines.{json,md}: seconds, no model training",
    )
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.baselines_only:
        result = baselines_only(args)
        lines = [
            f"`{result['command']}`",
            "",
            f"Split {result['split_sizes']} (seed {result['split_seed']}), as the full benchmark's.",
            "",
            "| model | test MAE (eV/atom) | per seed |",
            "|---|---|---|",
        ]
        for r in result["models"].values():
            per = ", ".join(f"{v:.4f}" for v in r["per_seed"])
            lines.append(f"| {r['label']} | {r['test_mae_mean']:.4f} | {per} |")
        out = args.out.with_name(args.out.name + "_baselines")
        out.parent.mkdir(parents=True, exist_ok=True)
        for suffix, text in (
            (".json", json.dumps(result, indent=1) + "\n"),
            (".md", "\n".join(lines) + "\n"),
        ):
            tmp = out.with_suffix(suffix + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, out.with_suffix(suffix))
        print("\n".join(lines))
        return
    # one thread per run before any torch work: the worker processes are forked from here
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    prep = prepare(args)
    # interleaved (seed 0: a, b, c; seed 1: ...), so that load changes hit every model alike
    jobs = [(model, seed) for seed in args.seeds for model in args.models]
    results = run_all(jobs, prep, args)
    results += baselines(prep, args.seeds)
    results += site_baselines(prep.splits, prep.targets, prep.sites, args.seeds)
    summary = summarize(results, prep, args, time.perf_counter() - start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    text = markdown(summary)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
