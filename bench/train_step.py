"""Training and inference throughput (crystals/s) and peak RSS at the plan's model sizes.

Usage: python bench/train_step.py [--store DIR] [--batches N] [--threads 2] [--device cuda]
                                  [--json FILE]

Variants, each in its own process (so peak RSS is its own), on the same structures in the same
batches of 64 (forward + loss + backward + AdamW step for training):
  (a) graph   fusion_tuner's ALIGNN encoder alone (4 ALIGNN + 4 GCN layers, hidden 256, emb 64)
  (b) fused   the full fused model, with the tiny text encoder frozen and its outputs read from
              the text-state store (models/text.py)
  (c) alignn  upstream alignn.models.alignn_atomwise_pure.ALIGNNAtomWisePure (same sizes,
              calculate_gradient=False), when `alignn` is installed
Prints the figures and the ratios (a)/(c), (b)/(a) and RSS (a)/(c). Peak RSS is the high-water
mark of the training loop alone (reset after the data is prepared), on Linux. With
``--device cuda`` (a) and (b) run on the GPU (batches copied in the timed loop, as in training)
and (c) is left out.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "jarvis_dft3d_mini"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's fusion_tuner
SIZES = {"alignn_layers": 4, "gcn_layers": 4, "hidden": 256, "embedding": 64}


def _our_batches(store: Path, texts: Path, batch: int, freeze: bool):
    from fusion_tuner import build_datamodule, compose_config

    cache = Path(tempfile.gettempdir()) / "fusion_tuner_bench_cache"
    cfg = compose_config(
        [
            "dataset=jarvis",
            f"dataset.jarvis_dir={store}",
            f"dataset.descriptions={texts}",
            f"dataset.cache_dir={cache}",
            f"text.freeze={str(freeze).lower()}",
            "dataset.train_fraction=0.9",
            "dataset.val_fraction=0.1",
            "dataset.test_fraction=0.0",
            f"batch.batch_size={batch}",
            # the graph of upstream's build_pure_torch_graph below
            "dataset.neighbor_strategy=pure",
        ]
    )
    dm = build_datamodule(cfg)  # the split only trains the tokenizer; the bench uses every crystal
    return cfg, dm, list(dm.loader(list(dm.graphs.ids), batch_size=batch, shuffle=False))


class GraphOnly(torch.nn.Module):
    """fusion_tuner's ALIGNN encoder with a mean readout and a linear head."""

    def __init__(self, cfg, info) -> None:
        super().__init__()
        from fusion_tuner.models.builders import build_model

        full = build_model(cfg, info)
        self.embedding, self.alignn_layers, self.gcn_layers = (
            full.embedding,
            full.alignn_layers,
            full.gcn_layers,
        )
        self.fc = torch.nn.Linear(cfg.arch.hidden_features, 1)

    def forward(self, b):
        from torch_geometric.utils import scatter

        x, y, z = self.embedding(b.z, b.bond_length, b.angle_cos)
        for layer in self.alignn_layers:
            x, y, z = layer(x, y, z, b.edge_index, b.lg_edge_index)
        for conv in self.gcn_layers:
            x, y = conv(x, b.edge_index, y)
        return self.fc(scatter(x, b.batch, dim=0, dim_size=b.num_graphs, reduce="mean")).squeeze(-1)


