"""The people tests act as. Passwords are long so Django's validators never object."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

PASSWORD = "correct horse battery staple 42"
COMPLIANCE_GROUP = "Compliance"


def make_employee(username: str = "alice"):
    return get_user_model().objects.create_user(username=username, password=PASSWORD)


def make_admin(username: str = "root-admin"):
    return get_user_model().objects.create_superuser(
        username=username, password=PASSWORD, email=f"{username}@corp.example"
    )


def make_compliance_officer(username: str = "carol"):
    user = get_user_model().objects.create_user(username=username, password=PASSWORD)
    user.is_staff = True
    user.save()
    user.groups.add(Group.objects.get(name=COMPLIANCE_GROUP))
    return user
