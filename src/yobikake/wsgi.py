import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yobikake.settings")
application = get_wsgi_application()

from yobikake.audit.startup import start_process  # noqa: E402 - needs the apps loaded

# Refuses (raises) without the audit log's append-only guards: the server does not start.
start_process("web")

from yobikake.custody.protocol import Heartbeat  # noqa: E402
from yobikake.vault.heartbeat import beat_in_background  # noqa: E402

# The custodian alerts when the application goes quiet (custody/watch.py).
beat_in_background(Heartbeat.APPLICATION)
