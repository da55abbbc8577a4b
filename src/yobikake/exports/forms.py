from django import forms
from django.utils.translation import gettext_lazy as _


class InsurerKeyForm(forms.Form):
    public_key = forms.CharField(
        label=_("age public key"),
        max_length=100,
        help_text=_(
            "Make a key pair with age-keygen on a computer of your insurer's; register the "
            "public key (age1…) here and keep the private key there. Exports for your "
            "insurer are encrypted to it: nobody else can open them, the federation "
            "included."
        ),
        widget=forms.TextInput(attrs={"size": 70, "autocomplete": "off", "spellcheck": "false"}),
    )
