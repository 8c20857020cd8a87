"""The chain's head row, PostgreSQL triggers that make events append-only, and the
Compliance group that may read the audit log and nothing else."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

COMPLIANCE_GROUP = "Compliance"

CREATE_TRIGGERS = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('audit.allow_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
"""

DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS audit_event_no_update ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_event_no_delete ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_append_only();
"""


def install_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_TRIGGERS, params=None)


def remove_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_TRIGGERS, params=None)


def create_head(apps, schema_editor):
    head = apps.get_model("audit", "AuditChainHead")
    head.objects.get_or_create(pk=1, defaults={"sequence": 0, "hash": "0" * 64})


def create_compliance_group(apps, schema_editor):
    # Permissions are normally created after all migrations; this group needs them now.
    app_config = apps.get_app_config("audit")
    # Migration state's app configs have no models module; create_permissions needs one set.
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group, _ = group_model.objects.get_or_create(name=COMPLIANCE_GROUP)
    group.permissions.set(
        permission_model.objects.filter(content_type__app_label="audit", codename="view_auditevent")
    )


def remove_compliance_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=COMPLIANCE_GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_events"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_head, migrations.RunPython.noop),
        migrations.RunPython(install_triggers, remove_triggers),
        migrations.RunPython(create_compliance_group, remove_compliance_group),
    ]
