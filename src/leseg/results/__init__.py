"""Results pages from one command: ``python -m leseg.results <page>`` (see :mod:`leseg.results.pages`)."""

from leseg.results.jobs import Job, JobFailed, run_jobs
from leseg.results.pages import build_jobs, load_page, render_page

__all__ = ["Job", "JobFailed", "build_jobs", "load_page", "render_page", "run_jobs"]
