from django.urls import path

from yobikake.reports import views

app_name = "reports"
urlpatterns = [
    path("campaigns/<int:campaign_id>/effect/", views.effect, name="effect"),
    *(
        path(
            f"campaigns/<int:campaign_id>/effect.{fmt}",
            views.effect_download,
            {"fmt": fmt},
            name=f"effect_{fmt}",
        )
        for fmt in ("csv", "xlsx")
    ),
    path("effect/", views.summary, name="effect_summary"),
    path("results/upload/", views.results_upload, name="results_upload"),
]
