"""The process group: set up from torchrun's environment, and what each rank is.

Layout (as the reference codes' MPI workers: openai/train-procgen train.py L16-43, openai/phasic-policy-gradient
train.py L31-41): every rank runs the whole training loop on its own envs and its own seed; only gradients and a
few statistics cross ranks (workbench.distributed.reduce). Rank 0 writes the run store and the checkpoints
(as the references' logger, which writes only on rank 0: phasic-policy-gradient train.py L38).

`config.num_envs` is the job's TOTAL env count, split evenly across ranks (`rank_config`): the config means the
same experiment on 1 or K processes, and `PPOConfig.paper("hard")` (256 envs) on 4 ranks is exactly the
paper's 4 workers x 64 envs, each with 8 minibatches of its own 64 x 256 batch.

With no process group (or a world of 1) every function here is the identity: single-process runs are unchanged.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta

import torch
import torch.distributed as dist

# A collective that waits this long for a peer gives up (a dead peer usually fails it at once; this bounds a hang).
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


def launched_by_torchrun() -> bool:
    """True in a process started by torchrun / torch.distributed.run with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup() -> bool:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, ...):
    NCCL when this machine has CUDA, gloo otherwise. Idempotent; False when not launched as several ranks."""
    if dist.is_initialized():
        return True
    if not launched_by_torchrun():
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    return True


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_writer() -> bool:
    """Whether this process writes the run store (rank 0, or the only process)."""
    return rank() == 0


def rank_config(config):
    """This rank's share of a job config: `num_envs / world_size` envs and, on CUDA, the rank's own GPU.
    The job config (what the run store records) keeps the total. Raises ValueError when the envs do not split."""
    world = world_size()
    if world == 1:
        return config
    if config.num_envs % world:
        raise ValueError(f"num_envs = {config.num_envs} (the job's total) must be divisible by the "
                         f"{world} ranks; e.g. num_envs = {world * max(1, config.num_envs // world)}")
    if getattr(config, "online_every", 0):
        raise ValueError("the online labeling loop (online_every > 0) retrains the reward model on one process; "
                         "run it with one process, or set online_every = 0 for a fixed reward model")
    changes = {"num_envs": config.num_envs // world}
    if torch.cuda.is_available() and str(config.device) in ("auto", "cuda"):
        changes["device"] = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return dataclasses.replace(config, **changes).validate()


def rank_seed(seed: int, iteration: int) -> int:
    """A seed for this rank's action sampling and minibatch shuffling after a (re)start at `iteration`:
    different on every rank (the references seed each MPI worker differently) and every resume point."""
    return seed + 10_007 * rank() + 1_000_003 * iteration


def broadcast_object(obj, src: int = 0):
    """`obj` as rank `src` has it, on every rank (pickled; for run ids and checkpoints)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is True on any: a stop request on one rank stops all at the same
    iteration (a rank leaving the loop alone would leave the others waiting in a collective)."""
    if not active():
        return flag
    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"  # NCCL: CUDA only
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
