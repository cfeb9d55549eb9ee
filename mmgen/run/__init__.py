"""The orchestration of many jobs: ``execute`` (a whole ``mmgen run``), the ``runner`` (each
job's submit, wait, download and record), the callback ``listener`` and the ``mailbox`` a waiting
job reads its pushes from, ``turns`` (finishing jobs in order) and ``outcomes`` (what a run
reports, as data).
"""
