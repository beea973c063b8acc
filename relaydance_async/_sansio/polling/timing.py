"""The timing model: learned queue and run times per ``JobKind``, shared and drifting (pure).

One ``PhaseFit`` (``fit.py``) per kind and phase. What one kind teaches, the others start from:
the provider's speed (``speed``), the log-factor by which every kind's fits stray from the
generic prior, shifts the prior of kinds with little data of their own. What the latest jobs
show, every kind follows at once: the provider's drift (``drifts``, measured by the schedule on
its latest cohort) shifts every settled kind. The law a placement uses (``queue``, ``run``) is
the fit widened by what is not yet known of its median (``_predictive``): a kind never seen is
as uncertain as the provider's speed, and a burst's unfinished jobs narrow that as they outlive
what a faster provider would take.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from relaydance_async._sansio.polling.cold import median_posterior
from relaydance_async._sansio.polling.fit import (
    LogNormal,
    PhaseFit,
    prior_queue,
    prior_run,
    span_mean,
)
from relaydance_async.models import JobKind

__all__ = ["LogNormal", "TimingModel"]

_DRIFT_AFTER = 20
"""Jobs of a kind seen before its landings count towards (and follow) the provider's drift."""
_DEDRIFT = 0.2
"""A run drift (log-factor) beyond which runs are folded into their fit at the usual speed."""
_TAU_PROVIDER = 1.2
"""Log-space uncertainty of the provider's speed before anything finished (a factor of 3.3)."""
_TAU_KIND = 0.4
"""Log-space uncertainty of a kind's median once other kinds show the provider's speed."""


class _KindStats:
    __slots__ = ("cold", "cold_at", "queue", "run", "runs_censored")

    def __init__(self, window: int, kind: JobKind, prior_scale: float | None) -> None:
        self.queue = PhaseFit(window, None if prior_scale is None else prior_queue(prior_scale))
        self.run = PhaseFit(window, None if prior_scale is None else prior_run(kind, prior_scale))
        self.runs_censored = 0
        """Updates of unfinished runs so far (when the cold mixture is due again)."""
        self.cold: list[tuple[float, LogNormal]] = []
        self.cold_at = (-1.0, math.nan, math.nan)
        """``(runs_censored, prior log-median, tau)`` the cold mixture was computed at."""


