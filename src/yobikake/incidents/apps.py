from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "yobikake.incidents"
    verbose_name = "インシデント"
