"""Seedance asset review end to end against the emulator, through the public objects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import relaydance_async as rd
from relaydance_async._client.hosts import WaveSpeedHost
from relaydance_async._sansio.polling.policy import PollPolicy
from relaydance_async.assets import AssetClient, AssetProvider, AssetStatus
from relaydance_async.exceptions import (
    APIStatusError,
    AssetFailedError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    MediaCheckError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    RequestValidationError,
    TaskTimeoutError,
    UnprocessableEntityError,
)
from relaydance_async.testing import AssetStore, Emulator, EmulatorConfig
from tests._media_files import make_image, make_wav

pytestmark = pytest.mark.anyio

FAST_RETRY = rd.RetryPolicy(initial_backoff=0.01, max_backoff=0.02, max_attempts=3)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """A fast emulator: review takes 30 emulated s = 0.15 real s; tasks never fail."""
    config = EmulatorConfig(speed=200.0, duration_scale=0.01, failure_rate=0.0, seed=5)
    async with Emulator(config) as emulator:
        yield emulator


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[rd.AsyncRelayDance]:
    """A client on the emulator, polling every 20 ms, retrying fast."""
    async with rd.AsyncRelayDance(
        api_key=emu.api_key, base_url=emu.url, poll=PollPolicy.fixed(0.02), retry=FAST_RETRY
    ) as c:
        yield c


@pytest.fixture
def store(emu: Emulator) -> AssetStore:
    """The emulator's asset provider state (knobs and injected statuses)."""
    return emu.assets


@pytest.fixture
def assets(client: rd.AsyncRelayDance, emu: Emulator, store: AssetStore) -> AssetClient:
    """An asset client pointed at the emulator's asset routes."""
    return AssetClient(client, api_key=store.key, provider=AssetProvider(base_url=emu.origin))


async def test_portrait_upload_review_active_then_video(
    emu: Emulator, client: rd.AsyncRelayDance, assets: AssetClient, tmp_path: Path
) -> None:
    """A portrait goes upload -> review -> Active -> asset:// in a video task that succeeds."""
    portrait = make_image(tmp_path / "portrait.jpg", 600, 800)
    job = await assets.upload(portrait, name="model-front")
    assert job.status is AssetStatus.PROCESSING
    assert emu.counters.files_uploaded == 1
    asset = await job
    assert asset.status is AssetStatus.ACTIVE
    assert (asset.name, asset.asset_type) == ("model-front", "Image")
    assert asset.reference == f"asset://{asset.id}"
    assert asset.created_at is not None
    assert asset.updated_at is not None
    assert job.done()
    task = await client.videos.generate(
        model="seedance-1-5-pro-with-audio",
        prompt="@image1 smiles and waves",
        references=[rd.ImageRef(asset.reference)],
    )
    assert task.status is rd.TaskStatus.SUCCEEDED


async def test_asset_hosted_on_wavespeed(
    emu: Emulator, client: rd.AsyncRelayDance, assets: AssetClient, tmp_path: Path
) -> None:
    """The reviewer may fetch the file from WaveSpeed instead: same flow, other host."""
    host = WaveSpeedHost(api_key=emu.wavespeed.key, base_url=emu.origin)
    voice = make_wav(tmp_path / "voice.wav", 3)
    asset = await (await assets.upload(voice, host=host))
    assert (asset.status, asset.asset_type) == (AssetStatus.ACTIVE, "Audio")
    assert emu.wavespeed.uploads == 1
    assert emu.counters.files_uploaded == 0


async def test_unapproved_asset_is_refused_by_the_submit(
    client: rd.AsyncRelayDance, assets: AssetClient
) -> None:
    """Citing an asset still under review fails the submit (why one awaits the job first)."""
    job = await assets.create("https://example.com/face.jpg", "image", "face")
    with pytest.raises(BadRequestError, match="not an approved asset"):
        await client.videos.create(
            model="seedance-1-5-pro-with-audio",
            prompt="@image1 blinks",
            references=[rd.ImageRef(job.reference)],
        )
    await job


