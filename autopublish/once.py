"""``run --once``: one pass of the pipeline (cron mode) and its summary."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from autopublish.pipeline import Pipeline, PollResult, SweepResult


@dataclass
class OnceResult:
    polls: list[PollResult]
    sweep: SweepResult

    @property
    def every_feed_failed(self) -> bool:
        """True when there were feeds to poll and none could be read (the pass counts as failed)."""
        return bool(self.polls) and not any(poll.ok for poll in self.polls)


def run_once(pipeline: Pipeline) -> OnceResult:
    """Settle claims a crash left, poll every enabled feed once, then send what is due."""
    pipeline.recover()
    polls = pipeline.poll_all()
    return OnceResult(polls, pipeline.deliver_due())


def summary_lines(result: OnceResult) -> Iterator[str]:
    """One line per feed, then one for the deliveries."""
    for poll in result.polls:
        if poll.skipped:
            yield f"feed {poll.feed}: {poll.message}"
            continue
        state = "ok" if poll.ok else "failed"
        if not poll.ok:
            extra = f": {poll.message}"
        elif poll.changed:
            extra = f", {poll.new} new, {poll.queued} queued"
        else:
            extra = ", unchanged"
        yield f"feed {poll.feed}: {state}{extra}"
    sweep = result.sweep
    yield (f"posted {sweep.sent}, waiting {sweep.waiting}, uncertain {sweep.uncertain}, held {sweep.held}, failed {sweep.failed}"
           + (f", settled {sweep.reconciled}" if sweep.reconciled else ""))
