"""A straightforward eager PyTorch PPO for Procgen: the yardstick the workbench's engine is measured against.

What "straightforward" means here (how a single-file port is usually written): fp32 everywhere, NCHW tensors,
observations converted to float32 on the host and stored as float32 (T, N, 3, 64, 64) in the rollout buffer,
a Python loop for GAE on the host, `.item()` calls per minibatch. Same network (IMPALA CNN), same batch
settings and the same losses as workbench.rl.algos.ppo, so the two do the same arithmetic.

    python benchmarks/baseline_ppo.py --iterations 2   # prints one JSON line
"""

import argparse
import json
import resource
import time

import torch

from workbench.rl.envs import ProcgenVecEnv
from workbench.rl.policy import ImpalaCNN


def run(env_name="coinrun", num_envs=64, num_steps=256, num_minibatches=8, epochs=3, iterations=2, seed=0):
    torch.manual_seed(seed)
    env = ProcgenVecEnv(env_name, num_envs, distribution_mode="easy", num_levels=200, rand_seed=seed)
    net = ImpalaCNN()
    opt = torch.optim.Adam(net.parameters(), lr=5e-4, eps=1e-5)
    gamma, lam, clip, batch = 0.999, 0.95, 0.2, num_envs * num_steps
    obs_buf = torch.zeros((num_steps, num_envs, 3, 64, 64))
    act_buf = torch.zeros((num_steps, num_envs), dtype=torch.long)
    logp_buf, val_buf = torch.zeros((num_steps, num_envs)), torch.zeros((num_steps, num_envs))
    rew_buf, done_buf = torch.zeros((num_steps, num_envs)), torch.zeros((num_steps, num_envs))
    to_float = lambda o: torch.tensor(o, dtype=torch.float32).permute(0, 3, 1, 2) / 255.0  # noqa: E731
    next_obs = to_float(env.reset())
    start = time.perf_counter()
    for _ in range(iterations):
        for t in range(num_steps):
            with torch.no_grad():
                logits, value = net(next_obs)
            dist = torch.distributions.Categorical(logits=logits)
            action = dist.sample()
            obs_buf[t], act_buf[t], logp_buf[t], val_buf[t] = next_obs, action, dist.log_prob(action), value
            o, r, d, _ = env.step(action.numpy())
            rew_buf[t], done_buf[t] = torch.tensor(r), torch.tensor(d, dtype=torch.float32)
            next_obs = to_float(o)
        with torch.no_grad():
            last_value = net(next_obs)[1]
        adv = torch.zeros_like(rew_buf)
        running = torch.zeros(num_envs)
        for t in reversed(range(num_steps)):
            next_v = last_value if t == num_steps - 1 else val_buf[t + 1]
            delta = rew_buf[t] + gamma * next_v * (1 - done_buf[t]) - val_buf[t]
            running = delta + gamma * lam * (1 - done_buf[t]) * running
            adv[t] = running
        ret = adv + val_buf
        b_obs, b_act, b_logp = obs_buf.reshape(batch, 3, 64, 64), act_buf.reshape(-1), logp_buf.reshape(-1)
        b_adv, b_ret, b_val = adv.reshape(-1), ret.reshape(-1), val_buf.reshape(-1)
        mb = batch // num_minibatches
        for _ in range(epochs):
            perm = torch.randperm(batch)
            for s in range(0, batch, mb):
                i = perm[s:s + mb]
                logits, value = net(b_obs[i])
                dist = torch.distributions.Categorical(logits=logits)
                ratio = (dist.log_prob(b_act[i]) - b_logp[i]).exp()
                a = (b_adv[i] - b_adv[i].mean()) / (b_adv[i].std() + 1e-8)
                pg = -torch.min(ratio * a, ratio.clamp(1 - clip, 1 + clip) * a).mean()
                v_clipped = b_val[i] + (value - b_val[i]).clamp(-clip, clip)
                vf = 0.5 * torch.max((value - b_ret[i]) ** 2, (v_clipped - b_ret[i]) ** 2).mean()
                loss = pg - 0.01 * dist.entropy().mean() + 0.5 * vf
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
                opt.step()
                _ = pg.item(), vf.item()
    elapsed = time.perf_counter() - start
    env.close()
    return {"impl": "baseline", "env_steps": iterations * batch, "seconds": elapsed,
            "steps_per_second": iterations * batch / elapsed,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--env", default="coinrun")
    a = p.parse_args()
    print(json.dumps(run(a.env, iterations=a.iterations)))
