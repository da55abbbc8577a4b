from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from yobikake.accounts.views import home
from yobikake.api import api


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("", home, name="home"),
    path("", include("yobikake.accounts.urls")),
    path("", include("yobikake.tenancy.urls")),
    path("", include("yobikake.audit.urls")),
    path("", include("yobikake.intake.urls")),
    path("", include("yobikake.calling.urls")),
    path("", include("yobikake.incidents.urls")),
    path("", include("yobikake.exports.urls")),
    path("", include("yobikake.reports.urls")),
    path("inquiry/", include("yobikake.incidents.inquiry_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", api.urls),
    path("healthz", healthz, name="healthz"),
]
