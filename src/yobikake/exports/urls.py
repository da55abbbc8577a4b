from django.urls import path

from yobikake.exports import views

app_name = "exports"
urlpatterns = [
    path("exports/", views.export_index, name="export_index"),
    path("exports/key/", views.register_key, name="register_key"),
    path("exports/<int:approval_id>/download/", views.download, name="download"),
    path("exports/approvals/", views.approval_list, name="approval_list"),
    path("exports/approvals/<int:approval_id>/decide/", views.decide, name="decide"),
]
