from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission
from yobikake.audit.services import record_denial
from yobikake.audit.tags import AuditTag

View = Callable[..., HttpResponse]


def permission_required(
    permission: Permission, *alternatives: Permission
) -> Callable[[View], View]:
    """Refuse (403) a page to anyone without the permission (or one of the
    alternatives). Tenant-scoped objects are looked up with `access_<noun>` instead,
    which answers 404 for "not yours"."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not any(has_permission(request.user, p) for p in (permission, *alternatives)):
                record_denial(
                    tag=AuditTag.PERMISSION_DENY,
                    actor=request.user,
                    reason=f"missing:{permission}",
                    details={"view": view.__name__},
                )
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
