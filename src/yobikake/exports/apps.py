from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "yobikake.exports"
    verbose_name = "データ出力"
