"""Items in the Django admin (ADMIN only): browse and filter. Items are written through the API
(catalog.services validates tiers and booked seats), so the admin shows them read-only."""

from django.contrib import admin

from bookings_project.admin import ReadOnlyAdmin

from .models import BookableItem, PriceTier


class PriceTierInline(admin.TabularInline):
    model = PriceTier
    extra = 0
    max_num = 0
    can_delete = False
    fields = ("position", "name", "price", "max_capacity", "sold")
    readonly_fields = fields
    ordering = ("position",)

    def has_add_permission(self, request, obj=None):
        return False


class DeletedListFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("live", "Live"), ("deleted", "Deleted"))

    def queryset(self, request, queryset):
        if self.value() == "live":
            return queryset.filter(deleted_at__isnull=True)
        if self.value() == "deleted":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


@admin.register(BookableItem)
class BookableItemAdmin(ReadOnlyAdmin):
    list_display = ("name", "organizer", "start_time", "end_time", "location", "category", "capacity",
                    "booked", "available", "is_private", "deleted_at")
    list_filter = (("organizer", admin.RelatedOnlyFieldListFilter), ("start_time", admin.DateFieldListFilter),
                   "is_private", "category", DeletedListFilter)
    search_fields = ("name", "location", "description", "organizer__username")
    date_hierarchy = "start_time"
    list_select_related = ("organizer",)
    readonly_fields = ("booked", "available", "created_at", "updated_at")
    inlines = [PriceTierInline]
    list_per_page = 50

    @admin.display(description="booked", ordering="sold")
    def booked(self, obj):
        return obj.sold

    @admin.display(description="available")
    def available(self, obj):
        return obj.capacity - obj.sold
