from django.db import migrations

from yobikake.audit import guards


def install(apps, schema_editor):
    guards.install(schema_editor.connection)
    apps.get_model("audit", "ChainHead").objects.get_or_create(pk=1)


def remove(apps, schema_editor):
    guards.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(install, remove)]
