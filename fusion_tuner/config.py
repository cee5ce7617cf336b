"""Typed configuration: one dataclass per config group, the tuning plan's baseline as defaults.

The groups follow the plan's six priority tiers (``regularization``, ``fusion``, ``scheduler``
for optimisation, ``attention``, ``batch``, ``arch``) plus ``dataset``, ``text``, ``trainer``,
``budget`` and ``logger``. Hydra merges ``conf/`` YAML options into these schemas, so an
unknown key or a wrongly typed value fails at compose time; :func:`validate` then checks the
rules that span fields and reports every violation in one :class:`ConfigError`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore

from fusion_tuner.errors import ConfigError
from fusion_tuner.io import stable_hash
from fusion_tuner.models import packaged

DATA_SOURCES = ("demo", "jarvis", "folder", "table")
DUPLICATE_POLICIES = ("error", "first", "drop")
SPLIT_LABEL_POLICIES = ("check", "use", "ignore")
NEIGHBOR_STRATEGIES = ("k-nearest", "pure")  # fusion_tuner.data.graphs builds each
TEXT_SOURCES = ("auto", "describe", "dataset")
DESCRIBE_VARIANTS = ("desc_1", "desc_2", "desc_3")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("onecycle", "lambda", "cosine", "step", "none")
LOSSES = ("mse", "l1", "huber")
TARGET_SCALES = ("standardized", "raw")
READOUTS = ("mlp", "linear")
DEVICES = ("auto", "cpu", "cuda", "cuda:N")
TEXT_STORE_MODES = ("auto", "off")
POOLINGS = ("cls", "mean")
LOGGER_BACKENDS = ("none", "wandb")
WANDB_MODES = ("auto", "online", "offline", "disabled")
PROGRESS = ("auto", "bar", "line")
INIT_SCOPES = ("all", "graph_encoder")


@dataclass
class DatasetConfig:
    """Where crystals come from, how they are split and turned into graphs."""

    # demo | jarvis | folder | table
    source: str = "demo"
    # property to predict (jarvis: any numeric key; table: a column)
    target: str = "synthetic_gap"
    # jarvis.db.figshare dataset name
    name: str = "dft_3d"
    # figshare download cache; None: $FUSION_TUNER_JARVIS_DIR or <cache>/jarvis
    jarvis_dir: str | None = None
    # folder source: directory with id_prop.csv and structure files
    root: str | None = None
    # folder source: let id_prop.csv name absolute paths or paths leaving dataset.root (..);
    # false: such rows are skipped with their reason
    allow_outside_paths: bool = False
    # table source: a .csv / .json / .jsonl file (optionally .gz or a one-file .zip)
    path: str | None = None
    # table source: the column holding CIF / POSCAR text, a JARVIS Atoms or pymatgen Structure
    # dict; None: the first of structure, cif, atoms, poscar that the table has
    structure_column: str | None = None
    # table source: the id column; None: the row number (from 0)
    id_column: str | None = None
    # optional id -> text file (CSV id,description or JSON[.zip])
    descriptions: str | None = None
    # an id that occurs twice: error | first (keep it) | drop (all)
    duplicates: str = "error"
    # keep only the first N usable records
    limit: int | None = None
    # number of generated demo crystals
    demo_size: int = 600
    # seed of the demo generator (not the model seed)
    demo_seed: int = 0
    # std of the noise added to the demo target
    demo_noise: float = 0.05
    # JSON {"train": {id: v}, "val": ..., "test": ...}, zipped or not
    split_file: str | None = None
    # the split file's labels vs the data set's targets of the same ids: check (compare, warn
    # with counts) | use (train and evaluate on the file's labels: the exact benchmark) | ignore
    split_labels: str = "check"
    # a label matches a target when |label - target| <= split_label_tolerance * max(1, |target|)
    split_label_tolerance: float = 1e-4
    train_fraction: float = 0.8
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    # seeds the random split only; the model seed is random_seed
    split_seed: int = 123
    # how the atom graph is built: k-nearest (upstream ALIGNN's default: each atom's whole shell
    # out to its max_neighbors-th neighbour, bonds in both directions, the radius grows from
    # cutoff until every atom has max_neighbors) | pure (upstream's pure-torch builder: the
    # max_neighbors nearest within cutoff, one direction, no growth)
    neighbor_strategy: str = "k-nearest"
    # neighbour search radius in Angstrom (k-nearest: where the search starts)
    cutoff: float = 8.0
    # k of the k-nearest-neighbour graph
    max_neighbors: int = 12
    # Gaussian centres for bond lengths over [0, cutoff]
    bond_rbf_bins: int = 80
    # Gaussian centres for bond-angle cosines over [-1, 1]
    angle_rbf_bins: int = 40
    # stop if more unreadable structures than this are dropped
    max_drop_fraction: float = 0.05
    # table source: the most bytes the file may hold once unpacked from .gz / .zip (counted
    # while unpacking, headers not trusted): a guard against decompression bombs, far above any
    # real table (2 GiB; descriptions and split files are held to the same 2 GiB)
    max_table_bytes: int = 2 << 30
    # featurised cache; None: $FUSION_TUNER_CACHE_DIR or ~/.cache/fusion_tuner
    cache_dir: str | None = None
    # processes used to featurise (0: in this process)
    num_workers: int = 0


@dataclass
class TextConfig:
    """The text encoder, its tokenizer and where descriptions come from."""

    # false (``text=none``): the graph-only reference, ALIGNN alone. No text encoder, middle
    # fusion, fine-grained or cross-modal attention, contrastive loss, descriptions or tokens;
    # every other text, fusion and attention key is inert (see :func:`inert_text_keys`)
    enabled: bool = True
    # None: a tiny BERT built from the fields below
    model_name_or_path: str | None = None
    # tokens kept per description (BERT-shaped encoders hold at most 512); data_report.json's
    # text_lengths says how many are cut, and a run warns when more than 5 % are
    max_length: int = 512
    # keep every encoder weight fixed
    freeze: bool = False
    # when not frozen: fine-tune only the last N layers (-1: all)
    train_last_n_layers: int = -1
    # cls | mean: how the pooled text vector is formed (mean for encoders pretrained without a
    # sentence objective, e.g. MatSciBERT: their [CLS] vector carries no trained meaning)
    pooling: str = "cls"
    # learning rate of a pretrained encoder's trainable weights (their own optimizer groups,
    # under the same schedule and warm-up as the rest): 3e-5 in text=matscibert and text=minilm;
    # null: scheduler.learning_rate. Not used by the tiny encoder (random init, trained from
    # scratch at scheduler.learning_rate) nor by text=none
    learning_rate: float | None = None
    # auto: dataset text if present else describe(); describe | dataset
    source: str = "auto"
    # which text of jarvis Atoms.describe() is used
    describe_variant: str = "desc_2"
    # auto: a frozen or partially frozen encoder's outputs are computed once and stored on disk
    # (<cache>/text_states, shared by every run and sweep); off: computed in every batch
    store: str = "auto"
    # disk budget of one store in GB (1e9 bytes); a store that would exceed it is not built
    # and the encoder runs in every batch instead (a warning names this key). None: no limit
    store_max_gb: float | None = 32.0
    tiny_hidden_size: int = 64
    tiny_num_layers: int = 2
    tiny_num_heads: int = 2
    tiny_intermediate_size: int = 128
    # WordPiece vocabulary trained on the training texts
    tiny_vocab_size: int = 1000


@dataclass
class RegularizationConfig:
    """Plan tier 1: dropouts and weight decay."""

    graph_dropout: float = 0.15
    weight_decay: float = 0.0005
    cross_modal_dropout: float = 0.1
    fine_grained_dropout: float = 0.2
    middle_fusion_dropout: float = 0.1


@dataclass
class FusionConfig:
    """Plan tier 2: middle fusion of text into the ALIGNN layers, plus the contrastive loss."""

    use_middle_fusion: bool = True
    # 1-based ALIGNN layer numbers; the plan's "2,3" spelling or a list. A list[int] after parsing.
    middle_fusion_layers: Any = "2"
    middle_fusion_hidden_dim: int = 128
    middle_fusion_num_heads: int = 2
    use_contrastive_loss: bool = False
    contrastive_loss_weight: float = 0.1
    contrastive_temperature: float = 0.1

    def __post_init__(self) -> None:
        parsed = parse_layers(self.middle_fusion_layers)
        if parsed is not None:
            self.middle_fusion_layers = parsed


@dataclass
class SchedulerConfig:
    """Plan tier 3: optimiser, learning-rate schedule, epochs and early stopping."""

    learning_rate: float = 0.001
    # adamw | adam | sgd
    optimizer: str = "adamw"
    # onecycle | lambda | cosine | step | none
    scheduler: str = "onecycle"
    # optimizer steps of linear warm-up (onecycle: its rising phase)
    warmup_steps: int = 2000
    # hard cap on epochs
    epochs: int = 100
    # patience in epochs on validation MAE
    n_early_stopping: int = 150
    # an improvement must beat the best val MAE by more than this
    min_delta: float = 0.001
    # cosine: floor as a fraction of learning_rate
    min_lr_ratio: float = 0.01
    # step: epochs between decays
    step_size: int = 30
    # step: decay factor
    step_gamma: float = 0.5
    # sgd only
    momentum: float = 0.9
    # onecycle: the rising phase as a fraction of the run's optimizer steps, exactly as
    # torch.optim.lr_scheduler.OneCycleLR's pct_start (warmup_steps is then not used).
    # None: warmup_steps sets the rising phase (the plan's schedule)
    pct_start: float | None = None
    # onecycle: cycle the momentum (Adam/AdamW beta1, SGD momentum) inversely to the learning
    # rate between base_momentum and max_momentum, as OneCycleLR(cycle_momentum=True) does;
    # the schedule is then torch's OneCycleLR itself
    cycle_momentum: bool = False
    # OneCycleLR's defaults
    base_momentum: float = 0.85
    max_momentum: float = 0.95


@dataclass
class AttentionConfig:
    """Plan tier 4: fine-grained (atom-token) and global cross-modal attention."""

    cross_modal_num_heads: int = 4
    fine_grained_num_heads: int = 8
    cross_modal_hidden_dim: int = 256
    fine_grained_hidden_dim: int = 256
    use_cross_modal_attention: bool = True
    use_fine_grained_attention: bool = True


@dataclass
class BatchConfig:
    """Plan tier 5."""

    batch_size: int = 128


@dataclass
class ArchConfig:
    """Plan tier 6: the ALIGNN encoder's size."""

    alignn_layers: int = 4
    gcn_layers: int = 4
    hidden_features: int = 256
    embedding_features: int = 64
    # the head on the pooled vector: mlp (Linear -> SiLU -> Linear, the plan's model) | linear
    # (one Linear, as upstream ALIGNN's fc)
    readout: str = "mlp"


