from typing import Any

from django.contrib.auth.backends import ModelBackend


class ExpiringAccountBackend(ModelBackend):
    """Password login that refuses expired (contractor) accounts.

    Django's per-model permissions are switched off: `accounts.permissions` is the only
    authority, so `is_superuser` cannot unlock anything through this backend.
    """

    def user_can_authenticate(self, user: Any) -> bool:
        return bool(super().user_can_authenticate(user)) and not user.is_expired()

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return False

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return False
