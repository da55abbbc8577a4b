"""The inquiry desk's one page: enter what the caller states, read the answer out — for
every scoped incident at once (see `incidents/inquiry.py`)."""

from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from yobikake.accounts.decorators import permission_required
from yobikake.accounts.permissions import Permission
from yobikake.incidents import inquiry

# What the caller states is theirs: the browser must not remember or offer it again.
_PRIVATE = {"autocomplete": "off", "spellcheck": "false"}
# Which field a refusal of the statement belongs to (others are the form's).
_FIELD_OF = {
    "no_kana": "kana",
    "kana_not_kana": "kana",
    "bad_birth_date": "birth_date",
    "bad_phone": "phone",
}


class InquiryForm(forms.Form):
    kana = forms.CharField(
        label=_("Name in kana"),
        max_length=100,
        required=False,
        widget=forms.TextInput(attrs=_PRIVATE | {"autofocus": True}),
    )
    birth_date = forms.CharField(
        label=_("Date of birth"),
        max_length=40,
        required=False,
        help_text=_("As the caller says it: 1970/3/2, S45.3.2, 昭和45年3月2日…"),
        widget=forms.TextInput(attrs=_PRIVATE),
    )
    phone = forms.CharField(
        label=_("Phone"),
        max_length=40,
        required=False,
        widget=forms.TextInput(attrs=_PRIVATE | {"inputmode": "tel"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            inquiry.stated_parts(
                kana=data.get("kana", ""),
                birth_date=data.get("birth_date", ""),
                phone=data.get("phone", ""),
            )
        except inquiry.UnusableStatement as exc:
            self.add_error(_FIELD_OF.get(exc.code), str(exc))
        return data


@never_cache
@permission_required(Permission.INCIDENT_INQUIRY_LOOKUP)
@require_http_methods(["GET", "HEAD", "POST"])
def desk(request: HttpRequest) -> HttpResponse:
    """GET: the empty form. POST: the answer, and the form emptied for the next caller;
    the answer is never put in a URL or the session."""
    answer, status = None, 200
    form = InquiryForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            answer = inquiry.lookup(
                actor=request.user,
                kana=form.cleaned_data["kana"],
                birth_date=form.cleaned_data["birth_date"],
                phone=form.cleaned_data["phone"],
            )
        except inquiry.InquiryRefused as exc:
            form.add_error(None, str(exc))
            status = 403
        else:
            form = InquiryForm()
    context = {
        "form": form,
        "answer": answer,
        "any_incident": inquiry.answerable_incidents().exists(),
    }
    return render(request, "inquiry/desk.html", context, status=status)
