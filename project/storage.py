"""Static files storage: whitenoise's compressed, hashed files, with ES module imports hashed.

``static/js/chat/*.js`` are ES modules that import each other by relative path. With
``support_js_module_import_aggregation`` on, collectstatic rewrites each ``import ... from
"./x.js";`` to the hashed name of ``x.js``, so a page loads one consistent set of modules and
each can be cached for good. The modules must not import each other in a cycle: the hash of
a module depends on the hashed names it imports.
"""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
