"""`make bench`: the production shape (gunicorn + Celery + Redis + PostgreSQL + SMTP) measured
on this machine, every figure a ratio to a JWT-authenticated no-op floor from the same run.

Entry point: `python -m benchmarks.run [--quick] [--profile]`; results go to docs/BENCHMARKS.md.
"""
