"""Inter-labeler agreement: pairwise agreement (WebGPT's half credit), Cohen's and Fleiss' kappa,
Krippendorff's alpha (nominal; ordinal and interval on the graded scale), weighted kappa, and agreement
with the (leave-one-out) majority, per labeler and overall.

Agreement is how reward-model researchers tell whether labels carry signal: WebGPT (arXiv 2112.09332,
Sec. 4 / App. C) reports about 73% labeler-labeler agreement, InstructGPT (arXiv 2203.02155, Sec. 3.4)
72.6% among training labelers and 77.3% with held-out labelers. A widely used labeling tool once shipped
a wrong pairwise metric, so every statistic here is tested against hand-computed fixtures and published
examples (tests/test_agreement.py).

Input: *records* ``(unit, labeler, answer)``. For a label campaign (:func:`campaign_agreement`) a unit is an
item of a pair campaign, or one pair (item, i, j) of a ranking expanded into its C(K, 2) pairs (InstructGPT
measured agreement on pairwise comparisons), and the answer is the CANONICAL preference ``"a"``, ``"b"`` or
``"equal"`` (display order undone, so a labeler who saw the pair swapped is compared correctly).
``"cant_tell"`` and ``"skip"`` express no judgment and are left out of every statistic.

Conventions (exactly):

* **Pairwise agreement** (WebGPT): for two labelers' answers x, y on the same unit, ``score = 1`` if
  ``x == y`` (both neutral included), ``0.5`` if exactly one of them is the neutral answer (``"equal"``),
  else ``0``. Overall = the mean over every unordered pair of distinct labelers on every unit (a unit with
  m labelers contributes C(m, 2) pairs). Per labeler = the mean over the pairs that include that labeler.
* **Cohen's kappa** (Cohen 1960), for two labelers on the units both labeled:
  ``kappa = (p_o - p_e) / (1 - p_e)`` with ``p_o`` the fraction of exact matches (no half credit) and
  ``p_e = sum_k p1_k p2_k`` from each labeler's own marginals; NaN when ``p_e == 1`` (both gave one same
  category throughout: undefined) or when they share no unit. Equals ``sklearn.metrics.cohen_kappa_score``.
  Per labeler: the mean of their pairwise kappas weighted by the number of shared units (NaN pairs and
  pairs with fewer than ``min_shared`` units left out).
* **Fleiss' kappa** (Fleiss 1971) needs the same number n of ratings on every unit: with ``n_ij`` the
  raters putting unit i in category j, ``P_i = (sum_j n_ij^2 - n) / (n (n - 1))``, ``P_bar`` their mean,
  ``p_j = sum_i n_ij / (N n)``, ``P_e = sum_j p_j^2``, ``kappa = (P_bar - P_e) / (1 - P_e)``. Units with a
  different number of ratings are LEFT OUT (not padded, not subsampled): n defaults to the most common
  number of ratings among units with at least 2 (ties: the larger), and the report gives how many units
  were used and dropped. Exact matches only, no half credit (kappa's categories are nominal).
* **Krippendorff's alpha** (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability"): from the
  coincidence matrix ``o_ck = sum_u (pairs of values c, k in unit u) / (m_u - 1)`` over the units with
  m_u >= 2 values (so any number of labelers per unit), ``n_c = sum_k o_ck``, ``n = sum_c n_c``:
  ``alpha = 1 - (n - 1) sum o_ck d_ck / sum n_c n_k d_ck``, with ``d_ck`` = 0/1 (nominal), ``(c - k)^2``
  (interval) or ``(sum_{g from c to k} n_g - (n_c + n_k) / 2)^2`` over the sorted values (ordinal). NaN when
  no unit has two values or only one value occurs. Equals the ``krippendorff`` package.
* **Weighted kappa** (Cohen 1968) for the graded scale, two labelers: ``1 - sum w_ij O_ij / sum w_ij E_ij``
  with O the joint table of the categories, E the product of the marginals (same total), and
  ``w_ij = |i - j|`` (linear) or ``(i - j)^2`` (quadratic) of the category INDICES in ``categories``
  (default: the sorted values seen; pass the full scale -3..3 to weight by scale steps). Equals
  ``sklearn.metrics.cohen_kappa_score(weights=...)`` given the same ``labels``.
* **Agreement with the majority** (leave one out): for labeler L's answer on a unit, the majority is the
  most frequent answer of the OTHER labelers on that unit; units with no other labeler or a tie for the
  most frequent answer are left out. Scored with the same half-credit rule as pairwise agreement.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

NEUTRAL = "equal"
PAIR_ANSWERS = ("a", "b", "equal")

Record = tuple[Hashable, str, Hashable]  # (unit, labeler, answer)


def half_credit(x: Hashable, y: Hashable, neutral: Hashable = NEUTRAL) -> float:
    """WebGPT's agreement score of two answers: 1 same, 0.5 one neutral and one not, 0 otherwise."""
    if x == y:
        return 1.0
    if x == neutral or y == neutral:
        return 0.5
    return 0.0


