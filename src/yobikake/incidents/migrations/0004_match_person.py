"""Each match names its person, numbered within the incident. Incidents scoped before
get the numbers scoping gives: a target's insured-number index, else its kana + birth
date index, within its insurer, else the target itself (a target whose list has since
been shredded counts as a person of its own)."""

from django.db import migrations, models

BATCH = 5000


def number_persons(apps, schema_editor):
    Match = apps.get_model("incidents", "Match")
    Target = apps.get_model("intake", "Target")
    incident_ids = Match.objects.values_list("incident_id", flat=True).distinct()
    for incident_id in list(incident_ids):
        matches = list(Match.objects.filter(incident_id=incident_id).order_by("leak_row", "pk"))
        keys = {}
        for start in range(0, len(matches), BATCH):
            ids = [m.target_id for m in matches[start : start + BATCH]]
            for target_id, insurer_id, insured, kana_birth in Target.objects.filter(
                pk__in=ids
            ).values_list("pk", "insurer_id", "idx_insured_number", "idx_kana_birth"):
                key = insured or kana_birth
                if key is not None:
                    keys[target_id] = (insurer_id, bytes(key))
        numbers = {}
        for match in matches:
            match.person = numbers.setdefault(
                keys.get(match.target_id, match.target_id), len(numbers) + 1
            )
        Match.objects.bulk_update(matches, ["person"], batch_size=BATCH)


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0003_watermarks"),
        ("intake", "0005_address_indexes_read_in_memory"),
    ]

    operations = [
        migrations.AddField(
            model_name="match",
            name="person",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(number_persons, migrations.RunPython.noop),
    ]
