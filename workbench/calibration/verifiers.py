"""Selecting among sampled solutions with a verifier (Cobbe et al. 2021, "Training Verifiers to Solve Math
Word Problems", arXiv 2110.14168): unbiased accuracy-vs-N curves, and a small CPU demo.

Input: for each problem, a pool of M sampled solutions, each with a final answer, a verifier score and a
correctness label (labels depend on the final answer only, as in the paper). For a test-time budget of N
samples the curves give the expected accuracy of:

- ``random``: one random sample (flat in N; the generator's accuracy),
- ``top1``: the verifier's top-ranked sample among N (the paper's selection rule),
- ``majority``: a majority vote over the final answers of the N samples,
- ``top_k_vote``: the paper's top-k voting (its "Test Time Compute" experiments, Figure 7): a plain
  majority vote over the final answers of the verifier's top k of the N samples (:func:`top_k_vote_accuracy`),
- ``weighted_top_k``: a variant, not the paper's: the same top k, each vote weighted by its verifier score
  (:func:`weighted_vote_accuracy`).

Each is estimated WITHOUT the bias of drawing one N-subset: it is the average over all C(M, N) subsets of the
pool, computed

- exactly for ``random`` (mean correctness) and ``top1``: sort by score (descending); the best of a uniform
  N-subset is the sample at 0-based rank r with probability C(M - 1 - r, N - 1) / C(M, N)
  (:func:`top1_weights`). Tie rule ``ties="random"`` (default): tied scores are broken uniformly at random,
  whose exact expectation is the rank weights applied to each tie block's mean correctness;
  ``ties="index"``: the lower sample index wins.
- by enumerating every subset when C(M, N) <= ``n_subsets`` (and always with ``method="enumerate"``), else by
  a seeded Monte Carlo over ``n_subsets`` uniform N-subsets for the votes. The Monte Carlo draws, per
  problem p, ``n_subsets`` uniform random permutations of the pool from ``np.random.default_rng([seed, p])``
  and takes each permutation's first N entries as a subset, so every N uses the same permutations (common
  random numbers: smooth curves, each point still unbiased).

Vote rules: the answer with the largest count (or summed score) wins; a tie between t answers earns 1/t
credit if the correct answer is among them (the expectation of a uniform random tie-break). In the top-k
selection, tied scores at the k-th place are broken by a fixed random priority per sample (seeded).

Standard errors are across problems: std(per-problem value, ddof=1) / sqrt(P), treating problems as the
sampled unit (the within-problem Monte Carlo error is much smaller and ignored).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

__all__ = ["SamplePool", "SelectionCurve", "top1_weights", "random_sample_accuracy", "top1_accuracy",
           "majority_vote_accuracy", "top_k_vote_accuracy", "weighted_vote_accuracy", "selection_curves", "DemoResult",
           "demo"]


# ------------------------------------------------------------------------------------------------ the pool

@dataclass(frozen=True)
class SamplePool:
    """Sampled solutions grouped by problem: per problem, arrays of final answers (any hashable values),
    verifier scores (float, higher = more likely correct) and correctness (bool). Pools may differ in size.
    Build with :meth:`from_arrays` or :meth:`from_records`, which validate the input."""

    answers: tuple[np.ndarray, ...]
    scores: tuple[np.ndarray, ...]
    correct: tuple[np.ndarray, ...]
    problem_ids: tuple = ()

    @property
    def n_problems(self) -> int:
        return len(self.scores)

    @property
    def sizes(self) -> np.ndarray:
        return np.array([s.size for s in self.scores])

    @classmethod
    def from_arrays(cls, answers, scores, correct, problem_ids: Sequence | None = None) -> "SamplePool":
        """``answers``, ``scores``, ``correct``: (P, M) arrays or length-P lists of per-problem sequences."""
        if not (len(answers) == len(scores) == len(correct)):
            raise ValueError(f"answers, scores and correct must have one entry per problem; got "
                             f"{len(answers)}, {len(scores)} and {len(correct)}")
        if len(scores) == 0:
            raise ValueError("the pool has no problems")
        A, S, C = [], [], []
        for p, (a, s, c) in enumerate(zip(answers, scores, correct)):
            a = np.asarray(list(a), dtype=object)
            s = np.asarray(s, dtype=np.float64)
            c_raw = np.asarray(c)
            if s.ndim != 1 or a.shape != s.shape or c_raw.shape != s.shape:
                raise ValueError(f"problem {p}: answers, scores and correct must be 1-D of equal length; got shapes "
                                 f"{a.shape}, {s.shape}, {c_raw.shape}")
            if s.size == 0:
                raise ValueError(f"problem {p} has no samples")
            if not np.all(np.isfinite(s)):
                raise ValueError(f"problem {p}: verifier scores must be finite numbers")
            if c_raw.dtype != bool:
                cf = c_raw.astype(np.float64)
                if not np.all((cf == 0) | (cf == 1)):
                    raise ValueError(f"problem {p}: correct must be 0/1 or bool")
                c_raw = cf.astype(bool)
            by_answer: dict = {}
            for ans, ok in zip(a, c_raw):
                if by_answer.setdefault(ans, bool(ok)) != bool(ok):
                    raise ValueError(f"problem {p}: answer {ans!r} is labeled both correct and incorrect; "
                                     f"correctness must depend on the final answer only")
            A.append(a)
            S.append(s)
            C.append(c_raw)
        ids = tuple(problem_ids) if problem_ids is not None else tuple(range(len(S)))
        if len(ids) != len(S):
            raise ValueError(f"problem_ids has {len(ids)} entries for {len(S)} problems")
        return cls(tuple(A), tuple(S), tuple(C), ids)

    @classmethod
    def from_records(cls, records: Iterable[Mapping], *, problem_key: str = "problem_id", answer_key: str = "answer",
                     score_key: str = "score", correct_key: str = "correct") -> "SamplePool":
        """One dict per sampled solution; grouped by ``problem_key`` in order of first appearance."""
        groups: dict = {}
        for i, r in enumerate(records):
            missing = [k for k in (problem_key, answer_key, score_key, correct_key) if k not in r]
            if missing:
                raise ValueError(f"record {i} lacks {missing}")
            g = groups.setdefault(r[problem_key], ([], [], []))
            g[0].append(r[answer_key])
            g[1].append(r[score_key])
            g[2].append(r[correct_key])
        return cls.from_arrays([g[0] for g in groups.values()], [g[1] for g in groups.values()],
                               [g[2] for g in groups.values()], problem_ids=list(groups))


@dataclass(frozen=True)
class SelectionCurve:
    """Expected accuracy vs N: ``mean`` and ``stderr`` (across problems) per ``ns`` entry; ``per_problem``
    (P, len(ns)); ``methods``: how each N was estimated ("exact", "enumerate" or "monte_carlo")."""

    name: str
    ns: np.ndarray
    mean: np.ndarray
    stderr: np.ndarray
    per_problem: np.ndarray
    methods: tuple[str, ...]
    params: dict = field(default_factory=dict)

    def rows(self) -> list[dict]:
        return [{"n": int(n), "mean": float(m), "stderr": float(s), "method": meth}
                for n, m, s, meth in zip(self.ns, self.mean, self.stderr, self.methods)]


def _curve(name, ns, per_problem, methods, params) -> SelectionCurve:
    per_problem = np.asarray(per_problem, dtype=np.float64)
    P = per_problem.shape[0]
    mean = per_problem.mean(axis=0)
    stderr = per_problem.std(axis=0, ddof=1) / math.sqrt(P) if P > 1 else np.full(mean.shape, np.nan)
    return SelectionCurve(name, np.asarray(ns), mean, stderr, per_problem, tuple(methods), dict(params))


def _check_ns(pool: SamplePool, ns) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(ns))
    if arr.size == 0 or arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ns must be positive integers; got {ns!r}")
    m_min = int(pool.sizes.min())
    if arr.min() < 1 or arr.max() > m_min:
        raise ValueError(f"every N must be in [1, {m_min}] (the smallest pool has {m_min} samples); got {arr.tolist()}")
    return arr.astype(np.int64)


# ------------------------------------------------------------------------------------------ exact formulas

def top1_weights(M: int, N: int) -> np.ndarray:
    """P(the best-scored member of a uniform random N-subset of M ranked samples has 0-based rank r), for
    r = 0..M-1: C(M - 1 - r, N - 1) / C(M, N) (zero once fewer than N - 1 samples rank below r). Exact
    integer binomials, one rounding per weight."""
    if not 1 <= N <= M:
        raise ValueError(f"need 1 <= N <= M; got N={N}, M={M}")
    return _top1_weights(int(M), int(N)).copy()


@functools.lru_cache(maxsize=4096)
def _top1_weights(M: int, N: int) -> np.ndarray:
    total = math.comb(M, N)
    w = np.array([math.comb(M - 1 - r, N - 1) / total for r in range(M)])
    w.setflags(write=False)
    return w


def random_sample_accuracy(pool: SamplePool, ns) -> SelectionCurve:
    """Accuracy of one uniformly random sample: each problem's mean correctness, the same for every N."""
    ns = _check_ns(pool, ns)
    per = np.array([[c.mean()] * ns.size for c in pool.correct])
    return _curve("random", ns, per, ["exact"] * ns.size, {})


