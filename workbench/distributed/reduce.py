"""What crosses ranks during training: gradients, parameters at start, and the statistics the reference code
keeps global. Each function is the identity without a process group.

Per worker vs global, following the reference codes (line numbers at openai/phasic-policy-gradient master and
openai/baselines master, the PPO of train-procgen):
- Gradients: averaged over ranks after backward, before the optimizer step (PPG ppo.py L179 and ppg.py L200,
  `tu.sync_grads`, torch_util.py L442-458: a flat all-reduce mean). Gradient-norm clipping applies to the
  AVERAGED gradient (baselines ppo2/model.py L102-107: MpiAdamOptimizer.compute_gradients returns the
  all-reduced mean, mpi_adam_optimizer.py L18-44, then clip_by_global_norm).
- Parameters: broadcast from rank 0 once at start (PPG ppo.py L156, `tu.sync_params`, torch_util.py L426-440).
- Reward normalization: the running moments of the discounted return are pooled over ranks (PPG
  reward_normalizer.py L8-33, RunningMeanStd with `distributed=True` all-reduces batch mean/var/count);
  the per-env running returns stay per rank. (train-procgen's VecNormalize keeps them per worker; we follow
  the PPG code, which also keeps the checkpointed normalizer identical on every rank.)
- Advantage normalization: "minibatch" is per worker (baselines ppo2/model.py L139: each worker's own
  minibatch); "batch" uses moments over all ranks (PPG ppo.py L69-70, `tu.mpi_moments`, torch_util.py
  L467-472); "ewma" (PPO-EWMA, built on the PPG code) updates its EWMA with the same pooled moments.
- PPG's auxiliary phase runs over each rank's own buffer with averaged gradients (ppg.py L200). The EWMA
  proximal weights follow identical parameters, so they stay identical without communication.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from workbench.distributed.group import active


def _device_for_collectives(t: torch.Tensor) -> torch.device:
    if dist.get_backend() == "nccl" and t.device.type != "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return t.device


def all_reduce_sum_(flat: torch.Tensor) -> torch.Tensor:
    """In place: the sum of `flat` over ranks."""
    if not active():
        return flat
    device = _device_for_collectives(flat)
    work = flat if device == flat.device else flat.to(device)
    dist.all_reduce(work, op=dist.ReduceOp.SUM)
    if work is not flat:
        flat.copy_(work)
    return flat


def all_reduce_mean_(flat: torch.Tensor) -> torch.Tensor:
    """In place: the mean of `flat` over ranks."""
    if active():
        all_reduce_sum_(flat).div_(dist.get_world_size())
    return flat


def average_gradients(params) -> None:
    """Replace each parameter's gradient by its mean over ranks: one flat all-reduce (as `tu.sync_grads`).
    Parameters without a gradient are left out (as sync_grads does); every rank runs the same losses, so every
    rank sends the same layout, and the optimizer still skips them as in a single process."""
    if not active():
        return
    params = [p for p in params if p.grad is not None]
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    all_reduce_mean_(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


@torch.no_grad()
def broadcast_parameters(modules, src: int = 0) -> None:
    """Every module's parameters and floating buffers as rank `src` has them (`tu.sync_params`)."""
    if not active():
        return
    tensors = [t for m in modules for t in (*m.parameters(), *m.buffers())]
    if not tensors:
        return
    flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
    device = _device_for_collectives(flat)
    work = flat.to(device)
    dist.broadcast(work, src=src)
    flat = work.to(flat.device)
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset:offset + n].view_as(t).to(t.dtype))
        offset += n


def pooled_moments(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean, population variance, count) of `batch` along axis 0 over every rank's batch together
    (exact pooling of the sums, rather than averaging each rank's variance)."""
    batch = np.asarray(batch, np.float64)
    count = batch.shape[0]
    if not active():
        return batch.mean(axis=0), batch.var(axis=0), count
    sums = torch.from_numpy(np.concatenate([[float(count)], np.ravel(batch.sum(axis=0)),
                                            np.ravel((batch**2).sum(axis=0))]))
    totals = all_reduce_sum_(sums).numpy()
    total, k = float(totals[0]), (len(totals) - 1) // 2
    mean = totals[1:1 + k] / total
    var = np.maximum(totals[1 + k:] / total - mean**2, 0.0)
    shape = batch.shape[1:]
    return mean.reshape(shape), var.reshape(shape), round(total)


def pooled_mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population std of a tensor over every rank's tensor (`tu.mpi_moments`)."""
    if not active():
        return x.mean(), x.std(correction=0)
    stats = torch.stack([x.double().sum(), (x.double() ** 2).sum(),
                         torch.tensor(float(x.numel()), dtype=torch.float64, device=x.device)])
    all_reduce_sum_(stats)
    total_sum, total_sq, count = stats.unbind()
    mean = total_sum / count
    var = (total_sq / count - mean**2).clamp_min(0.0)
    return mean.to(x.dtype), var.sqrt().to(x.dtype)
