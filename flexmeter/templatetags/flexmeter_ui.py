"""Template helpers for the dashboard: inline icons, query-string editing for filters and pagination, units."""

import json

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

register = template.Library()

# Hand-drawn 24×24 stroke icons (currentColor), kept inline so the dashboard needs no icon font or CDN.
ICON_PATHS = {
    "logo": ('<path d="M4 20V10"/>', '<path d="M10 20V4"/>', '<path d="M16 20v-7"/>', '<path d="M22 20H2"/>'),
    "features": (
        '<rect x="3" y="3" width="7" height="7" rx="1.5"/>',
        '<rect x="14" y="3" width="7" height="7" rx="1.5"/>',
        '<rect x="3" y="14" width="7" height="7" rx="1.5"/>',
        '<rect x="14" y="14" width="7" height="7" rx="1.5"/>',
    ),
    "meters": ('<path d="M12 14l4-4"/>', '<path d="M3.3 19a10 10 0 1 1 17.4 0"/>', '<circle cx="12" cy="14" r="1.2"/>'),
    "customers": (
        '<circle cx="9" cy="8" r="3.5"/>',
        '<path d="M2.5 20a6.5 6.5 0 0 1 13 0"/>',
        '<path d="M16 4.5a3.5 3.5 0 0 1 0 7"/>',
        '<path d="M18 14.5a6.5 6.5 0 0 1 3.5 5.5"/>',
    ),
    "events": ('<path d="M3 12h4l3-8 4 16 3-8h4"/>',),
    "usage": ('<path d="M3 3v18h18"/>', '<path d="M7 15l4-4 3 3 6-7"/>'),
    "key": (
        '<circle cx="7.5" cy="15.5" r="4.5"/>',
        '<path d="M10.7 12.3 20 3"/>',
        '<path d="m16 7 3 3"/>',
        '<path d="m18.5 4.5 2 2"/>',
    ),
    "layers": ('<path d="M12 3 2 8l10 5 10-5-10-5z"/>', '<path d="m2 16 10 5 10-5"/>'),
    "plus": ('<path d="M12 5v14"/>', '<path d="M5 12h14"/>'),
    "search": ('<circle cx="11" cy="11" r="7"/>', '<path d="m20 20-3.5-3.5"/>'),
    "check": ('<path d="M20 6 9 17l-5-5"/>',),
    "x": ('<path d="M18 6 6 18"/>', '<path d="m6 6 12 12"/>'),
    "menu": ('<path d="M4 6h16"/>', '<path d="M4 12h16"/>', '<path d="M4 18h16"/>'),
    "info": ('<circle cx="12" cy="12" r="9"/>', '<path d="M12 16v-4"/>', '<path d="M12 8h.01"/>'),
    "alert": (
        '<path d="M10.3 3.9 1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z"/>',
        '<path d="M12 9v4"/>',
        '<path d="M12 17h.01"/>',
    ),
    "copy": (
        '<rect x="9" y="9" width="12" height="12" rx="2"/>',
        '<path d="M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1"/>',
    ),
    "arrow-left": ('<path d="M19 12H5"/>', '<path d="m12 19-7-7 7-7"/>'),
    "arrow-right": ('<path d="M5 12h14"/>', '<path d="m12 5 7 7-7 7"/>'),
    "edit": ('<path d="M12 20h9"/>', '<path d="M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4z"/>'),
    "archive": (
        '<rect x="2" y="3" width="20" height="5" rx="1"/>',
        '<path d="M4 8v11a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8"/>',
        '<path d="M10 12h4"/>',
    ),
    "trash": (
        '<path d="M3 6h18"/>',
        '<path d="M19 6l-1 14a2 2 0 0 1-2 2H8a2 2 0 0 1-2-2L5 6"/>',
        '<path d="M9 6V4a1 1 0 0 1 1-1h4a1 1 0 0 1 1 1v2"/>',
    ),
    "logout": (
        '<path d="M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4"/>',
        '<path d="m16 17 5-5-5-5"/>',
        '<path d="M21 12H9"/>',
    ),
    "send": ('<path d="m22 2-7 20-4-9-9-4z"/>', '<path d="M22 2 11 13"/>'),
    "filter": ('<path d="M3 4h18l-7 8.5V19l-4 2v-8.5z"/>',),
    "book": ('<path d="M4 19.5A2.5 2.5 0 0 1 6.5 17H20V3H6.5A2.5 2.5 0 0 0 4 5.5z"/>', '<path d="M4 19.5V21h16v-4"/>'),
}


@register.simple_tag
def icon(name: str, css_class: str = "") -> str:
    paths = "".join(ICON_PATHS[name])
    class_attr = format_html(' class="{}"', css_class) if css_class else ""
    return mark_safe(
        f'<svg{class_attr} width="16" height="16" viewBox="0 0 24 24" fill="none" stroke="currentColor" '
        f'stroke-width="1.9" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">{paths}</svg>'
    )


@register.simple_tag(takes_context=True)
def query_replace(context, **changes) -> str:
    """The current query string with some parameters replaced (None or "" removes them): `?q=x&page=2`."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.filter
def compact_json(value) -> str:
    """`{"region": "eu"}` on one line, as an API user would write it (not Python's repr)."""
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False, default=str)


@register.filter
def initials(user) -> str:
    name = user.get_full_name() or user.get_username()
    return name[:2]


@register.simple_tag
def described_widget(field, help_text: str = "") -> str:
    """The field's widget tied to the text around it: `aria-describedby` names the help (`<id>_helptext`) and the
    errors (`<id>_error`) that templates/partials/field.html renders, and `aria-invalid` marks a field in error.

    Django adds these only for a form field's own `help_text`; help written in the template needs them too."""
    attrs = {}
    described_by = []
    if help_text or field.help_text:
        described_by.append(f"{field.auto_id}_helptext")
    if field.errors:
        described_by.append(f"{field.auto_id}_error")
        attrs["aria-invalid"] = "true"
    if described_by and field.auto_id:
        attrs["aria-describedby"] = " ".join(described_by)
    return field.as_widget(attrs=attrs)
