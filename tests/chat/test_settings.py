"""A conversation's own settings (instructions, temperature, answer length) and presets."""

import pytest

from audit.models import AuditEvent
from chat import conversation_settings, services
from chat.models import Conversation, Preset
from tests.chat.test_storage import every_stored_text

pytestmark = pytest.mark.django_db

INSTRUCTIONS = "Answer as the Zanzibar harbour master would."


def a_conversation(user):
    turn = services.start_turn(actor=user, conversation_id=None, content="q", model_name="m")
    services.finish_answer(message_id=turn.answer.pk, content="a", finish_reason="stop")
    return turn.conversation


def test_settings_are_stored_with_instructions_encrypted_and_audited(employee):
    conversation = a_conversation(employee)
    values = conversation_settings.clean_settings(
        {"instructions": INSTRUCTIONS, "temperature": 0.7, "max_new_tokens": 64}
    )

    conversation_settings.change_settings(actor=employee, conversation=conversation, values=values)

    stored = Conversation.objects.get(pk=conversation.pk)
    assert (stored.instructions, stored.temperature, stored.max_new_tokens) == (
        INSTRUCTIONS,
        0.7,
        64,
    )
    assert "Zanzibar" not in every_stored_text()
    event = AuditEvent.objects.get(action="conversation.settings_changed")
    assert event.details["fields"] == ["instructions", "temperature", "max_new_tokens"]
    assert event.details["instructions_length"] == len(INSTRUCTIONS)
    assert "Zanzibar" not in str(event.details)


def test_the_next_turn_gets_the_instructions_first_and_the_settings_as_params(employee):
    conversation = a_conversation(employee)
    conversation_settings.change_settings(
        actor=employee,
        conversation=conversation,
        values=conversation_settings.ChatSettings(INSTRUCTIONS, 0.2, 32),
    )

    turn = services.start_turn(
        actor=employee, conversation_id=conversation.pk, content="next", model_name="m"
    )

    assert turn.history[0] == {"role": "system", "content": INSTRUCTIONS}
    assert turn.history[-1] == {"role": "user", "content": "next"}
    assert turn.params == {"temperature": 0.2, "max_new_tokens": 32}


def test_a_new_conversation_keeps_the_settings_of_its_first_message(employee):
    turn = services.start_turn(
        actor=employee,
        conversation_id=None,
        content="q",
        model_name="m",
        new_settings=conversation_settings.ChatSettings(INSTRUCTIONS, None, 100),
    )

    assert turn.history[0]["content"] == INSTRUCTIONS
    assert conversation_settings.settings_as_dict(turn.conversation) == {
        "instructions": INSTRUCTIONS,
        "temperature": None,
        "max_new_tokens": 100,
    }


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 10**9}, "max_new_tokens"),
        ({"max_new_tokens": 1.5}, "max_new_tokens"),
        ({"instructions": "x" * (conversation_settings.INSTRUCTIONS_MAX + 1)}, "instructions"),
        ({"instructions": 5}, "instructions"),
        ({"colour": "blue"}, "settings"),
    ],
)
def test_values_outside_the_sites_bounds_are_refused_field_by_field(data, field):
    with pytest.raises(conversation_settings.SettingsInvalid) as refused:
        conversation_settings.clean_settings(data)
    assert set(refused.value.errors) == {field}
    assert refused.value.errors[field].endswith(".")


def test_presets_are_saved_replaced_by_name_and_deleted_each_audited(employee, other_employee):
    values = conversation_settings.ChatSettings(INSTRUCTIONS, 0.5, None)

    first = conversation_settings.save_preset(actor=employee, name=" Harbour ", values=values)
    again = conversation_settings.save_preset(
        actor=employee, name="harbour", values=conversation_settings.ChatSettings("", 1.0, 10)
    )
    conversation_settings.save_preset(actor=other_employee, name="Harbour", values=values)

    assert again.pk == first.pk
    mine = conversation_settings.presets_of(employee)
    assert [conversation_settings.preset_as_dict(p)["temperature"] for p in mine] == [1.0]
    assert mine[0].name == "harbour"
    saved = AuditEvent.objects.filter(action="preset.saved").order_by("sequence")
    assert [e.details["replaced"] for e in saved] == [False, True, False]
    with pytest.raises(LookupError):
        conversation_settings.delete_preset(actor=other_employee, preset_id=first.pk)
    conversation_settings.delete_preset(actor=employee, preset_id=first.pk)
    assert not Preset.objects.filter(user=employee).exists()
    assert AuditEvent.objects.filter(action="preset.deleted").count() == 1
    assert "Zanzibar" not in every_stored_text()


def test_a_preset_needs_a_name(employee):
    for name in ("", "   ", None, "x" * 100):
        with pytest.raises(conversation_settings.SettingsInvalid) as refused:
            conversation_settings.save_preset(
                actor=employee, name=name, values=conversation_settings.ChatSettings()
            )
        assert set(refused.value.errors) == {"name"}
    assert not Preset.objects.exists()


def test_the_settings_api_shows_errors_by_field_and_saves_good_values(employee_client, employee):
    conversation = a_conversation(employee)
    url = f"/chat/api/conversations/{conversation.pk}/settings"

    bad = employee_client.post(
        url, {"temperature": 9, "max_new_tokens": 64}, content_type="application/json", secure=True
    )
    good = employee_client.post(
        url,
        {"instructions": INSTRUCTIONS, "temperature": 0.3, "max_new_tokens": 64},
        content_type="application/json",
        secure=True,
    )
    detail = employee_client.get(f"/chat/api/conversations/{conversation.pk}", secure=True)

    assert bad.status_code == 400
    assert set(bad.json()["error"]["fields"]) == {"temperature"}
    assert good.status_code == 200
    assert detail.json()["settings"]["instructions"] == INSTRUCTIONS


def test_the_presets_api_lists_only_your_own(employee_client, employee, other_employee):
    conversation_settings.save_preset(
        actor=other_employee, name="Theirs", values=conversation_settings.ChatSettings()
    )

    saved = employee_client.post(
        "/chat/api/presets",
        {"name": "Brief", "instructions": "Be brief.", "temperature": None},
        content_type="application/json",
        secure=True,
    )
    unnamed = employee_client.post(
        "/chat/api/presets", {"name": ""}, content_type="application/json", secure=True
    )
    listed = employee_client.get("/chat/api/presets", secure=True)

    assert saved.status_code == 200
    assert unnamed.status_code == 400
    assert set(unnamed.json()["error"]["fields"]) == {"name"}
    assert [p["name"] for p in listed.json()["presets"]] == ["Brief"]
