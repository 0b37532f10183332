"""Sources that feed the raw topics: a shared core, and one package per kind of source.

Layout::

    sources/
      interface.py   the source interface: PolledSource, DatasetSource, Batch, dead_letter,
                     SourceStatus, SourceFactory (what a source promises, in its docstrings)
      runner.py      SourceRunner: recovery, publication, checkpoints, status, retries
                     (exactly once into Kafka); StatusReporter
      checkpoint.py  the checkpoint file of a source and its lock
      publisher.py   the aiokafka producer of the pollers (acks=all, recovery reads)
      kinds.py       source_type -> package: the one place a kind is chosen
      poll.py        the ``python -m atlas_stream poll`` command
      files/         fs: landing folders (source, options, readers, csvfile, progress)
      database/      rdbms: tables through SQLAlchemy (source, pass_, query, rows, config)
      rest/          api: paginated GETs (source, pagination, http, config)
      kafka/         kafka: an existing topic (source)
      gateway/       websocket and stream: records pushed to ``python -m atlas_stream gateway``
                     (server, connection, frames, routes, auth, publish, status)

The data's path: ``poll`` reads the contract -> ``kinds.factory_for(source_type)`` -> the
package's ``sources_for`` builds one source per dataset -> a ``SourceRunner`` per source asks it
for batches from its checkpointed position -> ``Publisher`` -> ``atlas.<group>.<dataset>.raw``
(bad input -> the group's DLQ), status -> ``atlas.sources.status``. Retries use the shared
policy of :mod:`atlas_stream.retry`; errors are in the :mod:`atlas_stream.errors` tree.

Adding a source kind:

1. Add the ``source_type`` value to ``contract.schema.json`` (and what its contracts hold).
2. Create ``sources/<kind>/`` with a ``source.py`` whose class subclasses
   :class:`~.interface.DatasetSource` and implements ``poll(position)``: deterministic
   positions, bad input as :func:`~.interface.dead_letter`, blocking I/O in threads.
3. In ``sources/<kind>/__init__.py`` export ``sources_for(contract, settings, dataset, once)``
   returning ``(source, poll interval)`` per dataset (a :data:`~.interface.SourceFactory`).
4. Add one line to ``SOURCE_KINDS`` in ``kinds.py``: ``"<source_type>": "<kind>"``.
5. Add ``tests/unit/sources/test_<kind>.py`` and ``tests/integration/sources/``, and a section
   of ``docs/sources.md``.
"""
