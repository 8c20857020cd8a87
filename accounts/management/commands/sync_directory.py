"""``manage.py sync_directory``: leavers lose access within one run (deploy/systemd runs it
every 15 minutes)."""

from django.core.management.base import BaseCommand, CommandError

from accounts import services
from accounts.directory import (
    DirectoryConnection,
    DirectoryUnavailable,
    ldap_configured,
    note_status,
)
from accounts.models import DirectoryAccount

# Why an account was deactivated, as directory.user_deactivated says it.
DISABLED = "disabled"
DELETED = "deleted"
NO_ROLE = "no_role"

# More deactivations than this share of the directory's accounts in one run looks like a
# wrong search base or filter rather than people leaving: the run stops without changing
# anyone, unless the operator confirms with --allow-mass-deactivation.
MASS_DEACTIVATION_SHARE = 0.25
MASS_DEACTIVATION_MINIMUM = 5


class Command(BaseCommand):
    help = (
        "Ask the company directory about every active directory account: deactivate those "
        "disabled, deleted or in no mapped group (ending their sessions and websockets), and "
        "set the others' role groups. Each change is in the audit log."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-mass-deactivation",
            action="store_true",
            help=(
                f"Deactivate even when more than {MASS_DEACTIVATION_SHARE:.0%} of the "
                "directory's accounts would go in one run."
            ),
        )

    def handle(self, *args, allow_mass_deactivation=False, **options):
        if not ldap_configured():
            raise CommandError(
                "AUTH_LDAP_SERVER_URI is not set: there is no directory to synchronise with."
            )
        accounts = list(
            DirectoryAccount.objects.filter(
                source=DirectoryAccount.Source.LDAP, user__is_active=True
            ).select_related("user")
        )
        try:
            with DirectoryConnection() as directory:
                decisions = [(account, self._decide(directory, account)) for account in accounts]
        except DirectoryUnavailable as exc:
            note_status("ldap", False, str(exc))
            raise CommandError(
                f"The directory could not be asked ({exc}); nobody was changed. "
                "Check AUTH_LDAP_SERVER_URI, the CA file and the bind account, then run again."
            ) from None
        note_status("ldap", True)

        leaving = [(account, outcome) for account, outcome in decisions if isinstance(outcome, str)]
        limit = max(MASS_DEACTIVATION_MINIMUM, int(len(accounts) * MASS_DEACTIVATION_SHARE))
        if len(leaving) > limit and not allow_mass_deactivation:
            raise CommandError(
                f"{len(leaving)} of {len(accounts)} directory accounts would be deactivated, "
                f"more than the {limit} one run may: check AUTH_LDAP_USER_SEARCH_BASE and "
                "AUTH_LDAP_USER_FILTER. Nobody was changed; if they really left, run again "
                "with --allow-mass-deactivation."
            )
        changed = 0
        for account, outcome in decisions:
            if isinstance(outcome, str):
                services.deactivate_directory_user(user=account.user, reason=outcome)
                self.stdout.write(f"Deactivated {account.user.get_username()}: {outcome}.")
            elif services.directory_roles_changed(user=account.user, role_groups=outcome):
                changed += 1
                self.stdout.write(
                    f"Roles of {account.user.get_username()}: {', '.join(sorted(outcome))}."
                )
        self.stdout.write(
            f"Checked {len(accounts)} directory accounts: {len(leaving)} deactivated, "
            f"{changed} with other roles."
        )

    @staticmethod
    def _decide(directory, account):
        """The reason to deactivate ``account``, or the role groups it should have."""
        entry = directory.lookup(account.user.get_username())
        if entry is None:
            return DISABLED if directory.exists(account.subject) else DELETED
        if not entry.role_groups:
            return NO_ROLE
        return entry.role_groups
