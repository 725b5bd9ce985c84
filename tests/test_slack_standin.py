"""The Slack Web API stand-in, driven over HTTP by slack_sdk's own clients."""

import asyncio
import threading
from datetime import UTC, datetime

import pytest
import time_machine
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.standins.slack_api import BOT_USER_ID, SlackApiStandIn

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
TIMEOUT = 5


@pytest.fixture
def client(slack_api: SlackApiStandIn) -> AsyncWebClient:
    return AsyncWebClient(
        token=slack_api.token, base_url=slack_api.api_url, timeout=TIMEOUT
    )


@pytest.fixture
def sync_client(slack_api: SlackApiStandIn) -> WebClient:
    return WebClient(token=slack_api.token, base_url=slack_api.api_url, timeout=TIMEOUT)


async def test_post_message_is_recorded_with_token_and_thread(client, slack_api):
    """chat.postMessage answers an increasing ts and records what was sent."""
    with time_machine.travel(datetime(2026, 3, 1, 9, 30, tzinfo=UTC), tick=False):
        first = await client.chat_postMessage(channel="C0OPS", text="hello")
        second = await client.chat_postMessage(
            channel="C0OPS", text="in thread", thread_ts=first["ts"]
        )

    assert (first["ok"], first["channel"], first["ts"]) == (
        True,
        "C0OPS",
        "1700000000.000001",
    )
    assert second["ts"] == "1700000000.000002"
    assert second["message"]["thread_ts"] == "1700000000.000001"
    calls = slack_api.calls_to("chat.postMessage")
    assert [c.params["text"] for c in calls] == ["hello", "in thread"]
    assert calls[1].params["thread_ts"] == "1700000000.000001"
    assert calls[0].token == slack_api.token
    assert calls[0].headers["Authorization"] == f"Bearer {slack_api.token}"
    assert calls[0].at == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


async def test_update_changes_a_posted_message(client, slack_api):
    """chat.update on a posted message answers ok and records the new text."""
    posted = await client.chat_postMessage(channel="C0OPS", text="working…")

    updated = await client.chat_update(channel="C0OPS", ts=posted["ts"], text="done")

    assert (updated["ts"], updated["text"]) == (posted["ts"], "done")
    assert slack_api.calls_to("chat.update")[0].params == {
        "channel": "C0OPS",
        "ts": "1700000000.000001",
        "text": "done",
    }


async def test_update_of_an_unknown_message_is_refused(client):
    """chat.update on a ts never posted fails like Slack: message_not_found."""
    with pytest.raises(SlackApiError) as caught:
        await client.chat_update(channel="C0OPS", ts="1.000000", text="x")

    assert caught.value.response["error"] == "message_not_found"


async def test_files_upload_v2_stores_bytes_and_sharing(client, slack_api):
    """A full files_upload_v2 goes through all three steps and keeps the bytes."""
    posted = await client.chat_postMessage(channel="C0OPS", text="chart below")

    answer = await client.files_upload_v2(
        channel="C0OPS",
        file=PNG,
        filename="coverage.png",
        title="Coverage 48h",
        initial_comment="Coverage for claude-sonnet-4",
        thread_ts=posted["ts"],
    )

    [upload] = slack_api.uploads.values()
    assert upload.content == PNG
    assert (upload.length, len(upload.content)) == (len(PNG), 10_248)
    assert (upload.filename, upload.title) == ("coverage.png", "Coverage 48h")
    assert (upload.channel_id, upload.thread_ts) == ("C0OPS", "1700000000.000001")
    assert upload.initial_comment == "Coverage for claude-sonnet-4"
    assert upload.completed
    assert answer["file"]["id"] == upload.file_id
    assert answer["file"]["size"] == 10_248
    assert [c.method for c in slack_api.calls] == [
        "chat.postMessage",
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]


def test_sync_client_upload_and_post(sync_client, slack_api):
    """The blocking WebClient gets the same answers, form-encoded or JSON."""
    sync_client.chat_postMessage(channel="C0OPS", text="from a thread")
    sync_client.files_upload_v2(channel="C0OPS", content="a,b\n1,2\n", filename="t.csv")

    [upload] = slack_api.uploads.values()
    assert (upload.content, upload.channel_id, upload.thread_ts) == (
        b"a,b\n1,2\n",
        "C0OPS",
        None,
    )
    assert slack_api.calls_to("chat.postMessage")[0].params["text"] == "from a thread"


@pytest.mark.parametrize(
    ("token", "error"),
    [("xoxb-wrong", "invalid_auth"), ("", "not_authed")],
    ids=["wrong-token", "no-token"],
)
async def test_bad_token_is_refused(slack_api, token, error):
    """A configured token is checked; anything else is refused like Slack does."""
    client = AsyncWebClient(token=token or None, base_url=slack_api.api_url, timeout=5)

    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="C0OPS", text="x")

    assert caught.value.response["error"] == error
    assert slack_api.calls_to("chat.postMessage")[0].token == (token or None)


