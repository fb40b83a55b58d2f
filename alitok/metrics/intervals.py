"""95 % intervals for the numbers the pipeline compares, and the rules its verdicts follow.

- Class-consistency, a share of n samples: Wilson's score interval.
- A mean over images (PSNR, SSIM): percentile bootstrap over the images.
- A set metric (FID, IS, precision, recall, rFID): percentile bootstrap over the images or samples. Each resample
  is scored by the function that scores the whole set, against the same reference.

A resample repeats some images, so it holds fewer distinct ones than the set, and FID, which falls as n grows, is
biased upward under the bootstrap. Each bootstrap interval carries `bias` = mean of the resampled values minus the
set's value, and the report prints it beside the interval. These intervals cover the sampling of images only: a
retrained model on another machine (other CPU kernels, another thread count) moves further (docs/evaluation.md).

The rules (docs/evaluation.md; the report's header says them too):
- a "≥ goal" is met when the interval's lower end reaches the goal (`meets`);
- a control is at chance when its interval contains chance and its upper end is below twice chance (`at_chance`);
- two numbers differ when the paired-bootstrap 95 % interval of their difference excludes 0 (`differs`); otherwise
  the verdict says "within noise".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

LEVEL = 0.95
DRAWS = 200  # bootstrap resamples; the quantiles of a 95 % interval move by about 1 % of its width at 200


@dataclass(frozen=True)
class Interval:
    value: float
    lo: float
    hi: float
    method: str  # "wilson", "bootstrap over N images", ...
    bias: float | None = None  # bootstrap only: mean of the resampled values minus `value`
    # the resampled values, in the order of `resamples(n, draws, seed)`: two sets scored on the same rows give a
    # paired difference draw by draw (`paired`), with no features kept
    draws: tuple[float, ...] | None = None
    pairing: dict | None = None  # {"n", "seed"}: what the rows were drawn from; only equal ones pair

    def as_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if v is not None}
        if self.draws is not None:
            out["draws"] = [float(f"{x:.7g}") for x in self.draws]
        return out

    @classmethod
    def of(cls, d: dict) -> Interval:
        """The inverse of as_dict (a metrics JSON's interval)."""
        draws = d.get("draws")
        return cls(**{**d, "draws": None if draws is None else tuple(draws)})

    def text(self, digits: int = 3, percent: bool = False) -> str:
        f = (lambda x: f"{100 * x:.{max(digits - 2, 0)}f} %") if percent else (lambda x: f"{x:.{digits}f}")
        return f"{f(self.value)} [{f(self.lo)}, {f(self.hi)}]"


def _z(level: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson(hits: int, n: int, level: float = LEVEL) -> Interval:
    """Wilson's score interval for hits out of n: sound near 0 and 1, where the normal approximation is not."""
    if n <= 0:
        raise ValueError("a share of no samples has no interval")
    z, p = _z(level), hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo = 0.0 if hits == 0 else max(0.0, centre - half)  # exact ends: the float sum leaves 1e-17 there
    hi = 1.0 if hits == n else min(1.0, centre + half)
    return Interval(p, lo, hi, "wilson")


def resamples(n: int, draws: int = DRAWS, seed: int = 0) -> np.ndarray:
    """(draws, n) indices drawn with replacement: the same rows serve every metric of a set, and both sets of a
    paired comparison."""
    return np.random.default_rng(seed).integers(0, n, size=(draws, n))


def from_values(
    value: float, resampled, method: str, level: float = LEVEL, pairing: dict | None = None
) -> Interval:  # fmt: skip
    """The percentile interval of values already computed on resamples (one set of resamples, many metrics). With
    `pairing` ({"n", "seed"} of the rows) the values are kept, so that another set scored on the same rows pairs."""
    resampled = np.asarray(resampled, dtype=np.float64)
    lo, hi = np.quantile(resampled, [(1 - level) / 2, (1 + level) / 2])
    kept = None if pairing is None else tuple(float(x) for x in resampled)
    return Interval(float(value), float(lo), float(hi), method, float(resampled.mean() - value), kept, pairing)


def bootstrap(
    statistic: Callable[[np.ndarray], float], n: int, *, draws: int = DRAWS, seed: int = 0, level: float = LEVEL,
    unit: str = "images", keep: bool = False,
) -> Interval:  # fmt: skip
    """Percentile interval of `statistic(indices)` over resamples of the n items; its value is the whole set's.
    `keep`: the draws are kept, for pairing with another set scored on the same rows."""
    values = [statistic(rows) for rows in resamples(n, draws, seed)]
    method, pairing = f"bootstrap over {n} {unit}, {draws} resamples", {"n": n, "seed": seed} if keep else None
    return from_values(float(statistic(np.arange(n))), values, method, level, pairing)


def bootstrap_mean(values, **kw) -> Interval:
    """The mean of per-item values (PSNR, SSIM per image) with its bootstrap interval."""
    values = np.asarray(values, dtype=np.float64)
    return bootstrap(lambda rows: float(values[rows].mean()), len(values), **kw)


def paired_difference(
    statistic_a: Callable[[np.ndarray], float], statistic_b: Callable[[np.ndarray], float], n: int, *,
    draws: int = DRAWS, seed: int = 0, level: float = LEVEL, unit: str = "sample pairs",
) -> Interval:  # fmt: skip
    """a − b over the same resampled indices of two sets whose i-th items belong together (sample i of both runs
    has the same class and seed): the interval that decides whether a and b differ."""
    return bootstrap(
        lambda rows: statistic_a(rows) - statistic_b(rows), n, draws=draws, seed=seed, level=level, unit=unit
    )


def paired(a: Interval, b: Interval, level: float = LEVEL) -> Interval:
    """a − b from two sets' kept draws on the same resample rows: the paired bootstrap, since sample i of both sets
    has the same class and seed (or image i is the same held-out image). Refused when the rows differ."""
    if a.draws is None or b.draws is None or a.pairing != b.pairing or a.pairing is None:
        raise ValueError(f"not paired: resamples {a.pairing} against {b.pairing}")
    d = np.asarray(a.draws) - np.asarray(b.draws)
    return from_values(a.value - b.value, d, f"paired {a.method}", level, a.pairing)


def seed_mean(per_seed: list[Interval], level: float = LEVEL) -> Interval:
    """The mean over training seeds of one quantity, its interval from the seeds' draws averaged draw by draw. Each
    seed's draws are first permuted by a permutation of that seed's position alone: the seeds' sample sets are
    independent, so their draws must not line up, while two quantities of one seed (a paired difference) keep
    their common order."""
    if any(iv.draws is None for iv in per_seed):
        raise ValueError("a seed's interval kept no draws")
    draws = np.mean(
        [np.random.default_rng(1000 + i).permutation(np.asarray(iv.draws)) for i, iv in enumerate(per_seed)], axis=0
    )
    value = float(np.mean([iv.value for iv in per_seed]))
    method = f"mean over {len(per_seed)} seeds of {per_seed[0].method}"
    return from_values(value, draws, method, level)


def meets(interval: Interval, goal: float) -> bool:
    """A "≥ goal" judged on the lower end, so that one lucky draw does not meet it."""
    return interval.lo >= goal


def at_chance(interval: Interval, chance: float) -> bool:
    """A control sits at chance: its interval holds chance, and even its upper end is below twice chance."""
    return interval.lo <= chance <= interval.hi and interval.hi < 2 * chance


def differs(difference: Interval) -> bool:
    return not difference.lo <= 0 <= difference.hi


def compare_text(difference: Interval, a: str, b: str, lower_is_better: bool = False, digits: int = 2) -> str:
    """The verdict of a paired comparison in words, with the interval it rests on."""
    d = difference
    where = f"{a} − {b} = {d.value:+.{digits}f} [{d.lo:+.{digits}f}, {d.hi:+.{digits}f}]"
    if not differs(d):
        return f"within noise ({where}: the interval holds 0)"
    better = (d.hi < 0) == lower_is_better
    return f"{a} {'better' if better else 'worse'} than {b} ({where})"


RULES = (
    "Intervals are 95 %: Wilson's for class-consistency, a bootstrap over samples or images for the rest "
    "(FID's bootstrap bias beside it). A \"≥ goal\" is met when the interval's lower end reaches the goal. A control "
    "is at chance when its interval holds chance and its upper end is below twice chance. Two numbers differ when "
    'the paired-bootstrap interval of their difference excludes 0; otherwise the verdict is "within noise". The '
    "intervals cover the sampling of images only, not retraining: another machine's kernels and thread count move "
    "a retrained model further."
)
