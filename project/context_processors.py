from django.conf import settings


def site(request):
    """The site name for page titles and the header."""
    return {"product_name": settings.SITE_NAME}
