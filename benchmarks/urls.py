"""The production URL conf with one extra route in front of it: the benchmark's floor.

`GET /bench/noop` is a DRF view behind the project's default authentication and permission
(JWT + IsAuthenticated: one user query) that returns `{}` — the cheapest authenticated request
the server can answer, so every other figure is measured as a ratio to it.
"""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from bookings_project import urls as production

handler400 = production.handler400
handler403 = production.handler403
handler404 = production.handler404
handler500 = production.handler500


class NoopView(APIView):
    def get(self, request):
        return Response({})


urlpatterns = [
    path("bench/noop", NoopView.as_view(), name="bench-noop"),
    *production.urlpatterns,  # ends with the catch-all JSON 404, so the floor goes first
]
