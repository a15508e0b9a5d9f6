"""One agent working on one sweep: its workers, its end, and the close of the sweep.

Built from `SweepParts` (`opening.open_parts`: the sweep opened, the launcher, the progress);
`run` starts a maintenance thread and the `WorkerPool` (`workers.py`: `n_jobs` threads that claim
trials and run each as a `TrialExecution`); `SweepEnd` (`ending.py`) closes the sweep and says how it ended.
"""

from __future__ import annotations

import logging
import threading

from ..coordination.fail_fast import LEARNED_SINCE_NOTE, NOTHING_LEARNED_NOTE, as_it_stands
from ..ui.links import link_lines, ui_links
from .ending import SweepEnd
from .failures import Failures
from .maintenance import FIRST_CHECK_WAIT, Maintenance, requeue_lost
from .orphans import Orphans
from .parts import SweepParts
from .result import SweepResult
from .stop import StartBudget
from .trial import TrialContext
from .workers import WorkerPool

log = logging.getLogger(__name__)


class SweepSession:
    """One agent on one sweep."""

    def __init__(
        self,
        parts: SweepParts,
        n_jobs: int = 1,
        starts: StartBudget | None = None,
        retry_failed: bool = False,
    ):
        self.parts = parts
        self.starts = starts or StartBudget()
        self.retry_failed = retry_failed  # points that failed for good get a fresh set of attempts
        self.config, self.study, self.result = parts.config, parts.study, parts.result
        self.failures = Failures(
            parts.config, parts.study, parts.counts, parts.progress, parts.console, parts.result
        )
        self.end = SweepEnd(parts)
        trial_context = TrialContext.of(parts, self.failures)
        self.orphans = Orphans(
            trial_context.settling,
            trial_context.reader,
            parts.watch,
            parts.uploads,
            settled=lambda: self.workers.idle.poke(),  # the sweep may be done: its close is owed now
        )
        self.workers = WorkerPool(
            parts, n_jobs, self.starts, trial_context, self.end, watching=self._watching
        )
        parts.stop.on_quit(lambda: parts.study.mark_quit(self.workers.running_trial_ids()))
        self.done = threading.Event()  # set when the workers are gone: maintenance stops

    def _watching(self) -> int:
        """The dead agents' trials this agent watches, while its maintenance thread (which ends
        the watch) runs; none after."""
        return 0 if self.done.is_set() else self.orphans.watching()

    # ---- the session -----------------------------------------------------------------------------

    def report(self, message: str) -> None:
        self.parts.console.event(message)

    def run(self) -> SweepResult:
        parts, stop = self.parts, self.parts.stop
        if self.retry_failed:
            self._retry_failed()
        if self.study.is_finished() and not requeue_lost(self.study, stop):
            why = " (a result reached spec.target)" if self.study.target_reached() else ""
            parts.console.event(
                f"{self.config.identity}: already complete{why}, nothing to run", summary=False
            )
            self._print_links()
            return self._finish()
        if self.study.is_closed():
            self.study.reopen()  # more to run (a raised budget or retries): a new close is owed
        parts.recorder.parent.set_status(parts.parent_id, finished=False)
        self._announce()
        parts.console.start(parts.progress)
        maintenance = Maintenance(
            self.study,
            parts.console,
            self.config.stale_after,
            self.workers.running_trial_ids,
            self.refresh_progress,
            self.orphans,
        )
        thread = threading.Thread(target=maintenance.run, args=(self.done,), daemon=True, name="maintenance")
        thread.start()
        parts.description.start()
        try:
            maintenance.first_check.wait(FIRST_CHECK_WAIT)  # dead agents' trials watched here take places
            while True:
                self.workers.run()
                if stop.is_set() or self.result.error:
                    break
                if not (self._rerun_queued() or requeue_lost(self.study, stop)):
                    break
            self._run_what_the_last_pass_queued(thread)
        finally:
            self.done.set()
            thread.join(timeout=5)
            self._leave_watched()
            parts.uploads.drain()
            self._revise_stop_reason()
            parts.description.stop(*self._stopped_state())
            self.refresh_progress()  # other agents' last trials too, before the bar's last draw
            parts.console.stop()
        if stop.is_set():
            self.result.interrupted = True
            self.report(f"{self.config.identity}: {self._interrupted_what()}")
            return self.result
        if self.result.error:
            return self.result
        return self._finish()

    def _interrupted_what(self) -> str:
        """What an interrupt left: a sweep to resume, or one already closed (a Ctrl-C after its
        last trial, while the report was written) with nothing left to run."""
        try:
            closed = self.study.is_closed()
        except Exception:  # noqa: BLE001 - the storage not answering: the resume finds out
            closed = False
        if closed:
            return "interrupted after the sweep finished; nothing is left to resume"
        return "interrupted; run the same command again to resume"

    def _leave_watched(self) -> None:
        """The trials of dead agents this agent watched: settled if they ended, else stopped and
        re-queued (see `Orphans.check_watched`)."""
        try:
            self.orphans.check_watched(leaving=True)
        except Exception as exc:  # noqa: BLE001 - they are reclaimed by the next agent, as a dead one's
            log.warning("could not hand back the trials this agent watched: %s", exc)

    def _run_what_the_last_pass_queued(self, maintenance: threading.Thread) -> None:
        """A maintenance pass reclaiming a dead agent's trial fails it, then queues its re-run: the
        workers may find nothing left in between. Once the pass has ended, such a re-run is run."""
        stop = self.parts.stop
        if stop.is_set() or self.result.error:
            return
        self.done.set()
        maintenance.join(timeout=5)
        while not stop.is_set() and not self.result.error and self._rerun_queued():
            self.workers.run()

    def _revise_stop_reason(self) -> None:
        """A fail_fast stop's advice as it stands now that the running trials have ended: said
        again when it changed (a trial running when it fired completed since)."""
        error = self.result.error
        if error is None or NOTHING_LEARNED_NOTE not in error:
            return
        try:
            revised = as_it_stands(error, self.study.trials())
        except Exception as exc:  # noqa: BLE001 - the advice as it was
            log.debug("could not read the trials again: %s", exc)
            return
        if revised != error:
            self.result.error = revised
            self.parts.console.summary(f"{self.config.identity}: {LEARNED_SINCE_NOTE}")

    def _rerun_queued(self) -> bool:
        """A re-run queued after the workers found nothing left (a stale trial failed, then
        re-queued, between their last two looks): they go again, unless `--count` is used up."""
        return not self.starts.used_up() and self.study.has_queued()

    def _finish(self) -> SweepResult:
        """The sweep's end; when it fails because a study of the sweep was deleted by hand (its
        close election, say), the agent stops with that one message instead of a traceback."""
        try:
            return self.end.finish(self.starts.count if self.starts.used_up() else None)
        except Exception:
            if self.workers.stop_if_deleted():
                return self.result
            raise

    def _announce(self) -> None:
        """What this agent is about to do, and what of the config does not apply."""
        budget = self.study.budget
        trials = f"{budget} trial{'' if budget == 1 else 's'}"
        self.parts.console.event(
            f"{self.config.identity}: parent run {self.parts.parent_id}, {trials} in the budget, "
            f"{self.parts.progress.ended} done, up to {self.workers.n_jobs} at once",
            summary=False,  # --quiet prints only the summary
        )
        self._print_links()
        self._note_ignored_max_trials()
        for note in self.study.source.strategy.notes():
            self.report(f"{self.config.identity}: {note}")

    def _print_links(self) -> None:
        """With a tracking server: the parent run's page and the experiment's runs page."""
        recorder = self.parts.recorder
        links = ui_links(recorder.client.tracking_uri, recorder.experiment_id, self.parts.parent_id)
        for line in link_lines(links):
            self.parts.console.event(f"{self.config.identity}: {line}", summary=False)

    def _stopped_state(self) -> tuple[str | None, str | None]:
        """What the description says when this agent leaves early; (None, None) otherwise."""
        if self.parts.stop.is_set():
            return "interrupted", None
        return ("stopped", self.result.error) if self.result.error else (None, None)

    def _note_ignored_max_trials(self) -> None:
        """An algorithm with a fixed plan (sensitivity) runs all of it, whatever `max_trials` says."""
        given, budget = self.config.max_trials, self.study.budget
        if self.study.source.strategy.derived_budget and given is not None and given != budget:
            self.report(
                f"{self.config.identity}: max_trials ({given}) does not apply to algorithm "
                f"{self.config.algorithm!r}: its budget, {budget}, follows from the parameters"
            )

    def _retry_failed(self) -> None:
        """`--retry-failed`: every point that failed for good is queued again with a fresh set of
        attempts, under the same parent (which is RUNNING again until they end)."""
        failed, infeasible = self.failures.requeue_failed_for_good()
        if failed:
            numbers = ", ".join(str(t.number) for t in failed)
            self.report(f"{self.config.identity}: retrying {len(failed)} failed point(s) (trials {numbers})")
        if infeasible:
            numbers = ", ".join(str(t.number) for t in infeasible)
            self.report(
                f"{self.config.identity}: {len(infeasible)} infeasible point(s) not retried "
                f"(trials {numbers}): infeasible is a result of the search (out of memory, a "
                "non-finite objective), not a failure"
            )

    def refresh_progress(self) -> None:
        """Every agent's counts on the bar (`SweepCounts.sync`), a failed read left for the next
        one: the counts are shown, not relied on."""
        try:
            self.parts.counts.sync(self.study.progress)
        except Exception as exc:  # noqa: BLE001
            log.debug("could not read the sweep's progress: %s", exc)
