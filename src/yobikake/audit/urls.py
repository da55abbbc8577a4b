from django.urls import path

from yobikake.audit import views

app_name = "audit"
urlpatterns = [
    path("audit/events/", views.event_list, name="event_list"),
    path("audit/alerts/", views.alert_list, name="alert_list"),
    path(
        "audit/alerts/<int:alert_id>/acknowledge/",
        views.decide_alert,
        {"decision": "acknowledge"},
        name="acknowledge",
    ),
    path(
        "audit/alerts/<int:alert_id>/close/",
        views.decide_alert,
        {"decision": "close"},
        name="close",
    ),
    path("audit/checkpoints/", views.checkpoint_list, name="checkpoint_list"),
]