def _upstream(store: Path, ids_in_order: list[list[str]]):
    from alignn.models.alignn_atomwise_pure import ALIGNNAtomWisePure, ALIGNNAtomWisePureConfig
    from alignn.torch_graph_builder import batch_torch_graph_pairs, build_pure_torch_graph
    from jarvis.core.atoms import Atoms
    from jarvis.db.figshare import data

    records = {r["jid"]: r for r in data("dft_3d", store_dir=str(store))}
    batches = []
    for ids in ids_in_order:
        pairs = [
            build_pure_torch_graph(
                Atoms.from_dict(records[i]["atoms"]), two_body_cutoff=8.0, max_neighbors=12
            )
            for i in ids
        ]
        g, lg = batch_torch_graph_pairs(pairs)
        y = torch.tensor(
            [
                0.0
                if records[i]["optb88vdw_bandgap"] == "na"
                else float(records[i]["optb88vdw_bandgap"])
                for i in ids
            ]
        )
        batches.append(((g, lg, None), y))
    model = ALIGNNAtomWisePure(
        ALIGNNAtomWisePureConfig(
            name="alignn_atomwise_pure",
            alignn_layers=SIZES["alignn_layers"],
            gcn_layers=SIZES["gcn_layers"],
            hidden_features=SIZES["hidden"],
            embedding_features=SIZES["embedding"],
            atom_input_features=92,
            calculate_gradient=False,
            use_penalty=False,
        )
    )
    return model, batches


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(model, batches, forward, train: bool, device: torch.device) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train(train)
    n, start = 0, None
    for i, (inp, y) in enumerate(batches):
        if i == 1:  # the first batch warms up allocators and caches
            _sync(device)
            start, n = time.perf_counter(), 0
        if device.type == "cuda":
            inp = inp.to(device, non_blocking=True)
            y = inp.y
        if train:
            loss = torch.nn.functional.mse_loss(forward(model, inp), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                forward(model, inp)
        n += len(y)
    _sync(device)
    return n / (time.perf_counter() - start)


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_variant(
    variant: str, store: Path, texts: Path, n_batches: int, dropout: float, device: str = "cpu"
) -> dict:
    torch.manual_seed(0)
    cfg, dm, ours = _our_batches(store, texts, 64, freeze=True)
    cfg.regularization.graph_dropout = dropout
    ours = ours[: n_batches + 1]
    if variant == "graph":
        model = GraphOnly(cfg, dm.info)
        batches, fwd = [(b, b.y) for b in ours], lambda m, b: m(b)
    elif variant == "fused":
        from fusion_tuner.models.builders import build_model
        from fusion_tuner.training.text_store import prepare_text_states

        model = build_model(cfg, dm.info)
        # as a run does: the frozen encoder's states come from the text-state store
        prepare_text_states(cfg, dm, model.text_encoder, torch.device("cpu"))
        ours = list(dm.loader(list(dm.graphs.ids), batch_size=64, shuffle=False))[: n_batches + 1]
        batches, fwd = [(b, b.y) for b in ours], lambda m, b: m(b).prediction
    else:
        model, batches = _upstream(store, [list(b.sample_id) for b in ours])
        fwd = lambda m, g: m(g)["out"]  # noqa: E731
    del dm
    gc.collect()
    dev = torch.device(device)
    model = model.to(dev)
    # Peak RSS of the training itself: reset the high-water mark once the data is prepared
    # (Linux: writing 5 to clear_refs resets VmHWM), then read it after training.
    Path("/proc/self/clear_refs").write_text("5")
    train = _time(model, batches, fwd, train=True, device=dev)
    rss_mb = _peak_rss_mb()
    infer = _time(model, batches, fwd, train=False, device=dev)
    return {
        "variant": variant,
        "train": train,
        "infer": infer,
        "rss_mb": rss_mb,
        "params": sum(p.numel() for p in model.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=SHARED / "store_full")
    parser.add_argument("--texts", type=Path, default=SHARED / "describe_text.json.zip")
    parser.add_argument(
        "--batches", type=int, default=17, help="timed batches of 64 (17 = all 1,104)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--graph-dropout",
        type=float,
        default=0.15,
        help="graph_dropout of (a) and (b): the plan's 0.15, or 0 to match upstream (no dropout)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, or cuda: (a) and (b) on the GPU")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--variant", choices=("graph", "fused", "alignn"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.variant:
        print(
            json.dumps(
                run_variant(
                    args.variant,
                    args.store.resolve(),
                    args.texts.resolve(),
                    args.batches,
                    args.graph_dropout,
                    args.device,
                )
            )
        )
        return
    try:
        import alignn  # noqa: F401

        variants = ("graph", "fused", "alignn")
    except ImportError:
        variants = ("graph", "fused")
        print("upstream alignn not installed (pip install alignn): no (c) and no (a)/(c) ratio")
    if args.device != "cpu":
        variants = ("graph", "fused")
        print(f"device {args.device}: (c) upstream ALIGNN is timed on the CPU only; left out")
    print(f"graph_dropout of (a) and (b): {args.graph_dropout}")
    res = {}
    for v in variants:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--variant",
                v,
                "--store",
                str(args.store),
                "--texts",
                str(args.texts),
                "--batches",
                str(args.batches),
                "--threads",
                str(args.threads),
                "--graph-dropout",
                str(args.graph_dropout),
                "--device",
                args.device,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        res[v] = json.loads(out.stdout.strip().splitlines()[-1])
        r = res[v]
        print(
            f"({'abc'[variants.index(v)]}) {v:7s} train {r['train']:7.1f} crystals/s  infer {r['infer']:7.1f} "
            f"crystals/s  peak RSS {r['rss_mb']:7.0f} MB  params {r['params']:,}"
        )
    a, b = res["graph"], res["fused"]
    print(f"(b)/(a) training time cost: {a['train'] / b['train']:.2f}x  (goal <= 1.5)")
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "variants": res}, indent=1))
    if "alignn" in res:
        c = res["alignn"]
        print(f"(a)/(c) training throughput: {a['train'] / c['train']:.2f}  (goal >= 1.0)")
        print(f"(a)/(c) inference throughput: {a['infer'] / c['infer']:.2f}")
        print(f"peak RSS (a)/(c): {a['rss_mb'] / c['rss_mb']:.2f}  (goal <= 1.0)")


if __name__ == "__main__":
    main()
