"""Trains varec's CNN+RNN (Yin et al., 2022) and reports validation metrics.

    python train.py --config=configs/demo.py --workdir=workdir/demo
    python train.py --config=configs/rnn10.py --workdir=workdir/rnn10
    python train.py --config=configs/demo.py --config.num_runs=5
    --workdir=workdir/demo_runs

Rerunning the same command resumes from the latest checkpoint in --workdir.
With --config.num_runs=N > 1, run i reshuffles the speakers with seed + i,
trains in <workdir>/run_i, is evaluated on training+validation and test
(<workdir>/run_i/eval), and the paper's Table 3 (mean and IQR over runs) is
written to <workdir>/table3.md and table3.csv.

Exit status: 0 when training finished and its validation shows the model
learnt something; 3 (`learning_check.LEARNT_NOTHING_STATUS`) when it finished
but the validation of the model it trained (of any run) shows that it learnt
nothing: CCC near 0 and video accuracy not above chance. The checkpoints stay,
and a message names the numbers and what to change (also in the workdir's
training_summary.json). 1: an error; 2: a bad command line.
"""

import contextlib
import os
import pathlib
import socket
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from varec import checkpoints
from varec import cli
from varec import config_checks
from varec import evaluation
from varec import evaluation_outputs
from varec import learning_check
from varec import locks
from varec import run_logs
from varec import table3
from varec import train_lib
from varec import workdir as workdir_lib

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Training configuration file.", lock_config=True
)
_COORDINATOR_TIMEOUT = flags.DEFINE_integer(
  "coordinator_timeout_s",
  300,
  "Multi-host runs: seconds to wait for process 0 to be reachable and for "
  "every process to join.",
)
_WORKDIR = flags.DEFINE_string(
  "workdir",
  None,
  "Where checkpoints and logs go (default: workdir/<config file name>).",
)


def run_table3(config, workdir: pathlib.Path) -> pathlib.Path:
  """Trains and evaluates `config.num_runs` runs with reshuffled speakers;
  writes Table 3."""
  for i in range(config.num_runs):
    run_config = config.copy_and_resolve_references()
    run_config.seed = config.seed + i
    run_dir = workdir_lib.Workdir(workdir).run(i)
    logging.info(
      "Run %d/%d (seed %d) in %s",
      i + 1,
      config.num_runs,
      run_config.seed,
      run_dir,
    )
    train_lib.train_and_evaluate(run_config, run_dir)
    model, results = evaluation.evaluate(run_dir, table3.EVAL_SPLITS)
    # Figures for the first run only: they are many and the runs look alike.
    evaluation_outputs.write_outputs(
      model, results, run_dir.eval_dir(), figures=i == 0
    )
    print(
      f"Run {i} (seed {run_config.seed}):\n"
      f"{evaluation_outputs.summary(results)}"
    )
  md, _ = table3.write({workdir.name: table3.collect(workdir)}, workdir)
  return md


def init_distributed(timeout_s: int) -> None:
  """Joins a multi-host run when JAX_COORDINATOR_ADDRESS (host:port of process
  0) is set, with JAX_NUM_PROCESSES and JAX_PROCESS_ID, waiting at most
  `timeout_s` for the others.

  Raises:
    ValueError: a malformed setting, or no coordinator within `timeout_s`.
  """
  address = os.environ.get("JAX_COORDINATOR_ADDRESS")
  if not address:
    return
  host, _, port = address.rpartition(":")
  if not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise ValueError(
      f"JAX_COORDINATOR_ADDRESS={address!r} is not host:port (e.g. "
      "10.0.0.1:1234)"
    )
  numbers = {}
  for name in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    value = os.environ.get(name, "")
    if not value.isdigit():
      raise ValueError(
        f"JAX_COORDINATOR_ADDRESS is set, so {name} must be a whole number "
        f"(got {value!r}): set JAX_NUM_PROCESSES to the number of processes "
        "and JAX_PROCESS_ID to this one's, from 0"
      )
    numbers[name] = int(value)
  count, index = numbers["JAX_NUM_PROCESSES"], numbers["JAX_PROCESS_ID"]
  if not index < count:
    raise ValueError(
      f"JAX_PROCESS_ID={index} must be below JAX_NUM_PROCESSES={count}"
    )
  # XLA's client aborts the whole process, in many lines, when it cannot
  # register: the other processes first reach process 0's port themselves.
  deadline = time.monotonic() + timeout_s
  while index > 0:
    try:
      socket.create_connection((host, int(port)), timeout=1.0).close()
      break
    except OSError as e:
      if time.monotonic() >= deadline:
        raise ValueError(
          f"process {index} of {count} could not reach process 0 at {address} "
          f"within --coordinator_timeout_s={timeout_s} s ({e}): start process "
          "0 first, and check that its host and port are reachable from here"
        ) from None
      time.sleep(1.0)
  try:
    jax.distributed.initialize(
      coordinator_address=address,
      num_processes=count,
      process_id=index,
      initialization_timeout=timeout_s,
    )
  # pylint: disable=broad-except; XLA raises its own kinds.
  except Exception as e:
    raise ValueError(
      f"process {index} of {count} could not join the run at {address}: "
      f"{type(e).__name__}: {e}"
    ) from None


