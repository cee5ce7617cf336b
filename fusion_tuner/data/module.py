"""The data module: records -> cached graphs + texts + tokens -> split -> PyG loaders.

Three cache entries, each keyed by exactly what affects it, so that changing a setting rebuilds
only what depends on it:

* ``graphs-<key>.pt``: source identity (demo settings / JARVIS name, target and figshare file /
  folder contents / table file path, size and mtime and its columns), target, limit,
  ``dataset.duplicates``, cutoff, max_neighbors, neighbor_strategy, feature code version.
* ``texts-<key>.pt``: the graph key plus text source, ``describe()`` variant, descriptions file.
* ``tokens-<key>.pt``: the text key plus tokenizer identity and ``text.max_length``.

Gaussian RBF expansions of bond lengths and angle cosines are computed inside the model from the
cached raw values, so the RBF settings (``dataset.bond_rbf_bins``/``angle_rbf_bins``) are model
build arguments and do not invalidate the cache.

A graph-only run (``text=none``) uses the graph entry alone: no descriptions, no tokenizer, no
text or token entries, and samples without token tensors.

A split file's labels are compared with the data's targets after the graph entry is loaded
(``dataset.split_labels``); ``use`` replaces the targets in memory, never in the cache.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from fusion_tuner import paths as data_paths
from fusion_tuner.config import Config, max_structures, modality
from fusion_tuner.data import features, records, splits, text
from fusion_tuner.data.cache import load_or_build
from fusion_tuner.data.dataset import BatchedCrystalDataset, CrystalDataset, TokenStates, as_batch
from fusion_tuner.data.store import GraphStore
from fusion_tuner.errors import DataError
from fusion_tuner.io import stable_hash
from fusion_tuner.words import plural

log = logging.getLogger(__name__)


@dataclass
class DataInfo:
    """What the model must know about the data; stored in every checkpoint."""

    source: str
    target: str
    atom_features: str
    atom_feature_dim: int
    cutoff: float
    max_neighbors: int
    neighbor_strategy: str  # how the atom graph was built (k-nearest | pure)
    vocab_size: int
    pad_token_id: int
    max_length: int
    tokenizer_id: str
    text_model: str | None
    # graph+text (the fused model) | graph (text=none: no text, vocab_size 0, tokenizer "none")
    modality: str = "graph+text"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _file_signature(paths: list[Path]) -> list[tuple[str, int, int]]:
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in paths if p.is_file())


def _check_texts(entry: dict[str, Any]) -> None:
    if not {"ids", "texts", "failed"} <= entry.keys() or len(entry["ids"]) != len(entry["texts"]):
        raise DataError("text cache entry lacks ids/texts/failed or they disagree in length")


def _check_tokens(entry: dict[str, Any], n: int) -> None:
    ids, ptr = entry.get("token_ids"), entry.get("token_ptr")
    if ids is None or ptr is None or len(ptr) != n + 1 or int(ptr[-1]) != len(ids):
        raise DataError(f"token cache entry does not hold token ids with offsets for {n} crystals")


class CrystalDataModule:
    """Builds train/val/test datasets and loaders from a :class:`Config`.

    Call :meth:`setup` once (it featurises, or loads from the cache), then :meth:`loader`.
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.cache_root = (
            Path(cfg.dataset.cache_dir).expanduser()
            if cfg.dataset.cache_dir
            else records.default_cache_root()
        )
        self.graphs: GraphStore | None = None
        self.splits: dict[str, list[str]] = {}
        self.datasets: dict[str, CrystalDataset] = {}
        self.tokens: dict[str, torch.Tensor] | None = None
        self.tokenizer: Any = None
        self.info: DataInfo | None = None
        self.report: dict[str, Any] = {}
        self.text_lengths: dict[str, Any] | None = None
        # stored text-encoder states served with every sample (see attach_text_states)
        self.text_states: TokenStates | None = None
        # pinned host memory for batches (set by the trainer on CUDA: faster, asynchronous copies)
        self.pin_memory = False

    # ----------------------------------------------------------------------------------- keys
    def _source_settings(self) -> dict[str, Any]:
        d = self.cfg.dataset
        base = {
            "source": d.source,
            "limit": max_structures(self.cfg),
            "target": d.target,
            "duplicates": d.duplicates,
        }
        if d.source == "demo":
            from fusion_tuner.data.demo import GENERATOR_VERSION

            return base | {
                "demo_size": d.demo_size,
                "demo_seed": d.demo_seed,
                "demo_noise": d.demo_noise,
                "generator": GENERATOR_VERSION,
            }
        if d.source == "jarvis":
            from jarvis.db.figshare import get_db_info

            info = get_db_info().get(d.name)
            store = records.jarvis_store_dir(d.jarvis_dir).resolve()
            return base | {"name": d.name, "file": info[1] if info else None, "store": str(store)}
        if d.source == "table":
            path = data_paths.resolve(d.path or "").resolve()
            return base | {
                "path": str(path),
                "file": _file_signature([path]),
                "structure_column": d.structure_column,
                "id_column": d.id_column,
            }
        root = data_paths.resolve(d.root or "").resolve()
        files = list(root.glob("*")) + list((root / "structures").glob("*"))
        return base | {"root": str(root), "files": _file_signature(files)}

    def _graph_settings(self) -> dict[str, Any]:
        d = self.cfg.dataset
        return self._source_settings() | {
            "cutoff": d.cutoff,
            "max_neighbors": d.max_neighbors,
            "neighbor_strategy": d.neighbor_strategy,
            "feature_version": features.FEATURE_VERSION,
        }

    def _text_settings(self, graph_key: str) -> dict[str, Any]:
        d, t = self.cfg.dataset, self.cfg.text
        desc = data_paths.resolve(d.descriptions).resolve() if d.descriptions else None
        return {
            "graphs": graph_key,
            "source": t.source,
            "variant": t.describe_variant,
            "descriptions": [str(desc), _file_signature([desc])] if desc else None,
        }

    # ------------------------------------------------------------------------------- loading
    def _load_records(self) -> tuple[list[records.Crystal], records.LoadReport]:
        """The source's records, with ``dataset.duplicates`` applied (the same for every source)."""
        crystals, report = self._read_source()
        return records.resolve_duplicates(crystals, report, self.cfg.dataset.duplicates), report

    def _read_source(self) -> tuple[list[records.Crystal], records.LoadReport]:
        d, limit = self.cfg.dataset, max_structures(self.cfg)
        if d.source == "demo":
            from fusion_tuner.data.demo import generate_demo

            crystals = generate_demo(d.demo_size, d.demo_seed, d.demo_noise)
            report = records.LoadReport(source="demo", n_raw=len(crystals))
            if limit is not None and len(crystals) > limit:
                report.limited = len(crystals) - limit
                crystals = crystals[:limit]
            return crystals, report
        if d.source == "jarvis":
            store = records.jarvis_store_dir(d.jarvis_dir)
            return records.load_jarvis(d.name, d.target, store, limit)
        if d.source == "table":
            from fusion_tuner.data.tables import load_table

            path = data_paths.resolve(d.path or "")
            return load_table(
                path, d.target, d.structure_column, d.id_column, limit, d.max_table_bytes
            )
        return records.load_folder(data_paths.resolve(d.root or ""), limit, d.allow_outside_paths)

    def _build_graphs(self, loaded: tuple[list[records.Crystal], records.LoadReport]) -> dict:
        crystals, report = loaded
        log.info("featurising %d crystals (%s)", len(crystals), report.source)
        entry = features.featurize_all(
            crystals,
            self.cfg.dataset.cutoff,
            self.cfg.dataset.max_neighbors,
            self.cfg.dataset.num_workers,
            self.cfg.dataset.neighbor_strategy,
        )
        entry["load_report"] = report.as_dict()
        return entry

    def _build_texts(self, loaded: tuple[list[records.Crystal], records.LoadReport]) -> dict:
        d, t = self.cfg.dataset, self.cfg.text
        wanted = set(self.graphs.ids)
        crystals = [c for c in loaded[0] if c.id in wanted]
        extra = (
            records.read_descriptions(data_paths.resolve(d.descriptions), t.describe_variant)
            if d.descriptions
            else {}
        )
        own: dict[str, str] = {}
        # where each text came from (and how many "spglib: ... failed" lines describe() wrote)
        origin = {"dataset": 0, "file": 0, "describe": 0, "describe_spglib_messages": 0}
        for c in crystals:
            if t.source == "describe":
                break
            if c.text:
                own[c.id], origin["dataset"] = c.text, origin["dataset"] + 1
                continue
            found = extra.get(c.id) or extra.get(records.canonical_id(c.id))
            if found:
                own[c.id], origin["file"] = found, origin["file"] + 1
        missing = [c for c in crystals if c.id not in own]
        failed: list[list[str]] = []
        if missing and t.source == "dataset":
            raise DataError(
                f"text.source=dataset but {plural(len(missing), 'crystal')} have no description "
                f"(e.g. {[c.id for c in missing[:5]]}); give dataset.descriptions=FILE or use "
                "text.source=auto to generate them with Atoms.describe()"
            )
        if missing:
            log.info("describing %d crystals with Atoms.describe()", len(missing))
            generated, failed, spglib = features.describe_all(
                missing, t.describe_variant, d.num_workers
            )
            own.update(generated)
            origin["describe"] = len(generated)
            origin["describe_spglib_messages"] = spglib
        ids = [i for i in self.graphs.ids if i in own]
        return {"ids": ids, "texts": [own[i] for i in ids], "failed": failed, "origin": origin}

    def _check_drops(self, failed: list[list[str]]) -> None:
        lr = self.graphs.load_report
        attempted = lr["n_raw"] - lr["missing_target"] - lr["limited"]
        if attempted <= 0 or not self.graphs.ids:
            raise DataError(
                f"no usable crystals from {lr['source']} ({lr['n_raw']} records, "
                f"{lr['missing_target']} without dataset.target={self.cfg.dataset.target!r})"
            )
        frac = len(failed) / attempted
        if frac > self.cfg.dataset.max_drop_fraction:
            worst = "; ".join(f"{i}: {why}" for i, why in failed[:10])
            raise DataError(
                f"{len(failed)} of {attempted} structures ({frac:.1%}) could not be used, more than "
                f"dataset.max_drop_fraction={self.cfg.dataset.max_drop_fraction}. First: {worst}"
            )
        for cid, why in failed:
            log.warning("dropped %s: %s", cid, why)

    def _read_split_file(self) -> tuple[dict[str, list[str]], dict | None] | None:
        """The split file's ids per split and its labels (None: it has none); None without a
        split file. Read before featurising, so that a bad file fails at once."""
        d = self.cfg.dataset
        if not d.split_file:
            return None
        path = data_paths.resolve(d.split_file)
        wanted = records.read_split_file(path)
        labels = records.read_split_labels(path) if d.split_labels != "ignore" else None
        if d.split_labels == "use" and labels is None:
            raise DataError(
                f"dataset.split_labels=use, but dataset.split_file={d.split_file} carries no "
                "numeric labels (its splits are id lists or hold other values); use "
                "dataset.split_labels=check or ignore"
            )
        return wanted, labels

    def _split_labels(self, labels: dict[str, dict[str, float]] | None) -> dict[str, Any]:
        """Compare the split file's labels with the data's targets (``dataset.split_labels``);
        ``use`` puts the file's labels in place of the targets of the ids it lists."""
        d = self.cfg.dataset
        if d.split_labels == "ignore":
            return {"policy": "ignore"}
        if labels is None:
            return {"policy": d.split_labels, "labels": "none in the split file"}
        g = self.graphs
        ids = [cid for name in splits.SPLITS for cid in self.splits[name]]  # the usable ones
        found, report = splits.compare_labels(
            ids, g.targets[g.rows(ids)].tolist(), labels, d.split_label_tolerance
        )
        differ = sum(report[k]["differ"] for k in splits.SPLITS)
        counts = ", ".join(
            f"{k}: {report[k]['match']} match, {report[k]['differ']} differ, "
            f"{report[k]['missing']} missing"
            for k in splits.SPLITS
        )
        report = {"policy": d.split_labels} | report
        if d.split_labels == "use":
            targets = g.targets.clone()
            for cid, label in found.items():
                targets[g.row_of[cid]] = label
            self.graphs = dataclasses.replace(g, targets=targets)
            report["replaced"] = differ
            log.info("split labels used as targets (%s; %d targets replaced)", counts, differ)
        elif differ:
            log.warning(
                "the split file's labels differ from dataset.target=%r for %d crystals (%s; "
                "tolerance %g x max(1, |target|)); dataset.split_labels=use trains and evaluates "
                "on the file's labels",
                d.target,
                differ,
                counts,
                d.split_label_tolerance,
            )
        else:
            log.info("split file labels agree with the targets (%s)", counts)
        return report

    def _make_split(
        self, ids: list[str], split_file: tuple[dict[str, list[str]], dict | None] | None
    ) -> dict[str, Any]:
        d = self.cfg.dataset
        if split_file is not None:
            self.splits, split_report = splits.fixed_split(ids, split_file[0])
            if sum(split_report["missing_from_data"].values()):
                log.warning("split file ids missing from the data: %s", split_report)
        else:
            fractions = (d.train_fraction, d.val_fraction, d.test_fraction)
            self.splits = splits.random_split(ids, fractions, d.split_seed)
            split_report = {}
        for name in ("train", "val"):
            if not self.splits[name]:
                raise DataError(
                    f"the {name} split is empty ({len(ids)} usable crystals); use more data or "
                    "change dataset.*_fraction / dataset.split_file"
                )
        return split_report

    def _check_target_spread(self) -> None:
        """Refuse a constant training target: the model would learn nothing and R² is undefined."""
        y = self.graphs.targets[self.graphs.rows(self.splits["train"])]
        mean, std = float(y.mean()), float(y.std(unbiased=False))
        if std == 0.0 or std < 1e-12 * abs(mean):
            raise DataError(
                f"dataset.target={self.cfg.dataset.target!r} is constant on the {len(y)} training "
                f"crystals (every value is {mean:.6g}, std {std:.3g}): there is nothing to learn and "
                "R² is undefined. Choose another dataset.target, or check the data and the split"
            )

    def _load_tokenizer(self, texts_by_id: dict[str, str]):
        t = self.cfg.text
        if t.model_name_or_path is None:
            train_texts = [texts_by_id[i] for i in self.splits["train"]]
            return text.tiny_tokenizer(train_texts, t.tiny_vocab_size, self.cache_root)
        return text.hub_tokenizer(t.model_name_or_path)

    def setup(self, tokenizer: Any = None) -> CrystalDataModule:
        """Featurise (or load from the cache), split, tokenise (not for ``text=none``), and
        build the datasets.

        Args:
            tokenizer: use this tokenizer (e.g. a run's own saved one, when resuming) instead of
                training the tiny one or loading the hub's. WordPiece training is not
                deterministic, so a resumed run must keep the tokenizer its weights know.
        """
        cfg = self.cfg
        split_file = self._read_split_file()
        loaded = functools.cache(self._load_records)
        cache: dict[str, Any] = {}
        gkey = self._setup_graphs(loaded, cache)
        texts: dict[str, Any] | None = None
        if cfg.text.enabled:
            texts, tkey = self._setup_texts(loaded, gkey, cache)
            usable, text_failed = list(texts["ids"]), texts["failed"]
        else:  # text=none: every featurised crystal is usable, no text is read or generated
            usable, text_failed = list(self.graphs.ids), []
        failed = self.graphs.load_report["unreadable"] + self.graphs.failed + text_failed
        split_report = self._setup_split(usable, failed, split_file)
        text_info = {"vocab_size": 0, "pad_token_id": 0, "max_length": 0, "tokenizer_id": "none"}
        if texts is not None:
            texts_by_id = dict(zip(texts["ids"], texts["texts"], strict=True))
            text_info = self._setup_tokens(texts_by_id, tkey, tokenizer, cache)
        self.info = self._data_info(text_info)
        self.datasets = {name: self.dataset(ids) for name, ids in self.splits.items()}
        self.report = self._data_report(failed, usable, texts, split_report, cache)
        log.info(
            "data: %d usable crystals, split %s, cache hits %s",
            len(usable),
            self.report["split_sizes"],
            " ".join(f"{k}={hit}" for k, (_, hit) in cache.items()),
        )
        return self

    def _setup_graphs(
        self,
        loaded: Callable[[], tuple[list[records.Crystal], records.LoadReport]],
        cache: dict[str, Any],
    ) -> str:
        """Load (or featurise and cache) the graphs into ``self.graphs``; returns their cache
        key and records it, with whether it was a hit, in ``cache``."""
        gkey = stable_hash(self._graph_settings())
        entry, g_hit = load_or_build(
            self.cache_root / "features" / f"graphs-{gkey}.pt",
            lambda: self._build_graphs(loaded()),
            GraphStore.check,
        )
        self.graphs = GraphStore.from_dict(entry)
        cache["graphs"] = [gkey, g_hit]
        return gkey

    def _setup_texts(
        self,
        loaded: Callable[[], tuple[list[records.Crystal], records.LoadReport]],
        gkey: str,
        cache: dict[str, Any],
    ) -> tuple[dict[str, Any], str]:
        """Load (or make and cache) the texts of the crystals of graphs ``gkey``; returns the
        entry and its cache key, recorded, with whether it was a hit, in ``cache``."""
        tkey = stable_hash(self._text_settings(gkey))
        texts, t_hit = load_or_build(
            self.cache_root / "features" / f"texts-{tkey}.pt",
            lambda: self._build_texts(loaded()),
            _check_texts,
        )
        cache["texts"] = [tkey, t_hit]
        return texts, tkey

    def _setup_split(
        self,
        usable: list[str],
        failed: list[list[str]],
        split_file: tuple[dict[str, list[str]], dict | None] | None,
    ) -> dict[str, Any]:
        """Check what was dropped, split the usable crystals into ``self.splits`` and check the
        training target; returns the split report."""
        self._check_drops(failed)
        split_report = self._make_split(usable, split_file)
        if split_file is not None:
            split_report["labels"] = self._split_labels(split_file[1])
        self._check_target_spread()
        return split_report

    def _data_info(self, text_info: dict[str, Any]) -> DataInfo:
        """What a model needs to know about this data (``text_info``: the text fields)."""
        cfg = self.cfg
        return DataInfo(
            source=cfg.dataset.source,
            target=cfg.dataset.target,
            atom_features="cgcnn",
            atom_feature_dim=92,
            cutoff=cfg.dataset.cutoff,
            max_neighbors=cfg.dataset.max_neighbors,
            neighbor_strategy=cfg.dataset.neighbor_strategy,
            text_model=cfg.text.model_name_or_path if cfg.text.enabled else None,
            modality=modality(cfg),
            **text_info,
        )

    def _data_report(
        self,
        failed: list[list[str]],
        usable: list[str],
        texts: dict[str, Any] | None,
        split_report: dict[str, Any],
        cache: dict[str, Any],
    ) -> dict[str, Any]:
        """The data report (``data_report.json``)."""
        cfg = self.cfg
        report = {
            "load": self.graphs.load_report,
            "dropped": failed,
            "n_usable": len(usable),
            # texts from the dataset itself, a descriptions file, or Atoms.describe() (counts)
            "texts": texts.get("origin") if texts is not None else None,
            "split_sizes": {k: len(v) for k, v in self.splits.items()},
            "split_file": split_report,
            "modality": modality(cfg),
            "cache": cache,
        }
        if cfg.text.enabled:
            # tokenised lengths of every featurised crystal's text, and how many are cut
            report["text_lengths"] = self.text_lengths
        return report

    def _setup_tokens(
        self, texts_by_id: dict[str, str], tkey: str, tokenizer: Any, cache: dict[str, Any]
    ) -> dict[str, Any]:
        """Load (or train) the tokenizer and tokenise every crystal's text (cached); return the
        text fields of :class:`DataInfo`."""
        cfg = self.cfg
        self.tokenizer = tokenizer if tokenizer is not None else self._load_tokenizer(texts_by_id)
        tok_id = text.tokenizer_identity(self.tokenizer)
        okey = stable_hash({"texts": tkey, "tokenizer": tok_id, "max_length": cfg.text.max_length})
        self.tokens, k_hit = load_or_build(
            self.cache_root / "features" / f"tokens-{okey}.pt",
            lambda: text.tokenize(
                self.tokenizer,
                [texts_by_id.get(i, "") for i in self.graphs.ids],
                cfg.text.max_length,
            ),
            lambda entry: _check_tokens(entry, len(self.graphs.ids)),
        )
        cache["tokens"] = [okey, k_hit]
        lengths = self.tokens.get("full_lengths")
        if lengths is None:  # a token entry written before lengths were recorded
            lengths = text.full_lengths(
                self.tokenizer, [texts_by_id.get(i, "") for i in self.graphs.ids]
            )
        self.text_lengths = text.length_report(lengths, cfg.text.max_length)
        text.warn_truncation(self.text_lengths)
        return {
            "vocab_size": len(self.tokenizer),
            "pad_token_id": int(self.tokenizer.pad_token_id),
            "max_length": cfg.text.max_length,
            "tokenizer_id": tok_id,
        }

    # ------------------------------------------------------------------------------- outputs
    def dataset(self, ids: list[str]) -> CrystalDataset:
        """The crystals ``ids`` (in that order) as a dataset; an id not in the data is an error."""
        if self.info is None:
            raise RuntimeError("call setup() before asking for datasets")
        return CrystalDataset(
            self.graphs,
            self.tokens,
            self.graphs.rows(ids),
            self.info.max_length,
            self.info.pad_token_id,
            self.text_states,
        )

    def attach_text_states(self, states: TokenStates | None) -> None:
        """Serve ``states`` (stored text-encoder states per row, ``data/text_states.py``) with
        every sample of every dataset and loader made from now on, or stop (``None``)."""
        self.text_states = states
        for dataset in self.datasets.values():
            dataset.text_states = states

    def loader(
        self,
        split: str | list[str],
        batch_size: int | None = None,
        shuffle: bool | None = None,
        generator: torch.Generator | None = None,
        num_workers: int | None = None,
    ) -> DataLoader:
        """A loader of PyG batches over a split (``train`` is shuffled unless told otherwise)
        or over an explicit list of ids (in that order).

        Each batch is built in one vectorised step (:meth:`CrystalDataset.collate`), in worker
        processes when ``trainer.num_workers`` > 0 (kept alive across epochs), into pinned
        memory when :attr:`pin_memory` is set.
        """
        if not self.datasets:
            raise RuntimeError("call setup() before asking for loaders")
        dataset = self.datasets[split] if isinstance(split, str) else self.dataset(split)
        workers = self.cfg.trainer.num_workers if num_workers is None else num_workers
        return DataLoader(
            BatchedCrystalDataset(dataset),
            batch_size=batch_size or self.cfg.batch.batch_size,
            shuffle=(split == "train") if shuffle is None else shuffle,
            generator=generator,
            num_workers=workers,
            collate_fn=as_batch,
            pin_memory=self.pin_memory,
            persistent_workers=workers > 0,
        )

    def train_loader(self, **kwargs: Any) -> DataLoader:
        return self.loader("train", **kwargs)

    def val_loader(self, **kwargs: Any) -> DataLoader:
        return self.loader("val", **kwargs)

    def test_loader(self, **kwargs: Any) -> DataLoader:
        return self.loader("test", **kwargs)


def build_datamodule(cfg: Config, setup: bool = True) -> CrystalDataModule:
    """The data module of ``cfg``; with ``setup`` it is featurised (or loaded from the cache)."""
    dm = CrystalDataModule(cfg)
    return dm.setup() if setup else dm
