from django.http import HttpRequest


def environments(request: HttpRequest) -> dict:
    """The environment switcher's choices, evaluated lazily so pages that do not render it pay nothing."""
    from flexmeter.models import Environment

    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"all_environments": Environment.objects.all, "current_environment": getattr(request, "environment", None)}
