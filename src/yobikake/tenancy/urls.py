from django.urls import path

from yobikake.tenancy import views

app_name = "tenancy"
urlpatterns = [
    path("insurers/", views.insurer_list, name="insurer_list"),
    path("insurers/participation/", views.participation, name="participation"),
    path("insurers/<int:insurer_id>/", views.insurer_detail, name="insurer_detail"),
    path("contracts/<int:contract_id>/statement/", views.statement, name="statement"),
    *(
        path(
            f"contracts/<int:contract_id>/statement.{fmt}",
            views.statement_download,
            {"fmt": fmt},
            name=f"statement_{fmt}",
        )
        for fmt in ("csv", "xlsx")
    ),
    path("contracts/<int:contract_id>/billing/", views.billing_terms, name="billing_terms"),
]
