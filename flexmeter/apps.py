from django.apps import AppConfig


class FlexmeterConfig(AppConfig):
    name = "flexmeter"
    verbose_name = "Environments and access"