async def test_rejected_asset_fails_with_a_clear_error(
    assets: AssetClient, store: AssetStore
) -> None:
    """A review ending Failed raises AssetFailedError carrying the asset and its reason."""
    store.rejection_rate = 1.0
    job = await assets.create("https://example.com/face.jpg", "Image", "face")
    with pytest.raises(AssetFailedError) as caught:
        await job
    failed = caught.value.asset
    assert failed.status is AssetStatus.FAILED
    assert failed.fail_reason
    assert failed.id in str(caught.value)
    assert job.status is AssetStatus.FAILED


async def test_portrait_too_small_fails_before_upload(
    emu: Emulator, assets: AssetClient, tmp_path: Path
) -> None:
    """A 200 px portrait breaks the asset rules: nothing is uploaded or created."""
    small = make_image(tmp_path / "small.jpg", 200, 400)
    with pytest.raises(MediaCheckError) as caught:
        await assets.upload(small)
    assert caught.value.field == "width"
    assert "asset images" in caught.value.rule
    assert emu.counters.requests_total == 0


async def test_watch_resolves_an_existing_asset(assets: AssetClient) -> None:
    """watch() follows an asset created earlier, by id or by asset:// reference."""
    created = await assets.create("https://example.com/a.jpg", "Image", "a")
    first = await created
    again = await assets.watch(first.reference)
    assert again.id == first.id
    assert again.status is AssetStatus.ACTIVE


async def test_maximum_wait_is_on_by_default_and_ends_a_job(
    client: rd.AsyncRelayDance, emu: Emulator, store: AssetStore
) -> None:
    """A job whose review outlasts max_wait raises TaskTimeoutError."""
    store.review_seconds = 10_000.0
    short = AssetClient(
        client, api_key=store.key, provider=AssetProvider(base_url=emu.origin), max_wait=0.2
    )
    assert AssetClient(client, api_key="k").max_wait == 1800.0
    job = await short.create("https://example.com/a.jpg", "Image", "slow")
    with pytest.raises(TaskTimeoutError):
        await job


async def test_wait_timeout_and_cancel(assets: AssetClient, store: AssetStore) -> None:
    """wait(timeout) gives up without ending the job; cancel() ends it with CancelledError."""
    store.review_seconds = 10_000.0
    job = await assets.create("https://example.com/a.jpg", "Image", "slow")
    with pytest.raises(TaskTimeoutError):
        await job.wait(timeout=0.05)
    assert not job.done()
    assert job.cancel()
    assert not job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (402, PaymentRequiredError),
        (422, UnprocessableEntityError),
        (500, InternalServerError),
        (501, InternalServerError),
        (505, InternalServerError),
    ],
)
@pytest.mark.parametrize("http_errors", [True, False])
async def test_create_error_statuses(
    assets: AssetClient,
    store: AssetStore,
    status: int,
    error: type[APIStatusError],
    http_errors: bool,
) -> None:
    """Each documented status maps to its error, as an HTTP status or inside an HTTP 200."""
    store.http_errors = http_errors
    store.inject(status)
    with pytest.raises(error) as caught:
        await assets.create("https://example.com/a.jpg", "Image", "a")
    assert caught.value.status_code == status
    assert store.created == 0
    assert not store.injected  # answered once: a create is not retried on these


@pytest.mark.parametrize(("status", "error"), [(429, RateLimitError), (455, InternalServerError)])
async def test_429_and_455_are_retried_with_backoff(
    emu: Emulator, store: AssetStore, status: int, error: type[Exception]
) -> None:
    """429 and 455 are retried (a create too); past the attempts they raise their error."""
    store.retry_after = 0.01
    # A fixed rate keeps the shared budget's cut after a 429 from pacing this tiny test slowly.
    limits = rd.Limits(requests_per_second=1000.0)
    client = rd.AsyncRelayDance(
        api_key=emu.api_key, base_url=emu.url, retry=FAST_RETRY, limits=limits
    )
    async with client:
        assets = AssetClient(client, api_key=store.key, provider=AssetProvider(base_url=emu.origin))
        await _retried(assets, store, status, error)


