"""gunicorn's settings, from the environment: one definition for `make run` (runstack), the
Dockerfile and docker-compose (`gunicorn -c python:bookings_project.gunicorn …`). Command-line
flags still win (runstack passes `--workers 1` in embedded mode)."""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
threads = int(os.environ.get("WEB_THREADS", "8"))
# PUT /jobs/{id}/execute answers within JOB_EXECUTE_SECONDS (20): well inside this.
timeout = 30
graceful_timeout = 10
# One line per request on stdout, with the X-Request-ID its application log lines carry and
# the time taken in milliseconds.
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms [%({x-request-id}o)s] "%(a)s"'
