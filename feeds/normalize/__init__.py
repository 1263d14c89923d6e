"""Normalize: build the entry model from what posts and sources produced.

Pure modules: no files, network, database or clock. ``dates`` makes dates aware UTC
within readers' range; ``posts`` maps front matter onto :class:`~feeds.models.PostMeta`
and builds a post's entry; ``items`` builds a source item's entry within its caps;
``content`` cleans HTML and text. Ids are ``identity``'s.
"""
