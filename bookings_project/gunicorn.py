"""gunicorn's settings, from the environment: one definition for `make run` (runstack), the
Dockerfile and docker-compose (`gunicorn -c python:bookings_project.gunicorn …`). Command-line
flags still win (runstack passes `--workers 1` in embedded mode)."""

import re

from gunicorn.glogging import Logger

from bookings_project.env import env_int, env_str

bind = f"{env_str('HOST', '127.0.0.1')}:{env_int('PORT', 8000, 1, 65535)}"
workers = env_int("WEB_CONCURRENCY", 4, 1)
threads = env_int("WEB_THREADS", 8, 1)
# PUT /jobs/{id}/execute answers within JOB_EXECUTE_SECONDS (20): well inside this.
timeout = 30
graceful_timeout = 10
# One line per request on stdout, with the X-Request-ID its application log lines carry and
# the time taken in milliseconds.
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms [%({x-request-id}o)s] "%(a)s"'


# A password reset link's token (bookings_project/urls.py: accounts/reset/<uidb64>/<token>/) sets
# the account's password until it is used or expires: whoever reads the access log must not be
# able to. (Django's page swaps it for "set-password" at once, so only the link's first request
# carries it.)
_RESET_TOKEN = re.compile(r"(/accounts/reset/[^/?#\s]+/)(?!set-password/)[^/?#\s]+")


class AccessLogger(Logger):
    """gunicorn's logger, its access lines without a password reset token (any atom: the
    format may name the path, the request line, the Referer or an environ value)."""

    def atoms(self, resp, req, environ, request_time):
        return {name: _RESET_TOKEN.sub(r"\1<token>", value) if isinstance(value, str) and "/reset/" in value else value
                for name, value in super().atoms(resp, req, environ, request_time).items()}


logger_class = AccessLogger