async def _retried(
    assets: AssetClient, store: AssetStore, status: int, error: type[Exception]
) -> None:
    store.inject(status, status)
    job = await assets.create("https://example.com/a.jpg", "Image", "a")
    assert store.created == 1
    store.inject(status, status, status)
    with pytest.raises(error):
        await assets.create("https://example.com/a.jpg", "Image", "b")
    assert store.created == 1
    job.cancel()


async def test_unknown_asset_and_bad_key(
    assets: AssetClient, client: rd.AsyncRelayDance, emu: Emulator
) -> None:
    """404 is NotFoundError, both for retrieve and for a watched job; 401 AuthenticationError."""
    with pytest.raises(NotFoundError):
        await assets.retrieve("asset-nope")
    with pytest.raises(NotFoundError):
        await assets.watch("asset-nope")
    wrong = AssetClient(client, api_key="wrong-key", provider=AssetProvider(base_url=emu.origin))
    with pytest.raises(AuthenticationError) as caught:
        await wrong.retrieve("asset-x")
    assert "wrong-key" not in str(caught.value)
    assert "wrong-key" not in repr(wrong)


async def test_create_validates_before_any_io(assets: AssetClient, emu: Emulator) -> None:
    """Bad URLs (base64 included), names and types are refused before a request is sent."""
    cases = [
        ("data:image/png;base64,AAAA", "Image", "a"),
        ("ftp://example.com/a.png", "Image", "a"),
        ("https://example.com/a.png", "Picture", "a"),
        ("https://example.com/a.png", "Image", ""),
        ("https://example.com/a.png", "Image", "x" * 65),
    ]
    for url, kind, name in cases:
        with pytest.raises(RequestValidationError):
            await assets.create(url, kind, name)
    assert emu.counters.requests_total == 0


async def test_asset_key_from_environment(
    monkeypatch: pytest.MonkeyPatch, client: rd.AsyncRelayDance
) -> None:
    """The key and base URL come from the environment when not passed; no key is an error."""
    monkeypatch.setenv("SEEDANCE_ASSET_API_KEY", "asset-secret")
    monkeypatch.setenv("SEEDANCE_ASSET_BASE_URL", "https://assets.example.com")
    assets = AssetClient(client)
    assert assets.provider.base_url == "https://assets.example.com"
    assert "asset-secret" not in repr(assets)
    monkeypatch.delenv("SEEDANCE_ASSET_API_KEY")
    with pytest.raises(rd.RelayDanceError, match="SEEDANCE_ASSET_API_KEY"):
        AssetClient(client)


async def test_batch_hooks_review_and_named_host(
    emu: Emulator, client: rd.AsyncRelayDance, tmp_path: Path
) -> None:
    """The batch hooks: a named host and review_reference use what the client was given."""
    from relaydance_async._cli.common import connect_emulator_media
    from relaydance_async.assets import review_reference

    connect_emulator_media(client, emu)
    uploaded = await client.files.upload(make_image(tmp_path / "a.png", 400, 400), host="wavespeed")
    assert uploaded.host == "wavespeed"
    reference = await review_reference(client, uploaded.url, "first_frame", None)
    assert reference.startswith("asset://asset-")
    assert emu.assets.assets[reference[len("asset://") :]].name == "a.png"
    with pytest.raises(RequestValidationError, match="role"):
        await review_reference(client, uploaded.url, "poster", None)


async def test_asset_jobs_share_the_client_scheduler(
    client: rd.AsyncRelayDance, assets: AssetClient
) -> None:
    """With a scheduler that drives handles, an asset job sits in the same heap as video jobs."""
    scheduler = client.scheduler
    job = await assets.create("https://example.com/a.jpg", "Image", "a")
    assert job.key == job.reference
    assert scheduler.job(job.key) is job
    await job
    assert scheduler.job(job.key) is None
