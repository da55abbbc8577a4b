from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.progress import Progress

from yobikake.tenancy.models import Insurer
from yobikake.vault import services
from yobikake.vault.models import IndexKey
from yobikake.vault.ports import KeyServiceError


class Command(BaseCommand):
    help = "The vault's keys: rotate them and rewrap what they wrap, while Yobikake runs."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        rotate = sub.add_parser(
            "rotate",
            help="Rotate keys in the key service and rewrap (all kinds unless some are named).",
        )
        rotate.add_argument("--insurers", action="store_true", help="insurers' index keys")
        rotate.add_argument(
            "--insurer", metavar="NUMBER", help="only this insurer's index key (its number)"
        )
        rotate.add_argument("--master", action="store_true", help="the local keyring's master key")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["insurer"]:
            if options["insurers"] or options["master"]:
                raise CommandError("--insurer rotates one insurer's key and nothing else")
            self._one_insurer(options["insurer"])
            return
        # A list's key pair lives in custody and is never rotated: its batches' wrapped
        # keys name no version (custody/keyring.py).
        chosen = {kind for kind in ("insurers", "master") if options[kind]}
        chosen = chosen or {"insurers", "master"}
        try:
            if "master" in chosen:
                self._master(explicit=options["master"])
            if "insurers" in chosen:
                self._rotate("insurer keys", IndexKey.objects.count(), services.rotate_insurer_keys)
        except KeyServiceError as exc:
            raise CommandError(f"key service: {exc}") from exc

    def _one_insurer(self, number: str) -> None:
        insurer = Insurer.objects.filter(number=number).first()
        if insurer is None:
            raise CommandError(f"no insurer has the number {number}")
        if not IndexKey.objects.filter(insurer=insurer).exists():
            raise CommandError(f"insurer {number} has no index key yet (no list loaded)")
        try:
            rotated = services.rotate_insurer_keys(insurer_id=insurer.pk)
        except KeyServiceError as exc:
            raise CommandError(f"key service: {exc}") from exc
        if not rotated:
            raise CommandError(f"the key service has no key for insurer {number}")
        self.stdout.write(f"insurer {number}: key rotated and its index key rewrapped")

    def _master(self, *, explicit: bool) -> None:
        try:
            services.rotate_master_key()
        except KeyServiceError:
            if explicit:
                raise
            self.stdout.write("master key: not ours to rotate (OpenBao); skipped")
            return
        self.stdout.write("master key: rotated; the keyring is sealed under the new one")

    def _rotate(self, label: str, total: int, rotate: Any) -> None:
        with Progress(transient=True) as progress:
            task = progress.add_task(f"rotating {label}", total=total)
            done = rotate(lambda: progress.advance(task))
        self.stdout.write(f"{label}: {done} rotated and rewrapped")
