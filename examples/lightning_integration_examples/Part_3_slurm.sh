#!/bin/bash
# Part 3 as a SLURM batch job: one task per device, started by srun, resumed exactly after a
# pre-emption, a time limit or a requeue.
#
#   sbatch Part_3_slurm.sh                                   # 2 CPU processes on one node
#   sbatch --ntasks-per-node=2 Part_3_slurm.sh --accelerator cpu --devices 2 --quick --out DIR
#
# Arguments after the script's name go to Part_3_multi_GPU_example.py unchanged, after
# --resume, which this script always passes: the first start trains from scratch (there is no
# checkpoint yet) and every later start of the same job continues from the latest checkpoint in
# --out. Without --devices or --num-nodes, the job's tasks per node and node count are passed.
#
# Preemption and time limits: --signal=USR1@120 makes SLURM send SIGUSR1 to the tasks two minutes
# before the time limit (`scancel --signal=USR1 <job>` does the same at once). LitTrainer then
# finishes the epoch, saves its state as hpc_ckpt_<n>.ckpt in --out/run_<processes>, requeues the
# job (allowed by --requeue) and exits; the requeued job runs this script again and resumes from
# that checkpoint, ending as an uninterrupted run would. Leave at least one epoch's time plus a
# checkpoint write between the signal and the limit. A signal that arrives after training (while
# the one-process reference run of Part 3 trains, in rank 0's child process) requeues from there.
#
# GPUs: one task per GPU, e.g. four per node:
#   #SBATCH --ntasks-per-node=4
#   #SBATCH --gres=gpu:4
#   and pass --accelerator gpu --devices 4
# Several nodes: --nodes=N (each node runs --ntasks-per-node tasks), and pass --num-nodes N;
#   --out must be on a file system every node sees, as checkpoints are written by global rank 0
#   and read by every rank on resume.
#
# Environment: PYTHON, the interpreter to run (default: python3 on the PATH the job inherited
# from sbatch, e.g. an activated virtual environment); PART3, the path of
# Part_3_multi_GPU_example.py (default: beside this script as it was submitted).
#
#SBATCH --job-name=neuromancer-part3
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=2
#SBATCH --cpus-per-task=1
#SBATCH --time=01:00:00
#SBATCH --signal=USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=part3-%j.out
set -euo pipefail

# sbatch runs a copy of this file, so find the submitted one (scontrol shows it as the job's command).
if [ -z "${PART3:-}" ]; then
    submitted="$(scontrol show job "$SLURM_JOB_ID" | sed -n 's/^ *Command=\([^ ]*\).*/\1/p')"
    PART3="$(dirname "$submitted")/Part_3_multi_GPU_example.py"
fi

arguments=("$@")
case " $* " in *" --devices "*) ;; *) arguments+=(--devices "${SLURM_NTASKS_PER_NODE%%(*}") ;; esac
case " $* " in *" --num-nodes "*) ;; *) arguments+=(--num-nodes "$SLURM_JOB_NUM_NODES") ;; esac

echo "job $SLURM_JOB_ID, start $((${SLURM_RESTART_COUNT:-0} + 1)), $(date --iso-8601=seconds)"
srun "${PYTHON:-python3}" "$PART3" --resume "${arguments[@]}"
