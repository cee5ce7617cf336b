"""The fused model's training step with a MatSciBERT-sized text encoder, with and without the
text-state store, against the graph-only step (offline: the encoder is built from a config).

Usage: python bench/text_encoder.py [--batches 3] [--rounds 4] [--slow-rounds 2] [--threads 2]
                                    [--device cpu|cuda] [--bf16] [--layers 12 --hidden 768 ...]

The text encoder has MatSciBERT's shape (BERT-base: 12 layers, hidden 768, 12 heads,
intermediate 3072; a WordPiece vocabulary of up to 31,090 trained on the descriptions) and
random weights; max_length 128. Data: the 1,104 crystals of sample://jarvis_dft3d_mini (bundled)
with their Atoms.describe() texts. One training step = forward, loss, backward, AdamW step on a
batch of 64, at the plan's model sizes. Variants, on the same batches:
  (a) frozen encoder, no store: the encoder runs in every batch (no grad)
  (b) frozen encoder, from the store: no encoder layer runs
  (c) text.train_last_n_layers=2, no store: all 12 layers run, the top 2 train
  (d) text.train_last_n_layers=2, from the store: only the top 2 layers run
  (g) graph-only: fusion_tuner's graph-only model (``text=none``: ALIGNN, mean readout, head)
Steps are timed round-robin (each round times one batch of every variant), so the ratios to
(g) are measured side by side; (a) and (c) run --slow-rounds rounds only. Prints each variant's
median step, the median of its per-round ratios to (g) [min-max], and its fastest step over
(g)'s fastest (the steps least disturbed when other jobs share the machine). The stores are built
before timing (their one-off build time and disk size are reported; a store found from an
earlier run reports the build time recorded in its manifest).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]  # this checkout's fusion_tuner
from fusion_tuner.paths import resolve  # noqa: E402

MINI = "sample://jarvis_dft3d_mini"  # bundled with the package
VARIANTS = {
    "a": ("frozen, no store", ["text.freeze=true", "text.store=off"]),
    "b": ("frozen, from the store", ["text.freeze=true", "text.store=auto"]),
    "c": ("last 2 layers train, no store", ["text.train_last_n_layers=2", "text.store=off"]),
    "d": ("last 2 layers train, from the store", ["text.train_last_n_layers=2"]),
}


def _config(args: argparse.Namespace, extra: list[str]):
    from fusion_tuner import compose_config

    return compose_config(
        [
            "dataset=jarvis",
            f"dataset.jarvis_dir={args.store.resolve()}",
            f"dataset.descriptions={args.texts.resolve()}",
            f"dataset.cache_dir={args.cache}",
            "dataset.train_fraction=0.9",
            "dataset.val_fraction=0.1",
            "dataset.test_fraction=0.0",
            f"batch.batch_size={args.batch_size}",
            f"text.max_length={args.max_length}",
            f"text.tiny_hidden_size={args.hidden}",
            f"text.tiny_num_layers={args.layers}",
            f"text.tiny_num_heads={args.heads}",
            f"text.tiny_intermediate_size={args.intermediate}",
            f"text.tiny_vocab_size={args.vocab}",
            *extra,
        ]
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Step:
    """One variant: a model, its optimizer and its batches; :meth:`time` runs one step."""

    def __init__(self, model, batches, forward, device: torch.device, bf16: bool) -> None:
        self.model = model.to(device).train()
        self.batches, self.forward, self.device, self.bf16 = batches, forward, device, bf16
        params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=1e-4)
        self.seconds: list[float] = []
        self.warm: list = []  # a small batch for the untimed warm-up step

    def time(self, i: int) -> float:
        batch = self.batches[i % len(self.batches)]
        _sync(self.device)
        start = time.perf_counter()
        b = batch.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
            loss = torch.nn.functional.mse_loss(self.forward(self.model, b), b.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        _sync(self.device)
        seconds = time.perf_counter() - start
        self.seconds.append(seconds)
        return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=resolve, default=f"{MINI}/store_full")
    p.add_argument("--texts", type=resolve, default=f"{MINI}/describe_text.json.zip")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ft_bench_text")
    p.add_argument("--batches", type=int, default=3, help="distinct timed batches")
    p.add_argument("--rounds", type=int, default=4, help="timed steps of (b), (d), (g)")
    p.add_argument("--slow-rounds", type=int, default=2, help="timed steps of (a), (c)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA or CPU)")
    p.add_argument("--limit", type=int, default=None, help="crystals (default: all 1,104)")
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--intermediate", type=int, default=3072)
    p.add_argument("--vocab", type=int, default=31090)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    import dataclasses

    from fusion_tuner.data.module import CrystalDataModule
    from fusion_tuner.models.builders import build_model
    from fusion_tuner.training.text_store import prepare_text_states

    base = _config(args, [f"budget.max_structures={args.limit}"] if args.limit else [])
    dm = CrystalDataModule(base).setup()
    ids = list(dm.graphs.ids)
    lengths = (dm.tokens["token_ptr"][1:] - dm.tokens["token_ptr"][:-1]).float()
    print(
        f"{len(ids)} crystals, {lengths.mean():.1f} tokens per description (max_length "
        f"{args.max_length}), WordPiece vocabulary {len(dm.tokenizer)}; encoder: {args.layers} "
        f"layers, hidden {args.hidden}, {args.heads} heads, intermediate {args.intermediate}; "
        f"device {device}, {args.threads} threads",
        flush=True,
    )
    steps: dict[str, Step] = {}
    stores: dict[str, dict] = {}
    wanted = ids[: args.batches * args.batch_size]
    for name, (_, extra) in VARIANTS.items():
        cfg = _config(args, extra)
        torch.manual_seed(0)  # the same encoder weights in every variant
        model = build_model(cfg, dm.info)
        start = time.perf_counter()
        report = prepare_text_states(cfg, dm, model.text_encoder, device)
        if report["used"]:
            manifest = json.loads((Path(report["path"]) / "manifest.json").read_text())
            stores[name] = report | {
                "seconds_here": time.perf_counter() - start,
                "build_seconds": manifest["build_seconds"],
            }
            print(
                f"({name}) store {report['key']}: {'built' if report['built'] else 'found'}, "
                f"one-off build {manifest['build_seconds']:.0f} s, {report['bytes'] / 1e6:.1f} MB "
                f"({report['bytes_per_crystal'] / 1e3:.1f} KB per crystal)",
                flush=True,
            )
        batches = list(dm.loader(wanted, batch_size=args.batch_size, shuffle=False))
        warm = list(dm.loader(wanted[:4], batch_size=4, shuffle=False))
        steps[name] = Step(model, batches, lambda m, b: m(b).prediction, device, args.bf16)
        steps[name].warm = warm
    dm.attach_text_states(None)
    torch.manual_seed(0)
    graph_batches = list(dm.loader(wanted, batch_size=args.batch_size, shuffle=False))
    graph_only = build_model(
        _config(args, ["text=none"]), dataclasses.replace(dm.info, modality="graph")
    )
    steps["g"] = Step(graph_only, graph_batches, lambda m, b: m(b).prediction, device, args.bf16)
    steps["g"].warm = list(dm.loader(wanted[:4], batch_size=4, shuffle=False))
    for step in steps.values():  # warm-up on a small batch: allocators, lazy initialisation
        step.batches, full = step.warm, step.batches
        step.time(0)
        step.batches, step.seconds = full, []
    ratios: dict[str, list[float]] = {k: [] for k in VARIANTS}
    for r in range(args.rounds):
        g = steps["g"].time(r)
        line = [f"round {r + 1}: (g) {g:.2f} s"]
        for name in VARIANTS:
            if name in "ac" and r >= args.slow_rounds:
                continue
            s = steps[name].time(r)
            ratios[name].append(s / g)
            line.append(f"({name}) {s:.2f} s")
        print("  ".join(line), flush=True)
    g_med = statistics.median(steps["g"].seconds)
    rows = [("g", "graph-only", g_med, [1.0], None)]
    targets = {"b": 1.3, "d": 2.0}
    for name, (label, _) in VARIANTS.items():
        rows.append(
            (name, label, statistics.median(steps[name].seconds), ratios[name], targets.get(name))
        )
    print(
        f"\nbatch {args.batch_size}; step: median step time; × graph-only: median of the "
        "per-round ratios to (g) [min-max over rounds]; fastest: the fastest step's ratio to "
        "(g)'s fastest (the steps least disturbed by other load)"
    )
    print("| variant | step (s) | crystals/s | × graph-only | fastest | target |")
    print("|---|---|---|---|---|---|")
    out = {"rows": [], "stores": stores, "crystals": len(ids), "vocab": len(dm.tokenizer)}
    g_min = min(steps["g"].seconds)
    for name, label, sec, rs, target in rows:
        med = statistics.median(rs)
        spread = f" [{min(rs):.2f}-{max(rs):.2f}]" if len(rs) > 1 else ""
        fastest = min(steps[name].seconds) / g_min
        goal = f"≤ {target}" if target else ""
        print(
            f"| ({name}) {label} | {sec:.2f} | {args.batch_size / sec:.1f} | {med:.2f}{spread} "
            f"| {fastest:.2f} | {goal} |"
        )
        out["rows"].append(
            {
                "variant": name,
                "label": label,
                "seconds": sec,
                "steps": steps[name].seconds,
                "ratios": rs,
                "fastest_ratio": fastest,
            }
        )
    for name, s in stores.items():
        print(
            f"store of ({name}): one-off build {s['build_seconds']:.0f} s for {len(ids)} crystals, "
            f"{s['bytes'] / 1e6:.1f} MB on disk ({s['bytes_per_crystal'] / 1e3:.1f} KB per crystal)"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
