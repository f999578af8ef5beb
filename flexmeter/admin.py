"""Django admin for environments and API keys.

API keys: the hash is never shown. Creating a key here generates it through `api_key_create` and shows the raw key
exactly once, in the success message (it is not stored anywhere readable afterwards). Keys are revoked with the
list action rather than deleted, so `last used` stays on record. Environments cannot be deleted from admin: that
would cascade to every meter, feature, customer and event in them.
"""

from django.contrib import admin, messages
from django.http import HttpRequest

from flexmeter.models import ApiKey, Environment
from flexmeter.services import api_key_create, api_key_revoke


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "public_id", "created_at")
    search_fields = ("name", "slug", "public_id")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("public_id", "created_at")

    def has_delete_permission(self, request: HttpRequest, obj: Environment | None = None) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "environment", "created_at", "last_used_at", "revoked_at", "is_active")
    list_filter = ("environment", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix")
    list_select_related = ("environment",)
    actions = ("revoke_keys",)

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None):
        if obj is None:
            return ("environment", "name")
        return ("name", "environment", "prefix", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None):
        if obj is None:
            return ()
        return ("environment", "prefix", "created_at", "last_used_at", "revoked_at")

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    @admin.display(boolean=True, description="active")
    def is_active(self, obj: ApiKey) -> bool:
        return obj.is_active

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        api_key, raw_key = api_key_create(environment=obj.environment, name=obj.name)
        obj.pk = api_key.pk
        obj.refresh_from_db()
        self.message_user(
            request,
            f"API key for {api_key.environment.name}: {raw_key} — copy it now, it will not be shown again.",
            messages.WARNING,
        )

    @admin.action(description="Revoke selected API keys")
    def revoke_keys(self, request: HttpRequest, queryset) -> None:
        keys = list(queryset.filter(revoked_at__isnull=True))
        for api_key in keys:
            api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {len(keys)} API key(s).", messages.SUCCESS)
