"""gunicorn's settings, from the environment: one definition for `make run` (runstack), the
Dockerfile and docker-compose (`gunicorn -c python:bookings_project.gunicorn …`). Command-line
flags still win (runstack passes `--workers 1` in embedded mode)."""

import logging

from gunicorn.glogging import Logger

from bookings_project.env import env_int, env_str
from bookings_project.http import redact_log_record, redact_reset_tokens

bind = f"{env_str('HOST', '') or '127.0.0.1'}:{env_int('PORT', 8000, 1, 65535)}"
workers = env_int("WEB_CONCURRENCY", 4, 1)
threads = env_int("WEB_THREADS", 8, 1)
# PUT /jobs/{id}/execute answers within JOB_EXECUTE_SECONDS (20): well inside this.
timeout = 30
graceful_timeout = 10
# One line per request on stdout, with the X-Request-ID its application log lines carry and
# the time taken in milliseconds.
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms [%({x-request-id}o)s] "%(a)s"'


class ResetTokenFilter(logging.Filter):
    """gunicorn's error log names a request's URI ("Error handling request GET /accounts/reset/…",
    "Invalid request from ip=…: Invalid HTTP request line: '…'"): written without its reset token."""

    def filter(self, record):
        redact_log_record(record)
        return True


_RESET_TOKEN_FILTER = ResetTokenFilter()


class RedactingLogger(Logger):
    """gunicorn's logger without a password reset token (bookings_project.http): in its access lines
    (any atom: the format may name the path, the request line, the Referer or an environ value)
    and in its error log."""

    def setup(self, cfg):
        super().setup(cfg)
        self.error_log.addFilter(_RESET_TOKEN_FILTER)  # (a filter of the logger: it outlives setup's handlers)

    def atoms(self, resp, req, environ, request_time):
        return {name: redact_reset_tokens(value) if isinstance(value, str) else value
                for name, value in super().atoms(resp, req, environ, request_time).items()}


logger_class = RedactingLogger
