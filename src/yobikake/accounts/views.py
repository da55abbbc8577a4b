import base64
import time
from datetime import datetime
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from axes.handlers.proxy import AxesProxyHandler
from django.contrib import messages
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django_otp.plugins.otp_totp.models import TOTPDevice

from yobikake.accounts import selectors, services
from yobikake.accounts.decorators import permission_required
from yobikake.accounts.forms import (
    ApiTokenForm,
    LoginForm,
    NewAccountForm,
    RoleRequestForm,
    TotpForm,
)
from yobikake.accounts.models import RoleAssignment, User
from yobikake.accounts.permissions import PERMISSION_DESCRIPTIONS, Permission, Role
from yobikake.audit.services import record_denial
from yobikake.audit.tags import AuditTag

# Between the password and the TOTP step the session holds only the user's id, for a
# few minutes; the user is logged in (session key cycled) after the TOTP step.
PENDING_USER = "yobikake_pending_user"
PENDING_SINCE = "yobikake_pending_since"
# Derived from the password hash: a half-finished login dies when the password changes
# (as it does when a role approval resets the account's credentials).
PENDING_HASH = "yobikake_pending_hash"
ENROLLING_DEVICE = "yobikake_enrolling_device"
PENDING_SECONDS = 300
PASSWORD_BACKEND = "yobikake.accounts.backends.ExpiringAccountBackend"  # noqa: S105 - a dotted path


def _next_url(request: HttpRequest) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(candidate, {request.get_host()}, request.is_secure()):
        return candidate
    return reverse("home")


def _locked_out(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/locked_out.html", status=429)


def _lock_account(user_id: int | None = None, username: str | None = None) -> User | None:
    """Lock the account's row for this transaction. Every login step and every
    credential reset takes this lock first (and only then anything else), so attempts
    queue behind each other and behind an approval: each sees the failures, lockouts
    and resets of the ones before it, and no two can deadlock."""
    accounts = User.objects.select_for_update().filter(is_active=True)
    if user_id is not None:
        return accounts.filter(pk=user_id).first()
    return accounts.filter(username=username).first() if username else None


@require_http_methods(["GET", "HEAD", "POST"])
@transaction.atomic
def login_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and request.user.is_verified():
        return redirect(_next_url(request))
    form = LoginForm(request, data=request.POST if request.method == "POST" else None)
    account = (
        _lock_account(username=request.POST.get("username")) if request.method == "POST" else None
    )
    if request.method == "POST" and not form.is_valid():
        locked = AxesProxyHandler.is_locked(request, {"username": request.POST.get("username")})
        services.record_login_failure(user=account, stage="password", locked=locked)
    if request.method == "POST" and form.is_valid():
        user = form.get_user()
        request.session.cycle_key()
        request.session[PENDING_USER] = user.pk
        request.session[PENDING_SINCE] = time.time()
        request.session[PENDING_HASH] = user.get_session_auth_hash()
        return redirect(f"{reverse('accounts:mfa')}?{urlencode({'next': _next_url(request)})}")
    return render(request, "accounts/login.html", {"form": form, "next": _next_url(request)})


def _forget_pending(request: HttpRequest) -> None:
    for key in (PENDING_USER, PENDING_SINCE, PENDING_HASH, ENROLLING_DEVICE):
        request.session.pop(key, None)


def _pending_user(request: HttpRequest) -> User | None:
    """The account whose password step this session passed, locked; None if the step
    is too old or the password has changed since (a reset ends half-finished logins)."""
    user_id = request.session.get(PENDING_USER)
    since = request.session.get(PENDING_SINCE, 0)
    if user_id is None or time.time() - since > PENDING_SECONDS:
        return None
    user = _lock_account(user_id=user_id)
    if user is None or user.is_expired():
        return None
    if not constant_time_compare(
        request.session.get(PENDING_HASH, ""), user.get_session_auth_hash()
    ):
        return None
    return user


def _qr_svg(device: TOTPDevice) -> str:
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage)
    return str(image.to_string(encoding="unicode"))


