#!/usr/bin/env bash
# The GPU path in one short run (issue 13, item 4) on a GPU machine: at most ~7 minutes.
#
#   bash bench/gpu_check.sh            # from the repository root; results go to $OUT
#
# 1. installs carried wheels (.whl/ or shared/wheels/, if either holds any) into /tmp/site;
#    without them, whatever needs a missing package (streamlit, shap, faiss, ...) is skipped;
# 2. RECSCOPE_DEVICE=cuda pytest: tests/test_gpu.py (CPU vs CUDA per neural model), then the
#    model tests that import here (protocol suite, neural, sequence models, training loop);
# 3. bench/train.py on the GPU: fit time, samples/s, peak GPU memory per model, and a
#    torch.profiler epoch of SASRec (what limits its GPU use) at its default batch and at 1024;
# 4. bench/distributed.py with NCCL over every visible GPU, if that bench and ML-100k are here
#    (ML100K=path, else .whl/ml-100k.inter or /tmp/ml100k/ml-100k.inter);
# 5. bench/index.py when a carried faiss-gpu sees GPUs (sharded when it sees more than one).
# Writes at most 8 files into $OUT (./gpu_check_out without one): environment.json,
# tests_gpu.log, tests_models.log, train.json, train_sasrec_1024.json, distributed.json,
# index.json and gpu_check.log.
# Each step has its own time limit; a failed step is logged and the next one still runs.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
RECSCOPE_HOME=$(mktemp -d)
export RECSCOPE_HOME

WHEELS=${WHEELS:-}
for dir in .whl shared/wheels; do
    if [ -z "$WHEELS" ] && compgen -G "$dir/*.whl" >/dev/null; then WHEELS=$dir; fi
done
if [ -n "$WHEELS" ]; then
    echo "== installing carried wheels from $WHEELS"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$WHEELS"/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"

echo "== environment"
"$PY" - >"$OUT/environment.json" <<'EOF'
import importlib.util, json, os, platform
import torch
optional = ["streamlit", "shap", "plotly", "faiss", "optuna", "sentence_transformers"]
info = {
    "python": platform.python_version(),
    "torch": torch.__version__,
    "cuda_available": torch.cuda.is_available(),
    "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    "cpu_count": os.cpu_count(),
    "load_average": [round(x, 2) for x in os.getloadavg()],
    "packages": {name: bool(importlib.util.find_spec(name)) for name in optional},
}
if info["packages"]["faiss"]:
    import faiss
    info["faiss_gpus"] = faiss.get_num_gpus()
print(json.dumps(info, indent=2))
EOF
cat "$OUT/environment.json"
NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if [ "${NGPU:-0}" -lt 1 ]; then
    echo "no CUDA device visible: nothing to check on the GPU"
    exit 1
fi

echo "== tests/test_gpu.py (RECSCOPE_DEVICE=cuda): CPU vs CUDA per neural model"
RECSCOPE_DEVICE=cuda timeout 150 "$PY" -m pytest -q -p no:cacheprovider -rfEs --durations=10 \
    tests/test_gpu.py >"$OUT/tests_gpu.log" 2>&1
echo "pytest exit $?"
tail -n 25 "$OUT/tests_gpu.log"

echo "== model tests (RECSCOPE_DEVICE=cuda)"
TESTS=""
for name in test_protocol test_neural test_sequence_models test_train test_baselines \
    test_index test_multiscenario test_hybrid; do
    [ -f "tests/$name.py" ] || continue
    if "$PY" -c "import importlib, sys; importlib.import_module('tests.' + sys.argv[1])" \
        "$name" 2>/dev/null; then
        TESTS="$TESTS tests/$name.py"
    else
        echo "skipping tests/$name.py: it imports a package this machine lacks"
    fi
done
RECSCOPE_DEVICE=cuda timeout 150 "$PY" -m pytest -q -p no:cacheprovider -rfEs --durations=10 \
    $TESTS >"$OUT/tests_models.log" 2>&1
echo "pytest exit $? ($TESTS)"
tail -n 25 "$OUT/tests_models.log"

echo "== bench/train.py on the GPU"
NEURAL=$("$PY" -c "from core.models import available, model_class
print(','.join(n for n in available() if model_class(n).trains_with_loop and n != 'hybrid'))")
timeout 90 "$PY" bench/train.py --device cuda --models "$NEURAL" --profile sasrec \
    --out "$OUT/train.json" >/dev/null
echo "bench/train.py exit $?"
timeout 30 "$PY" bench/train.py --device cuda --models sasrec --profile sasrec \
    --param sasrec:batch_size=1024 --out "$OUT/train_sasrec_1024.json" >/dev/null
echo "bench/train.py (sasrec, batch 1024) exit $?"

ML100K=${ML100K:-}
for path in .whl/ml-100k.inter /tmp/ml100k/ml-100k.inter; do
    if [ -z "$ML100K" ] && [ -f "$path" ]; then ML100K=$path; fi
done
if [ -f bench/distributed.py ] && [ -n "$ML100K" ]; then
    WORLDS=$([ "$NGPU" -gt 1 ] && echo "1,$NGPU" || echo "1")
    echo "== bench/distributed.py (NCCL, worlds $WORLDS) on $ML100K"
    timeout 60 "$PY" bench/distributed.py --path "$ML100K" --device cuda --worlds "$WORLDS" \
        --models bpr,sasrec --epochs 3 >"$OUT/distributed.json"
    echo "bench/distributed.py exit $?"
else
    echo "== bench/distributed.py skipped (bench or ML-100k missing: set ML100K=path)"
fi
if "$PY" -c "import faiss, sys; sys.exit(faiss.get_num_gpus() < 1)" 2>/dev/null; then
    echo "== bench/index.py (faiss sees GPUs: one GPU, or shards over all of them)"
    timeout 40 "$PY" bench/index.py --sizes 100000 1000000 --kinds flat ivf \
        >"$OUT/index.json"
    echo "bench/index.py exit $?"
else
    echo "== bench/index.py skipped (no faiss with GPUs here: carry a faiss-gpu wheel)"
fi
echo "== done; load average $(cut -d' ' -f1-3 /proc/loadavg)"
