from rest_framework.metadata import SimpleMetadata


class ApiMetadata(SimpleMetadata):
    """OPTIONS answers the endpoint's name, description, renders and parses; the schema describes bodies.

    DRF's SimpleMetadata also describes the serializer of each write, calling
    get_object() for a PUT: a 500 on the settings endpoints, which are one
    object per tenant without a queryset, and elsewhere a description of the
    output serializer rather than what the write accepts. `/api/schema/` is the
    one description of every body.
    """

    def determine_actions(self, request, view):
        return {}
