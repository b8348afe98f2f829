#!/usr/bin/env bash
# Submits a whole dnc run to Slurm as a chain of jobs:
#   scripts/slurm/submit.sh CONFIG RUN_DIR [EXPERT_TASKS]     (EXPERT_TASKS: default 4)
#
#   base -> embed + cluster -> experts (job array of EXPERT_TASKS) -> distill -> eval + report
#   baseline (when the config asks for it) runs beside them, and eval waits for it too.
#
# Each job starts when the one before it ended well (--dependency=afterok). RUN_DIR must be on a
# filesystem every node mounts. The run is created here (`dnc init`) unless RUN_DIR holds one.
# Extra sbatch options (partition, account, GPUs) go in SBATCH_ARGS, e.g.
#   SBATCH_ARGS="--partition=gpu --gres=gpu:1" scripts/slurm/submit.sh configs/curation-full.toml runs/yfcc
# Set DNC to the dnc binary (default: `dnc` on PATH); it must run on the compute nodes too.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG RUN_DIR [EXPERT_TASKS]" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
config=$1
run=$2
tasks=${3:-4}
DNC=${DNC:-dnc}
export DNC
read -r -a extra <<< "${SBATCH_ARGS:-}"
if [ ! -f "$run/config.toml" ]; then
  "$DNC" init --config "$config" --out "$run"
fi
stages=$("$DNC" stages --run "$run")

submit() {
  local id
  id=$(sbatch --parsable "${extra[@]}" "$@")
  echo "${id%%;*}"
}

base=$(submit "$here/stage.sbatch" "$run" base)
divide=$(submit --dependency="afterok:$base" "$here/stage.sbatch" "$run" embed cluster)
experts=$(submit --dependency="afterok:$divide" --array="0-$((tasks - 1))" "$here/experts.sbatch" "$run")
distill=$(submit --dependency="afterok:$experts" "$here/stage.sbatch" "$run" distill)
after_eval="afterok:$distill"
if grep -qx baseline <<< "$stages"; then
  baseline=$(submit "$here/stage.sbatch" "$run" baseline)
  after_eval="$after_eval:$baseline"
  echo "baseline: job $baseline"
fi
eval=$(submit --dependency="$after_eval" "$here/stage.sbatch" "$run" eval report)
echo "base: job $base; embed + cluster: job $divide; experts: array job $experts ($tasks tasks)"
echo "distill: job $distill; eval + report: job $eval"
echo "follow with: $DNC status --run $run"
