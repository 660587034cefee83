from bookings_project.errors import ApplicationError, Conflict, NotFound, ServiceUnavailable


class ItemNotFound(NotFound):
    code = "item_not_found"
    default_message = "Item not found"


class CapacityExceeded(ApplicationError):
    code = "capacity_exceeded"
    status = 400
    default_message = "Capacity exceeded"


class TierSoldOut(ApplicationError):
    code = "tier_sold_out"
    status = 400

    def __init__(self, tier_name: str):
        super().__init__(f'Price tier "{tier_name}" is sold out', fields={"priceTier": ["This price tier is sold out"]})


class UnknownTier(ApplicationError):
    code = "unknown_tier"
    status = 400

    def __init__(self, tier_name: str):
        super().__init__(f'Unknown price tier "{tier_name}"', fields={"priceTier": [f'No price tier named "{tier_name}"']})


class ItemBusy(ServiceUnavailable):
    code = "item_busy"
    default_message = "The item is busy, retry shortly"


class ItemLimitReached(Conflict):
    code = "item_limit_reached"

    def __init__(self, limit: int):
        super().__init__(f"You have {limit} upcoming items, the most one organizer may hold; delete one or wait "
                         "until one has ended")
