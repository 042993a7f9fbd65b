"""Settings of the gunicorn servers of bench_hotpaths and bench_fleet: bench.settings plus the baseline views.

The baselines (bench/serve_urls.py) are served by the same Django, middleware
and gunicorn as the app, so that a ratio against them is the app's own cost.
"""

from bench.settings import *  # noqa: F403

ROOT_URLCONF = "bench.serve_urls"
