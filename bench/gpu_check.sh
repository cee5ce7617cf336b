#!/usr/bin/env bash
# On a CUDA machine: the GPU tests and the throughput benchmarks, then one table.
#
# Usage (from anywhere):  bash bench/gpu_check.sh
#   DATA=<dir>              the real data the benchmarks read (default: the samples bundled
#                           with the package, fusion_tuner/data/samples)
#   OUT=<dir>               where the JSON results, logs and caches go (default: a new temp dir)
#   THREADS=8               CPU threads of the benchmark processes
#   DEVICE=cuda             where the benchmarks' model steps run (DEVICE=cpu: a dry run of this
#                           script without a GPU; the GPU tests then skip, and epoch_time runs
#                           its --dry size)
#   JARVIS_DIR=<dir>        a folder holding figshare's jdft_3d-8-18-2021.json.zip (dft_3d_2021):
#                           epoch_time then times the leaderboard's real data; else synthetic
#   ONLY="a b"              run only these steps (gpu_tests train_step train_step_bf16
#                           text_encoder loader epoch_time); the others are reported as skipped
#
# train_step times the graph-only and fused models eager and compiled (trainer.compile: the
# graph encoder through torch.compile) in float32, train_step_bf16 the graph-only model eager
# and compiled under bf16 autocast; the table gives compiled over eager and bf16 over float32.
# Sized for about 15 minutes on one modern GPU: each step has its own time limit (TESTS_S,
# TRAIN_S, TRAIN_BF16_S, TEXT_S, LOADER_S, EPOCH_S seconds); a step that fails or runs out of
# time is reported as such in the table and the others still run. Exit status: 0 when every step
# passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-fusion_tuner/data/samples}
OUT=${OUT:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
THREADS=${THREADS:-8}
DEVICE=${DEVICE:-cuda}
TESTS_S=${TESTS_S:-180} TRAIN_S=${TRAIN_S:-300} TRAIN_BF16_S=${TRAIN_BF16_S:-200}
TEXT_S=${TEXT_S:-150} LOADER_S=${LOADER_S:-120} EPOCH_S=${EPOCH_S:-300}
ALL_STEPS="gpu_tests train_step train_step_bf16 text_encoder loader epoch_time"
ONLY=${ONLY:-$ALL_STEPS}
mkdir -p "$OUT"
export FUSION_TUNER_CACHE_DIR="$OUT/cache" HF_HUB_OFFLINE=1 WANDB_MODE=disabled
declare -A STATUS

if ! python -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    if [ "$DEVICE" != cpu ]; then echo "no CUDA device visible (DEVICE=cpu for a dry run)"; exit 1; fi
    echo "no CUDA device: dry run on the CPU"
else
    python -c "import torch; print(f'torch {torch.__version__}, CUDA {torch.version.cuda},',
        ', '.join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())))"
fi

step() {  # step NAME SECONDS COMMAND...: run it with a time limit, log it, record its status
    local name=$1 limit=$2
    shift 2
    case " $ONLY " in *" $name "*) ;; *) STATUS[$name]="skipped: not in ONLY"; return ;; esac
    echo "== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    case $rc in
        0) STATUS[$name]="ok" ;;
        124) STATUS[$name]="TIMED OUT after ${limit}s" ;;
        *) STATUS[$name]="FAILED (exit $rc)" ;;
    esac
    STATUS[$name]="${STATUS[$name]}, $((SECONDS - start)) s, log $OUT/$name.log"
    tail -n 3 "$OUT/$name.log"
}

step gpu_tests "$TESTS_S" python -m pytest tests/gpu -m gpu -q -p no:cacheprovider \
    --junitxml="$OUT/gpu_tests.xml"
if [ -d "$DATA/jarvis_dft3d_mini" ]; then
    mini="$DATA/jarvis_dft3d_mini"
    step train_step "$TRAIN_S" python bench/train_step.py --device "$DEVICE" --threads "$THREADS" \
        --variants abde --repeat 1 --store "$mini/store_full" --texts "$mini/describe_text.json.zip" \
        --json "$OUT/train_step.json"
    step train_step_bf16 "$TRAIN_BF16_S" python bench/train_step.py --device "$DEVICE" \
        --threads "$THREADS" --variants ad --repeat 1 --bf16 --store "$mini/store_full" \
        --texts "$mini/describe_text.json.zip" --json "$OUT/train_step_bf16.json"
    step text_encoder "$TEXT_S" python bench/text_encoder.py --device "$DEVICE" --threads "$THREADS" \
        --rounds 10 --slow-rounds 5 --store "$mini/store_full" \
        --texts "$mini/describe_text.json.zip" --cache "$OUT/text_cache" --json "$OUT/text_encoder.json"
    step loader "$LOADER_S" python bench/loader.py --device "$DEVICE" --threads "$THREADS" \
        --data "$DATA" --cache "$OUT/loader_cache" --json "$OUT/loader.json"
else
    for s in train_step train_step_bf16 text_encoder loader; do STATUS[$s]="skipped: no $DATA/jarvis_dft3d_mini"; done
fi
# one epoch of experiment=alignn_reference at the leaderboard's size, projected to 300 epochs
epoch_args=(--device "$DEVICE" --threads "$THREADS" --data "$DATA" --workdir "$OUT/epoch_time"
    --json "$OUT/epoch_time.json")
