"""RL against a learned reward model: PPO or PPG with the environment reward replaced by a reward model's,
a per-step KL penalty to the initial policy, and the online loop of Christiano et al. (2017).

Algorithms `ppo-rm` and `ppg-rm` (`RMPPOConfig`, `RMPPGConfig`): the PPO / PPG training loops themselves
(`ppo.train`, `ppg.train`), extended through one hook, `RewardModelHook`, that the roller calls after every
environment step. The hook

- replaces the env reward of step t by the reward model's reward of the observation the action a_t was chosen
  on, r_t = r_RM(frames[t]) (see "Which frame" below);
- subtracts InstructGPT's per-step KL penalty (Ouyang et al. 2022, arXiv 2203.02155, Sec. 3.5; WebGPT,
  Nakano et al. 2021, arXiv 2112.09332, Sec. 3.3):
      reward_t = r_RM(s_t) - beta * (log pi(a_t|s_t) - log pi_init(a_t|s_t))
  with pi the policy that sampled a_t and pi_init the frozen initial policy (`kl_coef` = beta; InstructGPT's
  0.02 is per token of a ~100-token response, here it is per env step);
- measures on the rollouts, each iteration: the proxy (reward-model) reward, the gold (true env) reward and
  KL(pi || pi_init), both as the mean over steps of the full-distribution KL and as the sampled log-ratio
  estimator, their square roots, and per finished episode the proxy return, gold return and the episode's
  KL (the sum of its steps' KLs: the KL between the trajectory distributions of pi and pi_init, because the
  dynamics cancel, which is the quantity best-of-n's log n - (n - 1)/n is comparable to);
- measures, when the reward is an ensemble (`member_step_rewards`, as `RewardEnsemble`), the members'
  disagreement on the policy's own steps: `rlhf/rm_disagreement`, the mean over steps of the standard
  deviation across members of the normalized per-step reward (the proxy is the members' mean). Rising
  disagreement while the proxy rises is the sign of proxy gaming that `workbench.safety.alarm` watches;
  `monitors` (callables `(session, metrics) -> metrics`, e.g. that alarm, which `workbench.registry.train`
  passes) add their own metrics to each iteration's.

Which frame: a clip's reward is the sum of the per-step rewards over its frames (`RewardEnsemble.clip_rewards`,
and the gold labeler sums `Episode.rewards` over the same steps), where frames[t] is the observation the agent
saw when it chose actions[t] and rewards[t] the env reward received after actions[t]. So the RL reward of
step t is r_RM(frames[t]), the observation *before* the action, and it is paired with the env reward of the
same step. An observation-only reward model therefore rewards states, and an action is credited with the
reward of the states it leads to through the return (gamma, GAE): Christiano et al. use r(o_t, a_t); the
contract of `workbench.preferences.reward` is observation-only (a departure, documented in docs/rlhf.md).

Scaling: the penalized reward then goes through the engine's usual reward normalization (running std of the
discounted return, as for env rewards). Scaling r_RM - beta * log-ratio by one positive number keeps the
relative weight beta between the proxy and the KL term and the optimum; the logged proxy reward is unscaled.

pi_init: the policy at the start of the run: the acting network of a pretrained run (`init_run`,
`init_checkpoint`; InstructGPT starts RL from the SFT model) or the fresh initialization. It is copied,
frozen and checkpointed with the run (so a resumed run keeps the same reference policy).

Online loop (Christiano et al. 2017, Sec. 2.2, arXiv 1706.03741): with `online_every = M > 0`, the hook
follows `online_trace_envs` envs step by step; every M iterations it saves their finished episodes in the
`RolloutStore`, samples `online_pairs` pairs of clips of `online_clip_length` steps from them, adds the pairs
to a clip_pair campaign of the `LabelStore`, asks the labeler for labels (`online_labeler="gold"`: the
synthetic gold labeler of `workbench.preferences.synthetic`, from the env reward; `"campaign"`: people label them in the
dashboard, and each retraining uses whatever labels exist by then), and retrains the reward model on all of
the campaign's labels (`workbench.preferences.reward.train_reward_model`), which then replaces the reward in the roller.
Christiano et al. run the three processes asynchronously, keep training one predictor (a warm start), pick
pairs where the ensemble disagrees and decay the label rate over time; here they take turns at iteration
boundaries, at a constant rate; each round continues training the current ensemble on all labels so far
(`online_warm_start`, off = a fresh ensemble each round) and pairs are sampled uniformly or, with
`online_pair_strategy="disagreement"`, where the ensemble's members disagree most.
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from workbench.rl.algos import ppg, ppo
from workbench.rl.algos.config_check import ConfigError
from workbench.rl.algos.ppg import PPGConfig
from workbench.rl.algos.ppo import PPOConfig
from workbench.rl.policy import PolicyCore
from workbench.storage.runs import RunStore

ONLINE_LABELERS = ("gold", "campaign")
StepRewardFn = Callable[[torch.Tensor], torch.Tensor]   # (N, 64, 64, 3) uint8 -> (N,) float32


@dataclass
class RewardModelSettings:
    """Settings shared by `RMPPOConfig` and `RMPPGConfig` (a mixin: every field has a default)."""

    reward_model: str | None = None     # path of a saved reward model (workbench.preferences.reward.save_reward_model);
                                        # the Python API may pass a step_reward_fn instead
    kl_coef: float = 0.0                # beta of reward_t - beta * log(pi / pi_init)(a_t|s_t); 0 = no penalty
    init_run: str | None = None         # pi_init: the acting network of this run's checkpoint ...
    init_checkpoint: int | None = None  # ... at this env step (None = its latest); no init_run = fresh init
    # --- online loop (Christiano et al. 2017); online_every = 0 keeps the reward model fixed ---
    online_every: int = 0               # M: iterations between label rounds
    online_pairs: int = 32              # clip pairs requested per round
    online_clip_length: int = 25        # steps per clip (Christiano: 25 Atari steps); capped by episode length
    online_pair_strategy: str = "uniform"   # or "disagreement": the pairs the ensemble disputes most (Christiano
                                            # Sec. 2.2.4; their ablation found it helped on some tasks only)
    online_labeler: str = "gold"        # "gold" (synthetic, from the env reward) | "campaign" (people)
    online_campaign: str | None = None  # LabelStore campaign; None = "<run id>-online"
    online_trace_envs: int = 4          # envs whose episodes are kept for clips (frames cost memory)
    online_keep_episodes: int = 64      # most recent finished episodes kept between rounds
    online_reward_settings: dict = field(default_factory=dict)  # keyword settings for train_reward_model
    online_warm_start: bool = True      # each round continues from the current model (Christiano: one predictor
                                        # trained as labels arrive); False = a fresh ensemble each round

    def reward_model_problems(self) -> list[str]:
        problems = []
        if not (self.kl_coef >= 0 and math.isfinite(self.kl_coef)):
            problems.append(f"kl_coef must be a finite number >= 0 (got {self.kl_coef})")
        if self.init_checkpoint is not None and self.init_run is None:
            problems.append("init_checkpoint needs init_run (the run whose checkpoint is pi_init)")
        if self.online_every < 0:
            problems.append(f"online_every must be >= 0 iterations, 0 = off (got {self.online_every})")
        for name in ("online_pairs", "online_clip_length", "online_trace_envs", "online_keep_episodes"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.online_pair_strategy not in ("uniform", "disagreement"):
            problems.append(f"online_pair_strategy {self.online_pair_strategy!r} is not 'uniform' or 'disagreement'")
        if self.online_labeler not in ONLINE_LABELERS:
            problems.append(f"online_labeler {self.online_labeler!r} is not one of {ONLINE_LABELERS}")
        if not isinstance(self.online_reward_settings, dict):
            problems.append("online_reward_settings must be a dict of train_reward_model settings")
        return problems


def _validate(config, base_validate) -> None:
    try:
        base_validate(config)
        problems = []
    except ConfigError as exc:  # out-of-range values: report them with this config's own problems
        if exc.wrong_type:
            raise
        problems = list(exc.problems)
    problems += config.reward_model_problems()
    if problems:
        raise ValueError(f"invalid {type(config).__name__}: " + "; ".join(problems))


@dataclass
class RMPPOConfig(RewardModelSettings, PPOConfig):
    """PPO against a reward model (`ppo-rm`): every PPOConfig setting plus `RewardModelSettings`."""

    def validate(self) -> "RMPPOConfig":
        _validate(self, PPOConfig.validate)
        return self


@dataclass
class RMPPGConfig(RewardModelSettings, PPGConfig):
    """PPG against a reward model (`ppg-rm`): every PPGConfig setting plus `RewardModelSettings`."""

    def validate(self) -> "RMPPGConfig":
        _validate(self, PPGConfig.validate)
        return self


ALGO_CONFIGS = {"ppo-rm": RMPPOConfig, "ppg-rm": RMPPGConfig}


# ---- the formulas --------------------------------------------------------------------------------------
def kl_penalized_reward(proxy_reward: torch.Tensor, log_prob: torch.Tensor, init_log_prob: torch.Tensor,
                        kl_coef: float) -> torch.Tensor:
    """InstructGPT's per-step reward: r - beta * (log pi(a|s) - log pi_init(a|s)) (Ouyang et al. 2022, Sec. 3.5)."""
    return proxy_reward - kl_coef * (log_prob - init_log_prob)


