"""Several models at once: who may use which, and a message goes only to workers serving the
model its conversation uses (with the real chat socket and scripted workers)."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import connections

from audit.models import AuditEvent
from chat import model_choice
from chat.inference import registry
from chat.models import Conversation, Message, ModelAccess
from tests.support.inference import ScriptedEngine, ScriptedScheduler, running_worker
from tests.support.websockets import send, until_done

pytestmark = pytest.mark.django_db(transaction=True)


class SmallEngine(ScriptedEngine):
    model_name = "small-model"


class LargeEngine(ScriptedEngine):
    model_name = "large-model"


class SmallScheduler(ScriptedScheduler):
    reply = "Small answer."


class LargeScheduler(ScriptedScheduler):
    reply = "Large answer."


@pytest.fixture(autouse=True)
def _site_default(settings):
    settings.LLM_DEFAULT_MODEL = "small-model"


def restrict(model: str, *group_names: str) -> ModelAccess:
    access = ModelAccess.objects.create(model_name=model)
    access.groups.set([Group.objects.get_or_create(name=name)[0] for name in group_names])
    return access


# --- who may use which model ----------------------------------------------------------------


def test_an_unrestricted_model_is_open_to_every_employee(employee):
    registry.beat("w1", {"state": "ready", "model": "large-model"})

    assert model_choice.models_for(employee) == ["small-model", "large-model"]
    assert model_choice.may_use_model(employee, "large-model")
    registry.forget("w1")


def test_a_model_restricted_to_groups_is_only_for_their_members(employee, other_employee):
    registry.beat("w1", {"state": "ready", "model": "large-model"})
    restrict("large-model", "Research")
    Group.objects.get(name="Research").user_set.add(other_employee)

    assert model_choice.models_for(employee) == ["small-model"]
    assert not model_choice.may_use_model(employee, "large-model")
    assert model_choice.models_for(other_employee) == ["small-model", "large-model"]
    registry.forget("w1")


def test_a_restriction_without_groups_restricts_nobody(employee):
    restrict("small-model")

    assert model_choice.may_use_model(employee, "small-model")


def test_an_inactive_user_may_use_no_model(employee):
    employee.is_active = False

    assert not model_choice.may_use_model(employee, "small-model")


def test_a_new_conversation_gets_a_served_model_when_the_default_is_not_served(employee):
    registry.beat("w1", {"state": "ready", "model": "large-model"})

    assert model_choice.default_model_for(employee) == "large-model"
    registry.forget("w1")


# --- routing through the socket ---------------------------------------------------------------


@pytest.fixture
async def two_workers():
    async with (
        running_worker(
            "small-worker", engine_factory=SmallEngine, scheduler_factory=SmallScheduler
        ),
        running_worker(
            "large-worker", engine_factory=LargeEngine, scheduler_factory=LargeScheduler
        ),
    ):
        yield
    await sync_to_async(connections.close_all)()


def answer_text(frames) -> str:
    return "".join(frame["text"] for frame in frames if frame["type"] == "chat.delta")


async def test_each_message_goes_to_the_workers_of_the_chosen_model(chat, two_workers):
    await send(chat)
    first = await until_done(chat)
    await send(chat, model="large-model")
    second = await until_done(chat)

    assert first[0]["model"] == "small-model"
    assert answer_text(first) == "Small answer."
    assert second[0]["model"] == "large-model"
    assert answer_text(second) == "Large answer."
    assert (await Conversation.objects.aget(pk=second[0]["conversation"])).model_name == (
        "large-model"
    )


async def test_a_conversation_keeps_the_model_it_was_switched_to(chat, two_workers):
    await send(chat, model="large-model")
    started = (await until_done(chat))[0]

    await send(chat, "And then?", conversation=started["conversation"])
    again = await until_done(chat)

    assert again[0]["model"] == "large-model"
    assert answer_text(again) == "Large answer."
    answers = Message.objects.filter(conversation_id=started["conversation"], role="assistant")
    assert [m.model_name async for m in answers.order_by("created_at")] == ["large-model"] * 2


async def test_a_model_no_worker_serves_is_refused_and_nothing_is_stored(chat, two_workers):
    await send(chat, model="missing-model")

    error = await chat.receive_json_from()
    assert error["code"] == "no_worker"
    assert error["detail"].startswith("missing-model is not running right now.")
    assert await Message.objects.acount() == 0


async def test_a_conversation_whose_model_is_gone_asks_for_another(chat):
    async with running_worker("gone", engine_factory=LargeEngine, scheduler_factory=LargeScheduler):
        await send(chat, model="large-model")
        started = (await until_done(chat))[0]

    async with running_worker(
        "small", engine_factory=SmallEngine, scheduler_factory=SmallScheduler
    ):
        await send(chat, "Still there?", conversation=started["conversation"])
        error = await chat.receive_json_from()
        assert error["code"] == "no_worker"
        assert "the model of this conversation" in error["detail"]

        await send(chat, "Still there?", conversation=started["conversation"], model="small-model")
        frames = await until_done(chat)
        assert answer_text(frames) == "Small answer."


async def test_busy_is_per_model(chat, settings):
    settings.LLM_MAX_BATCH = 1
    settings.LLM_QUEUE_SIZE = 0
    settings.CHAT_MAX_GENERATIONS_PER_USER = 5

    class Stalled(LargeScheduler):
        stall = True

    async with (
        running_worker("small", engine_factory=SmallEngine, scheduler_factory=SmallScheduler),
        running_worker("large", engine_factory=LargeEngine, scheduler_factory=Stalled),
    ):
        # The large model's only place is taken by an answer that does not end.
        await send(chat, model="large-model")
        assert (await chat.receive_json_from(timeout=5))["type"] == "chat.started"
        await until_heartbeat(lambda beat: beat.get("active") == 1, "large")

        await send(chat, model="large-model")
        error = await chat.receive_json_from(timeout=5)
        while error["type"] != "error":
            error = await chat.receive_json_from(timeout=5)
        assert error["code"] == "busy"
        assert error["detail"].startswith("large-model is answering as many people")

        await send(chat, model="small-model")
        frames = await until_done(chat)
        assert answer_text([f for f in frames if f.get("message") == frames[-1]["message"]]) == (
            "Small answer."
        )


async def until_heartbeat(condition, name, timeout=10):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        beat = await sync_to_async(cache.get)(registry.heartbeat_key(name))
        if beat and condition(beat):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"The heartbeat of {name} did not change within {timeout} s.")


async def test_a_restricted_model_is_refused_to_others_and_audited_by_model(chat, two_workers):
    await sync_to_async(restrict)("large-model", "Research")

    await send(chat, model="large-model")
    error = await chat.receive_json_from()
    assert error["code"] == "model_not_allowed"
    assert error["detail"] == "You may not use the model large-model; pick another one."

    await send(chat)
    await until_done(chat)
    sent = await AuditEvent.objects.filter(action="message.sent").aget()
    done = await AuditEvent.objects.filter(action="generation.done").aget()
    assert sent.details["model"] == "small-model"
    assert done.details["model"] == "small-model"


async def test_a_model_name_that_is_not_a_string_is_a_bad_frame(chat):
    await send(chat, model=["large-model"])

    error = await chat.receive_json_from()
    assert error["code"] == "bad_frame"
    assert "`model` must be the name of a model" in error["detail"]


# --- the admin --------------------------------------------------------------------------------


def test_an_admin_restricts_a_model_to_groups_and_it_is_audited(admin_client_secure):
    research = Group.objects.create(name="Research")

    response = admin_client_secure.post(
        "/admin/chat/modelaccess/add/",
        {"model_name": "large-model", "groups": [research.pk]},
        REMOTE_ADDR="10.0.0.70",
        secure=True,
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    access = ModelAccess.objects.get(model_name="large-model")
    assert list(access.groups.all()) == [research]
    event = AuditEvent.objects.get(action="model_access.changed")
    assert event.details == {"model": "large-model", "groups": ["Research"]}
