from django.apps import AppConfig


class IntakeConfig(AppConfig):
    name = "yobikake.intake"
    verbose_name = "対象者リスト"