def _device_for(request: HttpRequest, user: User) -> TOTPDevice:
    """The confirmed authenticator, or the one this session is enrolling. Each
    enrolment page shows a fresh secret, kept for this session only: a secret someone
    else saw (by opening the page with a known password) is never the one enrolled."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is not None:
        return device
    if request.method == "POST":
        device_id = request.session.get(ENROLLING_DEVICE)
        device = TOTPDevice.objects.filter(user=user, confirmed=False, pk=device_id).first()
        if device is not None:
            return device
    device = TOTPDevice.objects.create(user=user, name="TOTP", confirmed=False)
    request.session[ENROLLING_DEVICE] = device.pk
    return device


@require_http_methods(["GET", "HEAD", "POST"])
@transaction.atomic
def mfa_view(request: HttpRequest) -> HttpResponse:
    user = _pending_user(request)
    if user is None:
        _forget_pending(request)
        messages.error(request, _("Please log in again."))
        return redirect("accounts:login")
    credentials = {"username": user.username}
    if AxesProxyHandler.is_locked(request, credentials):
        if request.method == "POST":
            services.record_login_failure(user=user, stage="totp", locked=True)
        return _locked_out(request)
    device = _device_for(request, user)
    enrolling = not device.confirmed
    form = TotpForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["token"]):
            if enrolling:
                services.enroll_authenticator(actor=user, device=device)
            _forget_pending(request)
            services.complete_login(request=request, user=user, device=device)
            return redirect(_next_url(request))
        user_login_failed.send(sender=__name__, credentials=credentials, request=request)
        locked = AxesProxyHandler.is_locked(request, credentials)
        services.record_login_failure(user=user, stage="totp", locked=locked)
        if locked:
            return _locked_out(request)
        form.add_error("token", _("The code is wrong or has expired."))
    context = {"form": form, "enrolling": enrolling, "next": _next_url(request)}
    if enrolling:
        context["secret"] = base64.b32encode(device.bin_key).decode()
        context["qr_svg"] = _qr_svg(device)
    return render(request, "accounts/mfa.html", context)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    services.log_out(request=request)
    messages.info(request, _("You have logged out."))
    return redirect("accounts:login")


def home(request: HttpRequest) -> HttpResponse:
    permissions = selectors.user_permissions(request.user)
    can_do = [PERMISSION_DESCRIPTIONS[p] for p in Permission if p in permissions]
    return render(request, "home.html", {"can_do": can_do})


@permission_required(Permission.ACCOUNT_USER_MANAGE)
@require_http_methods(["GET", "HEAD", "POST"])
def user_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = RoleRequestForm(request.POST)
        if form.is_valid():
            user = get_object_or_404(User, pk=form.cleaned_data["user"])
            try:
                assignment = services.request_role(
                    actor=request.user, user=user, role=Role(form.cleaned_data["role"])
                )
            except services.AccountError as exc:
                messages.error(request, str(exc))
            else:
                if assignment.status == RoleAssignment.Status.PENDING:
                    messages.info(request, _("Requested; it waits for a second person."))
                else:
                    messages.success(request, _("The role is granted."))
        return redirect("accounts:user_list")
    users = User.objects.select_related("organization").prefetch_related("role_assignments")
    return render(
        request,
        "accounts/user_list.html",
        {
            "users": users.order_by("organization__kind", "username"),
            "roles": Role.choices,
            "new_account": NewAccountForm(),
        },
    )


@permission_required(Permission.ACCOUNT_USER_MANAGE)
@require_POST
def create_account(request: HttpRequest) -> HttpResponse:
    form = NewAccountForm(request.POST)
    if form.is_valid():
        expires_on = form.cleaned_data["expires_on"]
        # An account dated to expire on a day stays usable to the end of that day (JST).
        expires_at = (
            timezone.make_aware(datetime.combine(expires_on, datetime.max.time()))
            if expires_on
            else None
        )
        password = services.generate_initial_password()
        try:
            user = services.create_user(
                actor=request.user,
                username=form.cleaned_data["username"],
                organization=form.cleaned_data["organization"],
                password=password,
                expires_at=expires_at,
            )
        except services.AccountError as exc:
            form.add_error(None, str(exc))
        else:
            return render(
                request, "accounts/account_created.html", {"new_user": user, "password": password}
            )
    for error in form.errors.values():
        messages.error(request, " ".join(error))
    return redirect("accounts:user_list")


@permission_required(Permission.ACCOUNT_ROLE_APPROVE)
def role_requests(request: HttpRequest) -> HttpResponse:
    return render(
        request, "accounts/role_requests.html", {"pending": selectors.genuine_pending_requests()}
    )


@permission_required(Permission.ACCOUNT_ROLE_APPROVE)
@require_POST
def decide_role_request(request: HttpRequest, assignment_id: int) -> HttpResponse:
    assignment = get_object_or_404(selectors.pending_role_requests(), pk=assignment_id)
    try:
        if request.POST.get("decision") != "approve":
            services.refuse_role(actor=request.user, assignment=assignment)
            messages.success(request, _("Refused."))
            return redirect("accounts:role_requests")
        approval = services.approve_role(actor=request.user, assignment=assignment)
    except services.AccountError as exc:
        messages.error(request, str(exc))
        return redirect("accounts:role_requests")
    return render(
        request,
        "accounts/role_approved.html",
        {
            "assignment": assignment,
            "handover_password": approval.handover_password,
            "custody_url": approval.custody_url,
        },
    )


@permission_required(Permission.API_TOKEN_CREATE)
@require_http_methods(["GET", "HEAD", "POST"])
def api_tokens(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST if request.method == "POST" else None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        try:
            _row, new_token = services.create_api_token(
                actor=request.user, name=form.cleaned_data["name"], days=form.cleaned_data["days"]
            )
        except services.AccountError as exc:
            form.add_error(None, str(exc))
        else:
            form = ApiTokenForm()
    tokens = selectors.live_api_tokens(request.user)
    return render(
        request,
        "accounts/api_tokens.html",
        {"form": form, "tokens": tokens, "new_token": new_token},
    )


@permission_required(Permission.API_TOKEN_CREATE)
@require_POST
def revoke_api_token(request: HttpRequest, token_id: int) -> HttpResponse:
    token = selectors.live_api_tokens(request.user).filter(pk=token_id).first()
    if token is None:
        record_denial(
            tag=AuditTag.API_TOKEN_REVOKE, actor=request.user, reason="missing_or_not_yours"
        )
        raise Http404
    services.revoke_api_token(actor=request.user, token=token)
    messages.success(request, _("The token is revoked."))
    return redirect("accounts:api_tokens")
