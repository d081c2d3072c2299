"""The acting policy of a saved run, rebuilt from its stored config and checkpoint.

It lives here, beside the policy core, so that recorded episodes, evaluation and every other consumer of a
checkpoint can rebuild a policy without importing the algorithm registry (which sits above them).
Checkpoints are loaded by the run store with ``weights_only=True``; this only reads tensors out of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workbench.rl.policy import ImpalaCNN, PolicyCore


def policy_checkpoint_problem(saved) -> str | None:
    """What a checkpoint lacks to rebuild a run's acting policy (None when nothing): the run store's `check`
    for evaluation and recording, so a checkpoint of the wrong structure counts as damaged."""
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict):
        return "it holds no 'state' dict of networks"
    if not ({"model", "policy"} & set(saved["state"])):
        return f"it holds no policy network (state has {sorted(map(str, saved['state']))})"
    if "global_step" not in saved:
        return "it lacks 'global_step'"
    return None


def policy_from_checkpoint(algo: str, config: Mapping[str, Any], state: Mapping[str, Any],
                           device="auto") -> PolicyCore:
    """The acting policy of a saved run (PPO's network, PPG's policy network), ready for evaluation.

    PPG-family runs save their policy network under ``"policy"``, PPO-family runs under ``"model"``; PPG's
    single-network ``arch="detach"`` adds a detached value head and the auxiliary value head.
    """
    weights = state["state"]
    ppg_family = "policy" in weights
    kwargs = {}
    if ppg_family and config.get("arch") == "detach":
        kwargs = dict(detach_value=True, aux_value_head=True)
    core = PolicyCore(ImpalaCNN(width=config.get("width", 1.0), **kwargs), device, bf16=config.get("bf16"),
                      channels_last=config.get("channels_last", True), cuda_graph=False)
    core.load_state_dict(weights["policy" if ppg_family else "model"])
    return core


__all__ = ["policy_checkpoint_problem", "policy_from_checkpoint"]
