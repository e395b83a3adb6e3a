"""Commands for operators, marketers and reps. Every command takes ``--json`` for scripts."""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.panel import Panel
from rich.text import Text

from nurture.access.consent import ConsentConfigError
from nurture.cli.cadence import cadence_app
from nurture.cli.campaigns import campaign_app
from nurture.cli.dashboard import dashboard_link
from nurture.cli.db import db_app
from nurture.cli.keys import inbox_link, keys_app
from nurture.cli.lead_export import lead_export
from nurture.cli.lead_forget import lead_erasure, lead_forget
from nurture.cli.output import (
    JsonOpt,
    connect_client,
    console,
    errors,
    fail,
    print_json,
    run,
    table,
    warn,
)
from nurture.cli.privacy_keys import codec_link, master_key_app
from nurture.cli.report import report_command
from nurture.cli.rules import rules_app
from nurture.cli.sites import lead_find, sites_app
from nurture.cli.tasks import tasks_app
from nurture.client.sales import LeadActionError, act, read_state
from nurture.config.config_loader import (
    ConfigError,
    config_dir_from_env,
    load_rules,
    templates_dir_from_env,
)
from nurture.config.forms import check_website_files
from nurture.contract.messages import (
    TASK_QUEUE,
    ActionResult,
    LeadState,
    OutcomeRequest,
    RejectRequest,
    RepAction,
)
from nurture.contract.names import RepUpdate
from nurture.domain.durations import format_duration
from nurture.domain.leads import LeadEvent, LeadProfile
from nurture.domain.scoring import explain
from nurture.privacy.master_keys import MasterKeyError
from nurture.runtime.logging import configure_logging
from nurture.runtime.process import exit_now
from nurture.store.campaigns import MAX_AMOUNT

if TYPE_CHECKING:
    from nurture.store.rules_status import RulesStatus

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Nurture: one durable Temporal workflow per lead.",
)
lead_app = typer.Typer(no_args_is_help=True, help="Lead profiles; erasure.")
config_app = typer.Typer(no_args_is_help=True, help="Marketer-owned rules.")
templates_app = typer.Typer(no_args_is_help=True, help="Email templates.")
app.add_typer(lead_app, name="lead")
lead_app.command("forget")(lead_forget)
lead_app.command("erasure")(lead_erasure)
lead_app.command("export")(lead_export)
lead_app.command("find")(lead_find)
app.add_typer(config_app, name="config")
app.add_typer(templates_app, name="templates")
app.add_typer(tasks_app, name="tasks")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(master_key_app, name="master-key")
app.add_typer(campaign_app, name="campaign")
app.add_typer(sites_app, name="sites")
app.add_typer(cadence_app, name="cadence")
app.add_typer(rules_app, name="rules")
app.command("inbox-link")(inbox_link)
app.command("dashboard-link")(dashboard_link)
app.command("codec-link")(codec_link)
app.command("report")(report_command)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="rules dir (NURTURE_CONFIG)")]
TemplatesOpt = Annotated[Path | None, typer.Option("--templates", help="templates dir")]
RepOpt = Annotated[str, typer.Option("--rep", help="the rep id taking the action")]
QueueOpt = Annotated[str, typer.Option("--task-queue", help="worker task queue", hidden=True)]

EXIT_REJECTED_LINES = 1
EXIT_USAGE = 2


# --- the embedded default -----------------------------------------------------------------


