from datetime import timedelta
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from ninja.security import APIKeyCookie, HttpBearer

from yobikake.accounts.models import ApiToken, User, digest_token

# Writing last_used_at on every call would turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=5)


def _usable(user: User) -> bool:
    return user.is_active and not user.is_expired()


class ApiTokenAuth(HttpBearer):
    """`Authorization: Bearer ybk_…`: a personal token, unexpired, of a usable account."""

    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        row = (
            ApiToken.objects.select_related("user", "user__organization")
            .filter(digest=digest_token(token))
            .first()
        )
        if row is None or not row.is_usable() or not _usable(row.user):
            return None
        now = timezone.now()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
            row.last_used_at = now
            row.save(update_fields=["last_used_at"])
        request.user = row.user
        return row.user


class VerifiedSessionAuth(APIKeyCookie):
    """The browser session, but only once it has passed the TOTP step."""

    def __init__(self) -> None:
        from django.conf import settings

        self.param_name = settings.SESSION_COOKIE_NAME
        super().__init__()

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        user = request.user
        if user.is_authenticated and user.is_verified() and _usable(user):
            return user
        return None