def _by_unit(records: Iterable[Record]) -> dict[Hashable, dict[str, Hashable]]:
    units: dict[Hashable, dict[str, Hashable]] = defaultdict(dict)
    for unit, labeler, answer in records:
        if labeler in units[unit]:
            raise ValueError(f"labeler {labeler!r} has two answers on unit {unit!r}; one per labeler per unit")
        units[unit][labeler] = answer
    return units


@dataclass(frozen=True)
class PairwiseAgreement:
    overall: float  # NaN when no unit has two labelers
    n_pairs: int
    by_labeler: dict[str, float]
    pairs_by_labeler: dict[str, int]
    by_labeler_pair: dict[tuple[str, str], tuple[float, int]]  # (L1, L2) sorted -> (agreement, units shared)


def pairwise_agreement(records: Iterable[Record], *, neutral: Hashable = NEUTRAL) -> PairwiseAgreement:
    """Mean half-credit agreement over all pairs of labelers on the same unit (module docstring)."""
    total, n = 0.0, 0
    per_labeler: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    per_pair: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    for answers in _by_unit(records).values():
        for l1, l2 in combinations(sorted(answers), 2):
            s = half_credit(answers[l1], answers[l2], neutral)
            total += s
            n += 1
            for key, acc in ((l1, per_labeler), (l2, per_labeler), ((l1, l2), per_pair)):
                acc[key][0] += s
                acc[key][1] += 1
    return PairwiseAgreement(
        overall=total / n if n else math.nan, n_pairs=n,
        by_labeler={k: s / c for k, (s, c) in sorted(per_labeler.items())},
        pairs_by_labeler={k: int(c) for k, (_, c) in sorted(per_labeler.items())},
        by_labeler_pair={k: (s / c, int(c)) for k, (s, c) in sorted(per_pair.items())},
    )