def policy_kl(logits: torch.Tensor, init_logits: torch.Tensor, actions: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per state: the full-distribution KL(pi(.|s) || pi_init(.|s)) and the sampled log-ratio
    log pi(a|s) - log pi_init(a|s) of the taken action (an unbiased estimate of the former when a ~ pi)."""
    log_p, log_p0 = F.log_softmax(logits.float(), -1), F.log_softmax(init_logits.float(), -1)
    full = (log_p.exp() * (log_p - log_p0)).sum(-1)
    sampled = (log_p - log_p0).gather(-1, actions[..., None]).squeeze(-1)
    return full, sampled


def _taken(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits.float(), -1).gather(1, actions[:, None]).squeeze(1)


# ---- pi_init -------------------------------------------------------------------------------------------
def load_initial_weights(core: PolicyCore, store: RunStore, run_id: str, step: int | None, env: str) -> None:
    """Put the acting network of `run_id`'s checkpoint (PPO's network, PPG's policy network) into `core`."""
    info = store.get_run(run_id)
    if info.env != env:
        raise ValueError(f"init_run {run_id} was trained on {info.env!r}, this run is on {env!r}; "
                         "pi_init must be a policy for the same env")
    if store.latest_checkpoint(run_id) is None:
        raise ValueError(f"init_run {run_id} has no checkpoint yet")
    from workbench.rl.checkpoints import policy_checkpoint_problem

    saved = store.load_checkpoint(run_id, step, check=policy_checkpoint_problem)
    weights = saved["state"].get("policy", saved["state"].get("model"))
    try:
        core.model.load_state_dict(weights)
    except RuntimeError as exc:
        raise ValueError(f"the policy of init_run {run_id} does not fit this network (width, architecture); "
                         f"use its width ({info.config.get('width')}) and arch: {exc}") from None


# ---- the hook ------------------------------------------------------------------------------------------
class _EpisodeTracer:
    """Assembles the finished episodes of the first `num_envs` envs step by step, in the Episode convention
    (frames[t] seen when actions[t] was chosen; rewards[t] the gold env reward after it)."""

    def __init__(self, num_envs: int, keep: int):
        self.num_envs = num_envs
        self.open = [[] for _ in range(num_envs)]
        self.finished: deque = deque(maxlen=keep)

    def step(self, obs_t, out, env_reward, done) -> None:
        n = self.num_envs
        frames = obs_t[:n].cpu().numpy()
        probs = torch.softmax(out.logits[:n].float(), -1).cpu().numpy()
        actions, values = out.action[:n].cpu().numpy(), out.value[:n].float().cpu().numpy()
        for i in range(min(n, len(done))):
            self.open[i].append((frames[i], int(actions[i]), probs[i], float(values[i]), float(env_reward[i])))
            if done[i]:
                self.finished.append(self.open[i])
                self.open[i] = []

    def take(self) -> list[list[tuple]]:
        out = list(self.finished)
        self.finished.clear()
        return out


class OnlineState:
    """The online loop's checkpointed state: label rounds so far and the path of the current reward model."""

    def __init__(self):
        self.rounds, self.model_path = 0, ""
        self.on_load = None

    def state_dict(self) -> dict:
        return {"rounds": self.rounds, "model_path": self.model_path}

    def load_state_dict(self, state: dict) -> None:
        self.rounds, self.model_path = int(state["rounds"]), str(state["model_path"])
        if self.model_path and self.on_load is not None:
            self.on_load(self.model_path)


class RewardModelHook:
    """Replaces the env reward with a reward model's, minus the KL penalty, and measures proxy reward, gold
    reward and KL(pi || pi_init) on the rollouts (see the module docstring). Called by the roller after every
    step; `end_iteration(session)` returns the iteration's metrics and runs the online loop's label rounds.

    `labeler(label_store, campaign, item_ids, rollout_store)`: labels new items (default: the synthetic gold
    labeler). `retrain(campaign, root, previous_model, settings) -> (reward model, metrics, saved path)`:
    trains the next reward model (default: `workbench.preferences.reward.train_reward_model` on all labels so far)."""

    def __init__(self, config: RMPPOConfig | RMPPGConfig, step_reward_fn: StepRewardFn | None = None, *,
                 store: RunStore | None = None, labeler=None, retrain=None, monitors=()):
        if not isinstance(config, RewardModelSettings):
            raise ValueError(f"RL against a reward model needs an RMPPOConfig or RMPPGConfig, got {type(config).__name__}")
        self.config, self.store = config, store or RunStore()
        self.reward_model = None
        if step_reward_fn is None and config.reward_model:
            from workbench.preferences.reward import load_reward_model

            self.reward_model = load_reward_model(config.reward_model)
            step_reward_fn = self.reward_model.step_rewards
        if step_reward_fn is None and config.online_every == 0:
            raise ValueError("no reward: give a step_reward_fn, a saved reward_model path, or turn on the online "
                             "loop (online_every > 0; the reward is 0 until its first reward model is trained)")
        if self.reward_model is None and hasattr(getattr(step_reward_fn, "__self__", None), "member_step_rewards"):
            self.reward_model = step_reward_fn.__self__  # an ensemble's bound step_rewards: watch its members
        self.step_reward_fn = step_reward_fn
        self.labeler, self.retrain, self.monitors = labeler, retrain, list(monitors)
        self.init_core: PolicyCore | None = None
        self.tracer = (_EpisodeTracer(min(config.online_trace_envs, config.num_envs), config.online_keep_episodes)
                       if config.online_every else None)
        self.online = OnlineState()
        self.online.on_load = self._load_online_model
        self._reset_sums()
        n = config.num_envs
        self._episode_proxy, self._episode_gold, self._episode_kl = np.zeros(n), np.zeros(n), np.zeros(n)

    # -- engine side -------------------------------------------------------------------------------------
    def setup(self, algo: str, core: PolicyCore, state: dict) -> str:
        """Before the session restores: set pi_init, freeze a copy of it into the checkpointed state."""
        if self.config.init_run:
            load_initial_weights(core, self.store, self.config.init_run, self.config.init_checkpoint,
                                 self.config.env)
        frozen = copy.deepcopy(core.model).eval()
        for p in frozen.parameters():
            p.requires_grad_(False)
        self.init_core = PolicyCore(frozen, core.device, bf16=core.bf16, channels_last=core.channels_last,
                                    cuda_graph=False)
        state["init_policy"] = frozen
        if self.config.online_every:
            state["online_reward_model"] = self.online
        return "ppg-rm" if isinstance(self.config, PPGConfig) else "ppo-rm"

    @torch.no_grad()
    def __call__(self, obs_t: torch.Tensor, out, env_reward, done) -> np.ndarray:
        proxy = self._proxy(obs_t)
        init_logits = self.init_core.forward(obs_t)[0]
        kl_full, log_ratio = policy_kl(out.logits, init_logits, out.action)
        reward = kl_penalized_reward(proxy, _taken(out.logits, out.action), _taken(init_logits, out.action),
                                     self.config.kl_coef)
        gold = np.asarray(env_reward, np.float64)
        done = np.asarray(done, bool)
        proxy_np, kl_np = proxy.double().cpu().numpy(), kl_full.double().cpu().numpy()
        s = self._sums
        s["proxy"] += proxy_np.sum()
        s["gold"] += gold.sum()
        s["kl"] += kl_np.sum()
        s["kl_sampled"] += float(log_ratio.double().sum())
        s["steps"] += len(gold)
        self._episode_proxy += proxy_np
        self._episode_gold += gold
        self._episode_kl += kl_np
        if done.any():
            for name, acc in (("proxy_return", self._episode_proxy), ("gold_return", self._episode_gold),
                              ("kl_episode", self._episode_kl)):
                s[name].extend(acc[done].tolist())
                acc[done] = 0.0
        if self.tracer is not None:
            self.tracer.step(obs_t, out, gold, done)
        return reward.float().cpu().numpy()

    def _proxy(self, obs_t: torch.Tensor) -> torch.Tensor:
        """The proxy reward of each observation; with an ensemble also sums the members' disagreement."""
        device = obs_t.device
        if self.step_reward_fn is None:
            return torch.zeros(obs_t.shape[0], device=device)
        model = self.reward_model
        if (hasattr(model, "member_step_rewards") and len(model) > 1
                and self.step_reward_fn == model.step_rewards):
            members = torch.as_tensor(model.member_step_rewards(obs_t)).float().to(device)
            spread = float(members.std(0, correction=0).double().sum())
            self._sums["disagreement"] = (self._sums["disagreement"] or 0.0) + spread
            return members.mean(0)
        proxy = torch.as_tensor(self.step_reward_fn(obs_t)).float().to(device).reshape(-1)
        if proxy.shape[0] != obs_t.shape[0]:
            raise ValueError(f"step_reward_fn returned {tuple(proxy.shape)} rewards for {obs_t.shape[0]} "
                             "observations; it must map (N, 64, 64, 3) uint8 to (N,)")
        return proxy

    def end_iteration(self, session) -> dict[str, float]:
        s = self._sums
        metrics = {}
        if s["steps"]:
            kl = s["kl"] / s["steps"]
            metrics = {"rlhf/proxy_reward": s["proxy"] / s["steps"], "rlhf/gold_reward": s["gold"] / s["steps"],
                       "rlhf/kl": kl, "rlhf/kl_sampled": s["kl_sampled"] / s["steps"],
                       "rlhf/sqrt_kl": math.sqrt(max(kl, 0.0)),
                       "rlhf/kl_penalty": self.config.kl_coef * s["kl_sampled"] / s["steps"]}
            if s["disagreement"] is not None:
                metrics["rlhf/rm_disagreement"] = s["disagreement"] / s["steps"]
        if s["kl_episode"]:
            kl_episode = float(np.mean(s["kl_episode"]))
            metrics.update({"rlhf/proxy_return": float(np.mean(s["proxy_return"])),
                            "rlhf/gold_return": float(np.mean(s["gold_return"])),
                            "rlhf/kl_episode": kl_episode, "rlhf/sqrt_kl_episode": math.sqrt(max(kl_episode, 0.0))})
        self._reset_sums()
        if self.tracer is not None and (session.iteration + 1) % self.config.online_every == 0:
            metrics.update(self.label_round(session))
        for monitor in self.monitors:
            metrics.update(monitor(session, metrics))
        return metrics

    def _reset_sums(self) -> None:
        self._sums = {"proxy": 0.0, "gold": 0.0, "kl": 0.0, "kl_sampled": 0.0, "steps": 0, "disagreement": None,
                      "proxy_return": [], "gold_return": [], "kl_episode": []}

    # -- the online loop ---------------------------------------------------------------------------------
    def label_round(self, session) -> dict[str, float]:
        """Save the traced episodes, request labels for new clip pairs, retrain and swap the reward model."""
        from workbench.episodes.rollouts import RolloutStore
        from workbench.preferences.labels import LabelStore

        t0 = time.perf_counter()
        traces = [t for t in self.tracer.take() if t]
        root = self.store.root
        rollouts, labels = RolloutStore(root), LabelStore(root)
        campaign = self.config.online_campaign or f"{session.run_id}-online"
        if campaign not in {c.name for c in labels.list_campaigns()}:
            labels.create_campaign(campaign, "clip_pair", meta={"run_id": session.run_id, "source": "online loop"})
        new_items = []
        if len(traces) >= 2:
            episodes = [self._episode(trace, session) for trace in traces]
            for episode in episodes:
                rollouts.save(episode)  # sets episode.id
            payloads = self._clip_pairs(episodes, rollouts, session)
            new_items = labels.add_items(campaign, payloads)
            if self.config.online_labeler == "gold":
                (self.labeler or default_gold_labeler)(labels, campaign, new_items, rollouts)
        labeled = labels.progress(campaign)["labeled"]
        metrics = {"rlhf/online_items": float(len(new_items)), "rlhf/online_labels": float(labeled)}
        if labeled:
            retrain = self.retrain or default_retrain
            previous = self.reward_model if self.config.online_warm_start else None
            model, fit_metrics, path = retrain(campaign, root, previous, dict(self.config.online_reward_settings))
            self.online.rounds += 1
            self.online.model_path = str(path)
            self._use(model)
            metrics.update({f"rlhf/rm_{k}": float(v) for k, v in (fit_metrics or {}).items()
                            if isinstance(v, (int, float))})
        metrics["rlhf/rm_rounds"] = float(self.online.rounds)
        metrics["rlhf/online_seconds"] = time.perf_counter() - t0
        return metrics

    def _clip_pairs(self, episodes, rollouts, session) -> list[dict]:
        """Clip pairs for a label round (workbench.episodes.clips): uniformly, or with ``online_pair_strategy=
        "disagreement"`` where the members of the current reward-model ensemble disagree most (Christiano et
        al. Sec. 2.2.4; uniform until there is an ensemble of several members). Clips are
        ``online_clip_length`` steps, capped by the longest episode; shorter episodes are left out."""
        from workbench.episodes.clips import (
            ensemble_disagreement_scorer,
            sample_clip_pairs,
        )

        # Episodes shorter than the clip are left out (a trace can start mid-episode); the clip length is
        # capped by the longest episode so that short games still give clips.
        length = min(self.config.online_clip_length, max(e.length for e in episodes))
        segments = sum(e.length - length + 1 for e in episodes if e.length >= length)
        n_pairs = min(self.config.online_pairs, math.comb(segments, 2))  # few short episodes: fewer pairs
        rng = np.random.default_rng([self.config.seed, self.online.rounds])
        model = self.reward_model
        if (self.config.online_pair_strategy == "disagreement" and model is not None
                and hasattr(model, "disagreement") and len(model) > 1):
            payloads = sample_clip_pairs(episodes, n_pairs, length, rng, strategy="disagreement",
                                         scorer=ensemble_disagreement_scorer(model, rollouts))
        else:
            payloads = sample_clip_pairs(episodes, n_pairs, length, rng)
        for payload in payloads:
            payload["meta"].update(run_id=session.run_id, iteration=session.iteration + 1)
        return payloads

    def _use(self, model) -> None:
        self.reward_model = model
        self.step_reward_fn = model.step_rewards

    def _load_online_model(self, path: str) -> None:
        from workbench.preferences.reward import load_reward_model

        self._use(load_reward_model(path))

    def _episode(self, trace: list[tuple], session):
        from workbench.episodes.rollouts import Episode

        frames, actions, probs, values, rewards = zip(*trace)
        dones = np.zeros(len(trace), bool)
        dones[-1] = True
        return Episode(frames=np.stack(frames), actions=np.array(actions, np.int64),
                       probs=np.stack(probs).astype(np.float32), values=np.array(values, np.float32),
                       rewards=np.array(rewards, np.float32), dones=dones, env=self.config.env, level_seed=None,
                       levels="train", distribution_mode=self.config.distribution_mode, policy="checkpoint",
                       run_id=session.run_id, checkpoint_step=session.global_step)


def default_gold_labeler(labels, campaign: str, item_ids: list[int], rollouts) -> None:
    """The synthetic gold labeler of workbench.preferences.synthetic (deterministic, as Gao et al.): the clip with the
    higher env return wins, equal returns are "equal"."""
    from workbench.preferences import synthetic

    synthetic.label_campaign(campaign, synthetic.SyntheticLabeler(), store_root=labels.root, item_ids=item_ids)


def default_retrain(campaign: str, root, previous, settings: dict):
    """Train the next reward model on every label of `campaign` so far (`workbench.preferences.reward.train_reward_model`,
    settings = RewardConfig overrides), starting from `previous` when it is an ensemble of the same shape (the
    warm start, `online_warm_start`), else from scratch; returns (ensemble, last-epoch metrics, saved path)."""
    from workbench.preferences import reward

    config = reward.RewardConfig.from_overrides(settings)
    init = previous if isinstance(previous, reward.RewardEnsemble) and len(previous) == config.members else None
    result = reward.train_reward_model(campaign, root, config, name=f"{campaign} reward model", init=init)
    return result.ensemble, result.metrics, result.model_path


# ---- entry point ---------------------------------------------------------------------------------------
def train(config: RMPPOConfig | RMPPGConfig, *, step_reward_fn: StepRewardFn | None = None,
          store: RunStore | None = None, run_id: str | None = None, progress: bool = True,
          labeler=None, retrain=None, recorder=None, monitors=()) -> str:
    """Train PPO (`RMPPOConfig`) or PPG (`RMPPGConfig`) against a reward model; returns the run id.

    The reward: `step_reward_fn(obs_u8 (N, 64, 64, 3) uint8 tensor) -> (N,)`, e.g. a `RewardEnsemble`'s
    `step_rewards`, or the saved model at `config.reward_model`, or (online loop) none at first. A resumed run
    (`run_id`) needs the same reward again; the online loop's reward model is restored from its checkpoint."""
    config.validate()
    store = store or RunStore()
    hook = RewardModelHook(config, step_reward_fn, store=store, labeler=labeler, retrain=retrain, monitors=monitors)
    engine = ppg if isinstance(config, PPGConfig) else ppo
    return engine.train(config, store=store, run_id=run_id, progress=progress, extension=hook, recorder=recorder)

