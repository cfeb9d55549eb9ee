"""Renderers: turn mmgen's data (problems, plans, outcomes) into text, JSON, Markdown or HTML.

Each renderer returns a string or a rich renderable; ``cli.py`` decides where it goes. The rooms:

* :mod:`~mmgen.report.problems` — job-file problems (``validate``): text, JSON, GitHub annotations
* :mod:`~mmgen.report.plans` — plans (``plan``): a table, JSON, a Markdown pull-request comment
* :mod:`~mmgen.report.outcomes` — outcome records and run results (``status``, ``run``)
* :mod:`~mmgen.report.progress` — :class:`RunProgress`, the live view of a run
* :mod:`~mmgen.report.gallery` — the HTML gallery (``OUT/index.html``, ``status --format html``)
* :mod:`~mmgen.report.units` — counted words, byte sizes, money
"""

from mmgen.report.gallery import render_gallery, write_gallery
from mmgen.report.outcomes import (
    RECORD_FORMATS,
    STATE_STYLES,
    render_outcomes,
    render_records,
)
from mmgen.report.plans import ACTION_STYLES, PLAN_FORMATS, plan_markdown, plan_to_json, render_plan
from mmgen.report.problems import (
    PROBLEM_FORMATS,
    problems_github,
    problems_json,
    problems_text,
    render_problems,
    validation_summary,
)
from mmgen.report.progress import RunProgress

__all__ = [
    "ACTION_STYLES",
    "PLAN_FORMATS",
    "PROBLEM_FORMATS",
    "RECORD_FORMATS",
    "STATE_STYLES",
    "RunProgress",
    "plan_markdown",
    "plan_to_json",
    "problems_github",
    "problems_json",
    "problems_text",
    "render_gallery",
    "render_outcomes",
    "render_plan",
    "render_problems",
    "render_records",
    "validation_summary",
    "write_gallery",
]
