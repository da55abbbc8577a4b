from django import forms
from django.utils.translation import gettext_lazy as _

from yobikake.calling import dispositions


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
