"""Predict with trained runs on new crystals, each run exactly as it was trained.

For every run (member) the pipeline is the training pipeline's, with the run's recorded
settings: graphs by :func:`fusion_tuner.data.features.featurize_all` with the run's cutoff and
neighbour count (its ``DataInfo``), texts as the run made them (``text.source``,
``text.describe_variant``, a descriptions file when the run's texts came from one), tokens by
the run's own saved ``tokenizer/`` and ``max_length``, batches by the run's
:class:`~fusion_tuner.data.dataset.CrystalDataset` over an in-memory
:class:`~fusion_tuner.data.store.GraphStore`, and the best model in eval mode (bf16 autocast
when the run trained with it on CUDA). Members that share settings share the graphs, texts
and tokens. Several runs form an ensemble (mean, std, each member); they must predict the
same target.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion_tuner import paths as data_paths
from fusion_tuner.data import features, records, text
from fusion_tuner.data.dataset import CrystalDataset
from fusion_tuner.data.records import Crystal
from fusion_tuner.data.store import GraphStore
from fusion_tuner.errors import PredictError
from fusion_tuner.inference.inputs import read_inputs
from fusion_tuner.rundir import Run, locate

log = logging.getLogger(__name__)


@dataclass
class PredictionTable:
    """What :func:`predict` returns: one row per predicted crystal, in input order.

    Attributes:
        columns: ``id, prediction`` for one run; ``id, mean, std, member_1..k`` for several;
            ``target`` follows ``id`` when every input carries a known value.
        rows: ``{column: value}`` per crystal (floats at full precision).
        skipped: ``(id or path, reason)`` of every input that could not be predicted.
        members: the runs, in column order (``member_i`` is ``members[i - 1]``).
        target: the property the runs predict (their ``dataset.target``).
    """

    columns: list[str]
    rows: list[dict[str, Any]]
    skipped: list[tuple[str, str]]
    members: list[str]
    target: str
    value_column: str = field(init=False)

    def __post_init__(self) -> None:
        self.value_column = "prediction" if "prediction" in self.columns else "mean"

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def mae(self) -> float | None:
        """MAE of the prediction (ensemble mean) against the inputs' targets, when known."""
        if "target" not in self.columns or not self.rows:
            return None
        return float(np.mean([abs(r[self.value_column] - r["target"]) for r in self.rows]))


# ------------------------------------------------------------------------------ the runs
def _load_members(runs: Sequence[str | Path | Run] | str | Path | Run) -> list[Run]:
    if isinstance(runs, (str, Path, Run)):
        runs = [runs]
    if not runs:
        raise PredictError("give at least one run directory or checkpoint (--runs)")
    members = [r if isinstance(r, Run) else locate(r) for r in runs]
    targets = {m.name: m.config.dataset.target for m in members}
    if len(set(targets.values())) > 1:
        raise PredictError(
            "the runs predict different targets, so they cannot be averaged: "
            + ", ".join(f"{name}: {t}" for name, t in targets.items())
            + ". An ensemble's members must share dataset.target (and so its units)."
        )
    return members


def _texts_origin(run: Run) -> dict[str, int] | None:
    """Where the run's training texts came from (``data_report.json``), when recorded."""
    report = run.files.read_data_report() if run.files else {}
    return report.get("texts")


def _describes_missing(run: Run) -> bool:
    """Whether the run gave ``Atoms.describe()`` texts to crystals without their own text, so
    that new crystals without one may get them too."""
    cfg = run.config
    if cfg.text.source == "describe":
        return True
    if cfg.text.source == "dataset":
        return False
    origin = _texts_origin(run)
    if origin is not None:
        return origin.get("describe", 0) > 0
    # runs from before the record: JARVIS without a descriptions file described everything
    return cfg.dataset.source == "jarvis" and not cfg.dataset.descriptions


def _where_texts_came_from(run: Run) -> str:
    d, t = run.config.dataset, run.config.text
    if d.descriptions:
        return f"texts from the file dataset.descriptions={d.descriptions} (text.source={t.source})"
    return f"its dataset's own texts (dataset.source={d.source}, text.source={t.source})"


def _own_texts(run: Run, crystals: list[Crystal], extra: dict[str, str]) -> dict[str, str]:
    """The texts new crystals bring (their folder's or the --descriptions file's)."""
    if run.config.text.source == "describe":
        return {}
    texts = {}
    for c in crystals:
        found = c.text or extra.get(c.id) or extra.get(records.canonical_id(c.id))
        if found:
            texts[c.id] = found
    return texts


