"""The editor and a new user's first minutes in the browser (tests/e2e/editor.mjs, issue 9 items
3-6 and 8 in part), against the shared ``alphaforge serve``: upload names, a CSV without volume,
the config panel on a broken line, an unknown dataset's squiggle with did-you-mean, the in-app
Create/Rename dialog, Duplicate "(copy)", a Python node with an IndentationError not saved,
completion after `use ` (the user's custom node) and after `data.` (what validates).
Screenshots land in tests/e2e/screenshots/ed-*.png.
"""

from __future__ import annotations

import pytest

from tests.e2e.driver import run_tour
from tests.serve_process import Served

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("browser")]

SHOTS = (
    "ed-01-upload-refused",
    "ed-02-upload-without-volume",
    "ed-03-unknown-dataset",
    "ed-05-config-panel-broken-line",
    "ed-06-config-panel-other-step",
    "ed-08-rename-dialog",
    "ed-09-long-title-truncated",
    "ed-10-duplicate-dialog",
    "ed-12-node-indentation-error",
    "ed-13-use-completion",
    "ed-14-member-completion",
)


def test_editor_tour(shared_serve: Served) -> None:
    run_tour("editor.mjs", shared_serve.base, "ed-", set(SHOTS), timeout=900)
