"""The `yobikake` command: Django's management commands with Yobikake's settings preset."""

import os
import sys

# Commands that start a long-running process, checked as they start (audit/startup.py);
# the web server is checked in wsgi.py, `demo` and `audit verify` in their own commands.
_STARTS_CHECKED = {"db_worker": "worker"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yobikake.settings")
    import django
    from django.core.management import execute_from_command_line

    process = _STARTS_CHECKED.get(sys.argv[1]) if len(sys.argv) > 1 else None
    if process is not None:
        django.setup()
        from yobikake.audit.startup import StartRefused, start_process

        try:
            start_process(process)
        except StartRefused as refused:
            sys.exit(f"yobikake {sys.argv[1]}: refused to start: {refused}")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
