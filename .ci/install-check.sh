#!/usr/bin/env bash
# A normal (non-editable) install, as a new user gets it: build the sdist, build the wheel from
# that sdist, check that both carry conf/ and the bundled data samples, install the wheel into a
# fresh virtual environment outside the checkout, then from another directory compose the config
# (--cfg job), train a small budget=quick demo run, and train a tiny graph-only run on the bundled
# real perovskites (dataset=perov5_sample) and predict with it.
#
# The venv is made with --system-site-packages so that it reuses the torch (and the other
# dependencies) already installed on the machine instead of downloading them again (a bare
# `torch` requirement would pull a 5 GB CUDA build); pip still resolves the wheel's declared
# dependencies against them. The check asserts that fusion_tuner itself, and its configs, are
# imported from the venv's site-packages, never from the checkout.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/fusion_tuner-install-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$SECONDS
export PIP_DISABLE_PIP_VERSION_CHECK=1

echo "== build the sdist, then the wheel from the sdist"
# the build backend of pyproject's [build-system], in an environment of its own
python -m venv "$work/build-env"
"$work/build-env/bin/python" -m pip install --quiet "setuptools>=70.1"
(cd "$repo" && "$work/build-env/bin/python" -c \
    "from setuptools import build_meta as b; b.build_sdist('$work/dist')" >/dev/null)
"$work/build-env/bin/python" -m pip wheel --quiet --no-deps --no-build-isolation \
    "$work"/dist/fusion_tuner-*.tar.gz -w "$work/dist"
python - "$repo" "$work/dist" <<'PY'
import sys, tarfile, zipfile
from pathlib import Path
repo, dist = Path(sys.argv[1]), Path(sys.argv[2])
want = sorted(str(p.relative_to(repo / "conf")) for p in (repo / "conf").rglob("*.yaml"))
sdist = next(dist.glob("*.tar.gz"))
with tarfile.open(sdist) as tf:
    in_sdist = sorted(n.split("/conf/", 1)[1] for n in tf.getnames() if "/conf/" in n and n.endswith(".yaml"))
wheel = next(dist.glob("*.whl"))
with zipfile.ZipFile(wheel) as zf:
    in_wheel = sorted(n.removeprefix("fusion_tuner/conf/") for n in zf.namelist() if n.startswith("fusion_tuner/conf/"))
for name, got in (("sdist", in_sdist), ("wheel", in_wheel)):
    if got != want:
        sys.exit(f"{name} lacks configs: {sorted(set(want) - set(got))}")
print(f"{sdist.name} and {wheel.name} each carry the {len(want)} config files")
samples = repo / "fusion_tuner" / "data" / "samples"
want = sorted(str(p.relative_to(samples)) for p in samples.rglob("*") if p.is_file())
with tarfile.open(sdist) as tf:
    in_sdist = sorted(n.split("/fusion_tuner/data/samples/", 1)[1] for n in tf.getnames()
                      if "/fusion_tuner/data/samples/" in n and tf.getmember(n).isfile())
with zipfile.ZipFile(wheel) as zf:
    in_wheel = sorted(n.removeprefix("fusion_tuner/data/samples/") for n in zf.namelist()
                      if n.startswith("fusion_tuner/data/samples/"))
for name, got in (("sdist", in_sdist), ("wheel", in_wheel)):
    if got != want:
        sys.exit(f"{name} lacks data samples: {sorted(set(want) - set(got))[:10]}")
print(f"both carry the {len(want)} files of the bundled data samples")
PY

echo "== install the wheel into a fresh venv outside the checkout"
python -m venv --system-site-packages "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet "$work"/dist/fusion_tuner-*.whl
mkdir "$work/elsewhere" && cd "$work/elsewhere"
"$py" - "$work/venv" <<'PY'
import sys
from pathlib import Path
import fusion_tuner
from fusion_tuner.compose import conf_dir
venv = Path(sys.argv[1]).resolve()
for what, path in (("fusion_tuner", Path(fusion_tuner.__file__)), ("conf", conf_dir())):
    if venv not in path.resolve().parents:
        sys.exit(f"{what} comes from {path}, not from the venv {venv}")
print(f"fusion_tuner and its configs come from {conf_dir().parent}")
PY

echo "== python -m fusion_tuner --cfg job (from $PWD)"
"$py" -m fusion_tuner --cfg job >"$work/job.yaml"
grep -q "^experiment_name: baseline" "$work/job.yaml"
grep -q "^  learning_rate: 0.001" "$work/job.yaml"

