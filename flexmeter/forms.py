"""Dashboard forms for settings pages: API keys and environments."""

from django import forms
from django.utils.text import slugify

from flexmeter.models import Environment


def named_select(name: str) -> forms.Select:
    """A dropdown with an accessible name, for filter bars that show no `<label>` (the options say what it filters,
    but a screen reader announces only the selected one)."""
    return forms.Select(attrs={"aria-label": name})


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "e.g. backend-production", "autocomplete": "off"}),
        help_text="A label to recognise the key by; the secret itself is shown only once.",
    )


class EnvironmentCreateForm(forms.Form):
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"placeholder": "e.g. Sandbox"}))
    slug = forms.SlugField(
        max_length=50,
        required=False,
        help_text="Lower case letters, digits and dashes. Derived from the name when left empty.",
        widget=forms.TextInput(attrs={"placeholder": "slug (optional)"}),
    )

    def clean(self):
        cleaned = super().clean()
        name = cleaned.get("name", "")
        slug = cleaned.get("slug") or slugify(name)
        if name and not slug:
            self.add_error("slug", "Choose a slug: the name has no letters or digits to derive one from.")
        elif slug and Environment.objects.filter(slug=slug).exists():
            self.add_error("slug" if cleaned.get("slug") else "name", f"An environment with slug “{slug}” exists.")
        cleaned["slug"] = slug
        return cleaned


class EnvironmentSwitchForm(forms.Form):
    environment = forms.ModelChoiceField(queryset=Environment.objects.all())
    next = forms.CharField(required=False)
