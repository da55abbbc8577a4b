from django.apps import AppConfig


class CallingConfig(AppConfig):
    name = "yobikake.calling"
    verbose_name = "架電"