echo "== Hydra finds the plugins (the Optuna sweeper, the SLURM launcher)"
"$py" -m fusion_tuner +search=tier1 --cfg hydra >"$work/sweeper.yaml"
grep -q "_target_: hydra_plugins.fusion_tuner_optuna.sweeper.OptunaSweeper" "$work/sweeper.yaml"
"$py" -m fusion_tuner hydra/launcher=slurm_cpu --cfg hydra >"$work/launcher.yaml"
grep -q "_target_: hydra_plugins.fusion_tuner_slurm.launcher.FusionSlurmLauncher" "$work/launcher.yaml"

echo "== a budget=quick demo run"
export FUSION_TUNER_CACHE_DIR="$work/cache" WANDB_MODE=disabled
"$py" -m fusion_tuner budget=quick budget.max_epochs=1 dataset.demo_size=60 \
    arch.hidden_features=32 arch.embedding_features=16 arch.alignn_layers=2 arch.gcn_layers=1 \
    text.max_length=48 text.tiny_hidden_size=32 text.tiny_num_layers=1 \
    text.tiny_intermediate_size=64 fusion.middle_fusion_hidden_dim=32 \
    attention.fine_grained_hidden_dim=32 attention.cross_modal_hidden_dim=32 \
    trainer.progress=line trainer.num_threads=2 hydra.run.dir="$work/run" >"$work/run.log" 2>&1 \
    || { tail -30 "$work/run.log"; exit 1; }
"$py" - "$work/run" <<'PY'
import json, sys
from pathlib import Path
m = json.loads((Path(sys.argv[1]) / "metrics.json").read_text())
if m.get("status") != "completed" or m.get("budget") != "quick":
    sys.exit(f"the demo run did not complete: {m}")
print(f"demo run completed: {m['epochs_run']} epoch, val MAE {m['val']['mae']:.4f}")
PY
echo "== a tiny graph-only run on the bundled perovskites (dataset=perov5_sample), then predict"
"$py" -m fusion_tuner dataset=perov5_sample text=none dataset.limit=60 budget=quick \
    budget.max_epochs=1 arch.hidden_features=32 arch.embedding_features=16 arch.alignn_layers=1 \
    arch.gcn_layers=1 trainer.progress=line trainer.num_threads=2 hydra.run.dir=perov_run \
    >"$work/perov.log" 2>&1 || { tail -30 "$work/perov.log"; exit 1; }
"$py" -m fusion_tuner.predict --runs perov_run --structures sample://perov5_castelli/perov5_val.csv.zip \
    --out perov_predictions.csv >"$work/predict.log" 2>&1 || { tail -30 "$work/predict.log"; exit 1; }
"$py" - <<'PY'
import csv, json
m = json.load(open("perov_run/metrics.json"))
if m.get("status") != "completed" or m.get("target") != "heat_ref":
    raise SystemExit(f"the perovskite run did not complete: {m}")
rows = list(csv.DictReader(open("perov_predictions.csv")))
if len(rows) != 3787 or list(rows[0]) != ["id", "target", "prediction"]:
    raise SystemExit(f"predict wrote {len(rows)} rows, columns {list(rows[0]) if rows else []}")
print(f"perovskite run completed (val MAE {m['val']['mae']:.4f}); predicted {len(rows)} crystals")
PY
# the whole output first: grep -q leaves at its first match, before the writer is done
listing=$("$py" -m fusion_tuner.data list)
grep -q "sample://perov5_castelli" <<<"$listing"

echo "== the installed commands"
for cmd in fusion-tuner-predict fusion-tuner-export fusion-tuner-analyze fusion-tuner-data \
        fusion-tuner-report fusion-tuner-summary; do
    "$work/venv/bin/$cmd" --help >/dev/null
done
for cmd in predict export analyze report summary data; do      # the dispatcher and -m forms
    "$work/venv/bin/fusion-tuner" $cmd --help >/dev/null
    "$py" -m fusion_tuner.$cmd --help >/dev/null
done
"$work/venv/bin/fusion-tuner" --help >/dev/null
help_text=$("$py" -m fusion_tuner.data download --help)
grep -q "perov_5 .*MIT" <<<"$help_text"
echo "install check passed in $((SECONDS - start)) s"
