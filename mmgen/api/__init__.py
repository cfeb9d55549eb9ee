"""The MiniMax client: create, query, retrieve and the streamed download on one HTTP stack
(httpx and its own transport, proxied or not), ``base_resp`` codes turned into typed errors
(:mod:`mmgen.errors`), retries with backoff, and the create endpoint's requests-per-minute
limiter.

Modules: ``client`` (the calls, and whether a failed create was sent), ``responses`` (parsing
what the API responds; no I/O), ``download`` (one video streamed to disk and verified),
``mp4`` (a video's top-level boxes cover it exactly), ``retries`` (backoff), ``ratelimit`` (the
RPM limiter).
"""
