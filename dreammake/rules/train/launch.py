"""The command line that starts a job's training processes: one process, `torch.distributed.run` on this machine,
or, inside a Slurm allocation of several nodes, one `torch.distributed.run` per node through `srun` meeting at a
c10d rendezvous on the allocation's first host."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Mapping

WORKER_MODULE = f"{__package__}.worker"


def free_port() -> int:
    """A TCP port free on this host now (for the rendezvous)."""
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def worker_command(spec_path: str, nproc: int, nodes: int = 1, env: Mapping[str, str] | None = None) -> list[str]:
    """The command that starts `nproc` training processes per node on `nodes` nodes.

    With `nodes` > 1 it must run inside a Slurm allocation of that many nodes (`--executor slurm`): `env` (default:
    this process's environment) is read for SLURM_NNODES and SLURM_JOB_NODELIST.
    """
    if nodes > 1:
        return slurm_command(spec_path, nproc, nodes, os.environ if env is None else env)
    if nproc <= 1:
        return [sys.executable, "-m", WORKER_MODULE, spec_path]
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={nproc}",
            "--master_addr=127.0.0.1", f"--master_port={free_port()}", "-m", WORKER_MODULE, spec_path]


def slurm_command(spec_path: str, nproc: int, nodes: int, env: Mapping[str, str]) -> list[str]:
    """`srun` starting one `torch.distributed.run` per node of the allocation, each with its node's rank.

    The batch script runs on the allocation's first host, so the port is one free here. `$SLURM_NODEID` is
    expanded by the shell of each task, on its own node.
    """
    allocated = int(env.get("SLURM_NNODES") or 0)
    if allocated != nodes or not env.get("SLURM_JOB_NODELIST"):
        where = f"a Slurm allocation of {allocated} node(s)" if allocated else "no Slurm allocation"
        raise ValueError(f"resources={{'nodes': {nodes}}} trains on {nodes} nodes under --executor slurm"
                         f" (this job runs in {where})")
    endpoint = f"{first_host(env['SLURM_JOB_NODELIST'])}:{free_port()}"
    torchrun = shlex.join([sys.executable, "-m", "torch.distributed.run", f"--nnodes={nodes}",
                           f"--nproc_per_node={nproc}", "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}",
                           f"--rdzv_id={env.get('SLURM_JOB_ID', 'dreammake')}"])
    worker = shlex.join(["-m", WORKER_MODULE, spec_path])
    srun = ["srun", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    if env.get("SLURM_CPUS_PER_TASK"):  # srun does not inherit sbatch's --cpus-per-task
        srun.append(f"--cpus-per-task={env['SLURM_CPUS_PER_TASK']}")
    return [*srun, "bash", "-c", f'exec {torchrun} --node_rank="$SLURM_NODEID" {worker}']


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list (`node[01-04]` → `node01`), as `scontrol show hostnames` expands it."""
    proc = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=False)
    hosts = proc.stdout.split()
    if proc.returncode != 0 or not hosts:
        raise ValueError(f"scontrol show hostnames {nodelist!r} failed: {proc.stderr.strip() or 'no hosts'}")
    return hosts[0]
