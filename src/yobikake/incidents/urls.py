from django.urls import path

from yobikake.incidents import views

app_name = "incidents"
urlpatterns = [
    path("incidents/", views.incident_list, name="incident_list"),
    path("incidents/new/", views.incident_new, name="incident_new"),
    path("incidents/<int:incident_id>/", views.incident_detail, name="incident_detail"),
    path("incidents/<int:incident_id>/status/", views.incident_status, name="incident_status"),
    path("incidents/<int:incident_id>/scope/", views.scope_again, name="scope_again"),
    path(
        "incidents/<int:incident_id>/notification/<int:insurer_id>/",
        views.request_notification,
        name="request_notification",
    ),
    path("incidents/<int:incident_id>/report/", views.report, name="report"),
    path("incidents/<int:incident_id>/report/edit/", views.report_edit, name="report_edit"),
]
