"""Data-loader throughput alone (crystals/s, 0/1/2 workers) against the model's training step on
the same batches, on real structures.

Usage: python bench/loader.py [--threads 2] [--crystals 1024] [--repeats 3] [--device cpu|cuda]
                              [--data DIR] [--json FILE]

Data sets: the 1,104 JARVIS crystals of sample://jarvis_dft3d_mini and the 50 labelled
ALIGNN sample structures (sample://jarvis_dft3d_alignn_sample50; larger cells), each
with its descriptions. Each is drawn as a fixed shuffled list of ``--crystals`` ids (the 50
repeated), in batches of 64, as ``CrystalDataModule.loader`` serves a training run:

* loader: batches per second through ``dm.loader`` (vectorised batches from the precomputed
  graph cache; workers persistent, so the steady state is timed after a first pass that starts
  them); best of ``--repeats`` passes, with the spread;
* with 768-wide text states: the same, with a text-state store attached (a frozen one-layer
  encoder of MatSciBERT's width: what a run with a frozen or partially frozen MatSciBERT loads
  per batch);
* per-crystal PyG path: ``torch_geometric.loader.DataLoader`` over the plain dataset (one
  ``Data`` per crystal, ``Batch.from_data_list``), 0 workers; and the same with the line graph,
  cosines and bond lengths derived per crystal (the loader before this change);
* model step: bench/train_step.py's graph-only ALIGNN (the plan's sizes) forward, loss,
  backward and AdamW step on the first batches (on ``--device``).

Prints crystals/s of each and the ratio loader / model step (target: >= 10 with one worker),
and the size of the graph cache entry (what the precomputed arrays add).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's fusion_tuner, and train_step
from fusion_tuner.paths import SAMPLES_DIR  # noqa: E402

PRECOMPUTED = ("bond_length", "lg_src", "lg_ptr", "angle_cos")


def _datasets(shared: Path, cache: Path) -> dict[str, list[str]]:
    mini, folder = shared / "jarvis_dft3d_mini", shared / "jarvis_dft3d_alignn_sample50"
    texts = mini / "describe_text.json.zip"
    common = [
        f"dataset.descriptions={texts}",
        f"dataset.cache_dir={cache}",
        "dataset.train_fraction=0.8",
        "dataset.val_fraction=0.2",
        "dataset.test_fraction=0.0",
    ]
    return {
        "1,104 JARVIS": ["dataset=jarvis", f"dataset.jarvis_dir={mini / 'store_full'}", *common],
        "50 ALIGNN sample": ["dataset=folder", f"dataset.root={folder}", *common],
    }


def _rate(loader, repeats: int) -> tuple[float, float, float]:
    """(best, worst, first-pass) crystals/s over ``repeats`` timed passes after a first one."""
    rates = []
    for i in range(repeats + 1):
        start, n = time.perf_counter(), 0
        for batch in loader:
            n += batch.num_graphs
        rates.append(n / (time.perf_counter() - start))
        if i == 0:
            first = rates.pop()
    return max(rates), min(rates), first


class _Derived(torch.utils.data.Dataset):
    """The per-crystal path as it was before the cache held line graphs: derive them here."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        from fusion_tuner.data.graphs import bond_cosines, line_graph

        d = self.dataset[index]
        row = self.dataset.rows[index]
        edge_index, r = self.dataset.graphs.bonds(row)
        lg = line_graph(edge_index, d.num_nodes)
        d.lg_edge_index = torch.from_numpy(lg)
        d.angle_cos = torch.from_numpy(bond_cosines(r.astype(np.float64), lg))
        d.bond_length = torch.from_numpy(np.linalg.norm(r, axis=1))
        return d