def cohen_kappa(ratings_1: Sequence[Hashable], ratings_2: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters' answers on the same units (aligned sequences); see module docstring."""
    if len(ratings_1) != len(ratings_2):
        raise ValueError(f"the two raters must rate the same units: got {len(ratings_1)} and {len(ratings_2)} answers")
    n = len(ratings_1)
    if n == 0:
        return math.nan
    p_o = sum(x == y for x, y in zip(ratings_1, ratings_2)) / n
    c1, c2 = Counter(ratings_1), Counter(ratings_2)
    p_e = sum(c1[k] * c2[k] for k in c1) / (n * n)
    if math.isclose(p_e, 1.0):
        return math.nan
    return (p_o - p_e) / (1.0 - p_e)


def fleiss_kappa(counts) -> float:
    """Fleiss' kappa of an (N units, k categories) table of rating counts, every row summing to the same n."""
    table = np.asarray(counts, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] == 0 or table.shape[1] == 0:
        raise ValueError(f"counts must be a non-empty (units, categories) table, got shape {table.shape}")
    if (table < 0).any() or not np.all(table == np.round(table)):
        raise ValueError("counts must be non-negative whole numbers")
    per_unit = table.sum(axis=1)
    n = per_unit[0]
    if not np.all(per_unit == n):
        raise ValueError(f"every unit needs the same number of ratings; got row sums {sorted(set(per_unit.tolist()))}"
                         " (fleiss_kappa_from_records drops the units that differ)")
    if n < 2:
        raise ValueError(f"Fleiss' kappa needs at least 2 ratings per unit, got {n:g}")
    n_units = table.shape[0]
    p_i = ((table ** 2).sum(axis=1) - n) / (n * (n - 1))
    p_bar = p_i.mean()
    p_j = table.sum(axis=0) / (n_units * n)
    p_e = float((p_j ** 2).sum())
    if math.isclose(p_e, 1.0):
        return math.nan
    return float((p_bar - p_e) / (1.0 - p_e))


@dataclass(frozen=True)
class FleissResult:
    kappa: float  # NaN when fewer than 1 unit qualifies or P_e = 1
    n_raters: int | None  # the fixed number of ratings per unit used
    units_used: int
    units_dropped: int  # units with >= 1 rating but a different number of ratings than n_raters
    categories: tuple


def fleiss_kappa_from_records(records: Iterable[Record], *, n_raters: int | None = None,
                              categories: Sequence[Hashable] | None = None) -> FleissResult:
    """Fleiss' kappa over the units with exactly ``n_raters`` ratings (default: the most common count >= 2)."""
    units = _by_unit(records)
    if categories is None:
        categories = sorted({a for answers in units.values() for a in answers.values()}, key=repr)
    categories = tuple(categories)
    index = {c: j for j, c in enumerate(categories)}
    if n_raters is None:
        counts = Counter(len(a) for a in units.values() if len(a) >= 2)
        if not counts:
            return FleissResult(math.nan, None, 0, len(units), categories)
        top = max(counts.values())
        n_raters = max(k for k, v in counts.items() if v == top)
    used = [answers for answers in units.values() if len(answers) == n_raters]
    if not used or n_raters < 2:
        return FleissResult(math.nan, n_raters, 0, len(units) - len(used), categories)
    table = np.zeros((len(used), len(categories)))
    for i, answers in enumerate(used):
        for a in answers.values():
            if a not in index:
                raise ValueError(f"answer {a!r} is not one of the categories {categories}")
            table[i, index[a]] += 1
    return FleissResult(fleiss_kappa(table), n_raters, len(used), len(units) - len(used), categories)


ALPHA_LEVELS = ("nominal", "ordinal", "interval")


def krippendorff_alpha(records: Iterable[Record], level: str = "nominal") -> float:
    """Krippendorff's alpha of ``(unit, labeler, value)`` records at ``level`` (module docstring)."""
    if level not in ALPHA_LEVELS:
        raise ValueError(f"level must be one of {ALPHA_LEVELS}, got {level!r}")
    units = [list(a.values()) for a in _by_unit(records).values() if len(a) >= 2]
    values = sorted({v for u in units for v in u}, key=(repr if level == "nominal" else float))
    if len(values) < 2:
        return math.nan
    index = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))
    for u in units:
        counts = np.bincount([index[v] for v in u], minlength=len(values)).astype(np.float64)
        o += (np.outer(counts, counts) - np.diag(counts)) / (len(u) - 1)  # ordered pairs of distinct raters
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if level == "nominal":
        d = 1.0 - np.eye(len(values))
    elif level == "interval":
        x = np.asarray(values, dtype=np.float64)
        d = (x[:, None] - x[None, :]) ** 2
    else:
        cum = np.concatenate([[0.0], np.cumsum(n_c)])
        lo = np.minimum.outer(np.arange(len(values)), np.arange(len(values)))
        hi = np.maximum.outer(np.arange(len(values)), np.arange(len(values)))
        d = (cum[hi + 1] - cum[lo] - (n_c[:, None] + n_c[None, :]) / 2) ** 2
    expected = float((np.outer(n_c, n_c) * d).sum())
    if expected == 0:
        return math.nan
    return float(1.0 - (n - 1) * (o * d).sum() / expected)


def weighted_kappa(ratings_1: Sequence[Hashable], ratings_2: Sequence[Hashable], weights: str = "quadratic",
                   categories: Sequence[Hashable] | None = None) -> float:
    """Cohen's weighted kappa of two raters on the same units (module docstring); NaN if undefined."""
    if weights not in ("linear", "quadratic"):
        raise ValueError(f"weights must be 'linear' or 'quadratic', got {weights!r}")
    if len(ratings_1) != len(ratings_2):
        raise ValueError(f"the two raters must rate the same units: got {len(ratings_1)} and {len(ratings_2)} answers")
    if not ratings_1:
        return math.nan
    cats = list(categories) if categories is not None else sorted(set(ratings_1) | set(ratings_2))
    index = {c: i for i, c in enumerate(cats)}
    missing = (set(ratings_1) | set(ratings_2)) - set(index)
    if missing:
        raise ValueError(f"ratings {sorted(missing, key=repr)} are not among the categories {cats}")
    observed = np.zeros((len(cats), len(cats)))
    for x, y in zip(ratings_1, ratings_2):
        observed[index[x], index[y]] += 1
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    steps = np.abs(np.subtract.outer(np.arange(len(cats)), np.arange(len(cats)))).astype(np.float64)
    w = steps if weights == "linear" else steps ** 2
    denominator = float((w * expected).sum())
    return math.nan if denominator == 0 else float(1.0 - (w * observed).sum() / denominator)