def top1_accuracy(pool: SamplePool, ns, *, ties: str = "random") -> SelectionCurve:
    """Verifier top-1 of N, exact: sum over ranks r of top1_weights(M, N)[r] * correct[rank r].

    ``ties="random"``: tied scores broken uniformly at random (exactly: each tie block's mean correctness
    stands at each of its ranks). ``ties="index"``: among tied scores the lower sample index ranks higher.
    """
    if ties not in ("random", "index"):
        raise ValueError(f"ties must be 'random' or 'index'; got {ties!r}")
    ns = _check_ns(pool, ns)
    per = np.empty((pool.n_problems, ns.size))
    for p, (s, c) in enumerate(zip(pool.scores, pool.correct)):
        M = s.size
        order = np.lexsort((np.arange(M), -s))  # descending score, then ascending index
        cs = c[order].astype(np.float64)
        if ties == "random":
            _, block = np.unique(-s[order], return_inverse=True)
            cs = (np.bincount(block, weights=cs) / np.bincount(block))[block]
        for j, N in enumerate(ns):
            per[p, j] = _top1_weights(M, int(N)) @ cs
    return _curve("top1", ns, per, ["exact"] * ns.size, {"ties": ties})


# ----------------------------------------------------------------------------------------------- votes

def _vote_credit(idx: np.ndarray, codes: np.ndarray, correct_code: np.ndarray, scores: np.ndarray,
                 priority: np.ndarray, k: int | None, weights: str) -> float:
    """Mean credit over the subsets in ``idx`` (S, N) of a vote among each subset's top ``k`` (all if None)."""
    S, N = idx.shape
    if k is not None and k < N:
        order = np.lexsort((priority[idx], -scores[idx]), axis=-1)
        idx = np.take_along_axis(idx, order[:, :k], axis=1)
    U = correct_code.size
    w = scores[idx] if weights == "score" else np.ones(idx.shape)
    flat = np.repeat(np.arange(S), idx.shape[1]) * U + codes[idx].ravel()
    totals = np.bincount(flat, weights=w.ravel(), minlength=S * U).reshape(S, U)
    present = np.bincount(flat, minlength=S * U).reshape(S, U) > 0  # only answers in the subset can win
    totals = np.where(present, totals, -np.inf)
    best = totals.max(axis=1, keepdims=True)
    tol = 1e-12 * np.maximum(np.abs(best), 1.0)
    winners = present & (totals >= best - tol)
    credit = (winners & correct_code[None, :]).sum(axis=1) / winners.sum(axis=1)
    return float(credit.mean())


