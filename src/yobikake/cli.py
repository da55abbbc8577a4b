"""The `yobikake` command: Django's management commands with Yobikake's settings preset.
Processes that must check their start (audit/startup.py) do it themselves, so they are
checked however they are started (`yobikake`, `django-admin`, `python -m django`).

Every command run through `yobikake` first has its compiled code checked against its
source (before Django's system checks import every view), and every one that does not
check its own start (`shell` and `dbshell` included) records its start here: the
settings and code it runs with, on the record and compared like a server's."""

import os
import sys

# Checked by themselves: the worker, the demo, the servers (as they load yobikake.wsgi),
# and `audit verify` and `sweep`.
_CHECK_THEMSELVES = {"db_worker", "demo", "runserver", "testserver", "audit verify", "audit sweep"}
# `migrate` runs before the log exists, or before its tables match the code it brings.
_NOT_RECORDED = {"migrate"}
_NOTHING_TO_RUN = {"help", "version"}


def _start(argv: list[str]) -> None:
    """Check (and record) the start of the command in `argv`, if it runs one."""
    if len(argv) < 2 or argv[1].startswith("-") or argv[1] in _NOTHING_TO_RUN:
        return
    command = argv[1]
    itself = command in _CHECK_THEMSELVES or " ".join(argv[1:3]) in _CHECK_THEMSELVES
    _check_start(command, record=not itself and command not in _NOT_RECORDED)


def _check_start(command: str, *, record: bool) -> None:
    import django
    from django.core.management.base import CommandParser, handle_default_options

    # As Django's own command line reads them, before the settings are loaded.
    parser = CommandParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--settings")
    parser.add_argument("--pythonpath")
    options, _ = parser.parse_known_args(sys.argv[2:])
    handle_default_options(options)
    django.setup()
    from django.db import DatabaseError

    from yobikake.audit.startup import StartRefused, start_command

    try:
        start_command(command, record=record)
    except StartRefused as refused:
        sys.exit(f"yobikake {command}: refused to start: {refused}")
    except DatabaseError as error:
        sys.exit(f"yobikake {command}: its start cannot be recorded in the audit log: {error}")


def main() -> None:
    if sys.argv[1:2] == ["custodian"]:
        # The custody domain's commands: no Django, none of the application's settings,
        # and so none of the checks above, which are the application's.
        from yobikake.custody import cli as custody_cli

        custody_cli.main(sys.argv[2:])
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yobikake.settings")
    from django.core.management import execute_from_command_line

    _start(sys.argv)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
