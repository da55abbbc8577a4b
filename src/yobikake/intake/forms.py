from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from yobikake.intake.models import ListImport
from yobikake.tenancy.fiscal import FiscalYear


class UploadForm(forms.Form):
    fiscal_year = forms.TypedChoiceField(label=_("Fiscal year"), coerce=int)
    policy = forms.ChoiceField(
        label=_("When rows have errors"),
        choices=ListImport.Policy.choices,
        initial=ListImport.Policy.REJECT,
        widget=forms.RadioSelect,
    )
    existing = forms.ChoiceField(
        label=_("If a list for this year was already sent"),
        choices=[("", _("None has been sent")), *ListImport.Existing.choices],
        initial="",
        required=False,
        widget=forms.RadioSelect,
    )
    file = forms.FileField(
        label=_("List file (CSV, TSV or Excel)"),
        help_text=_("Shift_JIS (CP932) or UTF-8; the first row holds the column names."),
    )

    def __init__(self, *args: object, fiscal_years: list[int], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["fiscal_year"].choices = [
            (y, str(FiscalYear(y))) for y in sorted(fiscal_years, reverse=True)
        ]

    def too_large(self) -> forms.ValidationError:
        return too_large()


def too_large() -> forms.ValidationError:
    """The error for a file cut off at YOBIKAKE_UPLOAD_MAX_MB while it arrived."""
    return forms.ValidationError(
        _("The file is larger than %(mb)s MB.") % {"mb": settings.YOBIKAKE_UPLOAD_MAX_MB},
        code="too_large",
    )