class TimingModel:
    """Learned queue and run times per ``JobKind`` (pure, updated as jobs are observed).

    Args:
        min_samples: Observations of a kind needed before its distribution is reported
            (without a prior).
        window: Effective memory in observations per kind.
        prior_scale: Time unit of the generic prior (``prior_run``) that a kind starts from,
            so that a first burst is already placed; None: no prior, nothing is reported before
            ``min_samples`` finished jobs.
    """

    def __init__(
        self, *, min_samples: int = 8, window: int = 500, prior_scale: float | None = None
    ) -> None:
        self.min_samples = min_samples
        self.window = window
        self.prior_scale = prior_scale
        self._kinds: dict[JobKind, _KindStats] = {}
        self._speed = (0.0, 0.0)
        self._seen = (0, 0)
        self.drifts = [0.0, 0.0]
        """Log-factors by which the latest jobs of every kind queue and run longer than their
        kinds' laws say: the provider's drift (set by the schedule, see ``cohort_drift``)."""
        self.failure_share = 0.05
        """Share of recent runs that ended ``failed`` (at any moment of the run), prior 5 %."""
        self._outcomes = 0
        self.observer: Callable[[JobKind, str, float], None] | None = None
        """Told ``(kind, "queue" or "run", seconds)`` of every observation (a timing store)."""

    def _stats(self, kind: JobKind) -> _KindStats:
        stats = self._kinds.get(kind)
        if stats is None:
            stats = self._kinds[kind] = _KindStats(self.window, kind, self.prior_scale)
        return stats

    def observe_queue(self, kind: JobKind, seconds: float) -> None:
        """Record that a job of ``kind`` queued for about ``seconds``."""
        self._stats(kind).queue.add(seconds)
        if self.observer is not None:
            self.observer(kind, "queue", seconds)

    def observe_run(self, kind: JobKind, seconds: float) -> None:
        """Record that a job of ``kind`` ran (to success) for about ``seconds``."""
        self._stats(kind).run.add(seconds)
        if self.observer is not None:
            self.observer(kind, "run", seconds)

    @property
    def finished(self) -> int:
        """Phases seen to end so far, every kind (0: the provider's speed is still a guess)."""
        return sum(s.queue.seen + s.run.seen for s in self._kinds.values())

    @property
    def finished_runs(self) -> int:
        """Runs seen to end so far, every kind."""
        return sum(s.run.seen for s in self._kinds.values())

    def settled(self, kind: JobKind | None, at_least: int) -> bool:
        """Whether ``kind``'s runs are known from ends more than from survivors.

        At least ``at_least`` runs ended, and no fewer than the runs still going: early in a
        burst the ends seen are its short runs, and a fit that matches them can still be wrong
        about the rest.
        """
        stats = self._kinds.get(kind) if kind is not None else None
        if stats is None:
            return False
        run = stats.run
        return run.seen >= at_least and run.seen >= run.censored

    def observe_span(self, kind: JobKind, phase: str, lo: float, hi: float) -> None:
        """Record that a job of ``kind`` spent between ``lo`` and ``hi`` seconds in ``phase``.

        The observer (a timing store, which keeps single durations) is told the span's most
        likely duration under the fit as it stood: averaged over many jobs that is unbiased,
        where a span's midpoint would carry the polls' own spacing into the next process.
        """
        stats = self._stats(kind)
        fit = stats.run if phase == "run" else stats.queue
        # The fit leans on the prior moved by the provider's speed as it stands now. A kind
        # still in its cold mixture never set that shift: its first run, read against the
        # prior's own speed, came out 7x slower than an emulator's clock made it, every kind
        # learned that speed from it, and each then waited ~10 s for jobs that lasted 3 (the
        # README's first command). Not this kind's cold mixture either: a burst's survivors
        # read through the prior's wide spread put its median far too late.
        fit.shift = self._speed[1] if phase == "run" else self._speed[0]
        law = fit.dist(self.min_samples)
        drift = self.drifts[1] if phase == "run" else 0.0
        if abs(drift) > _DEDRIFT and fit.seen >= _DRIFT_AFTER:
            # The fit keeps the kind's own shape at the provider's usual speed; the drift says
            # how far the latest jobs stray from it. Folded in raw, a slowdown's jobs widen the
            # fit into both regimes (σ 0.18 -> 0.44 after a 2x slowdown) for as long as the
            # window remembers the first, and the drift measured against that fit falls short.
            # Only a clear drift: the noise of a steady provider's (±0.05) stays out of the fits.
            # (Queues are left raw: their spans are mostly open below, their drift too noisy.)
            scale = math.exp(-drift)
            fit.add_span(lo * scale, hi * scale)
        else:
            fit.add_span(lo, hi)
        fit.dist(self.min_samples)
        self._respeed()
        if self.observer is not None and hi > 0.0:
            seconds = span_mean(law, lo, hi)
            self.observer(kind, "run" if phase == "run" else "queue", seconds)

    def observe_outcome(self, failed: bool) -> None:
        """Record how a run ended.

        A failure can end a run at any moment: the planner keeps an eye on the whole run in
        proportion to this share.
        """
        self._outcomes += 1
        w = 1.0 / min(self._outcomes + 20, self.window)
        self.failure_share += w * ((1.0 if failed else 0.0) - self.failure_share)

    def censor(self, kind: JobKind, phase: str, old: float | None, new: float | None) -> None:
        """Move an unfinished job's "still in ``phase`` after" point from ``old`` to ``new``.

        Args:
            kind: The job's kind.
            phase: ``"queue"`` or ``"run"``.
            old: The point recorded before (None: none).
            new: How long the job has now been seen in the phase (None: it left it).
        """
        stats = self._stats(kind)
        if phase == "run":
            stats.run.censor(old, new)
            stats.runs_censored += 1
        else:
            stats.queue.censor(old, new)

    def queue(self, kind: JobKind | None) -> LogNormal | None:
        """The learned queue-time distribution of ``kind``, or None while too little is known."""
        if kind is None or (self.prior_scale is None and kind not in self._kinds):
            return None
        fit = self._stats(kind).queue
        fit.shift = self._speed[0]
        return self._predictive(fit, fit.dist(self.min_samples), self._seen[0], self.drifts[0])

    def run(self, kind: JobKind | None) -> LogNormal | None:
        """The learned run-time distribution of ``kind``, or None while too little is known."""
        if kind is None or (self.prior_scale is None and kind not in self._kinds):
            return None
        parts = self.run_parts(kind)
        if parts is not None:
            # One law with the mixture's mean and spread of log-durations.
            mean = sum(w * law.mu for w, law in parts)
            var = sum(w * (law.sigma * law.sigma + (law.mu - mean) ** 2) for w, law in parts)
            return LogNormal(mean, math.sqrt(var))
        fit = self._stats(kind).run
        fit.shift = self._speed[1]
        return self._predictive(fit, fit.dist(self.min_samples), self._seen[1], self.drifts[1])

    def run_parts(self, kind: JobKind | None) -> list[tuple[float, LogNormal]] | None:
        """``kind``'s run law as a mixture over its unknown median, while none of its runs ended.

        None once one has (its own fit rules then), or with no prior to start from. What every
        unfinished run of the kind rules out is ruled out for all (``cold.median_posterior``).
        """
        if kind is None or self.prior_scale is None:
            return None
        stats = self._stats(kind)
        fit = stats.run
        if fit.prior is None or fit.seen > 0:
            return None
        center = fit.prior.mu + self._speed[1]
        tau = _TAU_KIND if self._seen[1] > 0 else _TAU_PROVIDER
        count, at_center, at_tau = stats.cold_at
        changes = stats.runs_censored
        if (
            not stats.cold
            or changes - count >= max(1.0, 0.03 * fit.censored)
            or abs(center - at_center) > 0.02
            or tau != at_tau
        ):
            stats.cold = median_posterior(center, tau, fit.prior.sigma, fit.bins, fit.bin_width)
            stats.cold_at = (float(changes), center, tau)
        return stats.cold

    @staticmethod
    def _predictive(
        fit: PhaseFit, dist: LogNormal | None, others: int, drift: float = 0.0
    ) -> LogNormal | None:
        """``dist`` widened by what is not yet known of its median (the next job's law).

        A kind with no data of its own is as uncertain as the provider's speed (when no kind
        has any) or as one kind's departure from the others (once some have).
        """
        if dist is None:
            return dist
        if fit.seen >= _DRIFT_AFTER and drift:
            dist = LogNormal(dist.mu + drift, dist.sigma)
        if fit.prior is None:
            return dist
        n = fit.info
        tau = _TAU_KIND if others > n else _TAU_PROVIDER
        extra = tau * tau / (1.0 + n)
        return LogNormal(dist.mu, math.sqrt(dist.sigma * dist.sigma + extra))

    def law(self, kind: JobKind, phase: str) -> LogNormal | None:
        """The fitted law of ``kind``'s phase, with no drift and no widening.

        None until it rests on enough of its own jobs to measure a drift against.
        """
        stats = self._kinds.get(kind)
        if stats is None:
            return None
        fit = stats.run if phase == "run" else stats.queue
        if fit.seen < _DRIFT_AFTER:
            return None
        return fit.dist(self.min_samples)

    @property
    def speed(self) -> tuple[float, float]:
        """The provider's speed as every kind shows it.

        Log-factors of queue and run times over the generic prior (0: as the prior says; -2.3:
        ten times faster).
        """
        return self._speed

    def _respeed(self) -> None:
        # What one kind teaches, the others start from: a provider ten times faster (an
        # emulator) or slowed down shows in every kind. Weighted by each kind's data, capped so
        # that one busy kind does not drown the rest.
        out = []
        counts = []
        for phase in (0, 1):
            total = acc = 0.0
            for stats in self._kinds.values():
                fit = stats.queue if phase == 0 else stats.run
                seen = fit.seen
                if not seen or fit.prior is None or fit._fit is None:
                    continue
                w = min(seen, 50)
                total += w
                acc += w * (fit._fit.mu - fit.prior.mu)
            out.append(acc / total if total else math.nan)
            counts.append(int(total))
        queue, run = out
        # Queue and run of one provider speed up and slow down together (its load, or an
        # emulator's clock): with no run finished yet, the queue's speed is the best guess.
        if math.isnan(run):
            run = queue
        self._speed = (0.0 if math.isnan(queue) else queue, 0.0 if math.isnan(run) else run)
        self._seen = (counts[0], counts[1])

    def to_dict(self) -> dict[str, Any]:
        """The learned state as JSON-ready data (to warm a later process with ``from_dict``).

        Unfinished jobs are not saved: they belong to this process. Spans are (most of what
        polls see is one): version 1 kept only exact durations, and a model learned from spans
        came back as its bare prior.
        """
        kinds = []
        for kind, stats in self._kinds.items():
            item: dict[str, Any] = {
                "model": kind.model,
                "resolution": kind.resolution,
                "seconds": kind.seconds,
            }
            for phase, fit in (("queue", stats.queue), ("run", stats.run)):
                item[phase] = [fit.stats.n, fit.stats.mean, fit.stats.m2]
                item[f"{phase}_spans"] = fit.span_keys()
            kinds.append(item)
        return {
            "version": 2,
            "min_samples": self.min_samples,
            "window": self.window,
            "prior_scale": self.prior_scale,
            "kinds": kinds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TimingModel:
        """A model from ``to_dict`` data (a warm start: a first batch need not be polled cold).

        Raises:
            ValueError: The data is not a timing model's.
        """
        try:
            scale = data.get("prior_scale")
            model = cls(
                min_samples=int(data["min_samples"]),
                window=int(data["window"]),
                prior_scale=None if scale is None else float(scale),
            )
            for item in data["kinds"]:
                kind = JobKind(item["model"], item["resolution"], item["seconds"])
                stats = model._stats(kind)
                for phase, fit in (("queue", stats.queue), ("run", stats.run)):
                    n, mean, m2 = item[phase]
                    fit.stats.n, fit.stats.mean, fit.stats.m2 = int(n), float(mean), float(m2)
                    # Version 1 has no spans.
                    fit.restore_spans(item.get(f"{phase}_spans", {}))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a timing model: {exc!r}") from None
        return model

    def samples(self, kind: JobKind) -> tuple[int, int]:
        """How many queue and run observations ``kind`` has had."""
        stats = self._kinds.get(kind)
        return (0, 0) if stats is None else (stats.queue.seen, stats.run.seen)
