from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "yobikake.reports"
    verbose_name = "集計・報告"
