"""One rank of tests/test_distributed.py's 2-process gloo job (run by torchrun; not collected by pytest).
Writes what this rank saw and computed to OUT/rank<R>.pt for the test to check against single-process
references."""

import sys

import numpy as np
import torch

from workbench.distributed import group, reduce
from workbench.rl.algos.ppo import PPOConfig, make_env, make_policy, ppo_update
from workbench.rl.algos.returns import RewardNormalizer, gae_advantages
from workbench.rl.algos.rollout import Roller, RolloutBuffer

JOB = PPOConfig(env="colour_cue", num_envs=8, num_steps=16, num_minibatches=2, update_epochs=2, width=0.25,
                device="cpu", bf16=False, cuda_graph=False, seed=0)


def behaviour_cloning_loss(core, obs, actions):
    logits, values = core.forward(obs)
    return -torch.log_softmax(logits, -1).gather(1, actions[:, None]).mean() + 0.1 * values.square().mean()


def main(out: str) -> None:
    assert group.setup() and group.world_size() == 2
    rank = group.rank()
    config = group.rank_config(JOB)
    torch.manual_seed(config.seed)
    core = make_policy(config)
    initial = {k: v.clone() for k, v in core.model.state_dict().items()}
    env = make_env(config, group.rank_seed(config.seed, 0))
    normalizer = RewardNormalizer(config.num_envs)
    buf = RolloutBuffer.allocate(config.num_steps, config.num_envs, env.observation_shape, core.device)
    Roller(env, core, normalizer).collect(buf)
    obs, actions = buf.obs.flatten(0, 1), buf.actions.flatten()

    # (1) the averaged gradient of a loss on this rank's own data
    core.model.train()
    core.model.zero_grad()
    behaviour_cloning_loss(core, obs, actions).backward()
    reduce.average_gradients(core.model.parameters())
    averaged = {n: p.grad.clone() for n, p in core.model.named_parameters()}

    # (2) a whole PPO update (gradients averaged inside), with this rank's own minibatch order
    optimizer = torch.optim.Adam(core.model.parameters(), lr=config.learning_rate, eps=config.adam_eps)
    advantages, returns = gae_advantages(buf.rewards, buf.values, buf.dones, buf.last_value, config.gamma,
                                         config.gae_lambda)
    shuffle = torch.Generator().manual_seed(group.rank_seed(config.seed, 0))
    ppo_update(core, optimizer, buf, advantages, returns, config, shuffle)

    # (3) pooled moments of data that differ per rank
    x = np.random.default_rng(rank).normal(rank, 1 + rank, size=(50 + 10 * rank, 3))
    torch.save({"initial": initial, "obs": obs, "actions": actions, "averaged_grads": averaged,
                "updated": core.model.state_dict(), "x": x, "pooled": reduce.pooled_moments(x),
                "ret_rms": normalizer.ret_rms.state_dict(), "ret": normalizer.ret.copy()}, f"{out}/rank{rank}.pt")
    group.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
