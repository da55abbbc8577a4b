from django.urls import path

from yobikake.intake import views

app_name = "intake"
urlpatterns = [
    path("lists/", views.list_index, name="list_index"),
    path("lists/upload/", views.upload, name="upload"),
    path("lists/imports/<int:import_id>/", views.import_detail, name="import_detail"),
    path("lists/imports/<int:import_id>/status/", views.import_progress, name="import_progress"),
    path("lists/imports/<int:import_id>/report.csv", views.import_report, name="import_report"),
]
