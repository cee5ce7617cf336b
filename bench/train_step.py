"""Training and inference throughput (crystals/s) and peak RSS at the plan's model sizes.

Usage: python bench/train_step.py [--store DIR] [--batches N] [--threads 2] [--repeat 2]
                                  [--device cuda] [--bf16] [--variants a,c,d] [--json FILE]

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
  (d) graph_compiled  (a) with ``trainer.compile=true``: the graph encoder through
              ``torch.compile(dynamic=True)``
  (e) fused_compiled  (b) with ``trainer.compile=true``
The variants run in turn ``--repeat`` times (a, b, c, d, e, a, ...); the ratios (a)/(c), (d)/(c),
(b)/(a) and RSS (a)/(c), (d)/(c) are reported per round and as the median over rounds, so that
load changes on a shared machine hit every variant alike. A compiled variant first makes one
untimed pass over every batch, training and evaluation, so that every graph it needs is compiled
(its seconds and the number of graphs are reported; inductor's on-disk cache makes later rounds
compile faster); the throughput is then the steady state, as in a run after its first batches.
Peak RSS is the high-water mark of the training loop alone (reset after the data is prepared and
the compilation), on Linux. With ``--device cuda`` (a), (b), (d), (e) run on the GPU (batches
copied in the timed loop, as in training) and (c) is left out; ``--bf16`` then trains and infers
under bf16 autocast (as ``trainer.bf16=true``).
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

from fusion_tuner.paths import resolve

MINI = "sample://jarvis_dft3d_mini"  # bundled with the package
VARIANTS = ("graph", "fused", "alignn", "graph_compiled", "fused_compiled")
LETTERS = dict(zip(VARIANTS, "abcde", strict=True))


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


def _time(
    model, batches, forward, train: bool, device: torch.device, bf16: bool = False, warm: int = 1
) -> float:
    """Crystals per second over ``batches[warm:]`` (the first ``warm`` warm up allocators,
    caches and, for a compiled model, the compiler)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train(train)
    n, start = 0, None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    for i, (inp, y) in enumerate(batches):
        if i == warm:
            _sync(device)
            start, n = time.perf_counter(), 0
        if device.type == "cuda":
            inp = inp.to(device, non_blocking=True)
            y = inp.y
        if train:
            with autocast:
                loss = torch.nn.functional.mse_loss(forward(model, inp).float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            with torch.no_grad(), autocast:
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
    variant: str,
    store: Path,
    texts: Path,
    n_batches: int,
    dropout: float,
    device: str = "cpu",
    bf16: bool = False,
) -> dict:
    from fusion_tuner.models.builders import build_model
    from fusion_tuner.training.text_store import prepare_text_states

    torch.manual_seed(0)
    compiled = variant.endswith("_compiled")
    text = "none" if variant.startswith("graph") else "tiny"
    cfg, dm, ours = _our_batches(store, texts, 64, text)
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
    compile_s, compile_note = None, None
    if compiled:  # one untimed pass in each mode compiles every graph the timed loops need
        model.compile_graph_encoder()
        start = time.perf_counter()
        for train in (True, False):
            _time(model, batches, fwd, train=train, device=dev, bf16=bf16, warm=len(batches) - 1)
        compile_s, compile_note = time.perf_counter() - start, model.compile_report()
    # Peak RSS of the training itself: reset the high-water mark once the data is prepared
    # (Linux: writing 5 to clear_refs resets VmHWM), then read it after training.
    Path("/proc/self/clear_refs").write_text("5")
    train = _time(model, batches, fwd, train=True, device=dev, bf16=bf16)
    rss_mb = _peak_rss_mb()
    infer = _time(model, batches, fwd, train=False, device=dev, bf16=bf16)
    return {
        "variant": variant,
        "train": train,
        "infer": infer,
        "rss_mb": rss_mb,
        "params": sum(p.numel() for p in model.parameters()),
        "graph_check": check,
        "compile_s": compile_s,
        "compile": compile_note,
    }


