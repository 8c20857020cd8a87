import secrets
import sys

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AdminUserCreationForm
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts import services
from core.labels import invisible_characters


def checked_username(username: str) -> str:
    """``username`` as the admin's "Add user" form would store it (the User model's
    validators and length, Unicode-normalised, not taken in any letter case), or
    CommandError with the reason."""
    invisible = invisible_characters(username)
    if invisible:
        raise CommandError(
            f"The username {username!r} has invisible control or direction characters "
            f"({', '.join(invisible)}); type it again with letters, digits and @ . + - _ only."
        )
    # No password here: the command checks or generates it itself.
    form = AdminUserCreationForm(data={"username": username, "usable_password": "false"})
    if not form.is_valid() and "username" in form.errors:
        raise CommandError(
            f"The username {username!r} was refused: {' '.join(form.errors['username'])}"
        )
    return form.cleaned_data["username"]


class Command(BaseCommand):
    help = (
        "Create an account (in Employees; --admin adds Admins, --compliance adds Compliance). "
        "The user sets up two-step verification at the first sign-in."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument("--admin", action="store_true", help="may manage users and groups")
        parser.add_argument(
            "--compliance", action="store_true", help="may read the audit log, nothing else"
        )
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from standard input instead of generating one",
        )
        parser.add_argument(
            "--if-no-users",
            action="store_true",
            help="do nothing unless the database has no user yet (used by `make run`)",
        )

    def handle(self, *args, username, email, admin, compliance, password_stdin, if_no_users, **o):
        users = get_user_model().objects
        if if_no_users and users.exists():
            return
        # Checked before any query: PostgreSQL refuses a NUL byte in a query parameter.
        username = checked_username(username)
        if users.filter(username=username).exists():
            raise CommandError(f"A user named {username!r} already exists.")
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
            candidate = get_user_model()(username=username, email=email)
            try:
                password_validation.validate_password(password, candidate)
            except ValidationError as exc:
                raise CommandError("The password was refused: " + " ".join(exc.messages)) from None
        else:
            password = secrets.token_urlsafe(15)
        user = services.create_user(
            username=username, password=password, email=email, admin=admin, compliance=compliance
        )
        roles = ["employee"] + (["admin"] * admin) + (["compliance"] * compliance)
        self.stdout.write(f"Created {user.get_username()} ({', '.join(roles)}).")
        if not password_stdin:
            self.stdout.write(
                f"Password: {password}\n"
                "It is shown only now. Sign in, set up two-step verification, then change it."
            )
