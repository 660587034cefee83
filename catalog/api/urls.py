from django.urls import path

from . import views

urlpatterns = [
    path("items", views.ItemCollectionView.as_view(), name="item-list"),
    path("items/<int:item_id>", views.ItemDetailView.as_view(), name="item-detail"),
    path("items/<int:item_id>/availability", views.ItemAvailabilityView.as_view(), name="item-availability"),
]
