"""The reconcile state of an out dir: outcome ``records`` (the journal), durable ``files``
operations, the ``planning`` of a run against the records, ``changes`` (what changed in a job
since its last record) and ``pricing`` (what a plan will spend).
"""
