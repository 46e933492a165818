"""What a user does, whatever the interface: every command, page and route calls these,
so the rules live here once. `jobs`: submit, resume, re-run, delete; `models`: list,
download, remove; `corrections`: a transcript's segments corrected and put back."""

from . import corrections, models
from .jobs import (
    check_request,
    delete,
    details,
    rerun,
    resume,
    sanitize_filename,
    submit_file,
    submit_saved,
    submit_upload,
)

__all__ = [
    "check_request",
    "corrections",
    "delete",
    "details",
    "models",
    "rerun",
    "resume",
    "sanitize_filename",
    "submit_file",
    "submit_saved",
    "submit_upload",
]