@app.command()
def up(
    ctx: typer.Context,
    data_dir: Annotated[Path, typer.Option(help="where leads and emails are kept")] = Path("data"),
    config: ConfigOpt = None,
    templates: TemplatesOpt = None,
    port: Annotated[int, typer.Option(help="Temporal gRPC port")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port")] = 8233,
    sendgrid_port: Annotated[
        int, typer.Option(help="SendGrid stand-in port (its mailbox page too)")
    ] = 3030,
    http_port: Annotated[
        int,
        typer.Option(
            envvar="NURTURE_HTTP_PORT",
            help="HTTP service port (API, rep inbox, dashboard, webhooks, the links' port)",
        ),
    ] = 8080,
    time_scale: Annotated[float, typer.Option(help="divide rule durations (demo: 3600)")] = 1.0,
    headless: Annotated[bool, typer.Option(help="no Web UI")] = False,
) -> None:
    """Run the engine on its embedded default: Temporal dev server + Web UI, SendGrid stand-in
    (with a mailbox page to read what was sent), the HTTP service (API, rep inbox, dashboard,
    webhooks, unsubscribe links; --http-port) and a worker. Ctrl-C stops them all.

    Links in emails and from 'nurture inbox-link' point at http://127.0.0.1:<http-port>; set
    NURTURE_PUBLIC_URL when they must open from another machine."""
    from nurture.cli.embedded import EmbeddedOptions, PortBusyError, run_embedded
    from nurture.cli.parts import engine_parts

    configure_logging()
    options = EmbeddedOptions(
        data_dir=data_dir.resolve(),
        config_dir=config_dir_from_env(config),
        templates_dir=templates_dir_from_env(templates),
        port=port,
        ui_port=ui_port,
        sendgrid_port=sendgrid_port,
        http_port=http_port,
        time_scale=time_scale,
        headless=headless,
    )

    def ready(info: dict[str, object]) -> None:
        lines = [
            f"Temporal      {info['temporal']}",
            f"Web UI        {info['ui'] or '(headless)'}",
            f"SendGrid      {info['sendgrid']}",
            f"HTTP          {info['http']}  (API, rep inbox, dashboard, webhooks)",
            f"Demo site     {info['demo']}  (a website carrying the tracker)",
            f"Data          {info['data_dir']}",
            f"Metrics       {info['metrics'] or '(off: NURTURE_METRICS_PORT, see the log)'}",
        ]
        if time_scale != 1:
            lines.append(f"Time scale    x{time_scale:g} (every rule duration divided)")
        lines += [
            "",
            "Try:  nurture lead add examples/leads.jsonl",
            "      nurture event examples/events.jsonl",
            "      nurture report funnel   /   nurture dashboard-link",
            "      nurture audit      (Ctrl-C here stops everything)",
        ]
        console.print(Panel("\n".join(lines), title="Nurture is up", expand=False))
        if info.get("mailbox"):
            # Outside the panel and never wrapped: the link (with its token) stays clickable.
            console.print(f"Mailbox (every email sent): {info['mailbox']}", soft_wrap=True)

    async def main() -> int:
        try:
            await run_embedded(options, ready, engine_parts(ctx).build_worker)
        except (PortBusyError, ConfigError, ConsentConfigError, MasterKeyError) as exc:
            return fail(str(exc), EXIT_USAGE)
        return 0

    run(main(), interrupted_status=0)  # Ctrl-C is how one stops it


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default NURTURE_HTTP_HOST or 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="default NURTURE_HTTP_PORT or 8080")] = None,
) -> None:
    """Run the HTTP service alone (SendGrid Event Webhook, unsubscribe links) against the
    Temporal of TEMPORAL_ADDRESS; run as many as the traffic needs."""
    from nurture.cli.serve import serve_forever

    configure_logging()
    run(serve_forever(host, port), interrupted_status=0)


# --- input ---------------------------------------------------------------------------------


def _ingest(
    source: str,
    model: type,
    rejects: str | None,
    as_json: bool,
    config: Path | None,
    task_queue: str,
) -> None:
    from nurture.cli.ingest import ingest, rejects_path
    from nurture.client.csv_import import CsvHeaderError
    from nurture.client.ingest import (
        LeadDelivery,
        SalesReady,
        SuppressionCheck,
        never_sales_ready,
    )
    from nurture.domain.scoring import qualifies_instantly

    known: set[str] | None = None
    sales_ready: SalesReady = never_sales_ready
    if model is LeadEvent:
        try:
            scoring = load_rules(config_dir_from_env(config)).scoring
        except ConfigError as exc:
            warn(f"event types not checked locally: {exc}")
        else:
            known = scoring.known_event_types()
            sales_ready = functools.partial(qualifies_instantly, rules=scoring)

    suppression: SuppressionCheck | None = None
    if model is LeadProfile:  # a profile of an address on the list starts its lead suppressed
        from nurture.store.db import database_url_from_env, make_engine
        from nurture.store.suppression import why_suppressed

        suppression = functools.partial(why_suppressed, make_engine(database_url_from_env()))

    async def main() -> int:
        try:
            client = await connect_client()
        except LeadActionError as exc:
            return fail(str(exc), EXIT_USAGE)
        try:
            report = await ingest(
                LeadDelivery(client, task_queue, suppression=suppression, sales_ready=sales_ready),
                source,
                model,
                known,
                rejects_path(source, rejects),
                show_progress=not as_json,
            )
        except (FileNotFoundError, CsvHeaderError) as exc:
            return fail(str(exc), EXIT_USAGE)
        if as_json:
            print_json(report.as_json())
        else:
            console.print(
                f"{report.applied} of {report.read} {report.unit} applied", highlight=False
            )
            for line, note in sorted(report.notes)[:20]:
                warn(f"line {line}: {note}")
            for r in report.rejected[:20]:
                errors.print(f"  line {r.line}: {r.reason}", highlight=False)
            if len(report.rejected) > 20:
                errors.print(f"  … and {len(report.rejected) - 20} more")
            if report.rejects_file:
                errors.print(
                    f"{len(report.rejected)} rejected {report.unit} kept in "
                    f"{report.rejects_file}: fix them and send that file again",
                    highlight=False,
                )
        return EXIT_REJECTED_LINES if report.rejected else 0

    run(main())


