"""Where each poll goes and what each answer teaches: the lag promise's planner (pure).

``Schedule`` keeps the heap and each job's life; for every next-poll decision and every answer
it asks the planner, which holds the timing model and the promise's multipliers:

* **Placement** (``placed_delay``): the job's remaining time as its model predicts it (queued:
  the rest of its queue plus its run; running: its run, widened by how well its start is known,
  narrowed by progress hints, ``hints.py``) goes to ``promise.choose_gap`` with the kind's
  multipliers.
* **The promise's multipliers** (``ledger.py``): every ``REFRESH_EVERY`` answers, one kind's
  plan is walked on its model and the multipliers move one step towards the promise. Answers,
  not placements: a burst of submits brings nothing new to learn, and twenty refreshes on the
  same walks would move the multipliers twenty steps on stale evidence.
* **Learning**: each status change and end becomes a span of the kind's queue or run time
  (``TimingModel.observe_span``), each job still in a phase a censored point; every
  ``_DRIFT_EVERY`` answers the latest cohort of jobs measures the provider's drift
  (``drift.py``).
* **Cold start**: while nothing has finished, the first ``_PROBES`` jobs look early and
  double their gaps; when their answers show a provider much faster than guessed, every waiting
  job is planned again (``replan_if_faster``). Until a kind's first runs end, its running jobs
  are placed on what all of its unfinished runs rule out (``cold.py``), and it is not walked;
  when its first runs end (and again after a few more), its waiting jobs are planned again.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable

from relaydance_async._sansio.polling.cold import MixedRemaining
from relaydance_async._sansio.polling.drift import measure_drift
from relaydance_async._sansio.polling.entry import Entry
from relaydance_async._sansio.polling.fit import LogNormal
from relaydance_async._sansio.polling.hints import (
    HintWindow,
    window_from_hints,
    window_from_one_hint,
)
from relaydance_async._sansio.polling.ledger import LagLedger, Walk, walk
from relaydance_async._sansio.polling.optimal import optimal_gap
from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async._sansio.polling.promise import Remaining, choose_gap, queued_remaining
from relaydance_async._sansio.polling.timing import TimingModel
from relaydance_async.models import JobKind, TaskStatus

__all__ = ["Planner"]

_KIND_MEMORY = 0.998
"""Decay per tracked job of the kind counts the promise is pooled over (about 500 jobs)."""
REFRESH_EVERY = 100
"""Answers between two refreshes of the promise's multipliers."""
_START_PRECISION = 2.0
"""A queued job is polled at least every this many standard deviations of its kind's run time
(and every ``max_lag``), so that the run's start is known well enough to place its end."""
_EDGE = 0.4
"""A queued job may jump as far as this quantile of its end (a short job's whole life: jobs of
ten seconds are best seen first where a good share of them has ended, not every ``max_lag``
while the run's start is pinned down)."""
_COHORT = 400
"""Latest jobs submitted that the provider's drift is measured on. In a stream of jobs lasting
minutes, the latest 150 had seen a handful of runs end, and the drift's prior held it at half a
slowdown; 400 reach back far enough for long runs to have ended."""
_ODDS_AFTER = 100
"""Runs of a kind seen to end (and no fewer than those going) before its model's odds of a late
detection are trusted in part (``_ODDS_TRUST``) over an end spread evenly over the last gap."""
_ODDS_TRUST = 0.5
"""How far a settled kind's model odds are trusted. The model places its polls just after
where most jobs end; read as if the end could lie anywhere in the gap, those polls look late
40 % more often than they are (a steady stream: 3.7 % over the bound counted, 2.7 % real), and
the promise then buys polls against a risk that is not there. Half: the model is also what is
being checked. Wholly while the flow is steady (``LagLedger.steady``): there the lags the plan
really gives are measured again and again as jobs keep coming, and a wrong model shows."""
_RTT_STEP = 0.02
"""Weight of each answer in the moving mean of the polls' round trip (about 50 answers)."""
_DRIFT_EVERY = 50
"""Answers between two measures of the drift."""
_PROBES = 16
"""Jobs that look early (``_PROBE`` after their submit) while nothing has finished."""
_PROBE = 0.5
"""Seconds from submit to a probing job's first poll (then doubling while nothing finished)."""
_REPLAN = math.log(2.0)
"""A change of the provider's speed by this log-factor re-plans every waiting job."""
_SHORT = 0.5
"""A job much shorter than the promise is watched in proportion to its length: its lag target
is at most this share of its kind's median duration."""
_FLOOR = 0.1
"""Shortest gap between two polls of one job, seconds."""
_REPLAN_AT = frozenset((1, 3, 10, 30))
"""A kind's finished runs at which its waiting jobs are planned again (its law just firmed)."""


