"""The schema: one dataclass per config group, the tuning plan's baseline as defaults.

The groups follow the plan's six priority tiers (``regularization``, ``fusion``, ``scheduler``
for optimisation, ``attention``, ``batch``, ``arch``) plus ``dataset``, ``text``, ``trainer``,
``budget`` and ``logger``. Hydra merges ``conf/`` YAML options into these schemas, so an
unknown key or a wrongly typed value fails at compose time; :func:`validate` then checks the
rules that span fields and reports every violation in one :class:`ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

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


def register_configs() -> None:
    """Store the schema as ``base_config`` (listed first in ``conf/config.yaml``)."""
    ConfigStore.instance().store(name="base_config", node=Config)
