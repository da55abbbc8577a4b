from django.db import migrations

from yobikake.audit import guards


def install(apps, schema_editor):
    # The guards as they now are: on SQLite an insert over an existing key is refused
    # (REPLACE deletes without firing the delete trigger); on PostgreSQL they fire ALWAYS,
    # whatever the session's replication role.
    guards.install(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_reinstall_append_only_guards")]
    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