def _model_rate(cfg, dm, batches, device: torch.device, steps: int) -> float:
    import dataclasses

    from fusion_tuner.models.builders import build_model

    torch.manual_seed(0)  # the graph-only model (text=none): ALIGNN, mean readout, head
    graph_cfg = copy.deepcopy(cfg)
    graph_cfg.text.enabled = False
    info = dataclasses.replace(dm.info, modality="graph")
    model = build_model(graph_cfg, info).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    n, start = 0, None
    for i, batch in enumerate(batches[: steps + 1]):
        if i == 1:  # the first step warms up
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            n, start = 0, time.perf_counter()
        b = batch.to(device, non_blocking=True)
        loss = torch.nn.functional.mse_loss(model(b).prediction, b.y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += b.num_graphs
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return n / (time.perf_counter() - start)


def _attach_wide_states(cfg_overrides: list[str], dm, device: torch.device) -> dict:
    """A store of 768-wide states (a frozen one-layer encoder of MatSciBERT's width)."""
    from fusion_tuner import compose_config
    from fusion_tuner.models.builders import build_model
    from fusion_tuner.training.text_store import prepare_text_states

    cfg = compose_config(
        [
            *cfg_overrides,
            "text.freeze=true",
            "text.tiny_hidden_size=768",
            "text.tiny_num_layers=1",
            "text.tiny_num_heads=12",
            "text.tiny_intermediate_size=3072",
        ]
    )
    torch.manual_seed(0)
    model = build_model(cfg, dm.info).to(device)
    return prepare_text_states(cfg, dm, model.text_encoder, device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ft_bench_loader")
    p.add_argument("--crystals", type=int, default=1024, help="crystals drawn per pass")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model-steps", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="where the model step runs")
    p.add_argument(
        "--data",
        type=Path,
        default=SAMPLES_DIR,
        help="a folder holding jarvis_dft3d_mini and jarvis_dft3d_alignn_sample50 (default: the "
        "samples bundled with the package)",
    )
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from torch_geometric.loader import DataLoader as PygLoader

    from fusion_tuner import compose_config
    from fusion_tuner.data.module import CrystalDataModule

    print(
        f"batches of {args.batch_size}, {args.crystals} crystals per pass, best of "
        f"{args.repeats} passes [worst]; model step on {device}, {args.threads} threads"
    )
    print("| data | what | crystals/s | ÷ model step |")
    print("|---|---|---|---|")
    results: list[dict] = []
    for name, overrides in _datasets(args.data.resolve(), args.cache).items():
        cfg = compose_config(overrides)
        dm = CrystalDataModule(cfg).setup()
        dm.pin_memory = device.type == "cuda"
        ids = list(dm.graphs.ids)
        order = random.Random(0).sample(ids * -(-args.crystals // len(ids)), args.crystals)
        batches = list(dm.loader(order, batch_size=args.batch_size, shuffle=False, num_workers=0))
        model = _model_rate(cfg, dm, batches, device, args.model_steps)
        print(f"| {name} | model step (graph-only, plan sizes) | {model:.1f} | 1 |", flush=True)
        results.append({"data": name, "what": "model step", "rate": model, "ratio": 1.0})

        def row(what: str, loader, data: str = name, model: float = model) -> None:
            best, worst, first = _rate(loader, args.repeats)
            print(
                f"| {data} | {what} | {best:.0f} [{worst:.0f}; first pass {first:.0f}] "
                f"| {best / model:.1f} |",
                flush=True,
            )
            results.append({"data": data, "what": what, "rate": best, "ratio": best / model})

        for workers in (0, 1, 2):
            row(
                f"loader, {workers} workers",
                dm.loader(order, args.batch_size, False, None, workers),
            )
        report = _attach_wide_states(overrides, dm, device)
        for workers in (0, 1, 2):
            loader = dm.loader(order, args.batch_size, False, None, workers)
            row(f"loader + 768-wide text states, {workers} workers", loader)
        dm.attach_text_states(None)
        plain = dm.dataset(order)
        row("per-crystal PyG path, 0 workers", PygLoader(plain, batch_size=args.batch_size))
        derived = PygLoader(_Derived(plain), batch_size=args.batch_size)
        row("per-crystal PyG path deriving line graphs (before), 0 workers", derived)
        g = dm.graphs
        extra = sum(getattr(g, k).numel() * getattr(g, k).element_size() for k in PRECOMPUTED)
        entry = next((args.cache / "features").glob(f"graphs-{dm.report['cache']['graphs'][0]}.pt"))
        size = entry.stat().st_size
        print(
            f"  {name}: graph cache entry {size / 1e6:.2f} MB, of which precomputed line graphs, "
            f"cosines and bond lengths {extra / 1e6:.2f} MB ({size / (size - extra):.1f}x the "
            f"entry without them); {len(g.lg_src) / g.edge_index.shape[1]:.1f} line-graph edges "
            f"per bond; text states {report['bytes_per_crystal'] / 1e3:.0f} KB per crystal",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
