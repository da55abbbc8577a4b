from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "yobikake.accounts"
    verbose_name = "アカウント"
