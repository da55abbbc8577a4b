from django.urls import path

from yobikake.exports import retention_views, views

app_name = "exports"
urlpatterns = [
    path("exports/", views.export_index, name="export_index"),
    path("exports/key/", views.register_key, name="register_key"),
    path(
        "exports/results/<int:campaign_id>/request/",
        views.request_results,
        name="request_results",
    ),
    path("exports/<int:approval_id>/download/", views.download, name="download"),
    path("exports/approvals/", views.approval_list, name="approval_list"),
    path("exports/approvals/<int:approval_id>/decide/", views.decide, name="decide"),
    path("retention/", retention_views.retention_index, name="retention_index"),
    path(
        "retention/lists/<int:list_id>/request-deletion/",
        retention_views.request_deletion,
        name="request_deletion",
    ),
    path(
        "retention/requests/<int:approval_id>/decide/",
        retention_views.decide_deletion,
        name="decide_deletion",
    ),
    path(
        "retention/certificates/<int:certificate_id>/",
        retention_views.certificate,
        name="certificate",
    ),
    path(
        "retention/certificates/<int:certificate_id>/bundle.json",
        retention_views.certificate_bundle,
        name="certificate_bundle",
    ),
    path(
        "retention/certificates/<int:certificate_id>/certificate.pdf",
        retention_views.certificate_pdf,
        name="certificate_pdf",
    ),
]
