"""One epoch of ``experiment=alignn_reference`` at the JARVIS leaderboard's size, timed and
projected to the whole 300-epoch run.

Usage: python bench/epoch_time.py [--device cuda] [--threads 8] [--jarvis-dir DIR]
                                  [--data fusion_tuner/data/samples] [--crystals 55713] [--dry]
                                  [--json FILE] [--workdir DIR]

Data, in this order:

* real: ``--jarvis-dir`` holds ``jdft_3d-8-18-2021.json.zip`` (figshare's ``dft_3d_2021``, the
  55,713 records the leaderboard's splits were drawn from): the run's data exactly, with the
  leaderboard's ``optb88vdw_bandgap`` split file and ``dataset.split_labels=use``
  (44,569 / 5,572 / 5,572 crystals);
* synthetic otherwise: ``--crystals`` records (default 55,713, split 80/10/10 like the
  leaderboard's) drawn with replacement from the 1,104 real JARVIS structures of
  ``jarvis_dft3d_mini/store_full``, so the graphs have those crystals' sizes (their atom counts
  are a sample of JARVIS, not dft_3d's own distribution: the record states the mean atoms per
  crystal so that the two can be compared; ``--supercell N`` repeats each structure N times to
  see how the cost grows with the crystals' size).

The model, optimizer, schedule, loss and batch are the recipe's (``experiment=alignn_reference``:
hidden 256, 4 + 4 layers, batch 64, AdamW, OneCycleLR, MSE on the raw target), trained by
fusion_tuner's own loop (:func:`~fusion_tuner.training.loop.train_epoch` and ``evaluate``)
on the run's loaders. Timed: data preparation (featurisation, once per data set; cached), one
training pass over the training split and one evaluation pass over the validation split.
Projected: ``epochs x (train + val) + one test pass`` (the test pass timed as the validation
pass scaled by the split sizes). ``--dry`` (a CPU check of this script and of
``bench/gpu_check.sh``): 200 synthetic crystals and a slim model (hidden 32, 1 + 1 layers); its
numbers say nothing about the recipe's cost.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]  # this checkout's fusion_tuner
DATA = ROOT / "fusion_tuner" / "data" / "samples"  # the bundled samples (or ../shared/data)
REAL_FILE = "jdft_3d-8-18-2021.json"  # jarvis.db.figshare.get_db_info()["dft_3d_2021"][1]
SPLIT = "jarvis_leaderboard_dft3d/SinglePropertyPrediction_dft_3d_optb88vdw_bandgap.json.zip"
LEADERBOARD_CRYSTALS = 55_713
DRY_CRYSTALS = 200


def synthetic_store(shared: Path, n: int, out: Path, seed: int = 0, supercell: int = 1) -> Path:
    """A ``dft_3d_2021`` store of ``n`` records drawn with replacement from ``store_full``
    (ids ``SYN-<i>``, target ``optb88vdw_bandgap`` kept, "na" -> 0), each structure repeated
    ``supercell`` times along its first lattice vector (the same local environments, that many
    times the atoms and bonds). Written once, then reused."""
    target = out / f"{REAL_FILE}.zip"
    if target.is_file():
        return out
    (zipped,) = sorted((shared / "jarvis_dft3d_mini" / "store_full").glob("*.zip"))
    with zipfile.ZipFile(zipped) as z:
        pool = json.loads(z.read(z.namelist()[0]))
    if supercell > 1:
        from jarvis.core.atoms import Atoms

        for r in pool:
            atoms = Atoms.from_dict(r["atoms"]).make_supercell_matrix([supercell, 1, 1])
            r["atoms"] = atoms.to_dict()
    rng = random.Random(seed)
    records = []
    for i in range(n):
        r = dict(rng.choice(pool))
        r["jid"] = f"SYN-{i}"
        gap = r.get("optb88vdw_bandgap")
        r["optb88vdw_bandgap"] = gap if isinstance(gap, (int, float)) else 0.0
        records.append(r)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"{REAL_FILE}.zip.tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(REAL_FILE, json.dumps(records))
    os.replace(tmp, target)
    return out


def overrides(args: argparse.Namespace, store: Path, real: bool) -> list[str]:
    ov = [
        "experiment=alignn_reference",
        "dataset=jarvis",
        "dataset.name=dft_3d_2021",
        f"dataset.jarvis_dir={store}",
        "dataset.target=optb88vdw_bandgap",
        f"dataset.cache_dir={args.workdir / 'cache'}",
        f"dataset.num_workers={args.threads if args.threads > 1 else 0}",
        f"trainer.device={args.device}",
        f"trainer.num_threads={args.threads}",
    ]
    if real:
        ov += [f"dataset.split_file={args.shared / SPLIT}", "dataset.split_labels=use"]
    if args.dry:
        ov += ["arch.hidden_features=32", "arch.alignn_layers=1", "arch.gcn_layers=1"]
    return ov


def measure(args: argparse.Namespace) -> dict:
    from fusion_tuner import build_datamodule, compose_config
    from fusion_tuner.config import max_epochs
    from fusion_tuner.models.builders import build_model
    from fusion_tuner.training.loop import evaluate, train_epoch
    from fusion_tuner.training.optim import build_optimizer, build_scheduler

    real = args.jarvis_dir is not None and (args.jarvis_dir / f"{REAL_FILE}.zip").is_file()
    if real:
        store = args.jarvis_dir
    else:
        n = DRY_CRYSTALS if args.dry else args.crystals
        where = args.workdir / f"synthetic-{n}-x{args.supercell}"
        store = synthetic_store(args.shared, n, where, supercell=args.supercell)
    cfg = compose_config(overrides(args, store, real))
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    dm = build_datamodule(cfg)
    prep = time.perf_counter() - start
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model(cfg, dm.info).to(device)
    sizes = {s: len(dm.datasets[s]) for s in ("train", "val", "test")}
    steps = math.ceil(sizes["train"] / cfg.batch.batch_size)
    epochs = max_epochs(cfg)
    opt = build_optimizer(model, cfg.scheduler, cfg.regularization.weight_decay)
    sched = build_scheduler(opt, cfg.scheduler, epochs, steps)
    dm.pin_memory = device.type == "cuda"
    train_loader = dm.loader("train", shuffle=True, generator=torch.Generator().manual_seed(0))
    val_loader = dm.loader("val", shuffle=False)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    sync()
    t0 = time.perf_counter()
    train_epoch(model, train_loader, opt, sched, cfg, device)
    sync()
    t1 = time.perf_counter()
    evaluate(model, val_loader, cfg, device)
    sync()
    t2 = time.perf_counter()
    train_s, val_s = t1 - t0, t2 - t1
    test_s = val_s * sizes["test"] / max(1, sizes["val"])
    atoms = [
        int(g.num_nodes)
        for g in (dm.datasets["train"][i] for i in range(min(2000, sizes["train"])))
    ]
    projected = epochs * (train_s + val_s) + test_s
    synthetic = (
        f"synthetic ({sum(sizes.values())} crystals drawn from store_full's 1,104 structures"
    )
    synthetic += f", each a {args.supercell}x1x1 supercell)" if args.supercell > 1 else ")"
    return {
        "data": "dft_3d_2021 (real)" if real else synthetic,
        "dry": args.dry,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": args.threads,
        "splits": sizes,
        "mean_atoms_per_crystal": sum(atoms) / max(1, len(atoms)),
        "hidden_features": cfg.arch.hidden_features,
        "batch_size": cfg.batch.batch_size,
        "steps_per_epoch": steps,
        "epochs": epochs,
        "data_prep_s": prep,
        "train_pass_s": train_s,
        "val_pass_s": val_s,
        "epoch_s": train_s + val_s,
        "train_crystals_per_s": sizes["train"] / train_s,
        "projected_run_s": projected,
        "projected_run_h": projected / 3600,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--jarvis-dir", type=Path, help=f"a folder holding {REAL_FILE}.zip")
    parser.add_argument("--shared", "--data", dest="shared", type=Path, default=DATA)
    parser.add_argument("--crystals", type=int, default=LEADERBOARD_CRYSTALS)
    parser.add_argument(
        "--supercell", type=int, default=1, help="synthetic: repeat each structure N times (a axis)"
    )
    parser.add_argument("--dry", action="store_true", help="200 crystals, slim model (a check)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "fusion_tuner_epoch_time"
    )
    args = parser.parse_args(argv)
    if not (args.shared / "jarvis_dft3d_mini" / "store_full").is_dir() and not args.jarvis_dir:
        sys.exit(f"--shared {args.shared}: no jarvis_dft3d_mini/store_full (the structures)")
    result = measure(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