def majority_agreement(records: Iterable[Record], *, neutral: Hashable = NEUTRAL) -> dict[str, tuple[float, int]]:
    """labeler -> (mean half-credit agreement with the leave-one-out majority, units scored)."""
    acc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for answers in _by_unit(records).values():
        for labeler, answer in answers.items():
            others = Counter(a for other, a in answers.items() if other != labeler)
            if not others:
                continue
            ranked = others.most_common()
            if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
                continue  # no majority among the others
            acc[labeler][0] += half_credit(answer, ranked[0][0], neutral)
            acc[labeler][1] += 1
    return {k: (s / c, int(c)) for k, (s, c) in sorted(acc.items())}


@dataclass(frozen=True)
class GradedAgreement:
    """Agreement on the graded scale (canonical -3..3) of the labels that have one."""

    n_labels: int
    alpha_ordinal: float
    alpha_interval: float
    weighted_kappa_by_pair: dict[tuple[str, str], tuple[float, float, int]]  # -> (linear, quadratic, shared)

    @property
    def weighted_kappa(self) -> tuple[float, float]:
        """(linear, quadratic) weighted kappa averaged over labeler pairs, weighted by shared units."""
        pairs = [(lin, quad, n) for lin, quad, n in self.weighted_kappa_by_pair.values()
                 if not (math.isnan(lin) or math.isnan(quad))]
        total = sum(n for *_, n in pairs)
        if not total:
            return math.nan, math.nan
        return (sum(lin * n for lin, _, n in pairs) / total, sum(q * n for _, q, n in pairs) / total)


def graded_agreement(records: Iterable[Record], scale: Sequence[int] = tuple(range(-3, 4))) -> GradedAgreement:
    """Krippendorff's alpha (ordinal, interval) and weighted kappa per labeler pair of graded answers."""
    records = list(records)
    by_labeler: dict[str, dict[Hashable, int]] = defaultdict(dict)
    for unit, labeler, value in records:
        by_labeler[labeler][unit] = value
    pairs = {}
    for l1, l2 in combinations(sorted(by_labeler), 2):
        shared = sorted(set(by_labeler[l1]) & set(by_labeler[l2]), key=repr)
        if shared:
            x, y = [by_labeler[l1][u] for u in shared], [by_labeler[l2][u] for u in shared]
            pairs[(l1, l2)] = (weighted_kappa(x, y, "linear", scale), weighted_kappa(x, y, "quadratic", scale),
                               len(shared))
    return GradedAgreement(len(records), krippendorff_alpha(records, "ordinal"),
                           krippendorff_alpha(records, "interval"), pairs)


@dataclass(frozen=True)
class AgreementReport:
    n_units: int
    n_labels: int
    labelers: list[str]
    labels_by_labeler: dict[str, int]
    pairwise: PairwiseAgreement
    cohen_by_pair: dict[tuple[str, str], tuple[float, int]]  # (L1, L2) -> (kappa, units shared)
    cohen_by_labeler: dict[str, float]
    fleiss: FleissResult
    majority_by_labeler: dict[str, tuple[float, int]]
    majority_overall: float  # over every scored (labeler, unit)
    excluded: dict[str, int] = field(default_factory=dict)  # answers left out, e.g. {"cant_tell": 3, "skip": 1}
    alpha_nominal: float = math.nan  # Krippendorff's alpha of the answers (any number of labelers per unit)
    graded: GradedAgreement | None = None  # graded-scale campaigns: agreement on the 7-point scale

    def summary(self) -> str:
        """A plain-text table for the CLI."""
        def missing(x) -> bool:
            return x is None or (isinstance(x, float) and math.isnan(x))

        def pct(x) -> str:
            return "   n/a" if missing(x) else f"{100 * x:5.1f}%"

        def num(x) -> str:
            return "  n/a" if missing(x) else f"{x:+.3f}"

        lines = [
            f"units with answers: {self.n_units}   labels: {self.n_labels}   labelers: {len(self.labelers)}"
            + (f"   left out: {', '.join(f'{k} {v}' for k, v in self.excluded.items())}" if self.excluded else ""),
            f"pairwise agreement (neutral vs non-neutral = half): {pct(self.pairwise.overall)} "
            f"over {self.pairwise.n_pairs} labeler pairs",
            f"Fleiss' kappa: {num(self.fleiss.kappa)} over {self.fleiss.units_used} units with "
            f"{self.fleiss.n_raters} ratings each ({self.fleiss.units_dropped} units with another count left out)",
            f"agreement with the leave-one-out majority: {pct(self.majority_overall)}",
            f"Krippendorff's alpha (nominal, any number of labelers per unit): {num(self.alpha_nominal)}",
        ]
        if self.graded is not None:
            lin, quad = self.graded.weighted_kappa
            lines.append(f"graded scale ({self.graded.n_labels} labels): Krippendorff's alpha ordinal "
                         f"{num(self.graded.alpha_ordinal)}, interval {num(self.graded.alpha_interval)}; "
                         f"weighted kappa linear {num(lin)}, quadratic {num(quad)}")
        lines += [
            "",
            f"{'labeler':24} {'labels':>7} {'pairwise':>9} {'kappa':>7} {'majority':>9}",
        ]
        for lab in self.labelers:
            maj = self.majority_by_labeler.get(lab)
            lines.append(f"{lab[:24]:24} {self.labels_by_labeler.get(lab, 0):>7} "
                         f"{pct(self.pairwise.by_labeler.get(lab)):>9} {num(self.cohen_by_labeler.get(lab)):>7} "
                         f"{pct(maj[0] if maj else None):>9}")
        return "\n".join(lines)