async def test_unknown_method_answers_unknown_method(client):
    """A method the stand-in does not know is answered as Slack answers it."""
    with pytest.raises(SlackApiError) as caught:
        await client.api_call("admin.teams.list")

    assert caught.value.response.data == {"ok": False, "error": "unknown_method"}


async def test_small_methods_answer_what_the_bot_reads(client, slack_api):
    """auth.test, users.info, permalink, ephemeral and conversations answer ok."""
    auth = await client.auth_test()
    user = await client.users_info(user="U0ALICE")
    link = await client.chat_getPermalink(
        channel="C0OPS", message_ts="1700000000.000007"
    )
    ephemeral = await client.chat_postEphemeral(
        channel="C0OPS", user="U0ALICE", text="hi"
    )
    joined = await client.conversations_join(channel="C0OPS")
    info = await client.conversations_info(channel="C0OPS")

    assert auth["user_id"] == BOT_USER_ID
    assert (user["user"]["id"], user["user"]["tz"]) == ("U0ALICE", "UTC")
    assert link["permalink"] == f"{slack_api.url}/archives/C0OPS/p1700000000000007"
    assert ephemeral["message_ts"] == "1700000000.000001"
    assert joined["channel"]["id"] == info["channel"]["id"] == "C0OPS"
    assert slack_api.calls_to("users.info")[0].params == {"user": "U0ALICE"}


async def test_response_url_posts_are_recorded(slack_api):
    """What Bolt's respond() sends to a response_url is kept per response id."""
    webhook = AsyncWebhookClient(slack_api.response_url("cmd-1"), timeout=TIMEOUT)

    answer = await webhook.send(text="Coverage: 35.4%", response_type="in_channel")

    assert answer.status_code == 200
    [call] = slack_api.responses_to("cmd-1")
    assert call.params == {"text": "Coverage: 35.4%", "response_type": "in_channel"}
    assert slack_api.responses_to("cmd-2") == []


async def test_scripted_failure_answers_once(client, slack_api):
    """fail_next makes exactly the next call fail with the given error."""
    slack_api.fail_next("chat.postMessage", "channel_not_found")

    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="C0GONE", text="x")
    retry = await client.chat_postMessage(channel="C0GONE", text="x")

    assert caught.value.response["error"] == "channel_not_found"
    assert retry["ok"] is True


async def test_wait_for_async_sees_a_post_made_later_on_the_loop(client, slack_api):
    """wait_for_async returns once the bot's background post has arrived."""
    background = asyncio.create_task(
        client.chat_postMessage(channel="C0OPS", text="after ack")
    )

    calls = await slack_api.wait_for_async("chat.postMessage", count=1, timeout=TIMEOUT)

    await background
    assert [c.params["text"] for c in calls] == ["after ack"]


def test_wait_for_wakes_on_a_post_from_another_thread(sync_client, slack_api):
    """wait_for blocks on a condition until another thread's posts have arrived."""
    poster = threading.Thread(
        target=lambda: [
            sync_client.chat_postMessage(channel="C0", text=str(i)) for i in range(3)
        ]
    )
    poster.start()

    calls = slack_api.wait_for("chat.postMessage", count=3, timeout=TIMEOUT)

    poster.join(TIMEOUT)
    assert [c.params["text"] for c in calls] == ["0", "1", "2"]


def test_wait_for_names_what_came_when_it_times_out(slack_api):
    """A wait that ends empty-handed says what it wanted and what it saw."""
    with pytest.raises(TimeoutError) as caught:
        slack_api.wait_for("chat.update", count=1, timeout=0.01)

    assert str(caught.value) == (
        "expected 1 call(s) to chat.update within 0.01s; got 0; all calls: []"
    )


def test_reset_forgets_calls_and_uploads(sync_client, slack_api):
    """reset() empties the record and restarts the ts counter."""
    sync_client.chat_postMessage(channel="C0", text="x")

    slack_api.reset()
    again = sync_client.chat_postMessage(channel="C0", text="y")

    assert [c.params["text"] for c in slack_api.calls] == ["y"]
    assert again["ts"] == "1700000000.000001"
    assert slack_api.uploads == {}


def test_fixture_points_the_settings_at_the_stand_in(slack_api):
    """The bot's settings, read from the environment, aim at the stand-in."""
    from bot.config import Settings

    settings = Settings()

    assert settings.slack_api_url == slack_api.api_url
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == slack_api.token


def test_stopped_stand_in_has_no_url():
    """A stand-in that is not running says so instead of giving a dead address."""
    standin = SlackApiStandIn()

    with pytest.raises(RuntimeError) as caught:
        _ = standin.url

    assert str(caught.value) == "the Slack API stand-in is not started"
