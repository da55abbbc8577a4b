"""The REST API at /api/v1, documented by OpenAPI at /api/v1/docs."""

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from ninja import NinjaAPI

from yobikake.accounts.api_auth import ApiTokenAuth, VerifiedSessionAuth
from yobikake.audit.api import router as audit_router
from yobikake.calling.api import router as calling_router
from yobikake.intake.api import router as intake_router
from yobikake.reports.api import router as reports_router
from yobikake.tenancy.api import router as tenancy_router

AUTH = [ApiTokenAuth(), VerifiedSessionAuth()]


def signed_in[View: Callable[..., HttpResponse]](view: View) -> View:
    """The schema and its docs page map every route and field of the API: they are for
    the API's users only, signed in as the API itself wants (a token, or a session past
    the TOTP step). A browser without one is sent to the login page, anything else
    gets 401."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if any(auth(request) for auth in AUTH):
            return view(request, *args, **kwargs)
        if "text/html" in request.headers.get("Accept", ""):
            query = urlencode({"next": request.get_full_path()})
            return redirect(f"{reverse(settings.LOGIN_URL)}?{query}")
        return JsonResponse({"detail": "Unauthorized"}, status=401)

    return wrapped  # type: ignore[return-value]


api = NinjaAPI(
    title="Yobikake API",
    version="1",
    urls_namespace="api-v1",
    auth=AUTH,
    docs_decorator=signed_in,
)
api.add_router("", tenancy_router)
api.add_router("", audit_router)
api.add_router("", intake_router)
api.add_router("", calling_router)
api.add_router("", reports_router)