@dataclass
class ModelConfig:
    """Where the weights start: fresh, or another run's best weights (fine-tuning)."""

    # a run directory or checkpoint whose weights start this run; None: fresh initialisation
    init_from: str | None = None
    # all: every tensor whose name and shape match | graph_encoder: the ALIGNN encoder only
    init_scope: str = "all"
    # keep the graph encoder fixed for the first N epochs (0: never, -1: the whole run)
    freeze_graph_epochs: int = 0
    # refuse to start when init_from fills less than this fraction of the tensors in scope
    # (another architecture: the run would train mostly from scratch); 0 allows any
    init_min_loaded: float = 0.5


@dataclass
class TrainerConfig:
    """How a run executes; none of this changes what is being tuned."""

    # mse | l1 | huber (task loss on the target as target_scale gives it)
    loss: str = "mse"
    # standardized: the model learns (y - mean) / std of the training split | raw: y itself, in
    # its units (upstream ALIGNN); the checkpoint keeps the mean and std either way (0 and 1 raw)
    target_scale: str = "standardized"
    huber_delta: float = 1.0
    # None: no clipping
    grad_clip_norm: float | None = 5.0
    # auto | cpu | cuda | cuda:N (one GPU by index; with devices > 1 use cuda)
    device: str = "auto"
    # processes (one per GPU, or CPU shares) training this one run with DDP; the global batch
    # stays batch.batch_size. 1: one process, or as many as torchrun/srun started
    devices: int = 1
    # bf16 autocast on the run's device (CUDA or CPU; on a CPU it pays only with native bf16:
    # AVX512-BF16 or AMX)
    bf16: bool = False
    # torch.compile the graph encoder (dynamic shapes; the first batches pay the compilation,
    # about a minute per variant on a 2-core CPU, much less from inductor's on-disk cache).
    # 2-core CPU, default model: eager/compiled training throughput in docs/benchmarks.md.
    # Off by default: runs of a few minutes (smoke, tests) spend more on compiling than it saves
    compile: bool = False
    # DataLoader worker processes
    num_workers: int = 0
    # torch deterministic algorithms (CPU runs become bit-reproducible)
    deterministic: bool = False
    # auto: a bar on a terminal, one line per epoch otherwise | bar | line
    progress: str = "auto"
    # torch intra-op threads; None: torch's default
    num_threads: int | None = None
    # keep last.pt once a run has completed (default: only best_model.pt stays)
    keep_last_checkpoint: bool = False
    # discard this run directory's checkpoints and train from epoch 1 (e.g. after an
    # unreadable last.pt); a completed run is still only reported as complete
    start_over: bool = False


