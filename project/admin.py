"""The admin site: a verified second factor for everyone (django-otp's OTPAdminSite), and a
plain refusal, not a sign-in form, for signed-in people who are not staff."""

from functools import update_wrapper

from django.conf import settings
from django.contrib import admin
from django.shortcuts import render
from django.urls import reverse
from django_otp.admin import OTPAdminSite

from audit.log import record_probe


class IntranetAdminSite(OTPAdminSite):
    """OTPAdminSite that tells a verified, signed-in non-staff user (an employee) that the
    admin is not for them, with a 403 and a permission.denied event (rate-limited per address),
    instead of sending them to a sign-in form they cannot get past. Anyone not signed in with
    a second factor still goes to sign-in."""

    def admin_view(self, view, cacheable=False):
        guarded = super().admin_view(view, cacheable)

        def inner(request, *args, **kwargs):
            user = request.user
            if (
                user.is_authenticated
                and user.is_verified()
                and not super(IntranetAdminSite, self).has_permission(request)
                and request.path != reverse("admin:logout", current_app=self.name)
            ):
                return self.refuse_outsider(request)
            return guarded(request, *args, **kwargs)

        return update_wrapper(inner, guarded)

    def refuse_outsider(self, request):
        record_probe(
            "permission.denied",
            source=request.META.get("REMOTE_ADDR", ""),
            outcome="denied",
            request=request,
            method=request.method,
            path=request.path[:200],
            area="admin",
        )
        return render(request, "admin/not_for_you.html", status=403)


# The admin needs a verified second factor too (django-otp's documented way to enforce it
# on the default site, keeping every app's registrations).
admin.site.__class__ = IntranetAdminSite
admin.site.site_header = f"{settings.SITE_NAME} administration"
admin.site.site_title = f"{settings.SITE_NAME} admin"
admin.site.index_title = "Administration"
