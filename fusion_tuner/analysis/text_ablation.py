"""``analyze text-ablation --runs RUN...``: does a trained fused model use its texts?

Each run's test crystals are predicted three ways by its best model: with their texts as
given, with the texts permuted across the test crystals (every crystal gets another crystal's
text: a cyclic shift of a seeded random order, so none keeps its own; averaged over
``permutations`` such orders), and with a blank text (``[CLS] [SEP]``). Graph, split, weights
and tokenizer are the run's own; only the token ids change. The change of test MAE is reported
with a paired bootstrap interval over crystals (per run) and, with several runs, a t interval
over runs. If permuting the texts does not change the MAE, the model does not use them: high
CKA between stages cannot show that, this can.

:func:`text_ablation` computes (a :class:`TextAblation`); :func:`run_text_ablation` also writes
``text_ablation.json`` / ``.md`` and prints the table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion_tuner.analysis.compare import paired_bootstrap
from fusion_tuner.analysis.outputs import write_outputs
from fusion_tuner.analysis.runs import datamodule_for
from fusion_tuner.errors import AnalysisError
from fusion_tuner.markdown import table
from fusion_tuner.rundir import Run, locate
from fusion_tuner.runtime import resolve_device

VARIANTS = ("permuted", "blank")


@dataclass
class Interval:
    """A change of test MAE (variant minus given) and its 95 % interval."""

    mean: float
    lo: float
    hi: float

    @property
    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0


@dataclass
class RunAblation:
    name: str
    path: str
    n_test: int
    mae: dict[str, float]  # given, permuted, blank
    # variant -> change of MAE against "given", 95 % paired bootstrap over crystals
    delta: dict[str, Interval]
    # variant -> mean |prediction change| against "given" (0: the text has no effect at all)
    mean_abs_prediction_change: dict[str, float]


@dataclass
class TextAblation:
    runs: list[RunAblation]
    permutations: int
    seed: int
    n_boot: int
    # variant -> change of MAE over runs (mean and 95 % t interval); absent with one run
    over_runs: dict[str, Interval] = field(default_factory=dict)
    verdict: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def cyclic_derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """``src`` with ``src[i] != i`` for every i (n >= 2): position i takes the text of
    ``src[i]``; a cyclic shift along a random order."""
    if n < 2:
        raise AnalysisError(f"permuting texts needs at least 2 test crystals, got {n}")
    order = rng.permutation(n)
    src = np.empty(n, dtype=np.int64)
    src[order] = order[(np.arange(n) + 1) % n]
    return src


def replace_texts(
    tokens: dict[str, torch.Tensor], new: dict[int, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """A token entry (``token_ids`` + ``token_ptr`` per row) with row r's ids replaced by
    ``new[r]`` for every r in ``new``; every other row unchanged."""
    ptr, ids = tokens["token_ptr"], tokens["token_ids"]
    pieces = []
    for r in range(len(ptr) - 1):
        pieces.append(new[r].to(ids.dtype) if r in new else ids[int(ptr[r]) : int(ptr[r + 1])])
    lengths = torch.tensor([len(p) for p in pieces], dtype=torch.int64)
    return {
        "token_ids": torch.cat(pieces) if pieces else ids[:0],
        "token_ptr": torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)]),
    }


@torch.no_grad()
def _predict(model: torch.nn.Module, dm: Any, ids: list[str], device: torch.device) -> tuple:
    ys, ps = [], []
    for batch in dm.loader(ids, batch_size=64, shuffle=False, num_workers=0):
        out = model(batch.to(device))
        ys.append(batch.y.double().cpu().numpy())
        ps.append(out.prediction.double().cpu().numpy())
    return np.concatenate(ys), np.concatenate(ps)


def ablate_run(
    run: Run, device: torch.device, permutations: int = 5, seed: int = 0, n_boot: int = 10_000
) -> RunAblation:
    """The three predictions of one fused run on its recorded test split."""
    from fusion_tuner.data import text

    if not run.config.text.enabled:
        raise AnalysisError(
            f"{run.name} is a graph-only run (text=none): it reads no text, so there is nothing "
            "to ablate; give fused runs (graph+text)"
        )
    ids = list(run.split["test"])
    dm = datamodule_for(run)
    model = run.model.to(device).eval()
    given_tokens = dm.tokens
    rows = dm.graphs.rows(ids)
    seqs = [
        given_tokens["token_ids"][
            int(given_tokens["token_ptr"][r]) : int(given_tokens["token_ptr"][r + 1])
        ]
        for r in rows
    ]
    y, given = _predict(model, dm, ids, device)
    rng = np.random.default_rng(seed)
    permuted = np.zeros_like(given)
    for _ in range(permutations):
        src = cyclic_derangement(len(ids), rng)
        dm.tokens = replace_texts(
            given_tokens, {r: seqs[s] for r, s in zip(rows, src, strict=True)}
        )
        permuted += _predict(model, dm, ids, device)[1] / permutations
    blank_ids = text.tokenize(dm.tokenizer, [""], run.config.text.max_length)["token_ids"]
    dm.tokens = replace_texts(given_tokens, dict.fromkeys(rows, blank_ids))
    blank = _predict(model, dm, ids, device)[1]
    dm.tokens = given_tokens
    preds = {"given": given, "permuted": permuted, "blank": blank}
    err = {k: v - y for k, v in preds.items()}
    delta = {
        k: Interval(*paired_bootstrap(err["given"], err[k], n_boot=n_boot, seed=seed))
        for k in VARIANTS
    }
    return RunAblation(
        name=run.name,
        path=str(run.path),
        n_test=len(ids),
        mae={k: float(np.abs(e).mean()) for k, e in err.items()},
        delta=delta,
        mean_abs_prediction_change={k: float(np.abs(preds[k] - given).mean()) for k in VARIANTS},
    )


def over_runs(values: list[float]) -> Interval:
    """Mean and 95 % t interval of per-run changes (2 or more runs)."""
    from scipy.stats import t

    arr = np.asarray(values, dtype=float)
    mean = float(arr.mean())
    half = float(t.ppf(0.975, len(arr) - 1) * arr.std(ddof=1) / np.sqrt(len(arr)))
    return Interval(mean, mean - half, mean + half)


def verdict(ci: Interval, where: str) -> str:
    """The one-line answer for the permuted texts."""
    head = f"permuting the texts changes test MAE by {ci.mean:+.4g} [{ci.lo:+.4g}, {ci.hi:+.4g}] ({where})"
    if not ci.excludes_zero:
        return f"{head}: the model does not use the text (no change distinguishable from 0)"
    if ci.mean > 0:
        return f"{head}: the model uses the text (its own texts predict better)"
    return f"{head}: the model uses the text, but another crystal's text predicts better"


def text_ablation(
    runs: list[Run],
    device: str = "auto",
    permutations: int = 5,
    seed: int = 0,
    n_boot: int = 10_000,
) -> TextAblation:
    """Ablate every run (all must be fused runs); see the module docstring."""
    if permutations < 1:
        raise AnalysisError(f"--permutations={permutations} must be >= 1")
    graph_only = [r.name for r in runs if not r.config.text.enabled]
    if graph_only:
        raise AnalysisError(
            f"graph-only runs (text=none) read no text, so there is nothing to ablate: "
            f"{', '.join(graph_only)}; give fused runs (graph+text)"
        )
    dev = resolve_device(device)
    res = TextAblation(
        runs=[ablate_run(r, dev, permutations, seed, n_boot) for r in runs],
        permutations=permutations,
        seed=seed,
        n_boot=n_boot,
    )
    if len(res.runs) >= 2:
        res.over_runs = {k: over_runs([r.delta[k].mean for r in res.runs]) for k in VARIANTS}
        res.verdict = verdict(res.over_runs["permuted"], f"95 % t interval over {len(runs)} runs")
    else:
        res.verdict = verdict(
            res.runs[0].delta["permuted"],
            f"95 % paired bootstrap interval over {res.runs[0].n_test} test crystals",
        )
    return res


def _fmt(ci: Interval) -> str:
    return f"{ci.mean:+.4f} [{ci.lo:+.4f}, {ci.hi:+.4f}]"


def render(res: TextAblation) -> tuple[list[str], list[list[Any]], str]:
    """(table header, rows, Markdown report) of a :class:`TextAblation`."""
    header = ["run", "n test", "MAE given", "MAE permuted", "MAE blank", "Δ permuted", "Δ blank"]
    rows: list[list[Any]] = [
        [
            r.name,
            r.n_test,
            f"{r.mae['given']:.4f}",
            f"{r.mae['permuted']:.4f}",
            f"{r.mae['blank']:.4f}",
            _fmt(r.delta["permuted"]),
            _fmt(r.delta["blank"]),
        ]
        for r in res.runs
    ]
    if res.over_runs:
        mean = {k: np.mean([r.mae[k] for r in res.runs]) for k in ("given", "permuted", "blank")}
        rows.append(
            [
                f"over {len(res.runs)} runs (t interval)",
                "",
                f"{mean['given']:.4f}",
                f"{mean['permuted']:.4f}",
                f"{mean['blank']:.4f}",
                _fmt(res.over_runs["permuted"]),
                _fmt(res.over_runs["blank"]),
            ]
        )
    md = "\n".join(
        [
            "# Text ablation (test split)",
            "",
            f"**{res.verdict}**",
            "",
            table(header, rows),
            "",
            "Δ: test MAE with the changed texts minus test MAE with the texts as given, with a "
            f"95 % paired bootstrap interval over the test crystals ({res.n_boot} resamples) per "
            "run, and a 95 % t interval over runs. Permuted: every test crystal gets another test "
            f"crystal's text (cyclic shifts of seeded random orders, seed {res.seed}, predictions "
            f"averaged over {res.permutations}); blank: an empty text ([CLS] [SEP]). Mean "
            "|prediction change| against the given texts: "
            + "; ".join(
                f"{r.name}: permuted {r.mean_abs_prediction_change['permuted']:.4g}, "
                f"blank {r.mean_abs_prediction_change['blank']:.4g}"
                for r in res.runs
            )
            + ".",
        ]
    )
    return header, rows, md


def run_text_ablation(
    run_paths: list[str],
    out: Path,
    device: str = "auto",
    permutations: int = 5,
    seed: int = 0,
) -> TextAblation:
    """Compute, write ``text_ablation.{json,md}`` into ``out`` and print the table."""
    runs = [locate(p) for p in run_paths]
    res = text_ablation(runs, device, permutations, seed)
    header, rows, md = render(res)
    write_outputs(out, "text_ablation", res.as_dict(), md)
    print(table(header, rows))
    print(res.verdict)
    return res
