from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from yobikake.incidents.reporting import REPORT_ITEMS, TEXT_MAX


class IncidentForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200)
    aware_on = forms.DateField(
        label=_("Date of awareness"),
        help_text=_(
            "The day the federation learnt of the leak: the reporting deadlines run from it."
        ),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    malicious = forms.BooleanField(
        label=_("Caused by a wrongful act"),
        required=False,
        initial=True,
        help_text=_("Then the final report is due within 60 days instead of 30."),
    )
    file = forms.FileField(
        label=_("Leaked file (CSV, TSV or Excel)"),
        help_text=_(
            "Any layout, headers or none, Shift_JIS (CP932) or UTF-8. The file is not kept: "
            "it is compared through blind indexes and only its checksum is recorded."
        ),
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["aware_on"].initial = timezone.localdate()


class ScopeAgainForm(forms.Form):
    """The leaked file of an incident whose scoping failed, uploaded again."""

    file = forms.FileField(
        label=_("The same leaked file"),
        help_text=_(
            "The file is not kept, so it is uploaded again; it must be the file the "
            "incident was opened with (its SHA-256 is compared)."
        ),
    )


class ReportForm(forms.Form):
    """The regulator report's free-text items, one text area each."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        for number, (key, label) in enumerate(REPORT_ITEMS, start=1):
            if key:
                self.fields[key] = forms.CharField(
                    label=f"({number}) {label}",
                    required=False,
                    max_length=TEXT_MAX,
                    widget=forms.Textarea(attrs={"rows": 4}),
                )
