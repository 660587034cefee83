from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from bookings_project.errors import Forbidden, NotFound
from bookings_project.http import location
from bookings_project.openapi import error_responses, location_header
from bookings_project.pagination import ARRAY_PAGING, array_response
from bookings_project.ratelimit import rate_limit
from bookings_project.validation import no_body_expected, valid_data

from .. import password_reset, selectors, services
from ..export import user_export
from ..models import ROLE_FROM_CORE
from ..permissions import IsAdmin
from ..tokens import refresh_token_revoke, token_pair_rotate
from .serializers import (
    UserExportSerializer,
    CoreLoginResponseSerializer,
    CoreLoginSerializer,
    CoreRegisteredSerializer,
    CoreRegisterSerializer,
    LoginSerializer,
    PasswordResetAskSerializer,
    PasswordResetConfirmSerializer,
    QueuedStatusSerializer,
    RefreshSerializer,
    TokenPairSerializer,
    UserRegisterSerializer,
    UserResponseSerializer,
    UserUpdateSerializer,
)


SELF_REGISTRATION_403 = "Asked for a role self-registration cannot grant (ADMIN/IT_OPERATOR, admin/operator)"
USER_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="User id")


def _users(users) -> list[dict]:
    return UserResponseSerializer(users, many=True).data


class PublicView(APIView):
    """Public endpoints ignore any Authorization header (a stale token must not block login)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)


class LoginView(PublicView):
    @extend_schema(summary="Log in (username or email)",
                   description="Exchange a username (or email) and password for an access token and a refresh token. "
                               "Same message for an unknown account and a wrong password. Rate limited per client IP; "
                               "any Authorization header is ignored.",
                   tags=["auth"], request=LoginSerializer,
                   responses={200: TokenPairSerializer, **error_responses(400, 401, 429)})
    @rate_limit(group="login", rate_setting="RATE_LIMIT_LOGIN")
    def post(self, request):
        data = valid_data(LoginSerializer, request.data)
        _, access, refresh = services.auth_login(identifier=data["username"], password=data["password"],
                                                 request=request)
        return Response({"token": access, "refreshToken": refresh})


class RefreshView(PublicView):
    @extend_schema(summary="Refresh the access token",
                   description="Exchange a refresh token for a new pair. Refresh tokens rotate: the one sent is "
                               "revoked, and sending it again is a 401. Rate limited per client IP.",
                   tags=["auth"], request=RefreshSerializer,
                   responses={200: TokenPairSerializer, **error_responses(400, 401, 429)})
    @rate_limit(group="refresh", rate_setting="RATE_LIMIT_REFRESH")
    def post(self, request):
        data = valid_data(RefreshSerializer, request.data)
        access, refresh = token_pair_rotate(refresh_token=data["refreshToken"])
        return Response({"token": access, "refreshToken": refresh})


class LogoutView(PublicView):
    @extend_schema(summary="Log out (revoke a refresh token)",
                   description="The refresh token can no longer be used; the access token issued with it lasts out "
                               "its few minutes (`JWT_ACCESS_TTL`). Idempotent: a token revoked already is a 204 "
                               "again. A token that is not ours or has expired is a 401. Rate limited per client IP "
                               "like refresh.",
                   tags=["auth"], request=RefreshSerializer, responses={204: None, **error_responses(400, 401, 429)})
    @rate_limit(group="refresh", rate_setting="RATE_LIMIT_REFRESH")
    def post(self, request):
        refresh_token_revoke(refresh_token=valid_data(RefreshSerializer, request.data)["refreshToken"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordResetView(PublicView):
    @extend_schema(summary="Ask for a password reset email",
                   description="If an active account uses this email, a link to choose a new password is emailed to "
                               "it (valid `PASSWORD_RESET_TTL` seconds, once); the answer is the same 202 either way, "
                               "so it tells nobody which emails have accounts. At most one email per account per "
                               "minute. Rate limited per client IP.",
                   tags=["auth"], request=PasswordResetAskSerializer,
                   responses={202: QueuedStatusSerializer, **error_responses(400, 429)})
    @rate_limit(group="password-reset", rate_setting="RATE_LIMIT_REGISTER")
    def post(self, request):
        data = valid_data(PasswordResetAskSerializer, request.data)
        password_reset.password_reset_request(email=data["email"], request=request)
        return Response({"status": "queued"}, status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(PublicView):
    @extend_schema(summary="Set a new password with a reset email's uid and token",
                   description="The link's page does the same for a browser. An invalid, used or expired link is a "
                               "400 (`invalid_reset_link`); a weak password a 400 naming `password`. Every session "
                               "and token of the account ends. Rate limited per client IP.",
                   tags=["auth"], request=PasswordResetConfirmSerializer,
                   responses={204: None, **error_responses(400, 429)})
    @rate_limit(group="password-reset-confirm", rate_setting="RATE_LIMIT_LOGIN")
    def post(self, request):
        data = valid_data(PasswordResetConfirmSerializer, request.data)
        password_reset.password_reset_complete(uidb64=data["uid"], token=data["token"], password=data["password"],
                                               request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserViewSet(viewsets.ViewSet):
    """/api/v1/user: registration (public), list (ADMIN), get/update (self or ADMIN), delete (ADMIN)."""

    def get_permissions(self):
        if self.action == "create":
            return [AllowAny()]
        if self.action in {"list", "destroy"}:
            return [IsAdmin()]
        return [IsAuthenticated()]

    def get_authenticators(self):
        # Runs before self.action is set: read the route's own method map.
        method = getattr(getattr(self, "request", None), "method", "") or ""
        if self.action_map.get(method.lower()) == "create":
            return []  # registration is public; a stale token must not block it
        return super().get_authenticators()

    def _target(self, request, pk: int, *, include_inactive: bool = False):
        """Self or, for ADMIN, any active user (`include_inactive`: or deactivated); others are
        refused before any lookup."""
        if request.user.pk != pk and not request.user.is_admin:
            raise Forbidden()
        user = selectors.user_get(user_id=pk, include_inactive=include_inactive)
        if user is None:
            raise NotFound("User not found")
        return user

    @extend_schema(summary="Register",
                   description="Public self-registration. `roles` may ask for USER and/or EVENT_ORGANIZER (none: "
                               "USER); ADMIN or IT_OPERATOR is a 403. A taken username or email is a 409 naming the "
                               "field. Queues a welcome email. Rate limited per client IP.",
                   tags=["users"], request=UserRegisterSerializer, parameters=[location_header(201, "the new user")],
                   responses={201: UserResponseSerializer,
                              **error_responses(400, 403, 409, 429, e403=SELF_REGISTRATION_403)})
    @rate_limit(group="register", rate_setting="RATE_LIMIT_REGISTER")
    def create(self, request):
        data = valid_data(UserRegisterSerializer, request.data)
        user = services.user_register(username=data["username"], email=data["email"],
                                      password=data["password"], roles=data.get("roles"), request=request)
        return Response(UserResponseSerializer(user).data, status=status.HTTP_201_CREATED,
                        headers=location(request, "user-detail", pk=user.pk))

    @extend_schema(summary="List users (ADMIN)",
                   description="Active users, by id. A plain array; `page`/`pageSize` opt in to paging.",
                   tags=["users"], parameters=ARRAY_PAGING,
                   responses={200: UserResponseSerializer(many=True), **error_responses(400, 401, 403)})
    def list(self, request):
        return array_response(request, selectors.user_list(), _users)

    @extend_schema(summary="Get a user (self or ADMIN)",
                   description="Anyone else gets 403, whether or not the user exists.",
                   tags=["users"], parameters=[USER_ID],
                   responses={200: UserResponseSerializer, **error_responses(401, 403, 404)})
    def retrieve(self, request, pk=None):
        return Response(UserResponseSerializer(self._target(request, pk)).data)

    @extend_schema(summary="Update a user (self or ADMIN)",
                   description="Partial update: fields left out keep their value. Only an ADMIN changes `roles` (a "
                               "non-admin's `roles` are ignored). Changing one's own `password` needs "
                               "`currentPassword`; a password change ends every session.",
                   tags=["users"], parameters=[USER_ID], request=UserUpdateSerializer,
                   responses={200: UserResponseSerializer, **error_responses(400, 401, 403, 404, 409, 429)})
    def update(self, request, pk=None):
        user = self._target(request, pk)
        data = valid_data(UserUpdateSerializer, request.data)
        user = services.user_update(
            actor=request.user, user=user, username=data.get("username"), email=data.get("email"),
            roles=data.get("roles"), password=data.get("password"), booking_reminders=data.get("bookingReminders"),
            current_password=data.get("currentPassword"), request=request,
        )
        return Response(UserResponseSerializer(user).data)

    @extend_schema(summary="Deactivate a user (ADMIN)",
                   description="The account can no longer log in and its tokens stop working; its upcoming bookings "
                               "are cancelled (each booker is emailed); history and revenue stay.",
                   tags=["users"], parameters=[USER_ID],
                   responses={204: None, **error_responses(400, 401, 403, 404, 409)})
    def destroy(self, request, pk=None):
        no_body_expected(request)
        services.user_deactivate(actor=request.user, user=self._target(request, pk), request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="Export a user's data (self or ADMIN)",
                   description="Everything the system holds about the account, as one JSON document (GDPR access "
                               "and portability): the profile, every booking it made (any status, oldest first) "
                               "and the system log's entries about it (newest first; `systemLogTruncated` when only "
                               "the newest are included: at most 10,000 entries and 8 MB). An ADMIN may export a "
                               "deactivated account too (`user.active` false): access requests often follow a "
                               "closure. Each export is recorded in the system log. Rate limited per account and "
                               "exported account (`RATE_LIMIT_EXPORT`).",
                   tags=["users"], parameters=[USER_ID],
                   responses={200: UserExportSerializer, **error_responses(401, 403, 404, 429)})
    @rate_limit(group="export", rate_setting="RATE_LIMIT_EXPORT", per="user_path")
    def export(self, request, pk=None):
        # (a deactivated account's own tokens no longer work: only an ADMIN reaches it)
        user = self._target(request, pk, include_inactive=True)
        data = user_export(user=user, actor=request.user, request=request)
        return Response(UserExportSerializer(data).data)

    @extend_schema(summary="The caller's profile",
                   description="The account the token belongs to, as GET /api/v1/user/{id} shows it (to update it: "
                               "PUT /api/v1/user/{id} with this `id`).",
                   tags=["users"], responses={200: UserResponseSerializer, **error_responses(401)})
    def me(self, request):
        return Response(UserResponseSerializer(request.user).data)


# --- Core API (seed 000): /auth/register, /auth/login ----------------------------------------


class CoreRegisterView(PublicView):
    @extend_schema(summary="Register (core API)",
                   description="Public self-registration by email. `role` is `customer` (default) or `supplier`; "
                               "`admin` or `operator` is a 403. Rate limited per client IP (shared with POST "
                               "/api/v1/user).",
                   tags=["core: auth"], request=CoreRegisterSerializer,
                   responses={201: CoreRegisteredSerializer,
                              **error_responses(400, 403, 409, 429, e403=SELF_REGISTRATION_403)})
    @rate_limit(group="register", rate_setting="RATE_LIMIT_REGISTER")
    def post(self, request):
        data = valid_data(CoreRegisterSerializer, request.data)
        user = services.user_register_by_email(email=data["email"], password=data["password"],
                                               roles=[ROLE_FROM_CORE[data["role"]]], request=request)
        return Response(CoreRegisteredSerializer(user).data, status=status.HTTP_201_CREATED)


class CoreLoginView(PublicView):
    @extend_schema(summary="Log in (core API)",
                   description="Exchange an email and password for tokens, their lifetime and the user. Tokens work "
                               "on both APIs. Rate limited per client IP.",
                   tags=["core: auth"], request=CoreLoginSerializer,
                   responses={200: CoreLoginResponseSerializer, **error_responses(400, 401, 429)})
    @rate_limit(group="login", rate_setting="RATE_LIMIT_LOGIN")
    def post(self, request):
        data = valid_data(CoreLoginSerializer, request.data)
        user, access, refresh = services.auth_login(identifier=data["email"], password=data["password"],
                                                    request=request)
        expires_in = int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds())
        return Response(CoreLoginResponseSerializer(
            {"token": access, "refreshToken": refresh, "expiresIn": expires_in, "user": user}
        ).data)