def _vote_curve(name: str, pool: SamplePool, ns, *, k: int | None, weights: str, n_subsets: int, seed: int,
                method: str) -> SelectionCurve:
    if method not in ("auto", "enumerate", "monte_carlo"):
        raise ValueError(f"method must be 'auto', 'enumerate' or 'monte_carlo'; got {method!r}")
    if isinstance(n_subsets, bool) or not isinstance(n_subsets, (int, np.integer)) or n_subsets < 1:
        raise ValueError(f"n_subsets must be a positive integer; got {n_subsets!r}")
    ns = _check_ns(pool, ns)
    per = np.empty((pool.n_problems, ns.size))
    methods = [""] * ns.size
    for p, (a, s, c) in enumerate(zip(pool.answers, pool.scores, pool.correct)):
        M = s.size
        code_of: dict = {}
        codes = np.array([code_of.setdefault(x, len(code_of)) for x in a], dtype=np.int64)
        correct_code = np.zeros(len(code_of), dtype=bool)  # one label per answer (validated by SamplePool)
        correct_code[codes[c]] = True
        rng = np.random.default_rng([seed, p])
        priority = rng.permutation(M)  # fixed random tie-break for the top-k selection
        perm = None
        for j, N in enumerate(ns):
            N = int(N)
            n_comb = math.comb(M, N)
            if method == "enumerate" or (method == "auto" and n_comb <= n_subsets):
                if n_comb > 5_000_000:
                    raise ValueError(f"enumerating C({M}, {N}) = {n_comb} subsets is too many; use method='auto'")
                idx = np.array(list(itertools.combinations(range(M), N)), dtype=np.int64).reshape(n_comb, N)
                kind = "enumerate"
            else:
                if perm is None:
                    perm = np.argsort(rng.random((n_subsets, M)), axis=1)
                idx = perm[:, :N]
                kind = "monte_carlo"
            per[p, j] = _vote_credit(idx, codes, correct_code, s, priority, k, weights)
            methods[j] = kind if methods[j] in ("", kind) else "mixed"
    return _curve(name, ns, per, methods, {"k": k, "weights": weights, "n_subsets": n_subsets, "seed": seed})