class Planner:
    """The lag promise's decisions and the learning behind them, for one ``Schedule`` (pure).

    Args:
        policy: How polls are spaced (its promise: ``target_lag``, ``max_lag``, ``max_gap``).
        model: The timing model to learn into and place polls by.
        ledger: The promise's multipliers to start from; fresh ones if omitted.
    """

    def __init__(
        self, policy: PollPolicy, model: TimingModel, ledger: LagLedger | None = None
    ) -> None:
        self.policy = policy
        self.model = model
        self.ledger = ledger or LagLedger()
        """The promise's multipliers, held to it by walks of the plan and detected jobs."""
        self._turn = 0
        self._probes = 0
        self._cohort: collections.deque[Entry] = collections.deque()
        """The latest jobs submitted: what the provider's drift is measured on."""
        self._answers = 0
        self._planned_speed = min(model.speed)
        """The provider's speed (log-factor) the waiting jobs were last planned with."""
        self._stale: set[JobKind] = set()
        """Kinds whose law changed so much that their waiting jobs must be planned again."""
        self._walks: dict[JobKind, Walk] = {}
        self._recent: dict[JobKind, float] = {}
        """Jobs of each kind tracked lately (decayed): what the promise is pooled over."""
        self.rtt = 0.0
        """Moving mean of the polls' round trips, seconds (``answered``)."""

    def track(self, entry: Entry, known_submit: bool) -> None:
        """A job starts being watched: count its kind, and add it to the latest cohort."""
        kind = entry.kind
        if kind is None or not self.policy.learn:
            return
        self.ledger.tracked()
        if known_submit:
            cohort = self._cohort
            cohort.append(entry)
            # The latest _COHORT jobs, and every job submitted with them (a burst is one
            # cohort: its last jobs are no later than its first, and may be no like them).
            while (
                len(cohort) > _COHORT
                and cohort[0].submitted_at < cohort[-_COHORT].submitted_at - 1.0
            ):
                cohort.popleft()
        recent = self._recent
        for k in recent:
            recent[k] *= _KIND_MEMORY
        recent[kind] = recent.get(kind, 0.0) + 1.0

    def detected(self, entry: Entry, at: float) -> None:
        """A job was seen final at a poll sent at ``at``: its last gap tells its likely lag."""
        if entry.placed and not entry.webhook:
            self.ledger.detected(
                entry.kind,
                at - entry.last_poll,
                *self.promise(),
                (entry.odds_t, entry.odds_b),
                entry.odds_w,
                hinted=entry.hinted,
            )

    def censor(self, entry: Entry, run: bool, elapsed: float) -> None:
        """Tell the model the job is still in its phase after ``elapsed`` (NaN: no longer)."""
        kind = entry.kind
        if kind is None or not self.policy.learn:
            return
        old = entry.censor_at
        if math.isnan(old) and not elapsed > 0.0:
            return
        if not math.isnan(old) and entry.censor_run is not run:
            self.model.censor(kind, "run" if entry.censor_run else "queue", old, None)
            old = math.nan
        new = elapsed if elapsed > 0.0 else None
        entry.censor_at = elapsed if new is not None else math.nan
        entry.censor_run = run
        if new is None and math.isnan(old):
            return
        self.model.censor(kind, "run" if run else "queue", None if math.isnan(old) else old, new)

    def transition(self, entry: Entry, at: float, previous: TaskStatus, status: TaskStatus) -> None:
        """Record a change of status seen at ``at`` (a run's start lies in the last gap)."""
        entry.n = 0
        if status is TaskStatus.RUNNING and previous in (TaskStatus.SUBMITTED, TaskStatus.UNKNOWN):
            entry.run_lo = entry.last_poll if previous is TaskStatus.SUBMITTED else math.nan
            entry.run_hi = at
            if (
                self.policy.learn
                and entry.kind is not None
                and previous is TaskStatus.SUBMITTED
                and not math.isnan(entry.submitted_at)
            ):
                lo, hi = entry.last_poll - entry.submitted_at, at - entry.submitted_at
                entry.qspan = (lo, hi)
                self.model.observe_span(entry.kind, "queue", lo, hi)
        entry.status = status

    def learn_end(self, entry: Entry, at: float, status: TaskStatus) -> None:
        """Learn what a job's end shows (its run, or its queue and run if never seen running)."""
        if self.policy.learn and entry.status is TaskStatus.RUNNING:
            self.model.observe_outcome(status is not TaskStatus.SUCCEEDED)
        if (
            self.policy.learn
            and entry.kind is not None
            and status is TaskStatus.SUCCEEDED
            and entry.status is TaskStatus.SUBMITTED
            and not math.isnan(entry.submitted_at)
        ):
            # Queued at the last poll, done at this one: the whole run fit in the gap, and the
            # queue ended in it. A long first gap must not leave a short kind unlearned.
            since = entry.last_poll - entry.submitted_at
            # The run lasted less than the gap: take it as no less than a tenth of it (an open
            # span, repeated over a burst, would let the fit run off to zero).
            gap = at - entry.last_poll
            entry.qspan = (since, at - entry.submitted_at)
            entry.rspan = (0.1 * gap, gap)
            self.model.observe_span(entry.kind, "run", *entry.rspan)
            self.model.observe_span(entry.kind, "queue", *entry.qspan)
            self._firmed(entry.kind)
            return
        if (
            not self.policy.learn
            or entry.kind is None
            or status is not TaskStatus.SUCCEEDED
            or entry.status is not TaskStatus.RUNNING
            or math.isnan(entry.run_lo)
        ):
            return
        entry.rspan = (entry.last_poll - entry.run_hi, at - entry.run_lo)
        self.model.observe_span(entry.kind, "run", *entry.rspan)
        self._firmed(entry.kind)

    def _firmed(self, kind: JobKind) -> None:
        """A run of ``kind`` ended: while its first runs end, its law moves most."""
        if self.model.samples(kind)[1] in _REPLAN_AT:
            self._stale.add(kind)

    def first_delay(self, entry: Entry) -> float | None:
        """Seconds from submit to a new job's first poll, or None (plain backoff's)."""
        placed = self.placed_delay(entry, entry.submitted_at, None) if self.policy.learn else None
        entry.placed = placed is not None
        if placed is None:
            return None
        if self.model.finished == 0 and self._probes < _PROBES:
            # Nothing has finished yet, so the provider's speed is a guess (an emulator may be
            # a hundred times faster than any real model): the first few jobs look early, and
            # what they see moves every other job's plan (``_replan``).
            self._probes += 1
            entry.placed = False
            entry.probe = True
            return min(placed, _PROBE)
        return placed

    def next_delay(self, entry: Entry, at: float, progress: float | None) -> float | None:
        """Seconds to the next poll of a job last seen (not final) at ``at``.

        None means plain backoff's (no learning, no kind, or nothing placed yet).
        """
        policy = self.policy
        if not (policy.learn or policy.use_progress):
            entry.placed = False
            return None
        placed = self.placed_delay(entry, at, progress)
        entry.placed = placed is not None
        if placed is not None and entry.probe:
            if self.model.finished_runs == 0 and not math.isnan(entry.submitted_at):
                # Still no run has ended anywhere: look again after as long as it has lasted
                # so far (a doubling ramp), so that a fast provider shows at once.
                entry.placed = False
                return min(placed, max(_PROBE, at - entry.submitted_at))
            entry.probe = False
        return placed

    def placed_delay(self, entry: Entry, at: float, progress: float | None) -> float | None:
        """The delay that keeps the lag promise at the fewest polls (``promise.py``), or None.

        None means: fall back on plain backoff.
        """
        policy = self.policy
        run = self.model.run(entry.kind) if policy.learn else None
        queue = self.model.queue(entry.kind) if policy.learn else None
        target, bound = self.promise()
        cap = policy.max_gap
        if run is not None and queue is not None:
            # The promise in proportion to the job: a 1 s job is not left waiting 2.5 s.
            short = _SHORT * (queue.median + run.median) / target
            if short < 1.0:
                short = max(short, _FLOOR / target)
                target, bound, cap = target * short, bound * short, cap * short
        hinted = late = False
        if entry.status is TaskStatus.SUBMITTED:
            if run is None or queue is None or math.isnan(entry.submitted_at):
                return None
            rem: Remaining | MixedRemaining | HintWindow = queued_remaining(
                queue, run, at - entry.submitted_at, self._hazard(run)
            )
            # Queued, the end is far and wide; but when the run starts must be known well
            # enough to place the run's polls: no gap longer than the run's own spread.
            # Unless the whole job is that short: then straight to where it may end.
            cap = min(cap, max(bound, _START_PRECISION * run.sd, rem.quantile(_EDGE)))
        else:
            found = self._running_ends(entry, at, progress, run, target)
            if found is None:
                return None
            rem, late = found
            hinted = isinstance(rem, HintWindow)
        ledger = self.ledger
        choice = None
        cap = max(cap, target)
        if hinted and rem.quantile(0.0) < cap:
            # The end is pinned to a window within reach: its cheapest plan outright.
            choice = optimal_gap(
                rem, target=target, bound=bound, cap=cap, lam=ledger.lam, mu=ledger.mu
            )
        if choice is None:
            choice = choose_gap(
                rem, target=target, bound=bound, cap=cap, lam=ledger.lam, mu=ledger.mu
            )
        trust = 1.0 if hinted else 0.0 if late else self._odds_trust(entry.kind)
        if trust > 0.0 and choice.p_end > 1e-9:
            entry.odds_t = choice.p_target / choice.p_end
            entry.odds_b = choice.p_bound / choice.p_end
            entry.odds_w = trust
        else:
            entry.odds_t = entry.odds_b = math.nan
        entry.hinted = hinted
        return choice.gap

    def _running_ends(
        self,
        entry: Entry,
        at: float,
        progress: float | None,
        run: LogNormal | None,
        target: float,
    ) -> tuple[Remaining | MixedRemaining | HintWindow, bool] | None:
        """A running job's remaining time, and whether the job outlived its model.

        None: nothing to place it on. Hints first (``hints.py``), as a ``HintWindow``: two
        readings far enough apart give the rate, one reading what the run's age allows; the
        kind's law weighs them as far as it is known (``TimingModel.run`` is widened by what is
        not yet known of its median: a guessed law is too wide to push the plan to a window's
        edge). Else the kind's law, widened by how well the run's start is known (the gap it
        fell in): while its first runs end, a mixture (``cold.py``).
        """
        if entry.status is not TaskStatus.RUNNING or math.isnan(entry.run_hi):
            return None
        lo = entry.run_lo if not math.isnan(entry.run_lo) else entry.submitted_at
        if math.isnan(lo):
            return None
        policy = self.policy
        hazard = self._hazard(run) if run is not None else 0.0
        if policy.use_progress and progress is not None:
            window = window_from_hints(
                (entry.progress0, entry.progress_t0),
                at,
                progress,
                policy.progress_error,
                run,
                hazard,
            ) or window_from_one_hint(
                progress, (at - entry.run_hi, at - lo), policy.progress_error, run, hazard
            )
            if window is not None:
                return window, False
        if run is None:
            return None
        spread = (entry.run_hi - lo) / math.sqrt(12.0)
        elapsed = at - 0.5 * (lo + entry.run_hi)
        parts = self.model.run_parts(entry.kind)
        rem: Remaining | MixedRemaining
        if parts is not None:
            rem = MixedRemaining([(w, law.widened(spread)) for w, law in parts], elapsed, hazard)
        else:
            rem = Remaining(run.widened(spread), elapsed, hazard)
        if rem.late:
            # Outlived its prediction: the model is off for this job. Expect it to last about
            # half again what it has, widely, and let the promise's costs place the polls.
            return Remaining(LogNormal(math.log(max(0.5 * elapsed, target)), 1.0), 0.0), True
        return rem, False

    def _odds_trust(self, kind: JobKind | None) -> float:
        """How far the model's odds of a late detection are trusted for ``kind`` (0: not).

        Not before the kind is settled, half in a burst, wholly while the flow is steady.
        """
        if not self.model.settled(kind, _ODDS_AFTER):
            return 0.0
        return 1.0 if self.ledger.steady else _ODDS_TRUST

    def answered(self, rtt: float) -> None:
        """A poll's answer came ``rtt`` seconds after the poll left."""
        if rtt > 0.0:
            self.rtt += _RTT_STEP * (rtt - self.rtt)

    def promise(self) -> tuple[float, float]:
        """The lag target and bound the plan is held to, as the poll's sending time sees them.

        The user learns of a job's end when the answer comes back, a round trip after the poll
        left: the plan keeps that much inside the policy's promise (never below half of it), so
        the promise holds on the lag the user sees, not only on the plan's. Time spent waiting
        for the request budget is not taken off: polling more cannot shorten that queue.
        """
        policy = self.policy
        rtt = self.rtt
        if rtt <= 0.0:
            return policy.target_lag, policy.max_lag
        return (
            max(policy.target_lag - rtt, 0.5 * policy.target_lag),
            max(policy.max_lag - rtt, 0.5 * policy.max_lag),
        )

    def tick(self, now: float) -> None:
        """Count an answer.

        Every ``_DRIFT_EVERY`` answers the provider's drift is measured again, and every
        ``REFRESH_EVERY`` the promise's multipliers move.
        """
        if self.policy.learn:
            self._answers += 1
            if self._answers % _DRIFT_EVERY == 0:
                measure_drift(self._cohort, self.model, now)
            if self._answers % REFRESH_EVERY == 0:
                self._refresh()

    def should_replan(self) -> bool:
        """Whether waiting jobs must be planned again.

        They must when the provider proved much faster, or a kind's first runs ended.
        """
        return self.policy.learn and (
            bool(self._stale) or min(self.model.speed) <= self._planned_speed - _REPLAN
        )

    def replan_if_faster(self, now: float, waiting: Iterable[Entry]) -> list[tuple[Entry, float]]:
        """Pull waiting jobs' next polls earlier when their plans went stale.

        Every job's when the provider proved much faster; a kind's when its first runs ended.

        A first burst is planned on a guess of the provider's speed; when its first answers
        show jobs end far sooner (an emulator, a fast model), the polls already planned would
        come late for all of them. Likewise a kind planned on what its unfinished runs rule out
        (``cold.py``) learns when they end only from its first ends. This happens a handful of
        times at most (each time the speed halves; at a kind's 1st, 3rd, 10th and 30th end),
        and costs one pass over the waiting jobs.

        Returns:
            The jobs to move and their new due times.
        """
        speed = min(self.model.speed)
        stale, self._stale = self._stale, set()
        faster = speed <= self._planned_speed - _REPLAN
        if not self.policy.learn or not (faster or stale):
            return []
        if faster:
            self._planned_speed = speed
        moves = []
        for entry in waiting:
            if entry.webhook or not (faster or entry.kind in stale):
                continue
            base = entry.last_poll if not math.isnan(entry.last_poll) else now
            gap = self.placed_delay(entry, base, None)
            if gap is not None and base + gap < entry.due:
                entry.placed = True
                moves.append((entry, max(now, base + gap)))
        return moves

    def _refresh(self) -> None:
        """Re-walk one kind's plan, and move the promise's multipliers one step.

        Kinds are walked in turn (each walk costs a millisecond or two); the multipliers move on
        every kind's latest walk.
        """
        policy = self.policy
        kinds = [k for k in self._recent if self._recent[k] > 0.01]
        if not kinds:
            return
        self._turn = (self._turn + 1) % len(kinds)
        ledger = self.ledger
        target, bound = self.promise()
        for i, kind in enumerate(kinds):
            known = self._walks.get(kind)
            # The chosen kind, and any walked at multipliers far from today's, are walked again.
            stale = known is None or abs(math.log(known.lam / ledger.lam)) > 0.5
            if i != self._turn and not stale:
                continue
            q, r = self.model.queue(kind), self.model.run(kind)
            if q is None or r is None or self.model.run_parts(kind) is not None:
                # A kind none of whose runs ended has no law to walk yet.
                continue
            self._walks[kind] = walk(
                q,
                r,
                self._hazard(r),
                target=target,
                bound=bound,
                cap=policy.max_gap,
                start_cap=_START_PRECISION * r.sd,
                lam=ledger.lam,
                mu=ledger.mu,
            )
        ledger.refresh([(k, self._recent[k], self._walks[k]) for k in kinds if k in self._walks])

    def _hazard(self, run: LogNormal) -> float:
        """Per-second rate of a failure mid-run: failures come uniformly over a run."""
        return self.model.failure_share / run.median