@lead_app.command("add")
def lead_add(
    source: Annotated[
        str, typer.Argument(help="JSON-lines file of profiles, a .csv export, or - for stdin")
    ],
    rejects: Annotated[str | None, typer.Option(help="where bad lines go")] = None,
    as_json: JsonOpt = False,
    task_queue: QueueOpt = TASK_QUEUE,
) -> None:
    """Create or update lead profiles: one JSON object per line, or a CSV whose header names
    profile fields (lead_id, email, first_name, …, custom.<name>), with a progress bar.

    Exit 0: all applied; 1: some lines rejected (kept in the rejects file); 2: nothing done."""
    _ingest(source, LeadProfile, rejects, as_json, None, task_queue)


@app.command()
def event(
    source: Annotated[str, typer.Argument(help="JSON-lines file of events, or - for stdin")],
    rejects: Annotated[str | None, typer.Option(help="where bad lines go")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    task_queue: QueueOpt = TASK_QUEUE,
) -> None:
    """Send behaviour events: lead_id, type, optional at, campaign, url, props, event_id.

    Exit 0: all applied; 1: some lines rejected (kept in the rejects file); 2: nothing done."""
    _ingest(source, LeadEvent, rejects, as_json, config, task_queue)


# --- reading a lead ------------------------------------------------------------------------


@app.command()
def show(lead_id: str, as_json: JsonOpt = False) -> None:
    """A lead's stage, owner, score with its explanation, cadence, SLA and recent timeline."""

    async def main() -> int:
        try:
            state = await read_state(await connect_client(), lead_id)
        except LeadActionError as exc:
            return fail(str(exc))
        if as_json:
            print_json(state.model_dump(mode="json"))
        else:
            _print_state(state)
        return 0

    run(main())


def _who(profile: LeadProfile) -> str:
    """``Tess Ng, CTO @ Typo Co``: the parts the lead has, one space between them."""
    person = ", ".join(part for part in (profile.display_name, profile.title) if part)
    return f"{person} @ {profile.company}" if profile.company else person


def _in_utc(moment: datetime | None) -> str:
    """``2026-11-20 03:15 UTC``: a time as ``show`` prints it, converted (a consent's ``at``
    keeps the offset it was sent with); ``-`` when there is none."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if moment else "-"


def _consent_lines(state: LeadState) -> list[list[str]]:
    """The latest consent record and the topics the person left, for ``nurture show``."""
    lines = []
    if state.consents:
        latest = state.consents[-1]
        given = [latest.source, _in_utc(latest.at)]
        given += [f"version {latest.version}"] if latest.version else []
        given += [f"from {latest.ip}"] if latest.ip else []
        given += [f"text {latest.text[:60]!r}"] if latest.text else []
        more = f" (+{len(state.consents) - 1} earlier)" if len(state.consents) > 1 else ""
        lines.append(["consent", ", ".join(given) + more])
    else:
        lines.append(["consent", "no record"])
    if state.preferences is not None:
        left = ", ".join(state.preferences.topics_left) or "none"
        lines.append(["topics left", f"{left} (chosen {_in_utc(state.preferences.changed_at)})"])
    return lines


def _print_state(state: LeadState) -> None:
    p = state.profile
    due = state.handoff.sla_due_at if state.handoff and state.stage == "assigned" else None
    summary = [
        ["stage", state.stage],
        ["owner", state.owner or "-"],
        [
            "score",
            f"{state.score.total} (fit {state.score.fit_points}, behaviour "
            f"{state.score.behaviour_points})",
        ],
        ["grade", state.grade],
        ["who", _who(p)],
        ["campaign", p.campaign or "-"],
        ["segment", state.segment or "-"],
        [
            "touches",
            f"{state.touches_sent} sent, {state.touches_skipped} skipped, "
            f"{state.touches_deferred} deferred (send window / cap)",
        ],
        ["events", f"{state.events_applied} applied, {state.duplicates_ignored} duplicates"],
        ["rules", f"{state.rules_version or '-'} (nurture rules history: what each changed)"],
    ]
    if state.variants:  # its A/B tests: the variant it drew at each tested step
        drawn = ", ".join(f"{step} {variant}" for step, variant in sorted(state.variants.items()))
        summary.append(["A/B variants", drawn])
    if state.cadence:
        c = state.cadence
        summary.append(
            [
                "cadence",
                f"{c.cadence_id} cycle {c.cycle} step {c.step_index + 1}"
                + (
                    " (parked)"
                    if c.parked
                    else f", next touch {c.due_at:%Y-%m-%d %H:%M}"
                    if c.due_at
                    else ""
                )
                + (" (waiting on a task)" if c.waiting_task else ""),
            ]
        )
    for task in state.tasks[-3:]:
        summary.append(
            [
                "task",
                f"#{task.id} {task.channel} ({task.step}): {task.status}"
                + (f", {task.outcome} by {task.closed_by}" if task.outcome else ""),
            ]
        )
    if due:
        left = due - datetime.now(UTC)
        summary.append(
            [
                "SLA due",
                f"{_in_utc(due)} ("
                + (
                    f"in {format_duration(timedelta(seconds=int(left.total_seconds())))}"
                    if left.total_seconds() > 0
                    else "overdue"
                )
                + ")",
            ]
        )
    if state.email_suppressed:
        summary.append(["email", f"suppressed ({state.email_suppressed})"])
    summary += _consent_lines(state)
    if state.last_error:
        summary.append(["last error", state.last_error])
    console.print(table(f"Lead {state.lead_id}", ["", ""], summary))
    console.print(
        table(
            "Why this score",
            ["rule", "points", "times"],
            [[r, f"{pts:+d}", n] for r, pts, n in explain(state.score)],
        )
    )
    if state.handoff:
        story = state.handoff.story
        console.print(
            Text.assemble(
                ("Story:", "bold"), f" {story.qualified_by}; campaign {story.campaign or '-'}"
            ),
            highlight=False,
        )
    console.print(
        table(
            "Recent timeline",
            ["at", "what", "detail"],
            [[f"{t.at:%Y-%m-%d %H:%M}", t.kind, t.detail] for t in state.timeline[-15:]],
        )
    )


# --- rep actions ---------------------------------------------------------------------------


def _act(lead_id: str, action: RepUpdate, request: RepAction, as_json: bool) -> None:
    async def main() -> int:
        try:
            result: ActionResult = await act(await connect_client(), lead_id, action, request)
        except LeadActionError as exc:
            return fail(str(exc))
        if as_json:
            print_json(result.model_dump(mode="json"))
        else:
            console.print(
                f"lead {result.lead_id}: now {result.stage}"
                + (f", owner {result.owner}" if result.owner else ""),
                highlight=False,
            )
        return 0

    run(main())


@app.command()
def accept(lead_id: str, rep: RepOpt, as_json: JsonOpt = False) -> None:
    """The owner accepts the lead (stops the SLA clock)."""
    _act(lead_id, "accept", RepAction(rep=rep), as_json)


@app.command()
def contact(lead_id: str, rep: RepOpt, as_json: JsonOpt = False) -> None:
    """The owner has contacted the lead (stops the SLA clock)."""
    _act(lead_id, "contact", RepAction(rep=rep), as_json)


@app.command()
def reject(
    lead_id: str,
    rep: RepOpt,
    reason: Annotated[str, typer.Option(help="why sales returns the lead")],
    as_json: JsonOpt = False,
) -> None:
    """The owner returns the lead to marketing; it enters the recycle cadence."""
    if len(reason.strip()) < 3:
        raise typer.BadParameter("give a reason of at least 3 characters", param_hint="--reason")
    _act(lead_id, "reject", RejectRequest(rep=rep, reason=reason.strip()), as_json)


@app.command()
def outcome(
    lead_id: str,
    rep: RepOpt,
    result: Annotated[str, typer.Argument(help="won or lost")],
    amount: Annotated[float | None, typer.Option(min=0, max=MAX_AMOUNT, help="deal amount")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Close the loop: the deal was won or lost."""
    if result not in ("won", "lost"):
        raise typer.BadParameter("must be 'won' or 'lost'", param_hint="RESULT")
    if amount is not None and not math.isfinite(amount):  # nan passes min and max
        raise typer.BadParameter(
            f"must be a number from 0 to {MAX_AMOUNT:,.0f}", param_hint="--amount"
        )
    verdict: Literal["won", "lost"] = "won" if result == "won" else "lost"
    _act(lead_id, "outcome", OutcomeRequest(rep=rep, result=verdict, amount=amount), as_json)


# --- operators -----------------------------------------------------------------------------


@app.command()
def audit(
    as_json: JsonOpt = False,
    grace: Annotated[int, typer.Option(help="seconds of SLA lateness tolerated")] = 60,
    leads: Annotated[bool, typer.Option("--leads", help="list every lead")] = False,
) -> None:
    """Every lead's stage and owner; exit 1 if any lead is at risk of being lost."""
    from nurture.cli.audit import audit as run_audit
    from nurture.store.db import database_url_from_env, make_engine

    async def main() -> int:
        try:
            report = await run_audit(
                await connect_client(),
                timedelta(seconds=grace),
                make_engine(database_url_from_env()),  # held touches are in the read model
            )
        except LeadActionError as exc:
            return fail(str(exc), EXIT_USAGE)
        if as_json:
            data = report.as_json()
            if leads:
                data["rows"] = report.rows
            print_json(data)
        else:
            if leads:
                console.print(
                    table(
                        "Leads",
                        ["lead", "stage", "owner", "score", "SLA due"],
                        [
                            [r["lead_id"], r["stage"], r["owner"], r["score"], r["sla_due_at"]]
                            for r in report.rows
                        ],
                    )
                )
            console.print(
                table(
                    f"{report.leads} leads",
                    ["stage", "leads"],
                    [[s, n] for s, n in sorted(report.per_stage.items())],
                )
            )
            if report.problems:
                console.print(
                    table(
                        "Leads at risk",
                        ["lead", "stage", "owner", "problem"],
                        [
                            [p["lead_id"], p["stage"], p["owner"], p["problem"]]
                            for p in report.problems
                        ],
                    )
                )
            else:
                console.print(
                    "No lead at risk: every lead has a known stage, every "
                    "lead in sales an owner and a running SLA.",
                    style="green",
                )
        return 1 if report.problems else 0

    run(main())


@app.command()
def simulate(
    leads: Annotated[int, typer.Option(min=1, max=100_000, help="how many leads")] = 200,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same population)")] = 1,
    config: ConfigOpt = None,
    settle: Annotated[float, typer.Option(help="seconds to wait for leads to settle")] = 120,
    time_scale: Annotated[
        float,
        typer.Option(
            min=1, help="the engine's --time-scale: the leads' past weeks are compressed alike"
        ),
    ] = 1.0,
    as_json: JsonOpt = False,
    task_queue: QueueOpt = TASK_QUEUE,
) -> None:
    """Drive a synthetic population (hot/warm/cold leads, absent reps, rejects, outcomes)
    through the running engine, then summarise."""
    from nurture.cli.simulate import simulate as run_simulation

    try:
        rules = load_rules(config_dir_from_env(config), time_scale=time_scale)
    except ConfigError as exc:
        exit_now(fail(str(exc), EXIT_USAGE))

    async def main() -> int:
        try:
            summary = await run_simulation(
                await connect_client(),
                rules,
                leads,
                seed,
                settle,
                not as_json,
                task_queue,
                time_scale,
            )
        except LeadActionError as exc:
            return fail(str(exc), EXIT_USAGE)
        if summary.unread:
            warn(
                f"{len(summary.unread)} lead(s) could not be read: the engine did not answer "
                f"their queries in time (busy, or a worker restarting); e.g. {summary.unread[0]}. "
                "They are not in the per-stage counts; `nurture show` reads one later."
            )
        if as_json:
            print_json(summary.as_json())
        else:
            s = summary
            console.print(
                table(
                    f"Simulated {s.leads} leads, {s.events} events (seed {seed})",
                    ["", ""],
                    [
                        [
                            "hot / warm / cold",
                            f"{s.temperature['hot']} / {s.temperature['warm']} / "
                            f"{s.temperature['cold']}",
                        ],
                        ["handed off", s.handed_off],
                        ["accepted", s.accepted],
                        ["rejected (recycled)", s.rejected],
                        ["won", f"{s.won} ({s.won_amount:,.0f})"],
                        ["lost", s.lost],
                        ["SLA escalations", s.escalations],
                        ["nurture emails sent", s.touches_sent],
                        ["absent rep", ", ".join(s.absent_reps) or "-"],
                        ["not read (the engine did not answer)", len(s.unread)],
                    ],
                )
            )
            console.print(
                table(
                    "Leads per stage",
                    ["stage", "leads"],
                    [[k, v] for k, v in sorted(s.per_stage.items())],
                )
            )
        return 0

    run(main())


