from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from yobikake.accounts.models import User
from yobikake.accounts.permissions import Role
from yobikake.calling import dispositions
from yobikake.intake.models import TargetList

_date = forms.DateInput(attrs={"type": "date"})
_time = forms.TimeInput(attrs={"type": "time"}, format="%H:%M")


class OutcomeForm(forms.Form):
    code = forms.SlugField(max_length=30)
    note = forms.CharField(max_length=1000, required=False, strip=True)
    callback_at = forms.DateTimeField(
        required=False,
        input_formats=["%Y-%m-%dT%H:%M"],
        label=_("Call back at"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def clean_code(self) -> str:
        code: str = self.cleaned_data["code"]
        if dispositions.by_code(code) is None:
            raise forms.ValidationError(_("Unknown outcome."))
        return code


class CampaignForm(forms.Form):
    """A new campaign over one of an insurer's lists; the calling period defaults to
    the insurer's contract for that fiscal year."""

    target_list = forms.ModelChoiceField(queryset=TargetList.objects.none(), label=_("List"))
    name = forms.CharField(label=_("Name"), max_length=100, required=False)
    starts = forms.DateField(label=_("Calling starts"), required=False, widget=_date)
    ends = forms.DateField(label=_("Calling ends"), required=False, widget=_date)
    window_start = forms.TimeField(label=_("Calls from"), initial="09:00", widget=_time)
    window_end = forms.TimeField(label=_("Calls until"), initial="20:00", widget=_time)
    saturdays = forms.BooleanField(label=_("Call on Saturdays"), required=False)
    max_attempts = forms.IntegerField(
        label=_("Maximum attempts"), min_value=1, max_value=10, initial=3
    )
    holdout_share = forms.DecimalField(
        label=_("Control group share (never called)"),
        min_value=Decimal("0"),
        max_value=Decimal("0.5"),
        decimal_places=2,
        initial=Decimal("0.10"),
    )
    script = forms.CharField(
        label=_("Talk script ({氏名} {保険者} {担当者} are filled in)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        lists = TargetList.objects.filter(state=TargetList.State.ACTIVE, campaigns__isnull=True)
        field = self.fields["target_list"]
        field.queryset = lists.select_related("insurer").order_by("insurer__number", "-fiscal_year")
        field.label_from_instance = lambda tl: (  # type: ignore[attr-defined]
            f"{tl.insurer.name} {tl.fiscal_year}年度（{tl.row_count}人）"
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("starts") and data.get("ends") and data["starts"] > data["ends"]:
            raise forms.ValidationError(_("The calling period ends before it starts."))
        start, end = data.get("window_start"), data.get("window_end")
        if start and end and start >= end:
            raise forms.ValidationError(_("The calling hours end before they start."))
        return data


class OperatorsForm(forms.Form):
    operators = forms.ModelMultipleChoiceField(
        queryset=User.objects.none(),
        label=_("Operators"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        operators = User.objects.filter(
            role_assignments__role=Role.OPERATOR,
            role_assignments__status="active",
            is_active=True,
        )
        self.fields["operators"].queryset = operators.distinct().order_by("username")
