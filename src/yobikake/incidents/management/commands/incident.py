import csv
import json
from datetime import date
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from rich.console import Console
from rich.table import Table as RichTable

from yobikake.incidents import selectors, services
from yobikake.incidents.models import Incident
from yobikake.jp.wareki import fiscal_year_label
from yobikake.tenancy.models import Insurer


class Command(BaseCommand):
    help = "Incidents: scope a leaked file against every stored list; replay the 2023 drill."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        scope = sub.add_parser(
            "scope",
            help="Name every stored person a leaked file holds (CSV, TSV or XLSX, any "
            "headers), per insurer and fiscal year, through blind indexes only.",
        )
        scope.add_argument("file", type=Path, metavar="FILE")
        scope.add_argument("--title", default="", help="The incident's title.")
        scope.add_argument(
            "--aware-on",
            type=date.fromisoformat,
            default=None,
            metavar="YYYY-MM-DD",
            help="When the federation became aware (default today): the reporting "
            "deadlines run from it.",
        )
        scope.add_argument(
            "--not-malicious",
            action="store_true",
            help="No wrongful act involved: the final report is due in 30 days, not 60.",
        )
        scope.add_argument("--json", action="store_true", help="Print the result as JSON.")
        scope.add_argument(
            "--out",
            type=Path,
            metavar="DIR",
            help="Also write table.csv (list entries per insurer × fiscal year, and each "
            "insurer's persons), matches.csv (leaked row → target id, person, list, tier) "
            "and incident.json there.",
        )

        drill = sub.add_parser(
            "drill",
            help="Replay the 2023 incident on demo data: a sysadmin copies the database, "
            "tries a superuser reveal and an API scrape, then a leaked copy is scoped.",
        )
        drill.add_argument(
            "--rows", type=int, default=2000, help="Rows in the leaked copy (default 2000)."
        )
        drill.add_argument("--json", action="store_true", help="Print the result as JSON.")
        drill.add_argument(
            "--insider",
            action="store_true",
            help="Replay it as today's insider, with everything the application domain "
            "holds (database, home directory, credentials, the project's code): try every "
            "key found on every sealed value, ask the custodian for every person as the "
            "application does, and ask it for a bulk open. Prints people_opened, "
            "seconds_to_first_alert and where that critical custody alert went.",
        )
        drill.add_argument(
            "--custody-home",
            type=Path,
            metavar="DIR",
            help="With --insider: the custody home whose alert log (alerts.log) the drill "
            "reads to time the first alert (default $YOBIKAKE_HOME/custody).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action']}")(**options)

    def _scope(self, file: Path, title: str, aware_on: date | None, not_malicious: bool,
               json: bool, out: Path | None, **_: Any) -> None:  # fmt: skip
        if not file.is_file():
            raise CommandError(f"{file}: no such file.")
        incident = services.open_incident(
            actor=None,
            title=title or file.name,
            aware_on=aware_on or timezone.localdate(),
            malicious=not not_malicious,
            file_name=file.name,
            file_sha256=services.file_sha256(file),
        )
        console = Console(stderr=True)
        with console.status("Scoping…") as status:
            incident = services.run_scoping(
                incident, file, progress=lambda n: status.update(f"Scoping… {n:,} rows read")
            )
        summary = summary_of(incident)
        if out:
            write_out(incident, summary, out)
        if json:
            self.stdout.write(_json(summary))
        else:
            self._print(incident, summary)
        if incident.state != Incident.State.SCOPED:
            raise CommandError(f"The file could not be scoped: {incident.error_message}")

    def _drill(self, rows: int, json: bool, insider: bool, custody_home: Path | None,
               **_: Any) -> None:  # fmt: skip
        from yobikake.incidents import drill

        if insider:
            self._insider(json, custody_home)
            return
        try:
            report = drill.run(rows=rows)
        except drill.NotADemo:
            raise CommandError(
                "The drill runs only on a demo installation with lists loaded (yobikake demo)."
            ) from None
        result = drill.summary(report)
        if report.incident is not None:
            result["scoping"] = summary_of(report.incident)
        if json:
            self.stdout.write(_json(result))
            return
        console = Console()
        console.rule("1. The sysadmin copies the database")
        copy = result["copy"]
        console.print(
            f"Copy of every table: {copy['bytes']:,} bytes. Of {copy['values_looked_for']} "
            f"names, kana, phones and addresses of stored people, {copy['values_found']} "
            "are readable in it."
        )
        console.rule("2–3. What was stopped")
        for line in report.stopped:
            console.print(f"• {line}")
        console.rule("What was detected (alerts raised)")
        for line in report.detected:
            console.print(f"• {line}")
        console.rule("4. The leaked copy, scoped")
        if report.incident is not None:
            self._print(report.incident, result["scoping"])

    def _insider(self, json: bool, custody_home: Path | None) -> None:
        from yobikake.incidents import insider

        try:
            result = insider.run(custody_home=custody_home)
        except insider.NotADemo:
            raise CommandError(
                "The drill runs only on a demo installation with lists loaded (yobikake demo)."
            ) from None
        if json:
            self.stdout.write(_json(result))
        else:
            print_insider(Console(file=self.stdout), result)

    def _print(self, incident: Incident, summary: dict[str, Any]) -> None:
        console = Console()
        if incident.state != Incident.State.SCOPED:
            return
        console.print(
            f"Incident #{incident.pk}: {incident.rows:,} rows in {incident.seconds:.1f} s; "
            f"persons named: {incident.people:,}; list entries named: {incident.persons:,} "
            f"(a person on two years' lists is two); {incident.unmatched:,} rows matched "
            "no one."
        )
        console.print(f"Rows by confidence: {summary['tiers']}")
        table = RichTable(title="Affected list entries per insurer × fiscal year, and persons")
        table.add_column("Insurer")
        for year in summary["years"]:
            table.add_column(fiscal_year_label(year), justify="right")
        table.add_column("List entries", justify="right")
        table.add_column("Persons", justify="right")
        for row in summary["table"]:
            cells = [str(c) if c is not None else "" for c in row["entries"]]
            table.add_row(
                f"{row['number']} {row['name']}",
                *cells,
                str(row["list_entries"]),
                str(row["people"]),
            )
        table.add_row(
            "Total",
            *map(str, summary["totals"]),
            str(summary["list_entries"]),
            str(summary["people"]),
        )
        console.print(table)
        if summary["canaries"]:
            planted = RichTable(title="Canaries found: the lists they were planted in")
            for column in ("List", "Insurer", "Fiscal year", "Canaries", "Leaked rows"):
                planted.add_column(column)
            for entry in summary["canary_lists"]:
                year = fiscal_year_label(entry["fiscal_year"])
                rows = ", ".join(map(str, entry["rows"][:5]))
                planted.add_row(
                    f"#{entry['list_id']}", entry["insurer"], year, str(len(entry["rows"])), rows
                )
            console.print(planted)
        for entry in summary["exports"]:
            console.print(
                f"This file contains rows of export #{entry['approval_id']} (requested by "
                f"{entry['requested_by']} on {entry['requested_at'][:16]}, for insurer "
                f"{entry['insurer']}): leaked rows {', '.join(map(str, entry['leak_rows'][:5]))}."
            )
        d = summary["deadlines"]
        console.print(
            f"Preliminary report (速報) due {d['preliminary_from']}–{d['preliminary_by']}; "
            f"final report (確報) by {d['final_by']}."
        )


