import os

from django.core.asgi import get_asgi_application

from flexmeter.process import freeze_loaded_objects

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flexmeter.settings")
application = get_asgi_application()

freeze_loaded_objects()
