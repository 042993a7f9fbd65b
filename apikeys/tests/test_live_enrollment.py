"""Parallel enrollments through the front door: gunicorn, several processes, a barrier."""

from datetime import UTC, datetime, timedelta

import pytest

from core.tests.live_stack import in_parallel

pytestmark = pytest.mark.live

INVALID = {"detail": "Invalid enrollment token."}


def create_token(stack, **body) -> str:
    admin = stack.access_token()
    expires_at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    answer = stack.request(
        "POST",
        "/api/v1/settings/enrollment-tokens",
        {"name": "fleet", "expires_at": expires_at, **body},
        {"Authorization": f"Bearer {admin}"},
    )
    assert answer.status == 201, answer
    return answer.body["token"]


def enroll(stack, token: str, hostname: str, **body):
    return stack.request(
        "POST", "/api/v1/agent/enroll", {"hostname": hostname, **body}, {"Authorization": f"Bearer {token}"}
    )


def test_parallel_enrollments_never_pass_max_uses(live_stack):
    token = create_token(live_stack, max_uses=5)
    answers = in_parallel(16, lambda i: enroll(live_stack, token, f"gw-{i:02d}"))
    statuses = sorted(answer.status for answer in answers)
    assert statuses == [201] * 5 + [401] * 11, statuses
    assert all(answer.body == INVALID for answer in answers if answer.status == 401)
    assert len({answer.body["key_id"] for answer in answers if answer.status == 201}) == 5


def test_parallel_enrollments_of_one_hostname_mint_one_key(live_stack):
    token = create_token(live_stack, max_uses=20)
    answers = in_parallel(12, lambda i: enroll(live_stack, token, "GW-SAME"))
    statuses = sorted(answer.status for answer in answers)
    assert statuses == [201] + [409] * 11, statuses


def test_parallel_lost_answer_retries_leave_one_live_key(live_stack):
    token = create_token(live_stack, max_uses=1)
    first = enroll(live_stack, token, "gw-retry")
    assert first.status == 201, first
    answers = in_parallel(8, lambda i: enroll(live_stack, token, "gw-retry", replace=True))
    created = [answer for answer in answers if answer.status == 201]
    assert created and all(answer.status in (201, 409) for answer in answers), [a.status for a in answers]
    live = [
        answer
        for answer in [first, *created]
        if live_stack.request("GET", "/api/v1/agent/whoami", headers={"X-API-Key": answer.body["key"]}).status == 200
    ]
    assert len(live) == 1