@dataclass
class BudgetConfig:
    """Caps for quick runs; ``full`` leaves the plan's settings untouched."""

    name: str = "full"
    # caps scheduler.epochs
    max_epochs: int | None = None
    # caps the number of crystals loaded
    max_structures: int | None = None
    # caps warmup_steps at this fraction of the run's steps
    max_warmup_fraction: float | None = None
    # multiplies the model's widths (arch.hidden_features, arch.embedding_features,
    # fusion.middle_fusion_hidden_dim, attention.*_hidden_dim), each rounded to a multiple of
    # its heads, so experiments that change a width keep their ratio to the baseline
    width_scale: float | None = None


@dataclass
class LoggerConfig:
    """Experiment tracking besides the plain files every run writes."""

    # none | wandb
    backend: str = "none"
    project: str = "fusion_tuner"
    entity: str | None = None
    # None: the sweep (or experiment) name
    group: str | None = None
    # None: the experiment name
    job_type: str | None = None
    # None: experiment (and seed)
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    # auto: online with an API key, else offline | online | offline | disabled
    mode: str = "auto"


@dataclass
class BaseRecord:
    """Where a chained run started: filled in from ``base_sweep`` when the run is composed
    (:mod:`fusion_tuner.sweeps.chain`), never set by hand. Recorded in ``.hydra/config.yaml``,
    the checkpoint and the W&B config."""

    # the base sweep directory (absolute)
    sweep: str | None = None
    # the base sweep's winning experiment; None when it had no ✅ winner (its baseline is kept)
    winner: str | None = None
    # dotted key -> value: the configuration the run started from, against conf/'s baseline
    overrides: dict[str, Any] = field(default_factory=dict)
    # keys of ``overrides`` that this run's experiment or command line set itself (theirs win)
    superseded: list[str] = field(default_factory=list)


