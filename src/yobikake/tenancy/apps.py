from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "yobikake.tenancy"
    verbose_name = "保険者・契約"
