"""The HTTP API: OpenAI-compatible transcription at /v1 and the jobs API at /api/v1.

It runs in its own process (`python -m ttservice.interfaces.api`), which the service
starts beside its web app and restarts if it exits. Like the web app it only reads
the store, queues jobs and asks for stops: the service's ProcessManager starts and
watches every worker, so an API job is supervised, stoppable and resumable like any
other (runner `api`).
"""
