"""Scheduled and recurring announcements (docs/SCHEDULING.md).

- :class:`Schedules` -- the Python API for recurring schedules (``threadcast schedule …``);
  one-off send times go through ``Producer.send(..., send_at=...)``.
- :func:`run_scheduler` -- the ``threadcast scheduler`` process: a leader lease in Redis
  (:mod:`.lease`) and a loop of periodic jobs run only by the leader (:mod:`.loop`); the jobs
  are listed in :func:`default_jobs` (:mod:`.jobs`, which says how to add one).
- :mod:`.cron` -- when a schedule fires, DST handled; :mod:`.plan` -- what is due and how late.
"""

from __future__ import annotations

from producer.scheduler.cron import Recurrence
from producer.scheduler.jobs import SchedulerContext, default_jobs
from producer.scheduler.loop import Job, JobLoop
from producer.scheduler.process import run_scheduler
from producer.scheduler.schedules import Schedules, Upcoming

__all__ = [
    "Job",
    "JobLoop",
    "Recurrence",
    "SchedulerContext",
    "Schedules",
    "Upcoming",
    "default_jobs",
    "run_scheduler",
]
