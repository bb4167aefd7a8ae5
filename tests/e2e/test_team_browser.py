"""Team use in the browser (tests/e2e/team.mjs) against the shared ``alphaforge serve``: the
admin creates a developer, an observer and a team in the UI and shares a pipeline with the team;
the developer is made to change the temporary password at first log-in, then sees the team's
pipeline read-only (Save / Run disabled with the reason) and not an unshared one; the observer
sees every edit control disabled with a tooltip saying why (pipelines, pipeline, datasets,
nodes, node editor); the last admin cannot demote themselves; a disabled user's token stops
working. Screenshots land in tests/e2e/screenshots/team-*.png.
"""

from __future__ import annotations

import pytest

from tests.e2e.driver import run_tour
from tests.serve_process import Served

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("browser")]


def test_an_admin_sets_up_a_team_and_roles_show_only_what_they_may_do(
    shared_serve: Served,
) -> None:
    expected = {
        "team-02-users",
        "team-04-teams",
        "team-06-first-login",
        "team-08-developer-pipeline-read-only",
        "team-11-observer-pipeline",
        "team-12-observer-datasets",
        "team-14-observer-node-editor",
    }
    run_tour("team.mjs", shared_serve.base, "team-", expected, timeout=600)