[ -n "${JARVIS_DIR:-}" ] && epoch_args+=(--jarvis-dir "$JARVIS_DIR")
[ "$DEVICE" = cpu ] && epoch_args+=(--dry)
if [ -d "$DATA/jarvis_dft3d_mini" ] || [ -n "${JARVIS_DIR:-}" ]; then
    step epoch_time "$EPOCH_S" python bench/epoch_time.py "${epoch_args[@]}"
else
    STATUS[epoch_time]="skipped: no $DATA/jarvis_dft3d_mini and no JARVIS_DIR"
fi

export OUT
STEPS=$(for s in $ALL_STEPS; do echo "$s=${STATUS[$s]}"; done)
export STEPS
python - <<'EOF'
import json, os, statistics
import xml.etree.ElementTree as ET
from pathlib import Path

out = Path(os.environ["OUT"])
status = dict(line.split("=", 1) for line in os.environ["STEPS"].splitlines())
rows = []

def load(name):
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None

if (out / "gpu_tests.xml").is_file():
    suite = ET.parse(out / "gpu_tests.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    a = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    passed = a["tests"] - a["failures"] - a["errors"] - a["skipped"]
    rows.append(("GPU tests", f"{passed} passed, {a['failures'] + a['errors']} failed, "
                 f"{a['skipped']} skipped"))
LABELS = {"graph": "graph-only", "fused": "fused, tiny frozen text from the store",
          "graph_compiled": "graph-only, compiled", "fused_compiled": "fused, compiled"}
ts, bf = load("train_step"), load("train_step_bf16")
for name, res in (("train_step", ts), ("train_step bf16", bf)):
    if not res:
        continue
    v = res["variants"]
    for key, label in LABELS.items():
        if key in v:
            compiled = f" (compiling: {v[key]['compile_s']:.0f} s)" if v[key].get("compile_s") else ""
            rows.append((f"{name} {label}", f"train {v[key]['train']:.0f} crystals/s, "
                         f"inference {v[key]['infer']:.0f} crystals/s, peak RSS "
                         f"{v[key]['rss_mb']:.0f} MB{compiled}"))
    for eager in ("graph", "fused"):
        if {eager, f"{eager}_compiled"} <= v.keys():
            c = v[f"{eager}_compiled"]
            rows.append((f"{name} {LABELS[eager]}: compiled ÷ eager",
                         f"train {c['train'] / v[eager]['train']:.2f}x, "
                         f"inference {c['infer'] / v[eager]['infer']:.2f}x"))
    if {"graph", "fused"} <= v.keys():
        rows.append((f"{name} fused ÷ graph time", f"{v['graph']['train'] / v['fused']['train']:.2f}x"))
if ts and bf:
    for key in ("graph", "graph_compiled"):
        if key in ts["variants"] and key in bf["variants"]:
            a, b = ts["variants"][key], bf["variants"][key]
            rows.append((f"bf16 ÷ float32, {LABELS[key]}", f"train {b['train'] / a['train']:.2f}x, "
                         f"inference {b['infer'] / a['infer']:.2f}x"))
if te := load("text_encoder"):
    g = next(r for r in te["rows"] if r["variant"] == "g")["seconds"]
    for r in te["rows"]:
        ratio = statistics.median(r["ratios"]) if r["ratios"] else float("nan")
        rows.append((f"BERT-base step ({r['variant']}) {r['label']}",
                     f"{r['seconds'] * 1000:.0f} ms/batch of 64, {ratio:.2f}x graph-only"))
    for name, s in te["stores"].items():
        rows.append((f"text store ({name}) one-off build", f"{s['build_seconds']:.1f} s, "
                     f"{s['bytes'] / 1e6:.0f} MB"))
if ld := load("loader"):
    for r in ld:
        if r["what"] == "model step":
            rows.append((f"model step, {r['data']}", f"{r['rate']:.0f} crystals/s"))
        elif "workers" in r["what"] and "PyG" not in r["what"]:
            rows.append((f"{r['what']}, {r['data']}", f"{r['rate']:.0f} crystals/s = "
                         f"{r['ratio']:.1f}x the model step"))
if et := load("epoch_time"):
    label = "alignn_reference epoch" + (" (--dry: not the recipe's cost)" if et["dry"] else "")
    rows.append((f"{label}, {et['data']}, {et['splits']['train']} train crystals, "
                 f"{et['mean_atoms_per_crystal']:.1f} atoms each",
                 f"train {et['train_pass_s']:.1f} s + val {et['val_pass_s']:.1f} s = "
                 f"{et['epoch_s']:.1f} s/epoch; {et['epochs']} epochs ≈ {et['projected_run_h']:.2f} h "
                 f"(data preparation {et['data_prep_s']:.0f} s, once)"))
print("\n| check | result |\n|---|---|")
for name, s in status.items():
    print(f"| step {name} | {s} |")
for name, result in rows:
    print(f"| {name} | {result} |")
EOF
for s in $ALL_STEPS; do
    case ${STATUS[$s]} in ok*|skipped*) ;; *) exit 1 ;; esac
done
