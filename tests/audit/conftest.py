import pytest

from tests.support import personas


@pytest.fixture
def employee():
    # Tests mark their database access (pytestmark), transactional or not.
    return personas.make_employee()


@pytest.fixture
def admin_user():
    return personas.make_admin()


@pytest.fixture
def compliance_officer():
    return personas.make_compliance_officer()


@pytest.fixture
def compliance_client(client, compliance_officer):
    personas.login_2fa(client, compliance_officer)
    return client


@pytest.fixture
def admin_client_secure(client, admin_user):
    personas.login_2fa(client, admin_user)
    return client
