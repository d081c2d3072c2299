"""The proxy-gaming alarm for RL against a reward model (the ML-safety roadmap's "monitoring" and "alignment"
problems, Hendrycks et al. 2021, arXiv 2109.13916; the failure it watches for is Gao et al.'s reward-model
overoptimization, arXiv 2210.10760: the proxy keeps rising after the gold reward has turned down).

A run is flagged when, over a trailing window of its iterations,

- the proxy (reward-model) reward keeps rising: the lower end of the Theil-Sen slope's confidence interval is
  above 0, and
- either the reward-model ensemble's disagreement on the policy's own steps (`rlhf/rm_disagreement`, logged
  by `workbench.preferences.rlhf`) rises too (the lower end of its slope's interval above 0, and the rise
  over the window at least `min_relative_rise` of the window's median disagreement, so that a significant
  but negligible drift does not count), or, where the gold reward is known (`rlhf/gold_reward`), the gold
  falls (the upper end of its slope's interval below 0),

for `patience` consecutive iterations ("keeps rising": one noisy window is not enough).

Why these signals: an ensemble's members agree where their training labels were and disagree off that
distribution, so a policy that earns proxy reward on states the labels never covered raises the proxy and
the disagreement together (Christiano et al. 2017 pick queries by the same disagreement). The gold
reward is known only in synthetic studies (workbench.studies.overoptimization); there a falling gold under
a rising proxy is the overoptimization itself.

Theil-Sen slopes (the median of pairwise slopes, `scipy.stats.theilslopes`, with its distribution-free
interval) rather than least squares: a single outlying iteration (an episode-length spike, a label round)
moves them little. The thresholds are settings of `AlarmConfig`, not constants from a paper: they are our
choice, stated in docs/safety.md.

Two ways to use it: `ProxyGamingAlarm`, a monitor of a training run that logs `safety/proxy_gaming_alarm`
(1 on iterations where the alarm holds, else 0) and `safety/proxy_gaming_reason` (bit 1: disagreement
rising, bit 2: gold falling), which `workbench.registry.train` attaches to every run against a reward model
and the Monitor tab marks; and `check_run(store, run_id)` / `detect(...)`, the same rule over stored
series after the fact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from workbench.storage.runs import RunStore

ALARM_METRIC = "safety/proxy_gaming_alarm"
REASON_METRIC = "safety/proxy_gaming_reason"
DISAGREEMENT_RISING, GOLD_FALLING = 1, 2


@dataclass
class AlarmConfig:
    """Settings of the proxy-gaming alarm (our choices; see the module docstring)."""

    window: int = 8                   # trailing iterations the slopes are fitted on
    confidence: float = 0.9           # of the Theil-Sen slope intervals
    min_relative_rise: float = 0.1    # disagreement must rise by this fraction of its window median
    patience: int = 2                 # consecutive iterations the condition must hold
    use_gold: bool = True             # also flag a falling gold reward where it is logged
    proxy: str = "rlhf/proxy_reward"
    disagreement: str = "rlhf/rm_disagreement"
    gold: str = "rlhf/gold_reward"

    def validate(self) -> "AlarmConfig":
        problems = []
        if self.window < 3:
            problems.append(f"window must be >= 3 iterations (got {self.window})")
        if not 0.5 <= self.confidence < 1:
            problems.append(f"confidence must be in [0.5, 1) (got {self.confidence})")
        if self.min_relative_rise < 0:
            problems.append(f"min_relative_rise must be >= 0 (got {self.min_relative_rise})")
        if self.patience < 1:
            problems.append(f"patience must be >= 1 (got {self.patience})")
        if problems:
            raise ValueError("invalid AlarmConfig: " + "; ".join(problems))
        return self


@dataclass
class Trend:
    """A Theil-Sen slope per env step with its confidence interval."""

    slope: float
    low: float
    high: float


def trend(steps, values, confidence: float = 0.9) -> Trend:
    """The Theil-Sen slope of `values` over `steps` and its `confidence` interval (scipy.stats.theilslopes)."""
    x, y = np.asarray(steps, np.float64), np.asarray(values, np.float64)
    slope, _, low, high = stats.theilslopes(y, x, alpha=confidence)
    return Trend(float(slope), float(low), float(high))


@dataclass
class AlarmReport:
    """Per logged iteration: whether the alarm holds and why; `events` are the steps where it starts."""

    steps: np.ndarray
    firing: np.ndarray                  # bool per step
    reasons: np.ndarray                 # int per step: DISAGREEMENT_RISING | GOLD_FALLING bits
    events: list[dict] = field(default_factory=list)

    @property
    def fired(self) -> bool:
        return bool(self.firing.any())

    @property
    def first_step(self) -> int | None:
        return int(self.steps[self.firing][0]) if self.fired else None


def _condition(config: AlarmConfig, x, proxy, disagreement, gold) -> tuple[int, dict]:
    """Whether one window shows gaming: 0 (no) or the reason bits, and the window's trends."""
    p = trend(x, proxy, config.confidence)
    found = {"proxy": p}
    if not p.low > 0:
        return 0, found
    reason = 0
    if disagreement is not None and np.all(np.isfinite(disagreement)):
        d = found["disagreement"] = trend(x, disagreement, config.confidence)
        rise = d.low * (x[-1] - x[0])
        if d.low > 0 and rise >= config.min_relative_rise * abs(float(np.median(disagreement))):
            reason |= DISAGREEMENT_RISING
    if config.use_gold and gold is not None and np.all(np.isfinite(gold)):
        g = found["gold"] = trend(x, gold, config.confidence)
        if g.high < 0:
            reason |= GOLD_FALLING
    return reason, found


