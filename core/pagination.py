from rest_framework import serializers
from rest_framework.pagination import CursorPagination, PageNumberPagination


class StrictPageSizeMixin:
    """`page_size` is a whole number of at least 1, as the schema says, or a 400 naming it.

    DRF falls back to the default page size for anything it cannot read
    (`?page_size=null`, `?page_size=`, `?page_size=0`), so a client's mistake
    went unnoticed and the answer did not match the documented parameter. A
    value above `max_page_size` still gives `max_page_size` (documented).
    """

    def get_page_size(self, request):
        if self.page_size_query_param and self.page_size_query_param in request.query_params:
            field = serializers.IntegerField(min_value=1)
            try:
                size = field.run_validation(request.query_params[self.page_size_query_param])
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({self.page_size_query_param: exc.detail}) from None
            return min(size, self.max_page_size) if self.max_page_size else size
        return self.page_size

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {**parameter["schema"], "minimum": 1}
                parameter["description"] = (
                    f"Number of results to return per page, at least 1 (default {self.page_size}"
                    + (f"; more than {self.max_page_size} gives {self.max_page_size}" if self.max_page_size else "")
                    + ")."
                )
        return parameters


class StandardPageNumberPagination(StrictPageSizeMixin, PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class NewestFirstCursorPagination(StrictPageSizeMixin, CursorPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
