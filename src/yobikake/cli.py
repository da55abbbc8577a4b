"""The `yobikake` command: Django's management commands with Yobikake's settings preset.
Processes that must check their start (audit/startup.py) do it themselves, so they are
checked however they are started (`yobikake`, `django-admin`, `python -m django`)."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yobikake.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
