"""``alphaforge deploy``: register the work pool and every deployment on the configured Prefect
server (a production stack's one-off set-up step; ``serve`` does the same for its own server).

The server is ``ALPHAFORGE_PREFECT_API_URL`` (or ``--api-url``); without one the command refuses
rather than registering on an embedded server that is gone when it exits. Idempotent: run it
after every upgrade (the deployments carry the flows' current parameter schemas).
"""

from __future__ import annotations

import json

import click

__all__ = ["deploy_command"]


@click.command("deploy")
@click.option("--api-url", help="The Prefect API [default: ALPHAFORGE_PREFECT_API_URL].")
@click.option("--pool", default="alphaforge", show_default=True, help="The process work pool.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def deploy_command(api_url: str | None, pool: str, as_json: bool) -> None:
    """Register the work pool, the web, node-lab, sweep, engine and crash-report deployments,
    and the automations (crashed runs, runs past ALPHAFORGE_MAX_RUN_MINUTES)."""
    from prefect.client.orchestration import SyncPrefectClient

    from deployments.deploy import register_all
    from flows.settings import get_settings

    url = api_url or get_settings().prefect_api_url
    if not url:
        raise click.UsageError(
            "no Prefect server: set ALPHAFORGE_PREFECT_API_URL (e.g. http://prefect:4200/api) "
            "or pass --api-url"
        )
    try:
        with SyncPrefectClient(api=url) as client:
            client.api_healthcheck()
            ids = register_all(client, pool)
    except click.ClickException:
        raise
    except Exception as exc:  # the server's or the network's: one line, no trace
        raise click.ClickException(f"cannot register on {url}: {exc}") from None
    prefix = "automation/"
    automations = {k.removeprefix(prefix): v for k, v in ids.items() if k.startswith(prefix)}
    deployments = {k: v for k, v in ids.items() if not k.startswith(prefix)}
    if as_json:
        out = {"api_url": url, "pool": pool, "deployments": deployments}
        click.echo(json.dumps({**out, "automations": automations}))
        return
    click.echo(f"work pool {pool!r} on {url}")
    for name, deployment_id in sorted(deployments.items()):
        click.echo(f"  {name:<28} {deployment_id}")
    for name, automation_id in sorted(automations.items()):
        click.echo(f"  automation {name:<17} {automation_id}")
