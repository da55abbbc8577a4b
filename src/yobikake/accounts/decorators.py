from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission

View = Callable[..., HttpResponse]


def permission_required(permission: Permission) -> Callable[[View], View]:
    """Refuse (403) a page to anyone without the permission. Tenant-scoped objects are
    looked up with `access_<noun>` instead, which answers 404 for "not yours"."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not has_permission(request.user, permission):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