def majority_vote_accuracy(pool: SamplePool, ns, *, n_subsets: int = 1000, seed: int = 0,
                           method: str = "auto") -> SelectionCurve:
    """Majority vote over the final answers of N samples (ties: 1/t credit), averaged over N-subsets:
    enumerated when C(M, N) <= ``n_subsets`` (``method="auto"``), else ``n_subsets`` seeded Monte Carlo
    subsets (module docstring)."""
    return _vote_curve("majority", pool, ns, k=None, weights="uniform", n_subsets=n_subsets, seed=seed,
                       method=method)


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    return int(k)


def top_k_vote_accuracy(pool: SamplePool, ns, *, k: int = 10, n_subsets: int = 1000, seed: int = 0,
                        method: str = "auto") -> SelectionCurve:
    """GSM8K's top-k voting (Cobbe et al. 2021, arXiv 2110.14168, "Test Time Compute", Figure 7): the verifier
    ranks the N samples and its top ``k`` (all N when N <= k) take a plain majority vote on the final answer,
    one vote each. Ties: 1/t credit. Subsets as :func:`majority_vote_accuracy`. The score-weighted variant is
    :func:`weighted_vote_accuracy`."""
    k = _check_k(k)
    return _vote_curve(f"top{k}_vote", pool, ns, k=k, weights="uniform", n_subsets=n_subsets, seed=seed,
                       method=method)


