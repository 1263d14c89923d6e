"""Sources: remote and local feeds, fetched on their schedule and turned into stored items.

``fetch`` is the only HTTP client (``addresses`` judges where it may connect,
``decoding`` undoes compression within the size cap); ``parse`` turns bytes into a
``ParsedFeed``; ``schedule`` (when next) and ``decide`` (what a fetch means: items to
store, ids, notes, the outcome) are pure; ``results`` holds the records a fetch takes and
gives (pure, so the decisions need not import the HTTP client); ``update`` does the I/O
around them: loads, fetches, reads on workers, decides, saves.
"""
