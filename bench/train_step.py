"""Training and inference throughput (crystals/s) and peak RSS at the plan's model sizes.

Usage: python bench/train_step.py [--store DIR] [--batches N] [--threads 2] [--repeat 2]
                                  [--device cuda] [--json FILE]

Variants, each in its own process (so peak RSS is its own), on the same structures in the same
batches of 64, all on upstream ALIGNN's default k-nearest graph (forward + loss + backward +
AdamW step for training):
  (a) graph   fusion_tuner's graph-only model (``text=none``: 4 ALIGNN + 4 GCN layers, hidden
              256, emb 64, mean readout, MLP head) on fusion_tuner's graphs
              (``dataset.neighbor_strategy=k-nearest``, the default)
  (b) fused   the full fused model, with the tiny text encoder frozen and its outputs read from
              the text-state store (as a run does)
  (c) alignn  upstream alignn.models.alignn_atomwise_pure.ALIGNNAtomWisePure (same sizes,
              calculate_gradient=False) on upstream's own k-nearest graphs of the same
              structures (bench/_upstream.py), when `alignn` is installed; it counts the
              structures whose graph has our sizes (atoms, directed bonds, line-graph edges)
The variants run in turn ``--repeat`` times (a, b, c, a, b, c, ...); the ratios (a)/(c),
(b)/(a) and RSS (a)/(c) are reported per round and as the median over rounds, so that load
changes on a shared machine hit every variant alike. Peak RSS is the high-water mark of the
training loop alone (reset after the data is prepared), on Linux. With ``--device cuda`` (a) and
(b) run on the GPU (batches copied in the timed loop, as in training) and (c) is left out.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _upstream as _up  # bench/_upstream.py: upstream ALIGNN's graph and model
import torch

from fusion_tuner.data.paths import resolve

MINI = "sample://jarvis_dft3d_mini"  # bundled with the package
VARIANTS = ("graph", "fused", "alignn")


def _our_batches(store: Path, texts: Path, batch: int, text: str):
    from fusion_tuner import build_datamodule, compose_config

    cache = Path(tempfile.gettempdir()) / "fusion_tuner_bench_cache"
    cfg = compose_config(
        [
            "dataset=jarvis",
            f"dataset.jarvis_dir={store}",
            f"dataset.descriptions={texts}",
            f"dataset.cache_dir={cache}",
            f"text={text}",
            "text.freeze=true",
            "dataset.train_fraction=0.9",
            "dataset.val_fraction=0.1",
            "dataset.test_fraction=0.0",
            f"batch.batch_size={batch}",
        ]
    )
    dm = build_datamodule(cfg)  # the split only trains the tokenizer; the bench uses every crystal
    return cfg, dm, list(dm.loader(list(dm.graphs.ids), batch_size=batch, shuffle=False))


def _upstream(store: Path, ours: list):
    """Upstream's model and its own k-nearest graphs of the structures of ``ours``, in the same
    batches; and how many structures have a graph of our sizes."""
    from jarvis.core.atoms import Atoms

    from fusion_tuner.data.records import read_jarvis_records

    records = {r["jid"]: r for r in read_jarvis_records("dft_3d", store)}
    batches, same, total = [], 0, 0
    for b in ours:
        pairs = [_up.knearest_graph(Atoms.from_dict(records[i]["atoms"])) for i in b.sample_id]
        atoms = torch.bincount(b.batch, minlength=b.num_graphs).tolist()
        bonds = torch.bincount(b.batch[b.edge_index[1]], minlength=b.num_graphs).tolist()
        lg_bonds = b.batch[b.edge_index[1]][b.lg_edge_index[1]]  # each angle's crystal
        angles = torch.bincount(lg_bonds, minlength=b.num_graphs).tolist()
        for (g, lg), n, e, t in zip(pairs, atoms, bonds, angles, strict=True):
            same += (g.num_nodes, g.num_edges, lg.num_edges) == (n, e, t)
            total += 1
        batches.append((_up.batch(pairs), b.y))
    return _up.model(), batches, {"same_size": same, "structures": total}


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
    from fusion_tuner.models.builders import build_model
    from fusion_tuner.training.text_store import prepare_text_states

    torch.manual_seed(0)
    cfg, dm, ours = _our_batches(store, texts, 64, "none" if variant == "graph" else "tiny")
    cfg.regularization.graph_dropout = dropout
    ours = ours[: n_batches + 1]
    check = None
    if variant == "alignn":
        model, batches, check = _upstream(store, ours)
        fwd = lambda m, g: m(g)["out"]  # noqa: E731
    else:
        model = build_model(cfg, dm.info)
        if variant == "fused":  # as a run does: the frozen encoder's states from the store
            prepare_text_states(cfg, dm, model.text_encoder, torch.device("cpu"))
            ours = list(dm.loader(list(dm.graphs.ids), batch_size=64, shuffle=False))
            ours = ours[: n_batches + 1]
        batches, fwd = [(b, b.y) for b in ours], lambda m, b: m(b).prediction
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
        "graph_check": check,
    }


def _ratios(r: dict[str, dict]) -> dict[str, float]:
    a, b = r["graph"], r["fused"]
    out = {"fused_cost": a["train"] / b["train"]}
    if "alignn" in r:
        c = r["alignn"]
        out |= {
            "train_a_over_c": a["train"] / c["train"],
            "infer_a_over_c": a["infer"] / c["infer"],
            "rss_a_over_c": a["rss_mb"] / c["rss_mb"],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=resolve, default=f"{MINI}/store_full")
    parser.add_argument("--texts", type=resolve, default=f"{MINI}/describe_text.json.zip")
    parser.add_argument(
        "--batches",
        type=int,
        default=17,
        help="timed batches of 64, after one warm-up batch (the 940 crystals with the target fill 15)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="rounds of (a), (b), (c)")
    parser.add_argument(
        "--graph-dropout",
        type=float,
        default=0.15,
        help="graph_dropout of (a) and (b): the plan's 0.15, or 0 to match upstream (no dropout)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, or cuda: (a) and (b) on the GPU")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.variant:
        result = run_variant(
            args.variant,
            args.store.resolve(),
            args.texts.resolve(),
            args.batches,
            args.graph_dropout,
            args.device,
        )
        print(json.dumps(result))
        return
    try:
        import alignn  # noqa: F401

        variants = VARIANTS
    except ImportError:
        variants = VARIANTS[:2]
        print("upstream alignn not installed (pip install alignn): no (c) and no (a)/(c) ratio")
    if args.device != "cpu":
        variants = VARIANTS[:2]
        print(f"device {args.device}: (c) upstream ALIGNN is timed on the CPU only; left out")
    print(f"graph_dropout of (a) and (b): {args.graph_dropout}; graphs: k-nearest")
    rounds = []
    for k in range(args.repeat):
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
            res[v] = r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"round {k + 1} ({'abc'[variants.index(v)]}) {v:7s} train {r['train']:6.1f} "
                f"crystals/s  infer {r['infer']:6.1f} crystals/s  peak RSS {r['rss_mb']:6.0f} MB  "
                f"params {r['params']:,}"
            )
        rounds.append(_ratios(res))
        print(f"round {k + 1}: " + ", ".join(f"{n} {x:.2f}" for n, x in rounds[-1].items()))
    if "alignn" in res:
        check = res["alignn"]["graph_check"]
        print(
            f"upstream's graphs have our sizes (atoms, bonds, line-graph edges) for "
            f"{check['same_size']} of {check['structures']} structures"
        )
    med = {n: statistics.median(r[n] for r in rounds) for n in rounds[0]}
    if args.json:  # the last round's figures and the medians of the ratios
        args.json.write_text(
            json.dumps({"device": args.device, "variants": res, "ratios": med}, indent=1)
        )
    print(f"(b)/(a) training time cost: {med['fused_cost']:.2f}x  (goal <= 1.5)")
    if "train_a_over_c" in med:
        print(f"(a)/(c) training throughput: {med['train_a_over_c']:.2f}  (goal >= 1.0)")
        print(f"(a)/(c) inference throughput: {med['infer_a_over_c']:.2f}")
        print(f"peak RSS (a)/(c): {med['rss_a_over_c']:.2f}  (goal <= 1.0)")
    print(f"(medians over {len(rounds)} rounds)")


if __name__ == "__main__":
    main()
