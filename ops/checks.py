"""`manage.py check --deploy`: what a production deployment of the outbox needs set."""

from django.conf import settings
from django.core import checks

CONSOLE_EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"


@checks.register(checks.Tags.security, deploy=True)
def emails_are_sent(app_configs, **kwargs):
    """Without EMAIL_HOST the console backend "sends" every email into the worker's log:
    customers get nothing, and whoever reads the log reads password reset links."""
    if settings.DEBUG or settings.EMAIL_BACKEND != CONSOLE_EMAIL_BACKEND:
        return []
    return [checks.Warning(
        "Emails are printed to the worker's log, not sent (EMAIL_HOST is not set): customers get none, and the "
        "log holds every password reset link.", hint="Set EMAIL_HOST (and EMAIL_PORT, EMAIL_HOST_USER, "
                                                     "EMAIL_HOST_PASSWORD, EMAIL_USE_TLS) to your mail relay.",
        id="ops.W001")]
