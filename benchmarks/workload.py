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


def draw_kind(rng: random.Random) -> Kind:
    """One kind drawn by the workload's shares."""
    x = rng.random()
    acc = 0.0
    for kind in KINDS:
        acc += kind.share
        if x < acc:
            return kind
    return KINDS[-1]


def draw_job(rng: random.Random, index: int, submit_at: float, kind: Kind | None = None) -> Job:
    """One job with a timeline drawn from the true distributions."""
    kind = kind or draw_kind(rng)
    queue = _lognormal(rng, QUEUE_MEDIAN, QUEUE_SIGMA)
    run = _lognormal(rng, kind.median_run, RUN_SIGMA)
    failed = rng.random() < FAILURE_RATE
    end = queue + (rng.random() * run if failed else run)
    factor = 1.0 + rng.uniform(-PROGRESS_ERROR, PROGRESS_ERROR)
    return Job(index, kind, submit_at, queue, run, failed, end, factor)


def make_jobs(n: int, arrivals: str, seed: int = 20261122) -> list[Job]:
    """``n`` jobs in submission order; ``arrivals`` is ``burst`` (all at 0) or ``poisson`` (1/s)."""
    if arrivals not in ("burst", "poisson"):
        raise ValueError(f"arrivals must be 'burst' or 'poisson', got {arrivals!r}")
    rng = random.Random(f"{seed}:{arrivals}")
    jobs = []
    t = 0.0
    for i in range(n):
        if arrivals == "poisson" and i:
            t += rng.expovariate(POISSON_RATE)
        jobs.append(draw_job(rng, i, t))
    return jobs


def sample_ends(kind: Kind, n: int, seed: int) -> list[float]:
    """``n`` independent end offsets for one kind (the oracle's view of the true distribution)."""
    rng = random.Random(f"{seed}:{kind.label}")
    return [draw_job(rng, i, 0.0, kind).end for i in range(n)]
