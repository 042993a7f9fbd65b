import pytest

from apikeys import scopes


class TestRegistry:
    def test_documented_scopes_and_presets(self):
        # write:machines is Part 2's provisioning scope (POST/PATCH/DELETE /machines).
        assert list(scopes.SCOPES) == ["ingest", "agent", "read:machines", "read:sensors", "write:machines"]
        assert scopes.PRESETS == {"edge_agent": ["ingest", "agent"], "read_only": ["read:machines", "read:sensors"]}
        assert scopes.DEFAULT_SCOPES == ["ingest", "agent"]

    def test_presets_expand_only_to_registered_scopes(self):
        for expansion in scopes.PRESETS.values():
            assert all(scopes.is_scope(name) for name in expansion)

    def test_choices_list_every_scope(self):
        assert [name for name, _ in scopes.scope_choices()] == list(scopes.SCOPES)


class TestExpand:
    @pytest.mark.parametrize(
        ("requested", "expected"),
        [
            (["ingest"], ["ingest"]),
            ("read_only", ["read:machines", "read:sensors"]),
            ("ingest", ["ingest"]),
            (["edge_agent", "read:sensors"], ["ingest", "agent", "read:sensors"]),
            (["agent", "edge_agent", "agent"], ["agent", "ingest"]),
            (["read_only", "edge_agent"], ["read:machines", "read:sensors", "ingest", "agent"]),
            ([], []),
        ],
    )
    def test_expands_and_deduplicates_in_first_seen_order(self, requested, expected):
        assert scopes.expand_scopes(requested) == expected

    def test_unknown_names_are_all_named(self):
        with pytest.raises(scopes.UnknownScope) as excinfo:
            scopes.expand_scopes(["ingest", "write:all", "admin"])
        message = str(excinfo.value)
        assert "'write:all'" in message and "'admin'" in message
        assert "read:machines" in message and "edge_agent" in message

    def test_non_string_names_are_unknown(self):
        with pytest.raises(scopes.UnknownScope):
            scopes.expand_scopes(["ingest", 3])

    def test_names_are_case_sensitive(self):
        with pytest.raises(scopes.UnknownScope):
            scopes.expand_scopes("INGEST")
