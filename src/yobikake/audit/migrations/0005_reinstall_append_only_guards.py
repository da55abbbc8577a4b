from django.db import migrations

from yobikake.audit import guards


def install(apps, schema_editor):
    # 0003 altered audit_event, and SQLite alters a table by rebuilding it, which drops
    # its triggers: put them back. A later migration that alters an append-only table
    # needs the same step after it (the start-up check refuses to run without them).
    guards.install(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_event_subject_index")]
    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
