"""The fixed benchmark workload of BENCH_WORKLOAD.md, drawn from a seed.

Nothing here knows about any policy: the same jobs go to every contender, so figures compare.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

QUEUE_MEDIAN = 8.0
QUEUE_SIGMA = 0.8
RUN_SIGMA = 0.2
FAILURE_RATE = 0.05
PROGRESS_ERROR = 0.10
POISSON_RATE = 1.0  # jobs per second


@dataclass(frozen=True)
class Kind:
    """One kind of job: what the scheduler may learn timings by."""

    model: str
    resolution: str
    seconds: int
    median_run: float
    share: float

    @property
    def label(self) -> str:
        return f"{self.model} {self.resolution} {self.seconds}s"


KINDS: tuple[Kind, ...] = (
    Kind("doubao-seedance-2-0-fast-260128", "720p", 5, 45.0, 0.20),
    Kind("seedance-1-5-pro-with-audio", "720p", 5, 70.0, 0.25),
    Kind("doubao-seedance-2-0-720p", "720p", 10, 110.0, 0.25),
    Kind("doubao-seedance-2-0-1080p", "1080p", 10, 180.0, 0.20),
    Kind("doubao-seedance-2-0-1080p", "1080p", 15, 300.0, 0.10),
)


@dataclass(frozen=True)
class Job:
    """One job's true timeline, in seconds; offsets count from its submission."""

    index: int
    kind: Kind
    submit_at: float
    queue: float
    """Time spent ``submitted`` (queued) after the submit."""
    run: float
    """Full run time (a failed job stops part-way through it)."""
    failed: bool
    end: float
    """Offset of the final state (succeeded or failed) from the submission."""
    progress_factor: float
    """The progress hint's error: reported progress is ``elapsed / run * progress_factor``."""
    scale: float = 1.0
    """How much slower than its kind's distributions the job is (a provider slowdown: 2)."""

    @property
    def done_at(self) -> float:
        return self.submit_at + self.end

    def progress(self, offset: float) -> int | None:
        """The gateway's progress hint (percent) at ``offset`` after submission, or None queued."""
        if offset < self.queue:
            return None
        if offset >= self.end:
            return 100
        pct = (offset - self.queue) / self.run * self.progress_factor * 100.0
        return max(0, min(99, int(pct)))


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def draw_job(
    rng: random.Random,
    index: int,
    submit_at: float,
    kind: Kind | None = None,
    workload: Workload | None = None,
    scale: float = 1.0,
) -> Job:
    """One job with a timeline drawn from the true distributions (``workload``'s, pinned if
    omitted), ``scale`` times slower."""
    w = workload or PINNED
    kind = kind or draw_kind(rng, w.kinds)
    queue = _lognormal(rng, w.queue_median, w.queue_sigma) * scale
    run = _lognormal(rng, kind.median_run, w.run_sigma) * scale
    failed = rng.random() < FAILURE_RATE
    end = queue + (rng.random() * run if failed else run)
    factor = 1.0 + rng.uniform(-PROGRESS_ERROR, PROGRESS_ERROR)
    return Job(index, kind, submit_at, queue, run, failed, end, factor, scale)


@dataclass(frozen=True)
class Workload:
    """One row of the workload matrix (BENCH_WORKLOAD.md): the pinned workload, or a variation."""

    name: str
    note: str
    queue_median: float = QUEUE_MEDIAN
    queue_sigma: float = QUEUE_SIGMA
    run_median: float | None = None
    """One median run time for every kind (None: each kind's own)."""
    run_sigma: float = RUN_SIGMA
    slowdown: float = 1.0
    """Jobs in the second half of the submission order (a stream: submitted after the middle of
    the run) queue and run this many times longer."""
    model: str | None = None
    """Every job uses this model id (None: each kind's own)."""

    @property
    def kinds(self) -> tuple[Kind, ...]:
        """The kinds of this row (same shares, resolutions and clip lengths as the pinned ones)."""
        return tuple(
            Kind(
                self.model or k.model,
                k.resolution,
                k.seconds,
                self.run_median or k.median_run,
                k.share,
            )
            for k in KINDS
        )

    def classes(self) -> dict[tuple[Kind, float], tuple[float, float, float, float, float]]:
        """Per (kind, scale): (queue median, queue σ, run median, run σ, share) — the true
        distributions an oracle knows."""
        scales = (1.0,) if self.slowdown == 1.0 else (1.0, self.slowdown)
        return {
            (k, s): (
                self.queue_median * s,
                self.queue_sigma,
                k.median_run * s,
                self.run_sigma,
                k.share / len(scales),
            )
            for k in self.kinds
            for s in scales
        }

    def jobs(self, n: int, arrivals: str, seed: int = 20261122, drift: bool = True) -> list[Job]:
        """``n`` jobs in submission order (``drift=False``: no slowdown, e.g. a warm-up)."""
        return make_jobs(n, arrivals, seed, workload=self, drift=drift)


PINNED = Workload("pinned", "the table above")
MATRIX: tuple[Workload, ...] = (
    PINNED,
    Workload(
        "very short",
        "run median 10 s (σ 0.2) for every kind; queue median 3 s, σ 0.5",
        queue_median=3.0,
        queue_sigma=0.5,
        run_median=10.0,
    ),
    Workload("long", "run median 300 s, σ 0.25, every kind", run_median=300.0, run_sigma=0.25),
    Workload("wide", "the pinned medians, σ 0.6", run_sigma=0.6),
    Workload(
        "slowdown",
        "the second half of the jobs (a stream: submitted after the middle) take 2× longer",
        slowdown=2.0,
    ),
    Workload(
        "unknown model",
        "every job uses a model id the prior has never seen (acme-video-9)",
        model="acme-video-9",
    ),
)


def draw_kind(rng: random.Random, kinds: tuple[Kind, ...] = KINDS) -> Kind:
    """One kind drawn by the workload's shares."""
    x = rng.random()
    acc = 0.0
    for kind in kinds:
        acc += kind.share
        if x < acc:
            return kind
    return kinds[-1]


def make_jobs(
    n: int,
    arrivals: str,
    seed: int = 20261122,
    *,
    workload: Workload | None = None,
    drift: bool = True,
) -> list[Job]:
    """``n`` jobs in submission order; ``arrivals`` is ``burst`` (all at 0) or ``poisson`` (1/s).

    ``workload`` is a matrix row (the pinned workload if omitted; its draws are the same as ever).
    """
    if arrivals not in ("burst", "poisson"):
        raise ValueError(f"arrivals must be 'burst' or 'poisson', got {arrivals!r}")
    w = workload or PINNED
    tag = "" if w is PINNED or w.name == "pinned" else f":{w.name}"
    rng = random.Random(f"{seed}:{arrivals}{tag}")
    jobs = []
    t = 0.0
    for i in range(n):
        if arrivals == "poisson" and i:
            t += rng.expovariate(POISSON_RATE)
        scale = w.slowdown if drift and i >= n // 2 else 1.0
        jobs.append(draw_job(rng, i, t, workload=w, scale=scale))
    return jobs
