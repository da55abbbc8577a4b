from django.apps import AppConfig


class VaultConfig(AppConfig):
    name = "yobikake.vault"
    verbose_name = "保管庫"
