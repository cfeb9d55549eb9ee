"""The reconcile state of an out dir: outcome ``records`` (one record: fields, checks, states),
the ``journal`` that keeps them in a folder and ``shared`` (the same in an object store),
``store`` (a folder or an object store behind one interface), ``outdir`` (opening ``--out``),
``claims`` (per job version, before a paid create), ``fingerprints`` (videos known without
re-hashing), durable ``files`` operations, the ``planning`` of a run against the records,
``changes`` (what changed in a job since its last record), ``pricing`` (what a plan will
spend) and ``copy`` (``mmgen store copy``).
"""
