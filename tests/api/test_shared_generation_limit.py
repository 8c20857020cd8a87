"""One limit of answers at once per person, whether they come from chat tabs or the API."""

import pytest

from api import limits, services
from api.errors import ApiError
from chat import services as chat_services

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(employee):
    return services.create_api_token(actor=employee, user=employee, name="tests")[0]


def test_the_chat_socket_counts_the_api_calls_running(token, employee):
    limits.take_generation_slot(token)

    assert chat_services.generations_running(employee) == 1
    limits.release_generation_slot(employee)
    assert chat_services.generations_running(employee) == 0


def test_the_api_counts_answers_the_page_is_writing(token, employee, settings):
    settings.CHAT_MAX_GENERATIONS_PER_USER = 2
    chat_services.start_turn(actor=employee, conversation_id=None, content="Hi", model_name="m")
    limits.take_generation_slot(token)

    with pytest.raises(ApiError) as refused:
        limits.take_generation_slot(token)

    assert refused.value.status == 429
    assert refused.value.retry_after == 1
    # The refused call gave its place back.
    assert chat_services.generations_running(employee) == 2
