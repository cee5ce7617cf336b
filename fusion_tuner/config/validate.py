"""Validation: the rules that span fields, every violation reported in one
:class:`~fusion_tuner.errors.ConfigError`, before any data is touched."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fusion_tuner import packaged
from fusion_tuner.config.schema import (
    DATA_SOURCES,
    DESCRIBE_VARIANTS,
    DEVICES,
    DUPLICATE_POLICIES,
    INIT_SCOPES,
    LOGGER_BACKENDS,
    LOSSES,
    NEIGHBOR_STRATEGIES,
    OPTIMIZERS,
    POOLINGS,
    PROGRESS,
    READOUTS,
    SCHEDULERS,
    SPLIT_LABEL_POLICIES,
    TARGET_SCALES,
    TEXT_SOURCES,
    TEXT_STORE_MODES,
    WANDB_MODES,
    Config,
    DatasetConfig,
    ModelConfig,
    SchedulerConfig,
    SweepConfig,
)
from fusion_tuner.errors import ConfigError


def _check_choice(problems: list[str], key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        problems.append(f"{key}={value!r} is not one of {', '.join(choices)}")


def _check_range(
    problems: list[str], key: str, value: float | None, lo: float, hi: float, hi_open: bool = False
) -> None:
    if value is None:
        return
    bad = not math.isfinite(value) or value < lo or (value >= hi if hi_open else value > hi)
    if bad:
        closing = ")" if hi_open else "]"
        problems.append(f"{key}={value} must lie in [{lo}, {hi}{closing}")


def _check_min(problems: list[str], key: str, value: float | None, lo: float) -> None:
    if value is not None and not value >= lo:
        problems.append(f"{key}={value} must be >= {lo}")


def _check_divides(problems: list[str], dim_key: str, dim: int, heads_key: str, heads: int) -> None:
    if heads < 1:
        problems.append(f"{heads_key}={heads} must be >= 1")
    elif dim % heads != 0:
        problems.append(
            f"{heads_key}={heads} must divide {dim_key}={dim} "
            f"(valid head counts: {', '.join(str(h) for h in range(1, dim + 1) if dim % h == 0)})"
        )


# Keys that only one source reads. Demo keys are left out: the others ignore them, so a shared
# override list (tests, sweeps) may carry dataset.demo_size whatever the source.
SOURCE_KEYS = {
    "jarvis": ("name", "jarvis_dir"),
    "folder": ("root", "allow_outside_paths"),
    "table": ("path", "structure_column", "id_column", "max_table_bytes"),
}


def dataset_file_problems(d: DatasetConfig) -> list[tuple[str, str]]:
    """``(key, problem)`` for each data path the config names that does not exist.

    Relative paths are relative to the working directory (Hydra does not change it here);
    ``sample://`` and ``data://`` paths name bundled and downloaded data (see fusion_tuner/paths.py).
    """
    wanted = [("split_file", d.split_file, "file"), ("descriptions", d.descriptions, "file")]
    if d.source == "folder":
        wanted.insert(0, ("root", d.root, "folder"))
    if d.source == "table":
        wanted.insert(0, ("path", d.path, "file"))
    out = []
    for key, value, kind in wanted:
        if not value:
            continue
        from fusion_tuner import paths as data_paths

        path = data_paths.resolve(value)
        ok = path.is_dir() if kind == "folder" else path.is_file()
        if not ok:
            what = "no such folder" if kind == "folder" else "no such file"
            if path.exists():
                what = f"not a {kind}"
            hint = data_paths.explain_missing(value)
            out.append((key, f"dataset.{key}={value}: {what} ({path.resolve()}){hint}"))
    return out


def _validate_dataset(c: Config, p: list[str]) -> None:
    d = c.dataset
    _check_choice(p, "dataset.source", d.source, DATA_SOURCES)
    _check_choice(p, "dataset.duplicates", d.duplicates, DUPLICATE_POLICIES)
    if d.source == "folder" and not d.root:
        p.append("dataset.root must name the folder holding id_prop.csv when dataset.source=folder")
    if d.source == "table" and not d.path:
        p.append(
            "dataset.path must name the table file (.csv, .json, .jsonl; optionally .gz / .zip) "
            "when dataset.source=table"
        )
    defaults = DatasetConfig()
    for source, keys in SOURCE_KEYS.items():
        if source == d.source:
            continue
        for key in keys:
            value = getattr(d, key)
            if value != getattr(defaults, key):
                p.append(
                    f"dataset.{key}={value} is read only by dataset={source}, but "
                    f"dataset.source={d.source}: add dataset={source} (or drop dataset.{key})"
                )
    p.extend(problem for _, problem in dataset_file_problems(d))
    for key in ("train_fraction", "val_fraction", "test_fraction"):
        _check_range(p, f"dataset.{key}", getattr(d, key), 0.0, 1.0)
    total = d.train_fraction + d.val_fraction + d.test_fraction
    if d.split_file is None and abs(total - 1.0) > 1e-6:
        p.append(
            f"dataset.train_fraction + val_fraction + test_fraction = {total:g} must equal 1 "
            f"({d.train_fraction}, {d.val_fraction}, {d.test_fraction})"
        )
    if d.split_file is None and (d.train_fraction <= 0 or d.val_fraction <= 0):
        p.append("dataset.train_fraction and dataset.val_fraction must be > 0")
    _check_choice(p, "dataset.split_labels", d.split_labels, SPLIT_LABEL_POLICIES)
    _check_min(p, "dataset.split_label_tolerance", d.split_label_tolerance, 0.0)
    if d.split_labels == "use" and not d.split_file:
        p.append(
            "dataset.split_labels=use needs dataset.split_file (the labels come from it); "
            "drop it or name the split file"
        )
    _check_choice(p, "dataset.neighbor_strategy", d.neighbor_strategy, NEIGHBOR_STRATEGIES)
    _check_min(p, "dataset.cutoff", d.cutoff, 1e-3)
    _check_min(p, "dataset.max_neighbors", d.max_neighbors, 1)
    _check_min(p, "dataset.bond_rbf_bins", d.bond_rbf_bins, 2)
    _check_min(p, "dataset.angle_rbf_bins", d.angle_rbf_bins, 2)
    _check_min(p, "dataset.limit", d.limit, 1)
    _check_min(p, "dataset.demo_size", d.demo_size, 20)
    _check_min(p, "dataset.demo_noise", d.demo_noise, 0.0)
    _check_min(p, "dataset.num_workers", d.num_workers, 0)
    _check_range(p, "dataset.max_drop_fraction", d.max_drop_fraction, 0.0, 1.0)
    _check_min(p, "dataset.max_table_bytes", d.max_table_bytes, 1)


def _validate_text(c: Config, p: list[str]) -> None:
    t = c.text
    _check_min(p, "text.max_length", t.max_length, 8)
    _check_choice(p, "text.pooling", t.pooling, POOLINGS)
    _check_choice(p, "text.source", t.source, TEXT_SOURCES)
    _check_choice(p, "text.describe_variant", t.describe_variant, DESCRIBE_VARIANTS)
    _check_choice(p, "text.store", t.store, TEXT_STORE_MODES)
    _check_min(p, "text.store_max_gb", t.store_max_gb, 0.0)
    if packaged.is_packaged(t.model_name_or_path):
        why = packaged.problem(t.model_name_or_path)
        if why is not None:
            p.append(why)
    if t.learning_rate is not None and not t.learning_rate > 0:
        p.append(f"text.learning_rate={t.learning_rate} must be > 0, or null (the main rate)")
    if t.train_last_n_layers < -1:
        p.append(f"text.train_last_n_layers={t.train_last_n_layers} must be -1 (all) or >= 0")
    if t.model_name_or_path is None:
        _check_divides(
            p, "text.tiny_hidden_size", t.tiny_hidden_size, "text.tiny_num_heads", t.tiny_num_heads
        )
        _check_min(p, "text.tiny_num_layers", t.tiny_num_layers, 1)
        if t.train_last_n_layers > t.tiny_num_layers:
            p.append(
                f"text.train_last_n_layers={t.train_last_n_layers} exceeds "
                f"text.tiny_num_layers={t.tiny_num_layers}"
            )
        _check_min(p, "text.tiny_vocab_size", t.tiny_vocab_size, 100)


def _validate_model(c: Config, p: list[str]) -> None:
    r, arch = c.regularization, c.arch
    for key in (
        "graph_dropout",
        "cross_modal_dropout",
        "fine_grained_dropout",
        "middle_fusion_dropout",
    ):
        _check_range(p, f"regularization.{key}", getattr(r, key), 0.0, 1.0, hi_open=True)
    _check_min(p, "regularization.weight_decay", r.weight_decay, 0.0)
    _check_min(p, "arch.alignn_layers", arch.alignn_layers, 1)
    _check_min(p, "arch.gcn_layers", arch.gcn_layers, 0)
    _check_min(p, "arch.hidden_features", arch.hidden_features, 1)
    _check_min(p, "arch.embedding_features", arch.embedding_features, 1)
    _check_choice(p, "arch.readout", arch.readout, READOUTS)
    if c.text.enabled:  # the fusion and attention rules concern the text branch only
        _validate_fusion(c, p)


def _validate_fusion(c: Config, p: list[str]) -> None:
    f, a, arch = c.fusion, c.attention, c.arch
    layers = f.middle_fusion_layers
    if not (isinstance(layers, list) and all(isinstance(i, int) for i in layers)):
        p.append(
            f"fusion.middle_fusion_layers={layers!r} is not a layer list: "
            'write "2,3" or [2,3] (1-based ALIGNN layer numbers)'
        )
    elif f.use_middle_fusion:
        if not layers:
            p.append("fusion.middle_fusion_layers is empty while fusion.use_middle_fusion=true")
        bad = [i for i in layers if not 1 <= i <= arch.alignn_layers]
        if bad:
            p.append(
                f"fusion.middle_fusion_layers={layers} has {bad} outside "
                f"1..arch.alignn_layers={arch.alignn_layers}"
            )
        if len(set(layers)) != len(layers):
            p.append(f"fusion.middle_fusion_layers={layers} lists a layer twice")
    if f.use_middle_fusion:
        _check_divides(
            p,
            "fusion.middle_fusion_hidden_dim",
            f.middle_fusion_hidden_dim,
            "fusion.middle_fusion_num_heads",
            f.middle_fusion_num_heads,
        )
    _check_min(p, "fusion.contrastive_loss_weight", f.contrastive_loss_weight, 0.0)
    if not f.contrastive_temperature > 0:
        p.append(f"fusion.contrastive_temperature={f.contrastive_temperature} must be > 0")
    if a.use_cross_modal_attention:
        _check_divides(
            p,
            "attention.cross_modal_hidden_dim",
            a.cross_modal_hidden_dim,
            "attention.cross_modal_num_heads",
            a.cross_modal_num_heads,
        )
    if a.use_fine_grained_attention:
        _check_divides(
            p,
            "attention.fine_grained_hidden_dim",
            a.fine_grained_hidden_dim,
            "attention.fine_grained_num_heads",
            a.fine_grained_num_heads,
        )


def sweep_problems(w: SweepConfig) -> list[str]:
    """What is wrong with the ``sweep.*`` keys, one sentence each (empty: nothing)."""
    p = []
    if w.initial_seeds < 2:
        p.append(f"sweep.initial_seeds={w.initial_seeds} must be >= 2 (an interval needs 2 seeds)")
    if w.seeds_per_round < 1:
        p.append(f"sweep.seeds_per_round={w.seeds_per_round} must be >= 1")
    if w.max_seeds < w.initial_seeds:
        p.append(
            f"sweep.max_seeds={w.max_seeds} must be >= sweep.initial_seeds={w.initial_seeds} "
            f"(sweep.max_seeds={w.initial_seeds}: one round, a fixed design)"
        )
    if not 0 < w.family_alpha < 0.5:
        p.append(f"sweep.family_alpha={w.family_alpha} must lie in (0, 0.5), e.g. 0.05")
    if w.confirm_seeds < 0 or w.confirm_seeds == 1:
        p.append(
            f"sweep.confirm_seeds={w.confirm_seeds} must be 0 (no confirmation) or >= 2 "
            "(an interval needs 2 seeds)"
        )
    if not 0 < w.equivalence_margin < 1:
        p.append(f"sweep.equivalence_margin={w.equivalence_margin} must lie in (0, 1), e.g. 0.05")
    return p


def _validate_scheduler(s: SchedulerConfig, p: list[str]) -> None:
    if not (math.isfinite(s.learning_rate) and s.learning_rate > 0):
        p.append(f"scheduler.learning_rate={s.learning_rate} must be > 0")
    _check_choice(p, "scheduler.optimizer", s.optimizer, OPTIMIZERS)
    _check_choice(p, "scheduler.scheduler", s.scheduler, SCHEDULERS)
    _check_min(p, "scheduler.warmup_steps", s.warmup_steps, 0)
    _check_min(p, "scheduler.epochs", s.epochs, 1)
    _check_min(p, "scheduler.n_early_stopping", s.n_early_stopping, 1)
    _check_min(p, "scheduler.min_delta", s.min_delta, 0.0)
    _check_range(p, "scheduler.min_lr_ratio", s.min_lr_ratio, 0.0, 1.0)
    _check_min(p, "scheduler.step_size", s.step_size, 1)
    if s.pct_start is not None and not 0.0 < s.pct_start < 1.0:
        p.append(f"scheduler.pct_start={s.pct_start} must lie in (0, 1) (or null: warmup_steps)")
    _check_range(p, "scheduler.base_momentum", s.base_momentum, 0.0, 1.0, hi_open=True)
    _check_range(p, "scheduler.max_momentum", s.max_momentum, 0.0, 1.0, hi_open=True)
    if s.base_momentum > s.max_momentum:
        p.append(
            f"scheduler.base_momentum={s.base_momentum} exceeds "
            f"scheduler.max_momentum={s.max_momentum}"
        )
    onecycle_only = [
        k for k in ("pct_start", "cycle_momentum") if getattr(s, k) not in (None, False)
    ]
    if s.scheduler != "onecycle" and onecycle_only:
        p.append(
            f"scheduler.{onecycle_only[0]} is read only by scheduler.scheduler=onecycle, but "
            f"scheduler.scheduler={s.scheduler}: drop it or use scheduler.scheduler=onecycle"
        )
    _check_range(p, "scheduler.step_gamma", s.step_gamma, 0.0, 1.0)


def _validate_training(c: Config, p: list[str]) -> None:
    t, b, lg = c.trainer, c.budget, c.logger
    _validate_scheduler(c.scheduler, p)
    _check_min(p, "batch.batch_size", c.batch.batch_size, 1)
    _check_choice(p, "trainer.loss", t.loss, LOSSES)
    _check_choice(p, "trainer.target_scale", t.target_scale, TARGET_SCALES)
    device = str(t.device)
    index = device.removeprefix("cuda:")
    if device not in DEVICES and not (device.startswith("cuda:") and index.isdigit()):
        p.append(
            f"trainer.device={t.device!r} is not one of {', '.join(DEVICES)} or cuda:N "
            "(N: a GPU index, e.g. cuda:1)"
        )
    _check_min(p, "trainer.devices", t.devices, 1)
    if t.devices > 1 and device.startswith("cuda:") and index.isdigit():
        p.append(
            f"trainer.device={t.device} names one GPU but trainer.devices={t.devices} needs "
            f"{t.devices}: use trainer.device=cuda (ranks take cuda:0 .. cuda:{t.devices - 1}; "
            "choose the GPUs with CUDA_VISIBLE_DEVICES)"
        )
    _check_choice(p, "trainer.progress", t.progress, PROGRESS)
    _check_min(p, "trainer.num_workers", t.num_workers, 0)
    _check_min(p, "trainer.grad_clip_norm", t.grad_clip_norm, 1e-12)
    _check_min(p, "trainer.num_threads", t.num_threads, 1)
    _check_min(p, "budget.max_epochs", b.max_epochs, 1)
    _check_min(p, "budget.max_structures", b.max_structures, 20)
    _check_range(p, "budget.max_warmup_fraction", b.max_warmup_fraction, 0.0, 1.0)
    if b.width_scale is not None and not 0.0 < b.width_scale <= 1.0:
        p.append(
            f"budget.width_scale={b.width_scale} must be in (0, 1] (a fraction of the "
            "configured widths), or null for the widths as configured"
        )
    _check_choice(p, "logger.backend", lg.backend, LOGGER_BACKENDS)
    _check_choice(p, "logger.mode", lg.mode, WANDB_MODES)
    tr = c.trial
    if tr.number is not None and (tr.number < 0 or not tr.study or not tr.storage):
        p.append(
            f"trial.number={tr.number} needs trial.study and trial.storage and must be >= 0; "
            "these keys are set by the Optuna sweeper (hydra/sweeper=optuna), not by hand"
        )


def init_from_problem(m: ModelConfig) -> str | None:
    """Why ``model.init_from`` cannot be used, when it names nothing that exists."""
    if m.init_from and not Path(m.init_from).expanduser().exists():
        return (
            f"model.init_from={m.init_from} does not exist; give a completed run directory (its "
            "best_model.pt) or a checkpoint file, or drop model.init_from for fresh weights"
        )
    return None


def _validate_init(c: Config, p: list[str]) -> None:
    m = c.model
    _check_choice(p, "model.init_scope", m.init_scope, INIT_SCOPES)
    _check_range(p, "model.init_min_loaded", m.init_min_loaded, 0.0, 1.0)
    missing = init_from_problem(m)
    if missing:
        p.append(missing)
    if m.freeze_graph_epochs < -1:
        p.append(
            f"model.freeze_graph_epochs={m.freeze_graph_epochs} must be -1 (the whole run) or >= 0"
        )
    if m.freeze_graph_epochs != 0 and not m.init_from:
        p.append(
            f"model.freeze_graph_epochs={m.freeze_graph_epochs} freezes a freshly initialised graph "
            "encoder: set model.init_from=RUN_DIR (the run whose weights to start from)"
        )
    if m.freeze_graph_epochs != 0 and c.trainer.devices > 1:
        # DDP reduces the gradients of the parameters it was built with; frozen ones have none
        p.append(
            f"model.freeze_graph_epochs={m.freeze_graph_epochs} with trainer.devices="
            f"{c.trainer.devices}: freezing the graph encoder is not supported on several "
            "processes; fine-tune with trainer.devices=1, or set model.freeze_graph_epochs=0"
        )


def validate(cfg: Config) -> Config:
    """Check every rule that spans fields; raise one :class:`ConfigError` listing all problems.

    Runs before any data is touched, so a bad sweep fails in seconds, not after featurisation.
    """
    problems: list[str] = []
    _validate_dataset(cfg, problems)
    if cfg.text.enabled:  # graph-only runs never read the text, fusion or attention keys
        _validate_text(cfg, problems)
    _validate_model(cfg, problems)
    _validate_training(cfg, problems)
    _validate_init(cfg, problems)
    problems += sweep_problems(cfg.sweep)
    if problems:
        raise ConfigError(problems)
    return cfg
