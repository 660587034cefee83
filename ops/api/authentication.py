"""GET /metrics for a scraper: Prometheus sends a static bearer token (METRICS_TOKEN), not a JWT
that expires every JWT_ACCESS_TTL. The scraper is no account and holds no role: it can read the
metrics and nothing else."""

import hmac

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from accounts.permissions import IsAdminOrOperator


class MetricsScraper:
    """request.user of a request that presented METRICS_TOKEN."""

    pk = id = None
    username = "metrics scraper"
    is_authenticated = True
    is_active = True
    is_anonymous = is_staff = is_superuser = False

    def has_role(self, *roles) -> bool:
        return False

    def __str__(self):
        return self.username


class MetricsTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <METRICS_TOKEN>`. Any other bearer token is left to the JWT
    authentication after it (an ADMIN's or IT_OPERATOR's token reads the metrics too)."""

    def authenticate(self, request):
        expected = settings.METRICS_TOKEN
        scheme, _, presented = get_authorization_header(request).partition(b" ")
        if not expected or scheme.lower() != b"bearer":
            return None
        if not hmac.compare_digest(presented.strip(), expected.encode()):
            return None
        return MetricsScraper(), None

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class CanReadMetrics(IsAdminOrOperator):
    """An ADMIN's or IT_OPERATOR's token, or the scraper's."""

    def has_permission(self, request, view):
        return isinstance(request.user, MetricsScraper) or super().has_permission(request, view)

    @property
    def message(self) -> str:
        return f"{super().message}, or the metrics token (METRICS_TOKEN)"


class MetricsTokenScheme(OpenApiAuthenticationExtension):
    target_class = "ops.api.authentication.MetricsTokenAuthentication"
    name = "metricsToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "The static METRICS_TOKEN of the deployment (for a metrics scraper)."}
