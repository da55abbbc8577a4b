"""The error report of an import: where and why, in Japanese and English, never values."""

import csv
import io

from django.utils import translation

from yobikake.intake.models import ListImport
from yobikake.intake.reading import FIELD_LABELS
from yobikake.intake.validation import FINDING_MESSAGES

COLUMNS = ("row", "column", "cell", "code", "message_ja", "message_en", "same_as_row")


def _in(language: str, text: object) -> str:
    with translation.override(language):
        return str(text)


def findings_csv(list_import: ListImport) -> str:
    """UTF-8 with a BOM, so that Excel opens the Japanese correctly."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    if list_import.error_code:
        writer.writerow(["", "", "", list_import.error_code, list_import.error_message, "", ""])
    for finding in list_import.findings.all():
        label = FIELD_LABELS.get(finding.field, "")
        message = FINDING_MESSAGES.get(finding.code, finding.code)
        writer.writerow(
            [
                finding.row,
                _in("ja", label),
                finding.cell,
                finding.code,
                _in("ja", message),
                _in("en", message),
                finding.ref_row or "",
            ]
        )
    if list_import.findings_count > list_import.findings.count():
        more = list_import.findings_count - list_import.findings.count()
        writer.writerow(["", "", "", "truncated", f"ほか {more} 件", f"{more} more", ""])
    return out.getvalue()