@dataclass
class TrialConfig:
    """Which Optuna trial a run is (set by the Optuna sweeper, ``hydra/sweeper=optuna``; never by
    hand). A trial's run reports its validation MAE to the study every epoch and stops early
    when the study's pruner says so (:mod:`fusion_tuner.search.pruning`)."""

    # the trial's number in the study; None: the run is not a trial
    number: int | None = None
    # the study's name in the journal
    study: str | None = None
    # the study's journal file (absolute path, in the search's sweep directory)
    storage: str | None = None


@dataclass
class SweepConfig:
    """How a sweep of experiments against a baseline decides (``fusion_tuner.sweeps.sequential``)
    and, under the rounds sweeper (``+phase=N`` selects it), how many seeds it runs. Read by the
    sweeper and the summary; no run computes differently for them (left out of the hash)."""

    # seeds per experiment in the first round (the phases' grids run seeds 1..initial_seeds)
    initial_seeds: int = 3
    # seeds each further round adds to every experiment whose decision is still open
    seeds_per_round: int = 2
    # at most this many seeds per experiment; = initial_seeds: one round, a fixed design
    max_seeds: int = 10
    # family-wise error rate of any false ✅/❌ over the sweep's experiments (Holm)
    family_alpha: float = 0.05
    # ⚠️ unchanged: the equivalence (TOST) interval lies within ± this × the baseline's mean
    equivalence_margin: float = 0.05
    # the ✅ winner is re-run with the baseline on this many fresh seeds (1001, 1002, ...; never
    # used in selection) and only a confirmed winner is chained; 0: chain it unconfirmed
    confirm_seeds: int = 3