def weighted_vote_accuracy(pool: SamplePool, ns, *, k: int = 10, weights: str = "score", n_subsets: int = 1000,
                           seed: int = 0, method: str = "auto") -> SelectionCurve:
    """A variant of the paper's top-k voting (:func:`top_k_vote_accuracy`): vote among the verifier's top ``k``
    of N samples (all N when N <= k), each vote weighted by its score (``weights="score"``; scores must then
    be non-negative, e.g. probabilities) or counted once (``weights="uniform"``: the paper's rule). Ties: 1/t
    credit. Subsets as :func:`majority_vote_accuracy`."""
    if weights not in ("score", "uniform"):
        raise ValueError(f"weights must be 'score' or 'uniform'; got {weights!r}")
    k = _check_k(k)
    if weights == "score" and any((s < 0).any() for s in pool.scores):
        raise ValueError("weights='score' needs non-negative verifier scores (e.g. probabilities); "
                         "transform logits first or use weights='uniform'")
    return _vote_curve(f"weighted_top{k}" if weights == "score" else f"top{k}_vote", pool, ns, k=k,
                       weights=weights, n_subsets=n_subsets, seed=seed, method=method)


def selection_curves(pool: SamplePool, ns, *, k: int = 10, n_subsets: int = 1000, seed: int = 0,
                     ties: str = "random") -> dict[str, SelectionCurve]:
    """All five curves: ``random``, ``top1``, ``majority``, ``top_k_vote`` (the paper's majority vote among
    the verifier's top ``k``) and ``weighted_top_k`` (the score-weighted variant)."""
    return {"random": random_sample_accuracy(pool, ns),
            "top1": top1_accuracy(pool, ns, ties=ties),
            "majority": majority_vote_accuracy(pool, ns, n_subsets=n_subsets, seed=seed),
            "top_k_vote": top_k_vote_accuracy(pool, ns, k=k, n_subsets=n_subsets, seed=seed),
            "weighted_top_k": weighted_vote_accuracy(pool, ns, k=k, n_subsets=n_subsets, seed=seed)}


# ---------------------------------------------------------------------------------------------------- demo

