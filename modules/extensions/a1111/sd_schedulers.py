"""A1111's `modules.sd_schedulers`: the schedule types, from the app's own table (modules/sampling/schedules.py)."""

from __future__ import annotations

from modules.sampling.schedules import SCHEDULES, Schedule

Scheduler = Schedule  # A1111's class name; each has `name`, `label`, `function`, `default_rho` and `aliases`

schedulers: list[Schedule] = list(SCHEDULES)
schedulers_map: dict[str, Schedule] = {**{s.name: s for s in schedulers}, **{s.label: s for s in schedulers}}