@dataclass
class Config:
    """The whole run. Field names are the tuning plan's."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    text: TextConfig = field(default_factory=TextConfig)
    regularization: RegularizationConfig = field(default_factory=RegularizationConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    arch: ArchConfig = field(default_factory=ArchConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    trial: TrialConfig = field(default_factory=TrialConfig)
    # set by conf/experiment/*.yaml; names run dirs and W&B jobs
    experiment_name: str = "baseline"
    # seeds model init, data order and dropout
    random_seed: int = 42
    # an earlier sweep directory: start from its winning configuration (phases that chain,
    # e.g. base_sweep=outputs/multirun/phase1/<time>); None: start from conf/'s baseline
    base_sweep: str | None = None
    # what base_sweep resolved to (filled in, recorded)
    base: BaseRecord = field(default_factory=BaseRecord)
    # the sweep's decision procedure and seed rounds
    sweep: SweepConfig = field(default_factory=SweepConfig)


# Keys that change how a run is tracked, shown or where its caches live, never what it computes:
# left out of the config hash and of what distinguishes the runs of a sweep.
RESULT_NEUTRAL_KEYS = (
    "logger",
    "trial",
    "trainer.progress",
    "trainer.keep_last_checkpoint",
    "trainer.start_over",
    # the trajectory is the single-process one (within float tolerance, see docs/runs.md)
    "trainer.devices",
    "dataset.cache_dir",
    "dataset.num_workers",
    # guards that refuse or allow inputs, never change what a run computes from them
    "dataset.max_table_bytes",
    "dataset.allow_outside_paths",
    "model.init_min_loaded",
    # base_sweep / base only record where a chained run's values came from: the values
    # themselves are set on their own keys
    "base_sweep",
    "base",
    # how a sweep decides and how many seeds it runs: no run computes differently
    "sweep",
)


# Keys that act only through the text branch: inert in a graph-only run (``text.enabled=false``).
TEXT_ONLY_KEYS = (
    "text",
    "fusion",
    "attention",
    "regularization.cross_modal_dropout",
    "regularization.fine_grained_dropout",
    "regularization.middle_fusion_dropout",
)


def modality(cfg: Config) -> str:
    """``graph+text`` (the fused model) or ``graph`` (``text=none``, ALIGNN alone)."""
    return "graph+text" if cfg.text.enabled else "graph"


def text_learning_rate(cfg: Config) -> float | None:
    """The learning rate of the text encoder's trainable weights when it has its own: a
    pretrained encoder (``text.model_name_or_path`` set) with ``text.learning_rate`` set. None:
    they train at ``scheduler.learning_rate`` with the rest (graph-only runs; the tiny encoder,
    randomly initialised and trained from scratch; ``text.learning_rate=null``)."""
    t = cfg.text
    if not t.enabled or t.model_name_or_path is None or t.learning_rate is None:
        return None
    return float(t.learning_rate)


def inert_text_keys(cfg: Config) -> list[str]:
    """In a graph-only run, the text-dependent keys set away from their schema defaults: they
    had no effect (e.g. ``fusion.middle_fusion_layers`` of e03 under ``text=none``). Empty for
    a fused run."""
    if cfg.text.enabled:
        return []
    ours, defaults = flatten(asdict(cfg)), flatten(asdict(Config()))
    return [
        key
        for key, value in sorted(ours.items())
        if key != "text.enabled"
        and any(key == k or key.startswith(f"{k}.") for k in TEXT_ONLY_KEYS)
        and value != defaults.get(key)
    ]


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``{"dotted.key": value}``."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def is_result_neutral(key: str) -> bool:
    """True for a dotted key in (or under) :data:`RESULT_NEUTRAL_KEYS`."""
    return any(key == k or key.startswith(f"{k}.") for k in RESULT_NEUTRAL_KEYS)


def config_hash(cfg: Config | dict[str, Any]) -> str:
    """Hash of the resolved config without its result-neutral keys: two runs with the same
    hash compute the same thing."""
    raw = asdict(cfg) if isinstance(cfg, Config) else copy.deepcopy(cfg)
    for key in RESULT_NEUTRAL_KEYS:
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    return stable_hash(raw)


def max_epochs(cfg: Config) -> int:
    """``scheduler.epochs``, capped by ``budget.max_epochs``: a hard cap, also after a resume."""
    cap = cfg.budget.max_epochs
    return min(cfg.scheduler.epochs, cap) if cap is not None else cfg.scheduler.epochs


def max_structures(cfg: Config) -> int | None:
    """``dataset.limit`` capped by ``budget.max_structures`` (None: no limit)."""
    caps = [v for v in (cfg.dataset.limit, cfg.budget.max_structures) if v is not None]
    return min(caps) if caps else None


def model_width(cfg: Config, width: int, heads: int = 1) -> int:
    """``width`` times ``budget.width_scale`` (unchanged when unset), rounded to a multiple of
    ``heads`` and at least ``heads``."""
    scale = cfg.budget.width_scale
    if scale is None:
        return width
    return max(heads, round(width * scale / heads) * heads)


def register_configs() -> None:
    """Store the schema as ``base_config`` (listed first in ``conf/config.yaml``)."""
    ConfigStore.instance().store(name="base_config", node=Config)


def parse_layers(value: Any) -> list[int] | None:
    """Parse ``"2,3"``, ``2``, ``[2, 3]`` or ``"[2,3]"`` into ``[2, 3]``; None if not parseable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        text = value.strip().strip("[]").strip()
        if not text:
            return []
        parts = [p.strip() for p in text.split(",")]
        if not all(p.lstrip("-").isdigit() for p in parts):
            return None
        return [int(p) for p in parts]
    try:
        items = list(value)
    except TypeError:
        return None
    if all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        return [int(i) for i in items]
    return None


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
    ``sample://`` and ``data://`` paths name bundled and downloaded data (see data/paths.py).
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
        from fusion_tuner.data import paths as data_paths

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
    r, f, a, arch = c.regularization, c.fusion, c.attention, c.arch
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
    if not c.text.enabled:
        return  # the fusion and attention rules below concern the text branch only
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


def _validate_training(c: Config, p: list[str]) -> None:
    s, t, b, lg = c.scheduler, c.trainer, c.budget, c.logger
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
