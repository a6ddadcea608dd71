"""API pagination: ?page=N and ?page_size=M (1 to 1000); a malformed page_size is a 400, not ignored."""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination

from webapp.params import whole_number


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request) -> int:
        values = request.query_params.getlist(self.page_size_query_param)
        if values:
            if len(values) > 1 or whole_number(values[0], minimum=1, maximum=self.max_page_size) is None:
                raise ValidationError({"page_size": f"must be one whole number from 1 to {self.max_page_size}."})
        return super().get_page_size(request)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        """The schema states the bounds `get_page_size` enforces."""
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {**parameter["schema"], "minimum": 1, "maximum": self.max_page_size}
            if parameter["name"] == self.page_query_param:
                parameter["schema"] = {**parameter["schema"], "minimum": 1}
        return parameters
