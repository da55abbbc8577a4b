from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "yobikake.audit"
    verbose_name = "監査ログ"
