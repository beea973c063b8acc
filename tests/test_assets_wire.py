"""Asset decoding (pure) and the envelope requests' retry rules (on a mock transport)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

import relaydance_async as rd
from relaydance_async._sansio.asset_wire import (
    Asset,
    AssetStatus,
    AssetType,
    asset_from_wire,
    parse_timestamp,
)
from relaydance_async._sansio.protocol import envelope_data
from relaydance_async._sansio.retry import Failure, RequestKind
from relaydance_async.exceptions import (
    APIConnectionError,
    InternalServerError,
    PaymentRequiredError,
)
from relaydance_async.models import TaskStatus
from relaydance_async.transport import HTTPRequest, MockResponse, MockTransport, TransportError

WHEN = datetime(2026, 4, 20, 15, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "value",
    [
        "2026-04-20T15:30:00Z",
        "2026-04-20T15:30:00+00:00",
        "2026-04-20 15:30:00",
        int(WHEN.timestamp()),
        float(WHEN.timestamp()),
        str(int(WHEN.timestamp())),
        int(WHEN.timestamp()) * 1000,
    ],
)
def test_timestamps_iso_or_epoch(value: object) -> None:
    """ISO strings, epoch seconds, numeric strings and epoch milliseconds all parse to UTC."""
    assert parse_timestamp(value) == WHEN


@pytest.mark.parametrize("value", [None, True, "", "soon", -5, float("nan"), [1]])
def test_nonsense_timestamps_are_none(value: object) -> None:
    """Anything that is not a timestamp is None, never an error."""
    assert parse_timestamp(value) is None


@pytest.mark.parametrize(
    ("raw", "status", "task_status"),
    [
        ("Processing", AssetStatus.PROCESSING, TaskStatus.RUNNING),
        ("ACTIVE", AssetStatus.ACTIVE, TaskStatus.SUCCEEDED),
        ("failed", AssetStatus.FAILED, TaskStatus.FAILED),
        ("Approved", AssetStatus.ACTIVE, TaskStatus.SUCCEEDED),
        ("Weird", AssetStatus.UNKNOWN, TaskStatus.UNKNOWN),
        (None, AssetStatus.UNKNOWN, TaskStatus.UNKNOWN),
    ],
)
def test_status_table(raw: object, status: AssetStatus, task_status: TaskStatus) -> None:
    """Statuses parse case-insensitively and map onto the scheduler's task statuses."""
    parsed = AssetStatus.parse(raw)
    assert parsed is status
    assert parsed.task_status is task_status
    assert parsed.is_terminal == task_status.is_terminal


def test_asset_from_wire_documented_shape() -> None:
    """The documented PascalCase answer decodes fully; raw keeps the whole object."""
    data = {
        "AssetId": "asset-20260420153000-ab12c",
        "Name": "fashion-model-front",
        "AssetType": "Image",
        "Status": "Active",
        "CreateTime": "2026-04-20T15:30:00Z",
        "UpdateTime": int(WHEN.timestamp()) + 60,
        "Extra": 1,
    }
    asset = asset_from_wire(data)
    assert asset.id == "asset-20260420153000-ab12c"
    assert asset.status is AssetStatus.ACTIVE
    assert asset.reference == asset.url == "asset://asset-20260420153000-ab12c"
    assert asset.created_at == WHEN
    assert asset.updated_at is not None
    assert (asset.updated_at - WHEN).total_seconds() == 60
    assert asset.raw["Extra"] == 1
    assert asset.done


def test_asset_from_wire_other_spellings() -> None:
    """snake_case answers and a missing id (taken from the request) are tolerated."""
    asset = asset_from_wire({"status": "processing", "fail_reason": None}, "asset-1")
    assert (asset.id, asset.status, asset.done) == ("asset-1", AssetStatus.PROCESSING, False)
    with pytest.raises(ValueError, match="AssetId"):
        asset_from_wire({"Status": "Active"})
    with pytest.raises(ValueError, match="object"):
        asset_from_wire(["not", "an", "object"])