def report_learning(workdirs) -> int:
  """Prints the loud message of each run in `workdirs` that learnt nothing (its
  training summary's verdict); the exit status: 0, or LEARNT_NOTHING_STATUS."""
  failed, lines = [], []
  for run_dir in workdirs:
    verdict = run_logs.read_summary(run_dir).get("verdict", {})
    if verdict.get("learnt_nothing"):
      failed.append(run_dir)
      lines.append(verdict["message"])
    elif verdict.get("message"):  # No validation logged: it cannot tell.
      lines.append(f"train.py: {verdict['message']}")
  if failed and len(workdirs) > 1:
    lines.append(
      f"train.py: {len(failed)} of {len(workdirs)} runs learnt nothing "
      f"({', '.join(str(w) for w in failed)}); Table 3 averages them in."
    )
  # Process 0 speaks for a multi-host run; every process exits alike.
  if lines and jax.process_index() == 0:
    print("\n".join(lines), file=sys.stderr)
  return learning_check.LEARNT_NOTHING_STATUS if failed else 0


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    init_distributed(_COORDINATOR_TIMEOUT.value)
  except ValueError as e:
    sys.exit(f"train.py: {e}")
  config = _CONFIG.value
  run_logs.quiet_library_logs()
  config_name = pathlib.Path(
    flags.FLAGS["config"].config_filename.split(":")[0]
  ).stem
  workdir = pathlib.Path(_WORKDIR.value or f"workdir/{config_name}")
  logging.info("JAX devices: %s", jax.devices())
  try:
    # Every batch is shared over all devices (`steps.data_mesh`).
    config_checks.check_config(config, num_devices=jax.device_count())
    # Process 0 speaks for a multi-host run, whose processes share the workdir.
    with (
      locks.exclusive(workdir, "train.py")
      if jax.process_index() == 0
      else contextlib.nullcontext()
    ):
      if config.num_runs > 1:
        md = run_table3(config, workdir)
        print(f"Table 3 ({md}):\n{md.read_text()}")
        runs = [
          workdir_lib.Workdir(workdir).run(i) for i in range(config.num_runs)
        ]
        sys.exit(report_learning(runs))
      final = train_lib.train_and_evaluate(config, workdir)
  except config_checks.ConfigError as e:
    cli.fail("train.py", str(e))
  except OSError as e:  # A full disk, a folder it may not write.
    sys.exit(f"train.py: {cli.os_error(e)}")
  # A dataset, workdir or checkpoint that cannot train, or a workdir in use.
  except (
    ValueError,
    FloatingPointError,
    checkpoints.CheckpointError,
    locks.Busy,
  ) as e:
    sys.exit(f"train.py: {e}")
  if final:
    print(
      f"Validation after training ({workdir}): "
      + ", ".join(f"{k} {v:.3f}" for k, v in sorted(final.items()))
    )
  else:
    print(
      f"{workdir} already holds a finished run of this config: nothing "
      "left to train."
    )
  print(f"Evaluate: python eval.py --checkpoint={workdir}")
  sys.exit(report_learning([workdir]))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main, flags_parser=cli.parse_flags)
