#!/usr/bin/env bash
# Paper-scale run on a GPU machine that has torch but not the book's tool chain:
# the attack benchmark, then every chapter's full-profile numbers (python -m xaifool full-results).
#
#   bash benchmarks/gpu_run.sh [WHEELS_DIR] [DATA_DIR] [SECONDS]
#
# WHEELS_DIR  wheels of what the machine lacks (zennit, captum, lime, shap, slicer), installed into
#             /tmp/site; skipped if the folder has none
# DATA_DIR    a data mirror holding the files the run needs (XAIFOOL_DATA; see MANIFEST.md)
# SECONDS     wall-clock budget of the whole run (default 540); each part gets a share and is
#             stopped at its end, so a slow part never costs the others their results
# Environment: BENCH=0 skips the benchmark; CHAPTERS="02b_model_manipulation 06_sanity_checks" picks
#             the GPU chapters and their order (e.g. those a previous visit did not finish; the default ends
#             with 02b_matched_accuracy, Heo's λ × learning-rate sweep, which visits fill in last);
#             TAB=0 skips the tabular chapter (already recorded); PARALLEL=1 runs the GPU chapters
#             side by side on the one GPU (their output lines prefixed by the chapter), so that a
#             visit too short for all of them one after another records a part of each — their
#             "seconds" are then times under sharing; LOGS=DIR puts the logs elsewhere; RESUME=0
#             recomputes a chapter whose record is unfinished instead of continuing it (full-results
#             --resume, the default here: a complete record is left as it is); RESULTS_TO=DIR (below);
#             RUN_PROFILE=smoke RUN_DEVICE=cpu rehearse a visit's GPU chapters on a CPU at tiny sizes
#             (tests/test_full_results.py does, with BENCH=0 TAB=0, so that a visit does not find a broken
#             script); any profile but full needs RESULTS_TO, so that no committed record is overwritten;
#             GPU_JOBS=N computes N parts of a GPU chapter at once (attacks of 02a, models of 02b), each in a
#             process of its own on the one GPU (full-results --jobs N; default 4 on a GPU, 1 on a CPU): a
#             ResNet-20 part alone keeps the GPU busy for a few percent of the time
#
# Writes benchmarks/results/attacks-cuda.json, benchmarks/results/full/<chapter>.json and logs
# under benchmarks/results/full/logs/. The tabular chapter is CPU work (LIME, KernelSHAP): it runs
# beside the GPU chapters in TAB_JOBS processes; a part it has not finished is recorded as
# "complete": false.
set -uo pipefail
cd "$(dirname "$0")/.."
WHL=${1:-.gpu/whl}
DATA=${2:-.gpu/data}
BUDGET=${3:-540}
RUN_PROFILE=${RUN_PROFILE:-full}
RUN_DEVICE=${RUN_DEVICE:-cuda}
if [ "$RUN_PROFILE" != full ] && [ -z "${RESULTS_TO:-}" ]; then
  echo "RUN_PROFILE=$RUN_PROFILE needs RESULTS_TO=DIR: its records must not replace the committed full-profile ones" >&2
  exit 2
fi
start=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - start) )); }

if compgen -G "$WHL/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHL"/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" XAIFOOL_DATA="$(cd "$DATA" && pwd)" PYTHONUNBUFFERED=1
export XAIFOOL_CACHE=${XAIFOOL_CACHE:-/tmp/xaifool-cache}
# RESULTS_TO=DIR: write every result there instead (on the device tool: $OUT/r, since only $OUT comes
# back), starting from copies of the committed chapter records, so that --resume continues them
if [ -n "${RESULTS_TO:-}" ]; then
  mkdir -p "$RESULTS_TO/full" && cp benchmarks/results/full/*.json "$RESULTS_TO/full/" || exit 1
  aside=$(mktemp -d) || exit 1
  mv benchmarks/results "$aside/results-committed" || exit 1
  echo "committed results moved aside to $aside/results-committed; benchmarks/results -> $RESULTS_TO"
  ln -s "$(cd "$RESULTS_TO" && pwd)" benchmarks/results
fi
LOGS=${LOGS:-$([ -n "${RESULTS_TO:-}" ] && echo /tmp/gpu-logs || echo benchmarks/results/full/logs)}
mkdir -p "$LOGS"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, torchvision, zennit, captum; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

# 1. the benchmark alone on the machine (timings), at most a fifth of the budget (BENCH=0 skips it:
#    the paper-scale chapters first, when an earlier visit already recorded the benchmark)
if [ "${BENCH:-1}" != 0 ]; then
  XAIFOOL_DEVICE=$RUN_DEVICE timeout $(( BUDGET / 5 )) python3 -m xaifool bench attacks 2>&1 | tee "$LOGS/bench.log"
  echo "bench: rc ${PIPESTATUS[0]}, $(left) s left"
fi

# 2. the tabular chapter in the background, its rows explained by TAB_JOBS processes of one thread
#    each (default: all cores but 4, which feed the GPU); the image chapters one after another on
#    the GPU (CHAPTERS, default: input, model, sanity), each stopped when the budget ends. A chapter
#    writes its record after each finished part, so a stopped chapter keeps what it finished.
TAB_JOBS=${TAB_JOBS:-$(( $(nproc) > 5 ? $(nproc) - 4 : 1 ))}
if [ "${TAB:-1}" != 0 ]; then
  (OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 XAIFOOL_PROFILE=$RUN_PROFILE XAIFOOL_DEVICE=cpu \
     timeout $(( $(left) - 15 )) python3 -m xaifool full-results --only 08_experiments --jobs "$TAB_JOBS" \
     > "$LOGS/08_experiments.log" 2>&1;
   echo "tabular: rc $?" >> "$LOGS/08_experiments.log") &
fi
GPU_JOBS=${GPU_JOBS:-$([ "$RUN_DEVICE" = cuda ] && echo 4 || echo 1)}
chapter() {  # one GPU chapter, stopped 15 s before the budget ends (timeout signals its part workers too)
  XAIFOOL_PROFILE=$RUN_PROFILE XAIFOOL_DEVICE=$RUN_DEVICE timeout $(( $(left) - 15 )) \
    python3 -m xaifool full-results --only "$1" --jobs "$GPU_JOBS" $([ "${RESUME:-1}" = 1 ] && echo --resume) --command "XAIFOOL_PROFILE=$RUN_PROFILE \
XAIFOOL_DEVICE=$RUN_DEVICE python -m \
xaifool full-results --only $1 --jobs $GPU_JOBS (benchmarks/gpu_run.sh$([ "${PARALLEL:-0}" = 1 ] && echo ", PARALLEL=1: \
beside the other GPU chapters on the one GPU"))" 2>&1 | tee "$LOGS/$1.log"
  echo "$1: rc ${PIPESTATUS[0]}, $(left) s left"
}
for ch in ${CHAPTERS:-02a_input_manipulation 02b_model_manipulation 06_sanity_checks 02b_matched_accuracy}; do
  [ "$(left)" -gt 30 ] || { echo "$ch: no time left"; continue; }
  if [ "${PARALLEL:-0}" = 1 ]; then
    OMP_NUM_THREADS=$(( $(nproc) / 4 > 0 ? $(nproc) / 4 : 1 )) chapter "$ch" | sed -u "s/^/[$ch] /" &
  else
    chapter "$ch"
  fi
done
wait
[ "${TAB:-1}" = 0 ] || tail -3 "$LOGS/08_experiments.log"
python3 -m xaifool full-results --status   # what the records hold now, chapter by chapter
echo "total $(( $(date +%s) - start )) s"
