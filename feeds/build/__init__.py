"""Build: the pure decisions of a generation, from posts and stored items to what each feed holds.

Every module here is pure: no files, network, database or clock; what they need is handed
in and what they decide comes out as records. ``stories`` merges posts and items into
stories (ids from the ledger ``identity`` keeps), ``taxonomy`` merges tag and category
spellings and makes their slugs, ``group`` plans which entries each feed lists (topic
feeds too), ``filters`` parses and matches the include/exclude rules, ``heads`` makes
each feed's title, links and limits, ``entries`` makes a story's :class:`Entry`,
``pages`` what the front door and the feed pages list, ``health`` the operator's status
feed, ``keys`` the cache key of each stage (only the settings it reads) and
``signatures`` the hashes that tell whether a file must be rendered again.
"""
