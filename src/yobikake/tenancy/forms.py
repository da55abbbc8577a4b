from django import forms
from django.utils.translation import gettext_lazy as _

from yobikake.tenancy.models import BillingRule


class BillingTermsForm(forms.Form):
    unit_price_yen = forms.IntegerField(label=_("Unit price (yen per case)"), min_value=0)
    billing_rule = forms.ChoiceField(label=_("Billing rule"), choices=BillingRule.choices)
    unanswered_tries = forms.IntegerField(
        label=_("Tries without reaching the person that make a case"),
        min_value=1,
        max_value=20,
        initial=3,
    )
