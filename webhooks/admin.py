from django.contrib import admin

from webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["public_id", "url", "environment", "enabled", "failing_since", "disabled_at"]
    list_filter = ["enabled", "environment"]
    search_fields = ["public_id", "url", "description"]
    readonly_fields = ["public_id", "failing_since", "disabled_at", "disabled_reason", "created_at", "updated_at"]
    exclude = ["secret"]


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ("attempted_at", "status_code", "duration_ms", "error", "response_excerpt", "succeeded")
    readonly_fields = fields


@admin.register(WebhookMessage)
class WebhookMessageAdmin(admin.ModelAdmin):
    list_display = ["public_id", "event_type", "endpoint", "status", "attempts", "next_attempt_at", "created_at"]
    list_filter = ["status", "event_type"]
    search_fields = ["public_id"]
    readonly_fields = [
        "public_id",
        "environment",
        "endpoint",
        "event_type",
        "payload",
        "attempts",
        "claim_token",
        "last_attempt_at",
        "delivered_at",
        "created_at",
    ]
    inlines = [WebhookAttemptInline]
