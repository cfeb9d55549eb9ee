"""The orchestration of many jobs.

Modules: ``execute`` (a whole ``mmgen run``: lock, tidy, plan, build the client and the listener,
run), ``runner`` (each job's submit, wait, download and record), ``listener`` (the callback
listener: challenge echo and status pushes, on its own thread), ``outcomes`` (what a run
reports, as data).
"""
