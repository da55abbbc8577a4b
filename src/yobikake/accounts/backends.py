from typing import Any

from django.contrib.auth.backends import ModelBackend


class ExpiringAccountBackend(ModelBackend):
    """Password login that refuses expired (contractor) accounts."""

    def user_can_authenticate(self, user: Any) -> bool:
        return bool(super().user_can_authenticate(user)) and not user.is_expired()
