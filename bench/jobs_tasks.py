"""The trivial task the jobs benchmark runs (imported by the workers through CRMKIT_JOBS_IMPORT)."""

from __future__ import annotations

from crmkit.jobs import task

COUNT = [0]


@task("bench.noop")
def noop(runtime, payload) -> None:
    COUNT[0] += 1


def raw_noop(n: int) -> None:
    """The same work for the raw RQ baseline (no crmkit at all)."""
