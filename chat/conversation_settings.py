"""A conversation's own settings (instructions, temperature, answer length) and the named
presets a user saves them as: checked at the edge, changed atomically with their audit
event."""

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from audit.log import record
from chat.inference.params import MAX_TEMPERATURE
from chat.models import Conversation, Preset
from core.labels import one_line_label

# A conversation's instructions: room for a page of guidance, and still a small share of
# the default model's 8k-token context once the site's own system prompt is added.
INSTRUCTIONS_MAX = 4000
PRESET_NAME_MAX = 60


@dataclass(frozen=True)
class ChatSettings:
    """Instructions, temperature and answer length; None takes the site's default."""

    instructions: str = ""
    temperature: float | None = None
    max_new_tokens: int | None = None

    @classmethod
    def of(cls, holder) -> "ChatSettings":
        return cls(holder.instructions, holder.temperature, holder.max_new_tokens)

    def as_dict(self) -> dict:
        return {
            "instructions": self.instructions,
            "temperature": self.temperature,
            "max_new_tokens": self.max_new_tokens,
        }


class SettingsInvalid(Exception):
    """Some values are out of bounds; ``errors`` has a sentence for each field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(" ".join(errors.values()))
        self.errors = errors


def clean_settings(data) -> ChatSettings:
    """Settings from a JSON object (the page's form or a frame), each checked against the
    site's bounds; SettingsInvalid names every field that is not."""
    if not isinstance(data, dict):
        raise SettingsInvalid({"settings": "Send the settings as a JSON object."})
    errors = {}
    unknown = sorted(set(data) - {"instructions", "temperature", "max_new_tokens"})
    if unknown:
        errors["settings"] = f"Unknown setting {unknown[0][:40]!r}."
    instructions = data.get("instructions") or ""
    if not isinstance(instructions, str):
        errors["instructions"] = "Instructions must be text."
        instructions = ""
    elif len(instructions) > INSTRUCTIONS_MAX:
        errors["instructions"] = (
            f"Instructions can be at most {INSTRUCTIONS_MAX} characters long; these are "
            f"{len(instructions)}."
        )
    temperature = data.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= MAX_TEMPERATURE
    ):
        errors["temperature"] = f"Temperature must be a number from 0 to {MAX_TEMPERATURE:g}."
        temperature = None
    limit = settings.LLM_MAX_NEW_TOKENS
    length = data.get("max_new_tokens")
    if length is not None and (
        isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= limit
    ):
        errors["max_new_tokens"] = f"Answer length must be a whole number from 1 to {limit}."
    if errors:
        raise SettingsInvalid(errors)
    return ChatSettings(
        instructions.strip(),
        None if temperature is None else float(temperature),
        length,
    )


def settings_params(holder) -> dict:
    """The sampling fields a conversation sets, as a frame's ``params``."""
    params = {}
    if holder.temperature is not None:
        params["temperature"] = holder.temperature
    if holder.max_new_tokens is not None:
        params["max_new_tokens"] = holder.max_new_tokens
    return params


def _changed(old: ChatSettings, new: ChatSettings) -> list[str]:
    return [name for name, value in new.as_dict().items() if old.as_dict()[name] != value]


def apply_settings(conversation: Conversation, values: ChatSettings) -> None:
    conversation.instructions = values.instructions
    conversation.temperature = values.temperature
    conversation.max_new_tokens = values.max_new_tokens


@transaction.atomic
def change_settings(
    *, actor, conversation: Conversation, values: ChatSettings, request=None
) -> Conversation:
    """Give the conversation these settings; the next answer uses them."""
    changed = _changed(ChatSettings.of(conversation), values)
    apply_settings(conversation, values)
    conversation.save(update_fields=["instructions", "temperature", "max_new_tokens"])
    record(
        "conversation.settings_changed",
        actor=actor,
        request=request,
        target=conversation,
        fields=changed,
        instructions_length=len(values.instructions),
        temperature=values.temperature,
        max_new_tokens=values.max_new_tokens,
    )
    return conversation


def presets_of(user) -> list[Preset]:
    return list(Preset.objects.filter(user=user))


def _preset_name(name) -> str:
    if not isinstance(name, str):
        raise SettingsInvalid({"name": "A preset's name must be text."})
    name = one_line_label(name)
    if not name:
        raise SettingsInvalid({"name": "Give the preset a name."})
    if len(name) > PRESET_NAME_MAX:
        raise SettingsInvalid(
            {"name": f"A preset's name can be at most {PRESET_NAME_MAX} characters long."}
        )
    return name


@transaction.atomic
def save_preset(*, actor, name, values: ChatSettings, request=None) -> Preset:
    """Save ``values`` as the actor's preset ``name``; a preset of that name (names are
    encrypted, so compared here) gets the new values."""
    name = _preset_name(name)
    existing = next((p for p in presets_of(actor) if p.name.casefold() == name.casefold()), None)
    preset = existing or Preset(user=actor)
    preset.name = name
    preset.instructions = values.instructions
    preset.temperature = values.temperature
    preset.max_new_tokens = values.max_new_tokens
    preset.save()
    record(
        "preset.saved",
        actor=actor,
        request=request,
        target=preset,
        replaced=existing is not None,
        instructions_length=len(values.instructions),
    )
    return preset


@transaction.atomic
def delete_preset(*, actor, preset_id, request=None) -> None:
    """Delete the actor's preset; LookupError when there is no such preset of theirs."""
    try:
        preset = Preset.objects.get(pk=preset_id, user=actor)
    except (Preset.DoesNotExist, ValueError, TypeError, ValidationError):
        raise LookupError("That preset does not exist.") from None
    record("preset.deleted", actor=actor, request=request, target=preset)
    preset.delete()


def preset_as_dict(preset: Preset) -> dict:
    return {"id": str(preset.pk), "name": preset.name, **ChatSettings.of(preset).as_dict()}


def settings_as_dict(conversation: Conversation) -> dict:
    return ChatSettings.of(conversation).as_dict()
