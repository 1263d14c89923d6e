"""Output: what happens to the files once they are rendered, and serving them.

``publish`` is the only module that writes into the output folder (atomically, only
when bytes change); ``run`` is a run's publish side around it (records, claiming the
folder, stale files, the status files); ``websub`` tells the hub which feeds changed
(through ``sources.fetch``, the one HTTP client); ``serve`` serves the folder, with
``http1`` speaking HTTP/1.1 as a server (httptools) and ``negotiate`` deciding, purely,
what each request gets. Names and media types are all ``feeds.layout``'s.
"""