def print_insider(console: Console, result: dict[str, Any]) -> None:
    keys, ask, bulk = result["moves"]
    console.rule("1. Every key of the application domain on every sealed value")
    console.print(
        f"{keys['values_read']:,} sealed values of {keys['people_read']:,} people read from "
        f"the database; {keys['files_read']} files of the home read; "
        f"{keys['symmetric_keys']} symmetric keys and {len(keys['private_keys'])} private "
        f"keys found or unwrapped. People opened: {keys['people_opened']}."
    )
    for line in keys["openbao"]:
        console.print(f"• OpenBao: {line}")
    console.rule("2. Asking the custodian as the application does, in a tight loop")
    if "holder" in ask:
        holder = ask["holder"]
        console.print(
            f"As holder {holder['user_id']} (grant #{holder['grant_id']}, {holder['purpose']}); "
            f"{ask['canaries']}. {ask['people_asked']:,} people asked for in "
            f"{ask['seconds']} s: {ask['people_opened']} opened, then stopped by "
            f"{ask['stopped_by']}."
        )
        for line in ask["adapted"]:
            console.print(f"• {line}")
        console.print(f"Refusals: {ask['refusals']}")
    else:
        console.print(ask["tried"])
    console.rule("3. Bulk")
    for attempt in bulk["attempts"]:
        console.print(f"• {attempt['tried']}: {attempt['result']}")
        if "means" in attempt:
            console.print(f"  {attempt['means']}")
    console.print(f"Custody alerts these raised: {bulk['custody_alerts'] or 'none'}")
    console.rule("The figures")
    alert = result["first_alert"]
    console.print(f"people_opened: {result['people_opened']}")
    console.print(f"people_opened_before_first_alert: {result['people_opened_before_first_alert']}")
    seconds = result["seconds_to_first_alert"]
    console.print(f"seconds_to_first_alert: {'none' if seconds is None else seconds}")
    if alert:
        console.print(
            f"First critical custody alert: #{alert['id']} {alert['kind']} "
            f"({alert['label']}), ledger entry #{alert['ledger_seq']}, in {alert['file']}"
        )
    elif standing := result["standing_alert"]:
        console.print(
            f"No new critical custody alert: #{standing['id']} {standing['kind']}, raised "
            f"{standing['seconds_before_the_drill']} s before the drill, holds repeats back."
        )
    else:
        console.print("No critical custody alert.")
    console.print(f"Custody alerts raised: {result['custody_alerts']}")
    console.print(
        f"In the application's records: {result['application_events']} audit events, "
        f"{result['application_alerts']} alerts."
    )
    console.print(f"Measured by: {result['measured_by']}")


