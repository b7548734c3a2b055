"""The jobs area (admins): the job queue, one job, replaying a dead one."""

from __future__ import annotations

from .parameters import _ListParameters
from .pieces import ISO_MOMENT, _data, _errors, _ok, _page, _path_id, _ref


class _JobPaths(_ListParameters):
    """The jobs' paths and schema."""

    def _jobs_paths(self) -> None:
        from ...jobs.api import job_source
        from ...jobs.store import STATUSES

        self.schemas["Job"] = {"type": "object", "properties": {
            "id": {"type": "integer"}, "task": {"type": "string"}, "status": {"enum": list(STATUSES)},
            "key": {"type": ["string", "null"]}, "payload": {"type": "object"}, "attempts": {"type": "integer"},
            "max_attempts": {"type": "integer"}, "due_at": ISO_MOMENT, "last_error": {"type": ["string", "null"]},
            "created_at": ISO_MOMENT, "updated_at": ISO_MOMENT, "finished_at": {"type": ["string", "null"]}}}
        job_id = _path_id("job_id", "job")
        self._op("/api/v1/jobs", "get", "jobs", "Jobs, newest first (admins; status=dead: the dead-letter list)",
                 {**_ok(_page(_ref("Job"))), **_errors(400, 403)}, admin=True,
                 parameters=self._list_parameters(job_source(self.rt).spec))
        self._op("/api/v1/jobs/{job_id}", "get", "jobs", "A job, with its last error (admins)",
                 {**_ok(_data(_ref("Job"))), **_errors(403, 404)}, admin=True, parameters=[job_id])
        self._op("/api/v1/jobs/{job_id}/replay", "post", "jobs", "Run a dead job again (admins)",
                 {**_ok(_data(_ref("Job"))), **_errors(403, 404, 409)}, admin=True, parameters=[job_id])
