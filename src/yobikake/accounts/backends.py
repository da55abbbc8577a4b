from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend


class ExpiringAccountBackend(ModelBackend):
    """Password login that refuses expired (contractor) accounts."""

    def user_can_authenticate(self, user: Any) -> bool:
        return bool(super().user_can_authenticate(user)) and not user.is_expired()

    def get_user(self, user_id: Any) -> Any:
        # The session's user with their organisation in one statement: every request
        # resolves the user's roles, which reads the organisation's kind.
        user_model = get_user_model()
        try:
            user = user_model._default_manager.select_related("organization").get(pk=user_id)
        except user_model.DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None