def agreement_report(records: Iterable[Record], *, neutral: Hashable = NEUTRAL, min_shared: int = 2,
                     categories: Sequence[Hashable] | None = None,
                     excluded: dict[str, int] | None = None,
                     graded: GradedAgreement | None = None) -> AgreementReport:
    """Every statistic of the module docstring from ``(unit, labeler, answer)`` records."""
    records = list(records)
    units = _by_unit(records)
    labelers = sorted({r[1] for r in records})
    pairwise = pairwise_agreement(records, neutral=neutral)
    by_labeler_answers: dict[str, dict[Hashable, Hashable]] = defaultdict(dict)
    for unit, labeler, answer in records:
        by_labeler_answers[labeler][unit] = answer
    cohen_by_pair = {}
    for l1, l2 in combinations(labelers, 2):
        shared = sorted(set(by_labeler_answers[l1]) & set(by_labeler_answers[l2]), key=repr)
        if not shared:
            continue
        kappa = cohen_kappa([by_labeler_answers[l1][u] for u in shared], [by_labeler_answers[l2][u] for u in shared])
        cohen_by_pair[(l1, l2)] = (kappa, len(shared))
    cohen_by_labeler = {}
    for lab in labelers:
        pairs = [(k, n) for (l1, l2), (k, n) in cohen_by_pair.items()
                 if lab in (l1, l2) and n >= min_shared and not math.isnan(k)]
        weight = sum(n for _, n in pairs)
        cohen_by_labeler[lab] = sum(k * n for k, n in pairs) / weight if weight else math.nan
    majority = majority_agreement(records, neutral=neutral)
    scored = sum(n for _, n in majority.values())
    return AgreementReport(
        n_units=len(units), n_labels=len(records), labelers=labelers,
        labels_by_labeler={lab: len(by_labeler_answers[lab]) for lab in labelers},
        pairwise=pairwise, cohen_by_pair=cohen_by_pair, cohen_by_labeler=cohen_by_labeler,
        fleiss=fleiss_kappa_from_records(records, categories=categories),
        majority_by_labeler=majority,
        majority_overall=sum(v * n for v, n in majority.values()) / scored if scored else math.nan,
        excluded=dict(excluded or {}),
        alpha_nominal=krippendorff_alpha(records, "nominal"),
        graded=graded,
    )


def campaign_records(store, campaign: str, *, source: str | None = None) -> tuple[list[Record], dict[str, int]]:
    """``(unit, labeler, canonical answer)`` records of a campaign (rankings expanded into pairs), and the
    count of answers left out (cant_tell / skip)."""
    records: list[Record] = []
    excluded: Counter = Counter()
    for lab in store.labels(campaign, source=source):
        if lab.preferred in ("cant_tell", "skip"):
            excluded[lab.preferred] += 1
        elif lab.kind == "ranking":
            rank_of = {idx: r for r, idx in enumerate(lab.ranking)}
            for i, j in combinations(range(len(lab.ranking)), 2):
                records.append(((lab.item_id, i, j), lab.labeler, "a" if rank_of[i] < rank_of[j] else "b"))
        else:
            records.append((lab.item_id, lab.labeler, lab.preferred))
    return records, dict(sorted(excluded.items()))


def campaign_agreement(store, campaign: str, *, source: str | None = None, min_shared: int = 2) -> AgreementReport:
    """The agreement report of a label campaign (a :class:`workbench.preferences.labels.LabelStore` campaign)."""
    records, excluded = campaign_records(store, campaign, source=source)
    graded = None
    if store.get_campaign(campaign).graded_scale:
        graded = graded_agreement([(lab.item_id, lab.labeler, lab.scale)
                                   for lab in store.labels(campaign, source=source) if lab.scale is not None])
    return agreement_report(records, min_shared=min_shared, categories=PAIR_ANSWERS, excluded=excluded, graded=graded)
