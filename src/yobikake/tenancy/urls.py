from django.urls import path

from yobikake.tenancy import views

app_name = "tenancy"
urlpatterns = [
    path("insurers/", views.insurer_list, name="insurer_list"),
    path("insurers/participation/", views.participation, name="participation"),
    path("insurers/<int:insurer_id>/", views.insurer_detail, name="insurer_detail"),
]