def _ratios(r: dict[str, dict]) -> dict[str, float]:
    out = {}
    if "graph" in r and "fused" in r:
        out["fused_cost"] = r["graph"]["train"] / r["fused"]["train"]
    if "graph" in r and "graph_compiled" in r:
        out["train_d_over_a"] = r["graph_compiled"]["train"] / r["graph"]["train"]
    if "alignn" in r:
        c = r["alignn"]
        for v in ("graph", "graph_compiled"):
            if v in r:
                x = LETTERS[v]
                out |= {
                    f"train_{x}_over_c": r[v]["train"] / c["train"],
                    f"infer_{x}_over_c": r[v]["infer"] / c["infer"],
                    f"rss_{x}_over_c": r[v]["rss_mb"] / c["rss_mb"],
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
    parser.add_argument("--repeat", type=int, default=2, help="rounds of the variants")
    parser.add_argument(
        "--graph-dropout",
        type=float,
        default=0.15,
        help="graph_dropout of ours: the plan's 0.15, or 0 to match upstream (no dropout)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, or cuda: ours on the GPU")
    parser.add_argument("--bf16", action="store_true", help="ours under bf16 autocast")
    parser.add_argument(
        "--variants",
        default="abcde",
        help="letters of the variants to run, in this order (default abcde: all)",
    )
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
            args.bf16,
        )
        print(json.dumps(result))
        return
    by_letter = {x: v for v, x in LETTERS.items()}
    unknown = set(args.variants) - set(by_letter)
    if unknown:
        parser.error(f"--variants: unknown letter(s) {''.join(sorted(unknown))}; use abcde")
    variants = [by_letter[x] for x in args.variants]
    try:
        import alignn  # noqa: F401
    except ImportError:
        variants = [v for v in variants if v != "alignn"]
        print("upstream alignn not installed (pip install alignn): no (c) and no ratio to it")
    if args.device != "cpu" and "alignn" in variants:
        variants.remove("alignn")
        print(f"device {args.device}: (c) upstream ALIGNN is timed on the CPU only; left out")
    print(
        f"graph_dropout of ours: {args.graph_dropout}; graphs: k-nearest; device {args.device}"
        + ("; bf16 autocast" if args.bf16 else "")
    )
    rounds = []
    for k in range(args.repeat):
        res = {}
        for v in variants:
            command = [sys.executable, __file__, "--variant", v, "--store", str(args.store)]
            command += ["--texts", str(args.texts), "--batches", str(args.batches)]
            command += ["--threads", str(args.threads), "--graph-dropout", str(args.graph_dropout)]
            command += ["--device", args.device] + (["--bf16"] if args.bf16 else [])
            out = subprocess.run(command, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"variant {v} failed:\n{out.stderr[-3000:]}")
            res[v] = r = json.loads(out.stdout.strip().splitlines()[-1])
            compiled = f"  ({r['compile']}; {r['compile_s']:.0f} s)" if r.get("compile") else ""
            print(
                f"round {k + 1} ({LETTERS[v]}) {v:14s} train {r['train']:6.1f} crystals/s  "
                f"infer {r['infer']:6.1f} crystals/s  peak RSS {r['rss_mb']:6.0f} MB  "
                f"params {r['params']:,}{compiled}",
                flush=True,
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
    if args.json:  # the last round's figures, the ratios of every round and their medians
        args.json.write_text(
            json.dumps(
                {
                    "device": args.device,
                    "bf16": args.bf16,
                    "variants": res,
                    "rounds": rounds,
                    "ratios": med,
                },
                indent=1,
            )
        )
    if "fused_cost" in med:
        print(f"(b)/(a) training time cost: {med['fused_cost']:.2f}x  (goal <= 1.5)")
    if "train_d_over_a" in med:
        print(f"(d)/(a) training throughput, compiled over eager: {med['train_d_over_a']:.2f}")
    for x, name in (("a", "eager"), ("d", "compiled")):
        if f"train_{x}_over_c" in med:
            spread = [r[f"train_{x}_over_c"] for r in rounds]
            print(
                f"({x})/(c) training throughput ({name}): {med[f'train_{x}_over_c']:.2f} "
                f"(rounds {min(spread):.2f}-{max(spread):.2f}; goal >= 2.0, every round >= 1.8)"
            )
            print(f"({x})/(c) inference throughput ({name}): {med[f'infer_{x}_over_c']:.2f}")
            print(f"peak RSS ({x})/(c): {med[f'rss_{x}_over_c']:.2f}  (goal <= 1.0)")
    print(f"(medians over {len(rounds)} rounds)")


if __name__ == "__main__":
    main()
