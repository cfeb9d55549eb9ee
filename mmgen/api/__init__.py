"""The MiniMax client: create, query, retrieve and the streamed download on one HTTP stack
(httpx), ``base_resp`` codes turned into typed errors (:mod:`mmgen.errors`), retries with
backoff, and the create endpoint's requests-per-minute limiter.

Modules: ``client`` (the calls), ``answers`` (parsing what the API answers; no I/O),
``download`` (one video streamed to disk and verified), ``retries`` (backoff), ``ratelimit``
(the RPM limiter), ``lanes`` (connection pools).
"""
