from django import forms
from django.utils.translation import gettext_lazy as _


class ResultsForm(forms.Form):
    file = forms.FileField(
        label=_("Checkup results (CSV, TSV, Excel, or standard-format XML or ZIP)"),
        help_text=_(
            "One row per person who took the checkup: the insured number, or the kana name "
            "and date of birth, and the day taken (受診日). Or the national standard "
            "electronic format: one CDA document, or the ZIP of a submission."
        ),
    )