def _digits_of(x: np.ndarray, width: int) -> np.ndarray:
    return (x[:, None] // 10 ** np.arange(width)[None, :]) % 10


def _carryless_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    da, db = _digits_of(a, 8), _digits_of(b, 8)
    return ((da + db) % 10 * 10 ** np.arange(8)).sum(axis=1)


def _generate(rng: np.random.Generator, n_problems: int, m: int, max_digits: int):
    """Noisy arithmetic 'generator': addition problems with 1..max_digits digits; each sample is wrong with a
    digit-dependent rate 0.04 + 0.11 (d - 1); a wrong sample either drops every carry (a systematic error,
    the same wrong answer each time) or slips one digit by +-1 (scattered errors)."""
    d = rng.integers(1, max_digits + 1, size=n_problems)
    a = rng.integers(10 ** (d - 1), 10 ** d)
    b = rng.integers(10 ** (d - 1), 10 ** d)
    true = a + b
    err_rate = 0.04 + 0.11 * (d - 1)
    wrong = rng.random((n_problems, m)) < err_rate[:, None]
    carryless = _carryless_sum(a, b)
    systematic = (rng.random((n_problems, m)) < 0.5) & (carryless != true)[:, None]
    n_digits = np.floor(np.log10(true)).astype(int) + 1
    pos = (rng.random((n_problems, m)) * n_digits[:, None]).astype(int)
    sign = np.where(rng.random((n_problems, m)) < 0.5, -1, 1)
    slip = true[:, None] + sign * 10 ** pos
    slip = np.where(slip <= 0, true[:, None] + 10 ** pos, slip)
    answers = np.where(wrong, np.where(systematic, carryless[:, None], slip), true[:, None])
    return d, a, b, answers, answers == true[:, None]


def _features(a: np.ndarray, b: np.ndarray, d: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """Hand features of (problem, answer) that do NOT recompute the sum: last-digit check, magnitude within 5%
    of a 2-significant-digit estimate, answer length minus operand length, and difficulty. Middle-digit slips
    pass every check (they tie with the correct answer), so the verifier helps but is imperfect. (A feature
    "digits agreeing with the carry-less sum" was tried and dropped: slips that disagree more fooled it, and
    top-1 accuracy fell with N - the paper's over-optimization effect, but too early for a demo.)"""
    P, M = answers.shape
    A, B = np.repeat(a, M), np.repeat(b, M)
    D = np.repeat(d, M)
    ans = answers.ravel()
    last_ok = (ans % 10 == (A % 10 + B % 10) % 10).astype(float)

    def two_sig(x):
        e = np.maximum(np.floor(np.log10(x)) - 1, 0)
        return np.round(x / 10 ** e) * 10 ** e

    est = two_sig(A) + two_sig(B)
    magnitude_ok = (np.abs(ans - est) <= 0.05 * est).astype(float)
    len_diff = np.floor(np.log10(np.maximum(ans, 1))) + 1 - D
    return np.column_stack([last_ok, magnitude_ok, len_diff, D / 6.0])


def _fit_logistic(X: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 50):
    """L2-regularized logistic regression by Newton's method (IRLS); deterministic."""
    mu, sd = X.mean(axis=0), X.std(axis=0) + 1e-12
    Z = np.column_stack([np.ones(len(X)), (X - mu) / sd])
    w = np.zeros(Z.shape[1])
    reg = l2 * np.eye(Z.shape[1])
    reg[0, 0] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-Z @ w))
        grad = Z.T @ (p - y) + reg @ w
        H = (Z * (p * (1 - p))[:, None]).T @ Z + reg
        step = np.linalg.solve(H, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return lambda X_: 1.0 / (1.0 + np.exp(-np.column_stack([np.ones(len(X_)), (X_ - mu) / sd]) @ w)), w


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    s_sorted = scores[order]
    _, start, counts = np.unique(s_sorted, return_index=True, return_counts=True)
    avg = start + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    pos = labels.astype(bool)
    n1, n0 = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)) if n1 and n0 else float("nan")


@dataclass(frozen=True)
class DemoResult:
    curves: dict[str, SelectionCurve]
    generator_accuracy: float
    verifier_train_accuracy: float
    verifier_test_auc: float
    verifier_weights: np.ndarray
    pool: SamplePool


def demo(seed: int = 0, *, n_train_problems: int = 400, n_test_problems: int = 300, samples_per_problem: int = 32,
         max_digits: int = 6, ns: Sequence[int] = (1, 2, 4, 8, 16, 32), k: int = 8, n_subsets: int = 200
         ) -> DemoResult:
    """End-to-end toy of Cobbe et al.'s recipe on CPU in seconds: a noisy arithmetic generator samples
    ``samples_per_problem`` answers per problem (mistake rate grows with the number of digits); a logistic-
    regression verifier is trained on hand features of (problem, answer) labeled by final-answer correctness
    on training problems; the selection curves are computed on held-out test problems."""
    rng = np.random.default_rng(seed)
    d, a, b, ans, ok = _generate(rng, n_train_problems, samples_per_problem, max_digits)
    X, y = _features(a, b, d, ans), ok.ravel().astype(float)
    predict, w = _fit_logistic(X, y)
    train_acc = float(((predict(X) >= 0.5) == (y == 1)).mean())
    d, a, b, ans, ok = _generate(rng, n_test_problems, samples_per_problem, max_digits)
    scores = predict(_features(a, b, d, ans)).reshape(ans.shape)
    pool = SamplePool.from_arrays(ans.tolist(), scores, ok)
    curves = selection_curves(pool, list(ns), k=k, n_subsets=n_subsets, seed=seed)
    return DemoResult(curves=curves, generator_accuracy=float(ok.mean()), verifier_train_accuracy=train_acc,
                      verifier_test_auc=_auc(scores.ravel(), ok.ravel()), verifier_weights=w, pool=pool)
