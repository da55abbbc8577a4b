from django import template

register = template.Library()


@register.filter
def percent(share: float | None) -> str:
    """0.3125 → "31.3%"."""
    return "" if share is None else f"{share * 100:.1f}%"


@register.filter
def points(difference: float | None) -> str:
    """A difference of proportions in percentage points, signed: 0.05 → "+5.0"."""
    return "" if difference is None else f"{difference * 100:+.1f}"


@register.filter
def p_value(value: float | None) -> str:
    if value is None:
        return ""
    return "< 0.001" if value < 0.001 else f"{value:.3f}"
