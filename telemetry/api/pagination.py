"""The readings' keyset cursor: DRF's cursor links and encoding, with an exact (ts, sensor) position."""

from datetime import UTC, datetime

from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor

from core.pagination import NewestFirstCursorPagination
from telemetry import selectors

Position = tuple[datetime, int]


class ReadingCursorPagination(NewestFirstCursorPagination):
    """Keyset cursor over (ts, sensor_id), newest first, for a ReadingWindow.

    DRF's CursorPagination filters one queryset on its first ordering field and
    skips ties by offset; readings are instead fetched per sensor and merged
    (see selectors.reading_page), so the cursor's position is the exact
    (ts, sensor id) of the last reading shown, and its offset always 0. The
    cursor is DRF's (`encode_cursor`/`decode_cursor`), and so is the response
    shape: next, previous, results.
    """

    def paginate_queryset(self, window: selectors.ReadingWindow, request, view=None):
        self.request = request
        self.base_url = request.build_absolute_uri()
        self.page_size = self.get_page_size(request)
        position, newer = self.decode_position(request)
        rows = selectors.reading_page(window=window, limit=self.page_size + 1, after=position, newer=newer)
        more = len(rows) > self.page_size
        rows = rows[: self.page_size]
        if newer:
            rows.reverse()
            self.has_next, self.has_previous = True, more
        else:
            self.has_next, self.has_previous = more, position is not None and bool(rows)
        self.first = (rows[0]["ts"], rows[0]["sensor_id"]) if rows else None
        self.last = (rows[-1]["ts"], rows[-1]["sensor_id"]) if rows else None
        return rows

    def decode_position(self, request) -> tuple[Position | None, bool]:
        """The position and direction of the request's cursor; (None, False) without one; 404 if tampered."""
        cursor = self.decode_cursor(request)
        if cursor is None:
            return None, False
        try:
            ts_text, _, sensor_text = (cursor.position or "").rpartition("|")
            ts = datetime.fromisoformat(ts_text)
            if ts.tzinfo is None:
                raise ValueError("naive position")
            ts = ts.astimezone(UTC)
            sensor_id = int(sensor_text)
            if not 0 < sensor_id < 2**63:
                raise ValueError("sensor id out of range")
        except (ValueError, OverflowError):
            raise NotFound(self.invalid_cursor_message) from None
        return (ts, sensor_id), cursor.reverse

    def _link(self, position: Position | None, newer: bool) -> str | None:
        if position is None:
            return None
        ts, sensor_id = position
        return self.encode_cursor(Cursor(offset=0, reverse=newer, position=f"{ts.isoformat()}|{sensor_id}"))

    def get_next_link(self) -> str | None:
        return self._link(self.last, newer=False) if self.has_next else None

    def get_previous_link(self) -> str | None:
        return self._link(self.first, newer=True) if self.has_previous else None
