from crm import views
from django.contrib import admin
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from resthooks.contrib.django.urls import api_urls

urlpatterns = [
    # API clients authenticate with a header, not a session: no CSRF on the API.
    *api_urls("api/v2/resthooks", decorators=[csrf_exempt]),
    path("api/v2/parties", csrf_exempt(views.create_party)),
    path("api/v2/kases/<int:kase_id>/close", csrf_exempt(views.close_kase)),
    path("admin/resthooks/", include("resthooks.contrib.django.admin_urls")),
    path("admin/", admin.site.urls),
]
