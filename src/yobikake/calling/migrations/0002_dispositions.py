from django.db import migrations

from yobikake.calling.dispositions import seed


def forwards(apps, schema_editor):
    seed(apps.get_model("calling", "Disposition"))


class Migration(migrations.Migration):
    dependencies = [("calling", "0001_initial")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
