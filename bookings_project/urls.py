from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from accounts import views as account_pages
from accounts.api import urls as accounts_urls
from ops import health
from ops.api import urls as ops_urls
from ops.api import views as ops_views

from . import errors
from .openapi import local_assets_only

DOCS_PAGE_METHODS = ["get", "head"]

booking_api = [
    *accounts_urls.booking_api,
    path("", include("catalog.api.urls")),
    path("", include("reservations.api.urls")),
    path("", include("reporting.api.urls")),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", ops_views.MetricsView.as_view(), name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The docs pages are GET/HEAD only: DRF's OPTIONS would render their templates without context (a 500).
    path("api/docs/", local_assets_only(SpectacularSwaggerView.as_view(
        url_name="schema", http_method_names=DOCS_PAGE_METHODS)), name="swagger-ui"),
    path("api/redoc/", local_assets_only(SpectacularRedocView.as_view(
        url_name="schema", http_method_names=DOCS_PAGE_METHODS)), name="redoc"),
    path("api/v1/", include(booking_api)),
    # The page a password reset email links to (accounts.views).
    path("accounts/reset/<uidb64>/<token>/", account_pages.PasswordResetPage.as_view(), name="password-reset-page"),
    path("accounts/reset/done/", account_pages.PasswordResetDonePage.as_view(), name="password-reset-done"),
    path("admin/", admin.site.urls),
    path("admin", RedirectView.as_view(url="/admin/")),
    *accounts_urls.core_api,
    *ops_urls.core_api,
    # Anything else is a JSON 404, in DEBUG too.
    re_path(r"^.*$", errors.handler404),
]

handler400 = "bookings_project.errors.handler400"
handler403 = "bookings_project.errors.handler403"
handler404 = "bookings_project.errors.handler404"
handler500 = "bookings_project.errors.handler500"