def test_asset_type_parse() -> None:
    """Asset types accept any casing and refuse other words."""
    assert AssetType.parse("video") is AssetType.VIDEO
    assert AssetType.parse(AssetType.AUDIO) is AssetType.AUDIO
    with pytest.raises(ValueError, match="Image, Video or Audio"):
        AssetType.parse("Picture")


def test_scheduler_view_of_an_asset() -> None:
    """The scheduler plans an asset review on the task lifecycle: Active is success."""
    assert AssetStatus.ACTIVE.task_status is TaskStatus.SUCCEEDED
    assert AssetStatus.PROCESSING.task_status is TaskStatus.RUNNING
    assert AssetStatus.FAILED.task_status is TaskStatus.FAILED
    assert Asset(id="a-1", status=AssetStatus.ACTIVE).reference == "asset://a-1"


# envelope requests on a mock transport -------------------------------------------------------


def _client(answers: list[Any]) -> tuple[rd.AsyncRelayDance, MockTransport]:
    def handler(request: HTTPRequest) -> MockResponse:
        answer = answers.pop(0)
        if isinstance(answer, TransportError):
            raise answer
        status, body = answer
        return MockResponse(status=status, json=body)

    transport = MockTransport(handler)
    retry = rd.RetryPolicy(initial_backoff=0.0, max_backoff=0.0, max_attempts=3)
    client = rd.AsyncRelayDance(
        api_key="rd-key", base_url="http://rd.test/v1", transport=transport, retry=retry
    )
    return client, transport


def _err(code: int) -> tuple[int, dict[str, Any]]:
    return code, {"code": code, "message": f"error {code}", "data": None}


OK = (200, {"code": 200, "message": "success", "data": {"x": 1}})


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kind", "answers", "outcome", "sent"),
    [
        (RequestKind.PROVIDER_IDEMPOTENT, [_err(500), OK], {"x": 1}, 2),
        (RequestKind.PROVIDER_IDEMPOTENT, [_err(501)], InternalServerError, 1),
        (RequestKind.PROVIDER_IDEMPOTENT, [_err(505)], InternalServerError, 1),
        (RequestKind.PROVIDER_CREATE, [_err(500)], InternalServerError, 1),
        (RequestKind.PROVIDER_CREATE, [_err(455), OK], {"x": 1}, 2),
        (
            RequestKind.PROVIDER_CREATE,
            [(200, {"code": 402, "message": "no credits", "data": None})],
            PaymentRequiredError,
            1,
        ),
        (
            RequestKind.PROVIDER_CREATE,
            [TransportError(Failure.CONNECT, "refused"), OK],
            {"x": 1},
            2,
        ),
        (
            RequestKind.PROVIDER_CREATE,
            [TransportError(Failure.DISCONNECT, "reset")],
            APIConnectionError,
            1,
        ),
        (
            RequestKind.PROVIDER_IDEMPOTENT,
            [TransportError(Failure.TIMEOUT, "slow"), OK],
            {"x": 1},
            2,
        ),
    ],
)
async def test_envelope_call_retry_rules(
    kind: RequestKind, answers: list[Any], outcome: Any, sent: int
) -> None:
    """Reads retry 5xx but not 501/505; creates retry only 429/455 and unmade connections."""
    client, transport = _client(list(answers))
    async with client:
        call = client.requester.request(
            "POST", "http://assets.test/x", kind=kind, headers={"x-api-key": "k"}, json_body={}
        )
        if isinstance(outcome, type):
            with pytest.raises(outcome):
                await call
        else:
            assert envelope_data((await call).json()) == outcome
    assert len(transport.requests) == sent
    assert transport.requests[0].headers["x-api-key"] == "k"
    assert "Authorization" not in transport.requests[0].headers