def summary_of(incident: Incident) -> dict[str, Any]:
    table = selectors.table(incident)
    d = selectors.deadlines(incident)
    return {
        "incident": incident.pk,
        "state": str(incident.state),
        "error": incident.error_code,
        "rows": incident.rows,
        "seconds": incident.seconds,
        "items": incident.items,
        "people": incident.people,
        "list_entries": incident.persons,
        "tiers": incident.tiers,
        "unmatched": incident.unmatched,
        "years": table.years,
        "table": [
            {
                "number": ins.number,
                "name": ins.name,
                "entries": counts,
                "list_entries": entries,
                "people": people,
            }
            for ins, counts, entries, people in table.rows
        ],
        "totals": table.totals,
        "canaries": [
            {
                "leak_row": m.leak_row,
                "list_id": m.target_list_id,
                "insurer": m.insurer_id,
                "fiscal_year": m.fiscal_year,
            }
            for m in selectors.canaries_found(incident)
        ],
        "canary_lists": _canary_lists(incident),
        "exports": [
            {
                "approval_id": e.approval_id,
                "insurer": e.insurer.name if e.insurer else "",
                "requested_by": e.approval.requested_by.username if e.approval else "",
                "requested_at": e.approval.requested_at.isoformat() if e.approval else "",
                "leak_rows": e.leak_rows,
            }
            for e in selectors.exports_found(incident)
        ],
        "deadlines": {
            "preliminary_from": d.preliminary_from.isoformat(),
            "preliminary_by": d.preliminary_by.isoformat(),
            "final_by": d.final_by.isoformat(),
        },
    }


def _canary_lists(incident: Incident) -> list[dict[str, Any]]:
    lists: dict[int, dict[str, Any]] = {}
    names = dict(Insurer.objects.values_list("pk", "name"))
    for m in selectors.canaries_found(incident):
        entry = lists.setdefault(
            m.target_list_id,
            {"list_id": m.target_list_id, "insurer": names.get(m.insurer_id, ""),
             "fiscal_year": m.fiscal_year, "rows": []},
        )  # fmt: skip
        entry["rows"].append(m.leak_row)
    return list(lists.values())


def _json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, ensure_ascii=False)


def write_out(incident: Incident, summary: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "incident.json").write_text(_json(summary) + "\n", encoding="utf-8")
    with (out / "table.csv").open("w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f)
        writer.writerow(["insurer_number", "insurer", *summary["years"], "list_entries", "people"])
        for row in summary["table"]:
            writer.writerow(
                [row["number"], row["name"], *row["entries"], row["list_entries"], row["people"]]
            )
        writer.writerow(
            ["", "total", *summary["totals"], summary["list_entries"], summary["people"]]
        )
    with (out / "matches.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["leak_row", "target_id", "person", "list_id", "insurer_id",
                         "fiscal_year", "tier", "keys", "canary"])  # fmt: skip
        for m in incident.matches.order_by("leak_row", "target_id").iterator(chunk_size=5000):
            writer.writerow([m.leak_row, m.target_id, m.person, m.target_list_id, m.insurer_id,
                             m.fiscal_year, m.tier, m.keys, int(m.canary)])  # fmt: skip
