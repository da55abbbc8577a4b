import time
from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.functional import LazyObject, empty
from django.utils.translation import gettext as _

from yobikake.accounts import sessions
from yobikake.accounts.models import User
from yobikake.accounts.services import end_expired_session, end_unbound_session

# Paths that answer without a verified (password + TOTP) session. The API checks its own
# credentials (token or verified session) in `yobikake.api`.
OPEN_PREFIXES = ("/login/", "/i18n/", "/api/", "/healthz")


class RequireVerifiedLoginMiddleware:
    """Every page needs a session that passed both password and TOTP, of an account that
    is still active and unexpired (an account that expires mid-session is logged out)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.user.is_authenticated and SESSION_KEY in request.session:
            # The session names an account the password backend now refuses to load
            # (expired or disabled since it logged in): end it, on the record.
            refused = User.objects.filter(pk=request.session[SESSION_KEY]).first()
            end_expired_session(request=request, user=refused)
        path = request.path_info
        if path.startswith(OPEN_PREFIXES) or path.startswith(settings.STATIC_URL):
            return self.get_response(request)
        if not (request.user.is_authenticated and request.user.is_verified()):
            query = urlencode({"next": request.get_full_path()})
            return redirect(f"{reverse(settings.LOGIN_URL)}?{query}")
        # The account as loaded and verified above, in place of the lazy wrappers the
        # session and OTP middleware put round it: each of the view's hundreds of reads
        # of it would otherwise pass through both.
        user = request.user
        while isinstance(user, LazyObject) and user._wrapped is not empty:
            user = user._wrapped
        request.user = user
        return self.get_response(request)


class SessionBoundToLoginMiddleware:
    """A session is honoured only with the login that made it (accounts/sessions.py):
    one minted in the session store with SECRET_KEY is ended here, with a message, and
    the custodian alerts it. After the message middleware, so the message is kept; the
    check itself is cached per session, so the requests between cost nothing."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and not sessions.is_bound(request.session, user):  # type: ignore[arg-type]
            end_unbound_session(request=request, user=user)  # type: ignore[arg-type]
            if request.path_info.startswith("/api/"):
                return self.get_response(request)  # logged out: the API answers 401
            messages.error(
                request, _("This session has no record of a login and was ended. Please log in.")
            )
            return redirect(settings.LOGIN_URL)
        return self.get_response(request)


class SlidingSessionMiddleware:
    """The idle timeout slides forward with use, as `SESSION_SAVE_EVERY_REQUEST` would
    make it, but the session is written at most once a minute instead of on every
    request: each write is a transaction and a disk flush on every page an operator
    opens (bench/calling.py). A session thus ends between 29 and 30 idle minutes."""

    KEY = "_refreshed_at"
    EVERY_SECONDS = 60

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        # A page refreshing itself (htmx polling) is not the user at work.
        polling = request.method == "GET" and request.headers.get("HX-Request") == "true"
        if session is not None and not polling and not session.is_empty():
            now = int(time.time())
            if now - int(session.get(self.KEY, 0)) >= self.EVERY_SECONDS:
                session[self.KEY] = now  # saved, with a new expiry, by SessionMiddleware
        return response