@templates_app.command("check")
def templates_check(
    config: ConfigOpt = None, templates: TemplatesOpt = None, as_json: JsonOpt = False
) -> None:
    """Render every template of every cadence (and every notification) against sample leads;
    list every undefined variable with its file:line. The rules are validated too."""
    config_check(config, templates, as_json)


@config_app.command("check")
def config_check(
    config: ConfigOpt = None, templates: TemplatesOpt = None, as_json: JsonOpt = False
) -> None:
    """Validate the rules and render every template against sample leads; check the
    website's forms.yaml and tracking.yaml."""
    config_dir, templates_dir = config_dir_from_env(config), templates_dir_from_env(templates)
    problems: list[str] = []
    rules = None
    try:
        rules = load_rules(config_dir, templates_dir)
    except ConfigError as exc:
        problems.extend(exc.problems)
    website = check_website_files(config_dir, rules.scoring.known_event_types() if rules else None)
    problems.extend(website.problems)
    if problems or rules is None or website.forms is None:
        if as_json:
            print_json({"ok": False, "problems": problems})
        else:
            errors.print(f"{len(problems)} problem(s):", style="bold red")
            for problem in problems:
                errors.print(f"  {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    forms = [form.name for form in website.forms.forms]
    if as_json:
        print_json(
            {
                "ok": True,
                "version": rules.version,
                "cadences": [c.id for c in rules.cadences.cadences],
                "forms": forms,
            }
        )
    else:
        console.print(
            Text.assemble(
                ("ok", "green"),
                f": {config_dir} (version {rules.version}), "
                f"{sum(len(c.steps) for c in rules.cadences.cadences)} cadence steps render, "
                f"{len(forms)} website form(s)",
            )
        )


@config_app.command("status")
def config_status(as_json: JsonOpt = False) -> None:
    """The rules version the workers use, when they loaded it, and the last edit they refused
    with every problem (file:line: what); the same for the forms the HTTP service uses, and
    the problems of the website's files on disk (forms.yaml, tracking.yaml). Exit 1 while the
    newest edit is refused (what is saved is not what is sent), while a website file is
    broken, or before any worker ran on this database."""
    from nurture.config.forms import FORMS_STATUS_ROW
    from nurture.store.db import database_url_from_env, make_engine
    from nurture.store.rules_status import read_rules_status

    engine = make_engine(database_url_from_env())
    status = read_rules_status(engine)
    forms = read_rules_status(engine, FORMS_STATUS_ROW)
    website_dir = Path(forms.config_dir) if forms else config_dir_from_env()
    website = check_website_files(website_dir, None).problems
    if status is None:
        if as_json:
            print_json({"version": None, "last_rejected_edit": None})
        else:
            errors.print("no worker has loaded rules on this database yet (start one)")
        raise typer.Exit(1)
    if as_json:
        print_json(
            {
                **status.as_json(),
                "forms": forms.as_json() if forms else None,
                "website_problems": website,
            }
        )
    else:
        _print_status("rules", status)
        if forms is not None:
            _print_status("forms", forms)
        if website:
            errors.print(
                f"website files in {website_dir}: {len(website)} problem(s):", style="bold red"
            )
            for problem in website:
                errors.print(f"  {problem}", highlight=False, soft_wrap=True)
    if status.rejection_pending or (forms and forms.rejection_pending) or website:
        raise typer.Exit(1)


def _print_status(what: str, status: RulesStatus) -> None:
    console.print(
        Text.assemble(
            f"{what} in force: ",
            (status.version, "bold"),
            f" (loaded {status.loaded_at:%Y-%m-%d %H:%M:%S %Z}, from {status.config_dir})",
        ),
        highlight=False,
    )
    if status.rejected_at is None:
        console.print(f"no edit of the {what} has been refused")
        return
    state = (
        ("refused: still in force is the version above", "bold red")
        if status.rejection_pending
        else ("since replaced by the version above", "")
    )
    console.print(
        Text.assemble(
            f"last refused edit: {status.rejected_at:%Y-%m-%d %H:%M:%S %Z}, ",
            state,
            f"; {len(status.rejected_problems)} problem(s):",
        ),
        highlight=False,
    )
    for problem in status.rejected_problems:
        console.print(f"  {problem}", highlight=False, soft_wrap=True)
