"""Job files, room by room (the public API is :mod:`mmgen.jobfile.spec`).

- :mod:`~mmgen.jobfile.checking`: the steps for each file, and finding the files.
- :mod:`~mmgen.jobfile.rules`: the job-file schema applied, with job-file wording.
- :mod:`~mmgen.jobfile.matrix`: a job's matrix combinations.
- :mod:`~mmgen.jobfile.expansion`: defaults, matrix and ``${...}`` -> complete jobs.
- :mod:`~mmgen.jobfile.interpolation`: ``${VAR}``, ``${matrix.VAR}`` and ``$${`` in one string.
- :mod:`~mmgen.jobfile.local_images`: images checked, local files made data URLs.
- :mod:`~mmgen.jobfile.prompts`: a prompt's camera commands and invisible characters.
- :mod:`~mmgen.jobfile.uniqueness`: names and outputs unique across a run.
- :mod:`~mmgen.jobfile.problems`: problems deduplicated, naming the jobs concerned.
- :mod:`~mmgen.jobfile.jobs`: :class:`~mmgen.jobfile.jobs.JobSpec`, the result.

Reading YAML with positions and turning schema errors into messages are shared with the mock
server's config and live in :mod:`mmgen.schemas`.
"""
