from django.conf import settings
from django.contrib import admin
from django_otp.admin import OTPAdminSite

# The admin needs a verified second factor too (django-otp's documented way to enforce it
# on the default site, keeping every app's registrations).
admin.site.__class__ = OTPAdminSite
admin.site.site_header = f"{settings.SITE_NAME} administration"
admin.site.site_title = f"{settings.SITE_NAME} admin"
admin.site.index_title = "Administration"
