#!/usr/bin/env bash
# Runs several Phoenix retrieval trainings side by side on ONE accelerator.
#
#   bash experiments/run_gpu_retrieval.sh DATA_DIR OUT_DIR JOB [JOB ...]
#
# JOB is "<dataset>/<recipe>[,<override>...]" (experiments/configs/phoenix_retrieval.py), e.g.
# "ml1m/best" or "beauty/default,--config.model.net.loss=sampled,--config.name=beauty_sampled".
# Each job is one `python -m experiments.train` process with a share of the GPU memory and
# two BLAS threads (the models are small: one job alone leaves the GPU mostly idle, so
# several at once use it better). Result JSONs go to OUT_DIR/results, logs and metrics.jsonl
# to OUT_DIR/logs, run folders to OUT_DIR/runs/<name> (running the same command again
# resumes from them); OUT_DIR/summary.txt gets one line per job. Every job is killed after
# JOB_TIMEOUT seconds (default 560) so that the others' results still come back. PYTHON
# names the interpreter (default: the checkout's .venv/bin/python, else python3).
set -u
if [ $# -lt 3 ]; then
  echo "usage: $0 DATA_DIR OUT_DIR JOB [JOB ...]" >&2
  exit 2
fi
data_dir=$1; out=$2; shift 2
mkdir -p "$out/results" "$out/logs" "$out/work"
n=$#
root=$(cd "$(dirname "$0")/.." && pwd)
venv_python="$root/.venv/bin/python"
[ -x "$venv_python" ] || venv_python=python3
python=${PYTHON:-$venv_python}
frac=$(awk -v n="$n" 'BEGIN { f = 0.9 / n; if (f > 0.45) f = 0.45; printf "%.3f", f }')
pids=()
for job in "$@"; do
  IFS=, read -r spec overrides <<< "$job"
  dataset=${spec%%/*}; recipe=${spec#*/}
  tag=$(echo "$job" | sed -n 's/.*--config.name=\([A-Za-z0-9_.-]*\).*/\1/p')
  tag=${tag:-phoenix_retrieval_${dataset}_${recipe}}
  data_flag="--config.data.dir=$data_dir"
  [ "$dataset" = synthetic ] && data_flag=""
  # shellcheck disable=SC2086
  XLA_PYTHON_CLIENT_MEM_FRACTION=$frac OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 \
    MKL_NUM_THREADS=2 PYTHONUNBUFFERED=1 timeout "${JOB_TIMEOUT:-560}" \
    "$python" -m experiments.train \
      --config "experiments/configs/phoenix_retrieval.py:dataset=$dataset,recipe=$recipe" \
      $data_flag ${overrides//,/ } --runs_root "$out/runs" \
      --results_dir "$out/results" > "$out/logs/$tag.log" 2>&1 &
  pids+=($!)
  echo "started $tag (pid $!)"
done
rc=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || rc=1
done
for log in "$out"/logs/*.log; do
  tag=$(basename "$log" .log)
  cp "$out/runs/$tag/train/metrics.jsonl" "$out/logs/$tag.metrics.jsonl" 2>/dev/null
  echo "$tag: $(grep -h '"test"' "$log" | tail -1) $(grep -h 'Error\|error:' "$log" | tail -1)"
done | tee "$out/summary.txt"
exit $rc