def _check_texts(members: list[Run], crystals: list[Crystal], descriptions: Path | None) -> None:
    """Refuse, before any work, a run whose texts new crystals cannot be given as in training."""
    for run in members:
        cfg = run.config
        if not cfg.text.enabled:  # a graph-only run (text=none) reads no text
            continue
        from_file = bool(cfg.dataset.descriptions) and cfg.text.source != "describe"
        needs_texts = from_file or not _describes_missing(run)  # never Atoms.describe() alone
        if descriptions is not None or not needs_texts:
            continue
        missing = [c.id for c in crystals if not c.text]
        if missing:
            raise PredictError(
                f"run {run.name} was trained on {_where_texts_came_from(run)}, and "
                f"{len(missing)} of the {len(crystals)} new crystals have no text (e.g. "
                f"{missing[:3]}). Give --descriptions FILE (CSV id,description or JSON "
                "{id: text}) with the same kind of text for them, or put a descriptions.csv in "
                "their ALIGNN folder."
            )


# ---------------------------------------------------------------------------- the steps
def _texts(
    run: Run, crystals: list[Crystal], descriptions: Path | None
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Each crystal's text as the run made its training texts; returns (texts, skipped)."""
    t = run.config.text
    extra = records.read_descriptions(descriptions, t.describe_variant) if descriptions else {}
    texts = _own_texts(run, crystals, extra)
    missing = [c for c in crystals if c.id not in texts]
    if not missing:
        return texts, []
    if not _describes_missing(run):  # _check_texts made sure that a file was given
        # (a run that described the crystals its file missed describes new ones too)
        reason = f"no description in {descriptions} (the run's texts came from such a file)"
        return texts, [(c.id, reason) for c in missing]
    log.info("describing %d crystals with Atoms.describe()[%s]", len(missing), t.describe_variant)
    generated, failed, _ = features.describe_all(missing, t.describe_variant)
    texts.update(generated)
    return texts, [(cid, why) for cid, why in failed]


def _graph_settings(info: dict[str, Any]) -> dict[str, Any]:
    """The featurisation settings a run recorded in its ``DataInfo``."""
    settings = {k: info[k] for k in ("cutoff", "max_neighbors")}
    if "neighbor_strategy" in info:
        settings["neighbor_strategy"] = info["neighbor_strategy"]
    else:  # a run from before the strategy was recorded: built by the earlier builder
        log.warning(
            "the run does not record dataset.neighbor_strategy (it predates it); its graphs "
            "were built by the earlier builder, which neighbor_strategy=pure reproduces up to "
            "the order of tied neighbours: predictions may differ slightly from its own"
        )
        settings["neighbor_strategy"] = "pure"
    return settings


# Bonds plus bond angles (line-graph edges) one batch may hold: what bounds the model's
# memory (a 10,648-atom crystal has about 2.5 million and needs ~15 GB). A crystal above it
# alone is skipped with the reason; --max-edges raises it.
MAX_EDGES = 1_000_000


def _too_large(n_atoms: int, max_neighbors: int, max_edges: int) -> str | None:
    """Why a crystal of ``n_atoms`` atoms cannot fit a batch of ``max_edges``, judged before
    featurising it (each atom has at least ``max_neighbors`` bonds, each bond as many angles),
    else None."""
    least = n_atoms * max_neighbors * (1 + max_neighbors)
    if least <= max_edges:
        return None
    return (
        f"too large to predict: {n_atoms} atoms make at least {least} bonds and bond angles, "
        f"more than the batch budget of {max_edges} (--max-edges)"
    )


def _edge_batches(
    store: GraphStore, rows: list[int], batch_size: int, max_edges: int
) -> tuple[list[list[int]], list[tuple[str, str]]]:
    """Consecutive dataset indices grouped into batches of at most ``batch_size`` crystals and
    ``max_edges`` bonds plus angles; a crystal above the budget alone is skipped (id, reason)."""
    edges = (store.edge_ptr[1:] - store.edge_ptr[:-1]) + (store.lg_ptr[1:] - store.lg_ptr[:-1])
    batches: list[list[int]] = []
    skipped: list[tuple[str, str]] = []
    current: list[int] = []
    load = 0
    for index, row in enumerate(rows):
        cost = int(edges[row])
        if cost > max_edges:
            skipped.append(
                (
                    store.ids[row],
                    f"too large to predict: its graph has {cost} bonds and bond angles, more "
                    f"than the batch budget of {max_edges} (--max-edges)",
                )
            )
            continue
        if current and (len(current) >= batch_size or load + cost > max_edges):
            batches.append(current)
            current, load = [], 0
        current.append(index)
        load += cost
    if current:
        batches.append(current)
    return batches, skipped


def _graphs(crystals: list[Crystal], info: dict[str, Any]) -> tuple[GraphStore, list]:
    """The crystals featurised with the run's recorded settings; returns (store, skipped)."""
    settings = _graph_settings(info)
    log.info(
        "featurising %d crystals (%s)",
        len(crystals),
        ", ".join(f"{k}={v}" for k, v in settings.items()),
    )
    entry = features.featurize_all(crystals, **settings)
    store = GraphStore.from_dict(entry | {"load_report": {}})
    return store, [(cid, why) for cid, why in store.failed]


def _tokenizer(run: Run):
    """The run's own saved tokenizer, checked against the one its model was trained with."""
    from transformers import AutoTokenizer

    folder = run.files.tokenizer if run.files else None
    if folder is None or not folder.is_dir():
        raise PredictError(
            f"run {run.name} has no tokenizer/ folder ({folder}); it is needed to tokenise new "
            "texts exactly as in training"
        )
    tok = AutoTokenizer.from_pretrained(str(folder))
    expected = run.data_info["tokenizer_id"]
    if text.tokenizer_identity(tok) != expected:
        raise PredictError(
            f"{folder} is not the tokenizer run {run.name} was trained with "
            f"({text.tokenizer_identity(tok)} != {expected})"
        )
    return tok


def _show_progress(mode: str, n_batches: int) -> bool:
    return mode == "bar" or (mode == "auto" and n_batches > 4 and sys.stderr.isatty())


@torch.no_grad()
def _run_model(
    run: Run,
    dataset: CrystalDataset,
    device: torch.device,
    batches: list[list[int]],
    progress: str,
) -> dict[str, float]:
    """The run's best model on the crystals of ``dataset``, in ``batches`` (lists of dataset
    indices): id -> prediction."""
    from torch_geometric.loader import DataLoader

    from fusion_tuner.training.loop import autocast

    model = run.model.to(device).eval()
    loader = DataLoader(dataset, batch_sampler=batches)
    batches: Any = loader
    if _show_progress(progress, len(loader)):
        from tqdm import tqdm

        batches = tqdm(loader, desc=f"predicting ({run.name})", unit="batch", dynamic_ncols=True)
    out: dict[str, float] = {}
    for batch in batches:
        batch = batch.to(device)
        with autocast(device, run.config.trainer.bf16):
            pred = model(batch).prediction
        out.update(zip(batch.sample_id, pred.double().cpu().tolist(), strict=True))
    return out


# ------------------------------------------------------------------------------ predict
def predict(
    runs: Sequence[str | Path | Run] | str | Path,
    structures: Sequence[str | Path] | str | Path,
    descriptions: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 64,
    progress: str = "auto",
    allow_outside_paths: bool = False,
    max_edges: int = MAX_EDGES,
) -> PredictionTable:
    """Predict with one run, or average several (a seed ensemble), on new crystals.

    Args:
        runs: a run directory or checkpoint file, or several (all predicting the same target).
        structures: structure files, folders of them, ALIGNN folders (``id_prop.csv``; their
            targets are carried into the rows) or tables with a structure column.
        descriptions: texts for the new crystals (CSV ``id,description`` or JSON), needed when
            a run's training texts came from such a file or from its dataset.
        device: ``auto`` (CUDA when visible), ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: crystals per batch.
        max_edges: bonds plus bond angles per batch (bounds the memory); a crystal above it
            alone is skipped with the reason.
        progress: ``auto`` (a bar on a terminal for long inputs), ``bar`` or ``none``.
        allow_outside_paths: let an ALIGNN folder's ``id_prop.csv`` name absolute paths or
            paths outside the folder (else such rows are skipped with the reason).

    Returns:
        A :class:`PredictionTable`: its rows (iterate over it), what was skipped and why, and
        the MAE when the inputs carry targets.

    Raises:
        PredictError: members with different targets, or a needed descriptions file missing.
    """
    if isinstance(structures, (str, Path)):
        structures = [structures]
    dev, desc = _device_and_descriptions(device, descriptions)
    members = _load_members(runs)
    target = members[0].config.dataset.target
    inputs = read_inputs(structures, target, allow_outside_paths)
    if not inputs.crystals:  # nothing readable: an empty table that says why
        return _table(members, [], [], inputs.skipped, False, target)
    skipped = list(inputs.skipped)
    crystals = _drop_too_large(members, inputs.crystals, max_edges, skipped)
    if not crystals:
        return _table(members, [], [], skipped, False, target)
    _check_texts(members, crystals, desc)
    per_member, failed = _predict_members(
        members, crystals, desc, dev, batch_size, max_edges, progress
    )
    skipped += [(cid, why) for cid, why in failed.items()]
    return _table(members, crystals, per_member, skipped, inputs.labelled, target)


def _device_and_descriptions(
    device: str, descriptions: str | Path | None
) -> tuple[torch.device, Path | None]:
    """The device to predict on and the descriptions file, both checked before any work."""
    from fusion_tuner.runtime import resolve_device

    try:
        dev = resolve_device(device)
    except RuntimeError as exc:
        raise PredictError(str(exc).replace("trainer.device", "--device")) from None
    desc = data_paths.resolve(descriptions) if descriptions else None
    if desc is not None and not desc.is_file():
        raise PredictError(f"descriptions file {desc} not found (--descriptions)")
    return dev, desc


def _drop_too_large(
    members: list[Run],
    crystals: list[Crystal],
    max_edges: int,
    skipped: list[tuple[str, str]],
) -> list[Crystal]:
    """The crystals known, before featurising, to fit a batch of ``max_edges``; the others are
    added to ``skipped`` with the reason."""
    settings = [_graph_settings(m.data_info) for m in members]
    # k-nearest graphs give every atom at least max_neighbors bonds: too large a crystal is
    # known before featurising it (pure graphs may have fewer: checked once featurised)
    k = min(g["max_neighbors"] for g in settings)
    known = all(g["neighbor_strategy"] == "k-nearest" for g in settings)
    kept = []
    for c in crystals:
        why = _too_large(len(c.elements), k, max_edges) if known else None
        if why:
            skipped.append((c.id, why))
        else:
            kept.append(c)
    return kept


def _note_failures(failed: dict[str, str], found: list[tuple[str, str]]) -> None:
    """Record each ``(id, reason)`` of ``found`` in ``failed``, keeping a crystal's first one."""
    for cid, why in found:
        failed.setdefault(cid, why)


def _predict_members(
    members: list[Run],
    crystals: list[Crystal],
    desc: Path | None,
    dev: torch.device,
    batch_size: int,
    max_edges: int,
    progress: str,
) -> tuple[list[dict[str, float]], dict[str, str]]:
    """Each member's predictions (id -> value), members with the same settings sharing graphs
    and texts; returns (per member, {id: reason} of the crystals some member could not take)."""
    graphs: dict[tuple, tuple[GraphStore, list]] = {}
    texts: dict[tuple, tuple[dict[str, str], list]] = {}
    per_member: list[dict[str, float]] = []
    failed: dict[str, str] = {}
    for run in members:
        store, dataset = _member_dataset(run, crystals, desc, graphs, texts, failed)
        batches, b_failed = _edge_batches(store, dataset.rows, batch_size, max_edges)
        _note_failures(failed, b_failed)
        per_member.append(_run_model(run, dataset, dev, batches, progress))
    return per_member, failed


def _member_dataset(
    run: Run,
    crystals: list[Crystal],
    desc: Path | None,
    graphs: dict[tuple, tuple[GraphStore, list]],
    texts: dict[tuple, tuple[dict[str, str], list]],
    failed: dict[str, str],
) -> tuple[GraphStore, CrystalDataset]:
    """The run's graphs (from ``graphs`` when another member made them with the same settings)
    and tokens, as a dataset of the crystals it can take; failures are noted in ``failed``."""
    cfg, info = run.config, run.data_info
    gkey = tuple(_graph_settings(info).items())
    if gkey not in graphs:
        graphs[gkey] = _graphs(crystals, info)
    store, g_failed = graphs[gkey]
    _note_failures(failed, g_failed)
    tokens = None  # a graph-only run (text=none) has no text side
    ok = list(store.ids)
    if cfg.text.enabled:
        tkey = (cfg.text.source, cfg.text.describe_variant, _describes_missing(run))
        if tkey not in texts:
            texts[tkey] = _texts(run, crystals, desc)
        by_id, t_failed = texts[tkey]
        _note_failures(failed, t_failed)
        tokens = text.tokenize(
            _tokenizer(run), [by_id.get(i, "") for i in store.ids], info["max_length"]
        )
        ok = [i for i in store.ids if i in by_id]
    dataset = CrystalDataset(
        store, tokens, store.rows(ok), info["max_length"], info["pad_token_id"]
    )
    return store, dataset


def _table(
    members: list[Run],
    crystals: list[Crystal],
    per_member: list[dict[str, float]],
    skipped: list[tuple[str, str]],
    labelled: bool,
    target: str,
) -> PredictionTable:
    head = ["id", "target"] if labelled else ["id"]
    k = len(members)
    columns = [*head, "prediction"] if k == 1 else [*head, "mean", "std"]
    columns += [f"member_{i}" for i in range(1, k + 1)] if k > 1 else []
    rows = []
    for c in crystals:
        values = [m.get(c.id) for m in per_member]
        if any(v is None for v in values):
            continue  # its reason is in skipped
        row: dict[str, Any] = {"id": c.id}
        if labelled:
            row["target"] = c.target
        if k == 1:
            row["prediction"] = values[0]
        else:
            v = np.asarray(values, dtype=np.float64)
            row["mean"], row["std"] = float(v.mean()), float(v.std())
            row.update({f"member_{i}": float(x) for i, x in enumerate(v, start=1)})
        rows.append(row)
    return PredictionTable(columns, rows, skipped, [str(m.path) for m in members], target)