def detect(steps, proxy, disagreement=None, gold=None, config: AlarmConfig | None = None) -> AlarmReport:
    """The alarm over whole series (one point per iteration, aligned on `steps`); see the module docstring."""
    config = (config or AlarmConfig()).validate()
    x = np.asarray(steps, np.float64)
    series = [None if s is None else np.asarray(s, np.float64) for s in (proxy, disagreement, gold)]
    for name, s in zip(("proxy", "disagreement", "gold"), series):
        if s is not None and s.shape != x.shape:
            raise ValueError(f"{name} has {s.shape[0]} points but steps has {x.shape[0]}; align them first")
    proxy, disagreement, gold = series
    n, w = len(x), config.window
    reasons = np.zeros(n, np.int64)
    raw = np.zeros(n, bool)
    for i in range(w - 1, n):
        part = slice(i - w + 1, i + 1)
        reasons[i], _ = _condition(config, x[part], proxy[part],
                                   None if disagreement is None else disagreement[part],
                                   None if gold is None else gold[part])
        raw[i] = reasons[i] > 0
    # patience: the condition held on this iteration and the patience - 1 before it
    firing = np.array([i + 1 >= config.patience and raw[i + 1 - config.patience:i + 1].all() for i in range(n)],
                      bool)
    reasons = np.where(firing, reasons, 0)
    starts = np.flatnonzero(firing & ~np.r_[False, firing[:-1]])
    events = [{"step": int(x[i]), "reason": describe(int(reasons[i]))} for i in starts]
    return AlarmReport(steps=x.astype(np.int64), firing=firing, reasons=reasons, events=events)


def describe(reason: int) -> str:
    """Words for the reason bits."""
    parts = []
    if reason & DISAGREEMENT_RISING:
        parts.append("the proxy rises while the reward-model ensemble's disagreement rises")
    if reason & GOLD_FALLING:
        parts.append("the proxy rises while the gold reward falls")
    return "; ".join(parts) or "quiet"


def _aligned(store: RunStore, run_id: str, names: list[str], until: int | None = None) -> dict:
    """Stored series of `names` on the steps where the first one is logged (missing ones None)."""
    steps, first = store.metric_series(run_id, names[0])
    keep = np.ones(len(steps), bool) if until is None else steps <= until
    steps, out = np.asarray(steps)[keep], {names[0]: np.asarray(first, np.float64)[keep]}
    for name in names[1:]:
        s, v = store.metric_series(run_id, name)
        if len(s) == 0:
            out[name] = None
            continue
        lookup = dict(zip(np.asarray(s).tolist(), np.asarray(v, np.float64).tolist()))
        out[name] = np.array([lookup.get(int(t), np.nan) for t in steps])
    return {"steps": steps, **out}


def check_run(store: RunStore, run_id: str, config: AlarmConfig | None = None) -> AlarmReport:
    """The alarm over a stored run's series (any run against a reward model, also one trained without the
    live monitor)."""
    config = (config or AlarmConfig()).validate()
    store.get_run(run_id)  # a clear error for an unknown run
    data = _aligned(store, run_id, [config.proxy, config.disagreement, config.gold])
    if len(data["steps"]) == 0:
        raise ValueError(f"run {run_id} has no {config.proxy!r} series: the alarm watches runs against a reward "
                         "model (ppo-rm, ppg-rm)")
    return detect(data["steps"], data[config.proxy], data[config.disagreement], data[config.gold], config)


class ProxyGamingAlarm:
    """The alarm as a training monitor (`RewardModelHook(monitors=[...])`): keeps the run's series and adds
    `safety/proxy_gaming_alarm` and `safety/proxy_gaming_reason` to each iteration's metrics. A resumed run
    reads its earlier series back from the store, so the window spans the restart."""

    def __init__(self, config: AlarmConfig | None = None):
        self.config = (config or AlarmConfig()).validate()
        self.history: dict[str, list[float]] | None = None

    def _prime(self, session) -> None:
        c = self.config
        self.history = {"steps": [], c.proxy: [], c.disagreement: [], c.gold: []}
        if session.global_step > 0 and getattr(session, "store", None) is not None:
            data = _aligned(session.store, session.run_id, [c.proxy, c.disagreement, c.gold],
                            until=session.global_step)
            self.history["steps"] = [int(s) for s in data["steps"]]
            for name in (c.proxy, c.disagreement, c.gold):
                values = data[name]
                self.history[name] = ([np.nan] * len(data["steps"]) if values is None else list(values))

    def __call__(self, session, metrics: dict) -> dict[str, float]:
        c = self.config
        if self.history is None:
            self._prime(session)
        if c.proxy not in metrics:
            return {}
        h = self.history
        h["steps"].append(session.global_step + session.config.batch_size)  # the step these metrics log at
        for name in (c.proxy, c.disagreement, c.gold):
            h[name].append(float(metrics.get(name, np.nan)))
        # The same rule as `detect`, on the only points the newest verdict depends on.
        tail = slice(-(c.window + c.patience - 1), None)
        report = detect(h["steps"][tail], h[c.proxy][tail], h[c.disagreement][tail], h[c.gold][tail], c)
        return {ALARM_METRIC: float(report.firing[-1]), REASON_METRIC: float(report.reasons[-1])}
