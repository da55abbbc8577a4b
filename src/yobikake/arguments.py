"""Argument types the commands share, so that a bad date or calling window on any command
line is refused the same way, before anything runs."""

import argparse
from datetime import date, time

from yobikake.tenancy.hours import parse_hours


def day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a date (YYYY-MM-DD)") from None


def hours(text: str) -> tuple[time, time]:
    try:
        return parse_hours(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
