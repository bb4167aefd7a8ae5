"""Serving the built single-page app (``ui/dist``) with a fallback to ``index.html``.

Unknown paths outside ``/api`` get ``index.html`` so the client-side router can take them;
unknown ``/api`` paths stay JSON 404s. Files are resolved by Starlette's ``StaticFiles``, which
refuses paths that leave the directory.
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope


class SPAStaticFiles(StaticFiles):
    """Static files with an SPA fallback; hashed assets are cached, ``index.html`` is not."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory, html=True, check_dir=True)
        self.index = directory / "index.html"

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file at ``path``, else ``index.html`` (JSON 404 under ``api/``)."""
        if path == "api" or path.startswith("api/"):
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or not self.index.is_file():
                raise
            response = FileResponse(self.index)
        if response.status_code == 404 and self.index.is_file():
            response = FileResponse(self.index)
        if path.startswith("assets/") and response.status_code == 200:
            response.headers["cache-control"] = "public, max-age=31536000, immutable"
        else:
            response.headers["cache-control"] = "no-cache"
        return response
