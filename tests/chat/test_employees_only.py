"""Only members of Employees (and superusers) may chat: page, API and socket."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group

from audit.models import AuditEvent
from tests.support.websockets import socket_for

pytestmark = pytest.mark.django_db(transaction=True)


def leave_employees(user):
    user.groups.remove(Group.objects.get(name="Employees"))


def test_an_employee_gets_the_chat_page(employee_client):
    assert employee_client.get("/", secure=True).status_code == 200


def test_someone_outside_employees_is_told_why_and_it_is_recorded(employee, employee_client):
    leave_employees(employee)

    page = employee_client.get("/", secure=True)
    api = employee_client.get("/chat/api/conversations", secure=True)

    assert page.status_code == 403
    assert b"ask an administrator to add you to Employees" in page.content
    assert api.status_code == 403
    assert AuditEvent.objects.filter(action="permission.denied", actor=employee).count() == 2


def test_staff_outside_employees_start_in_the_admin(compliance_officer, compliance_client):
    leave_employees(compliance_officer)

    response = compliance_client.get("/", secure=True)

    assert response.status_code == 302
    assert response["Location"] == "/admin/"


async def test_the_chat_socket_refuses_someone_outside_employees(employee, employee_client):
    await sync_to_async(leave_employees)(employee)
    communicator = socket_for(employee_client)

    connected, code = await communicator.connect()

    assert not connected
    assert code == 4403
    refused = await sync_to_async(AuditEvent.objects.filter(action="websocket.refused").last)()
    assert refused.details["reason"] == "not_an_employee"
    await communicator.disconnect()
