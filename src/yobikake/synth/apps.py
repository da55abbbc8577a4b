from django.apps import AppConfig


class SynthConfig(AppConfig):
    name = "yobikake.synth"
    verbose_name = "合成データ"
