from django import forms
from django.utils.translation import gettext_lazy as _


class EventSearchForm(forms.Form):
    user = forms.CharField(label=_("User (name or id)"), required=False, max_length=150)
    tag = forms.CharField(label=_("Tag (or its beginning)"), required=False, max_length=64)
    insurer = forms.IntegerField(label=_("Insurer id"), required=False, min_value=1)
    since = forms.DateTimeField(
        label=_("From"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    until = forms.DateTimeField(
        label=_("Until"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )


class CloseAlertForm(forms.Form):
    note = forms.CharField(label=_("What was found"), widget=forms.Textarea(attrs={"rows": 3}))
