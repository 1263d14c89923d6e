"""Render: records in, bytes out; the feeds and the pages for people.

``feed`` writes Atom 1.0 and RSS 2.0 (feedgen) and JSON Feed 1.1, ``pages`` the index,
the OPML list and the feed pages (Jinja2), ``safe`` makes whatever the store holds into
an entry fit to write, ``budget`` keeps each file within its byte budget. These four are
pure: no files, network, database or clock. ``templates`` is the one module here that
reads files: it finds the templates (the package's, or the config's folder) and their
stats, and the XSL view's bytes.
"""
