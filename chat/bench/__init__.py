"""`manage.py bench_chat`: how fast answers come, from the bare model up to the websocket.

Modules: ``metrics`` (per-stream timings and their summary), ``local`` (plain transformers
``generate`` and the engine's scheduler, each run in a child process so its peak memory is
its own), ``site`` (real `manage.py serve` / `inference_worker` processes on a fresh state
directory, signed-in users and their websockets), ``loopback`` (free ports, whether
PostgreSQL and Redis answer, signing in over HTTPS with password and authenticator code; the
project's tests use it too) and ``report`` (table, JSON, plot).
"""
