"""The ``specsteer`` command line. The library never prints; this module does."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from specsteer._errors import SpecSteerError
from specsteer._methods import METHOD_NAMES

if TYPE_CHECKING:
    from specsteer._events import RoundEvent, TextFold
    from specsteer._result import GenerationResult

__all__ = ["app", "main"]

app = typer.Typer(
    name="specsteer",
    help="Private, personalized generation: a device model drafts with your private memory, "
    "a cloud model verifies without ever seeing it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)


def _fail(e: Exception | str) -> NoReturn:
    err.print(f"[bold red]error:[/] {e}")
    raise typer.Exit(code=2)


def _print_stream(events: Iterator[RoundEvent], text: TextFold) -> GenerationResult:
    """Print the answer's text as its tokens become final; return the result."""
    from specsteer._events import Finished, Tokens

    for event in events:
        if isinstance(event, Tokens):
            console.print(text.add(event), end="", markup=False, highlight=False)
        elif isinstance(event, Finished):
            return event.result
    raise AssertionError("an answer's events end with Finished")


def _stats_table(title: str, stats: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="cyan")
    table.add_column("value", justify="right")
    for key, value in stats.items():
        table.add_row(key.replace("_", " "), str(value))
    return table


FootingOpt = Annotated[
    list[str] | None,
    typer.Option(
        help="Where both models run, one table each: calibrated (each on the runtime measured "
        "fastest here), llama.cpp, transformers, transformers-float32, transformers-bfloat16; "
        "repeat (default calibrated, llama.cpp, transformers)."
    ),
]
GatewayBenchOpt = Annotated[
    bool,
    typer.Option(
        "--gateway",
        help="Only measure the gateway's overhead: one request in process and through "
        "`specsteer gateway` (whole and streamed).",
    ),
]
CloudOpt = Annotated[
    str | None,
    typer.Option(
        "--cloud",
        help="A cloud server's URL (`specsteer serve`), e.g. http://127.0.0.1:8000; the bearer "
        "token comes from $SPECSTEER_SERVER_TOKEN. Default: the cloud model in this process.",
    ),
]
CloudModelOpt = Annotated[
    str | None,
    typer.Option(
        "--cloud-model",
        help="The model the --cloud server must serve (checked before the first request).",
    ),
]
WireOpt = Annotated[
    str,
    typer.Option(
        help="How drafts travel: auto, ids (shared tokenizer) or text (models of different "
        "families; pass it with --cloud when the served model is of another family)."
    ),
]
PairOpt = Annotated[
    str | None,
    typer.Option(
        help="The embedded model pair: qwen0.5b-qwen1.5b or smollm2-qwen1.5b (default: the "
        "default pair); with --cloud only its device model loads."
    ),
]
TinyOpt = Annotated[bool, typer.Option(help="Tiny test models built in code.", hidden=True)]
LiftOpt = Annotated[
    float | None,
    typer.Option(
        "--max-context-lift",
        min=0.0,
        help="Keep on the device every draft token the private context made more than this many "
        "nats likelier than the public prompt alone (the context-lift policy, docs/privacy.md; "
        "default 8). 'inf' sends every draft as before.",
    ),
]
RememberOpt = Annotated[
    bool,
    typer.Option(
        help="Store your own statements (first-person sentences, not questions or commands) as "
        "memories once each turn is answered; they never leave the device."
    ),
]
RememberTtlOpt = Annotated[
    float | None,
    typer.Option(min=1.0, help="Seconds until a remembered statement expires (with --remember)."),
]


def _remember(remember: bool, ttl: float | None) -> Any:
    from specsteer import RememberPolicy

    if ttl is not None and not remember:
        _fail("--remember-ttl needs --remember")
    return RememberPolicy(ttl=ttl) if remember else False


def _interactive_assistant(
    where: Any, pair: str | None, tiny: bool, user: str, policy: Any, lift: float | None
) -> Any:
    """The assistant of chat, web and gateway: a user's memories, a spinner while models load."""
    from specsteer.apps._assistants import build_assistant

    _check_before_loading({}, user)
    return build_assistant(
        cloud=where,
        pair=pair,
        tiny=tiny,
        user_id=user,
        progress=True,
        remember=policy,
        max_context_lift=lift,
    )


def _check_before_loading(overrides: dict[str, Any], user: str | None) -> None:
    """Refuse bad settings and user ids before minutes go into loading the models."""
    from specsteer._config import with_overrides
    from specsteer._defaults import DEFAULT_CONFIG
    from specsteer.memory._validate import check_user_id

    with_overrides(DEFAULT_CONFIG, overrides)
    if user is not None:
        check_user_id(user)


def _cloud(cloud: str | None, cloud_model: str | None, wire: str) -> Any:
    from specsteer.apps._assistants import CloudChoice

    if wire not in ("auto", "ids", "text"):
        _fail(f"--wire takes auto, ids or text, not {wire!r}")
    return CloudChoice(url=cloud, model=cloud_model, wire=wire)  # type: ignore[arg-type]


@app.command()
def generate(
    query: Annotated[str, typer.Argument(help="The request.")],
    context: Annotated[
        str | None,
        typer.Option(
            help="Private context for the device model (never sent); default: "
            "retrieved from --user's memories."
        ),
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Whose memories steer the answer.")
    ] = None,
    method: Annotated[str, typer.Option(help=f"One of {', '.join(METHOD_NAMES)}.")] = "specsteer",
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Output length limit.")] = 96,
    lam: Annotated[
        float | None,
        typer.Option(min=0.0, help="Acceptance threshold lambda (default: the pair's)."),
    ] = None,
    beta: Annotated[float | None, typer.Option(min=0.0, help="Steering strength.")] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Seed of the generation (reproducible requests).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
    cloud: CloudOpt = None,
    cloud_model: CloudModelOpt = None,
    wire: WireOpt = "auto",
    pair: PairOpt = None,
    tiny: TinyOpt = False,
    max_context_lift: LiftOpt = None,
) -> None:
    """Answer one request with the embedded default models."""
    from specsteer.apps._assistants import build_assistant

    overrides: dict[str, Any] = {"method": method, "max_new_tokens": max_new_tokens}
    for name, value in (("lam", lam), ("beta", beta), ("seed", seed)):
        if value is not None:
            overrides[name] = value
    where = _cloud(cloud, cloud_model, wire)
    try:
        _check_before_loading(overrides, user)
        assistant = build_assistant(
            cloud=where,
            pair=pair,
            tiny=tiny,
            user_id=user,
            progress=not as_json,
            max_context_lift=max_context_lift,
        )
        result = assistant.generate(query, context=context, **overrides)
    except SpecSteerError as e:
        _fail(e)
    if as_json:
        privacy = result.privacy.model_dump() if result.privacy is not None else None
        print(
            json.dumps({"text": result.text, "stats": result.stats.as_dict(), "privacy": privacy})
        )
        return
    console.print(result.text)
    kept = result.privacy.tokens_kept_for_lift if result.privacy is not None else 0
    if kept:
        console.print(f"[dim]kept on the device for their context lift: {kept} tokens[/]")
    console.print(_stats_table("speed", result.stats.as_dict()))


@app.command()
def chat(
    user: Annotated[
        str, typer.Option("--user", "-u", help="Whose memories steer the answers.")
    ] = "me",
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Length limit per answer.")] = 128,
    cloud: CloudOpt = None,
    cloud_model: CloudModelOpt = None,
    wire: WireOpt = "auto",
    pair: PairOpt = None,
    tiny: TinyOpt = False,
    remember: RememberOpt = False,
    remember_ttl: RememberTtlOpt = None,
    max_context_lift: LiftOpt = None,
) -> None:
    """Chat interactively; answers stream as they are verified. Ctrl-D or 'exit' quits."""

    where = _cloud(cloud, cloud_model, wire)
    policy = _remember(remember, remember_ttl)
    try:
        _check_before_loading({"max_new_tokens": max_new_tokens}, user)
        assistant = _interactive_assistant(where, pair, tiny, user, policy, max_context_lift)
    except SpecSteerError as e:
        _fail(e)
    history: list[dict[str, str]] = []
    console.print("[dim]type a message; 'exit' or Ctrl-D to quit[/]")
    while True:
        try:
            line = console.input("[bold cyan]you>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if line in ("exit", "quit"):
            break
        if not line:
            continue
        history.append({"role": "user", "content": line})
        console.print("[bold green]assistant>[/] ", end="")
        from specsteer._events import TextFold

        text = TextFold(assistant.device.decode, assistant.device.eos_token_ids)
        try:
            events = assistant.stream(history, context=None, max_new_tokens=max_new_tokens)
            result = _print_stream(events, text)
        except SpecSteerError as e:
            console.print()
            err.print(f"[red]error:[/] {e}")
            history.pop()
            continue
        console.print()
        s = result.stats
        console.print(
            f"[dim]{s.new_tokens} tokens, {s.tokens_per_second:.1f} tok/s, "
            f"{s.acceptance_rate:.0%} of drafts accepted, {s.bytes_sent} B sent[/]"
        )
        for stored in result.remembered:
            console.print(f"[dim]remembered: {stored}[/]", highlight=False)
        history.append({"role": "assistant", "content": result.text})


@app.command()
def demo(
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Output length limit.")] = 64,
) -> None:
    """Run the embedded demo: personal requests answered privately with SpecSteer."""
    from specsteer._demo import run_demo

    try:
        run_demo(console, max_new_tokens=max_new_tokens)
    except SpecSteerError as e:
        _fail(e)


@app.command()
def bench(
    output: Annotated[
        Path | None, typer.Option(help="Write the results into this markdown file.")
    ] = None,
    quick: Annotated[bool, typer.Option(help="Fewer prompts and shorter outputs.")] = False,
    lam: Annotated[
        list[float] | None,
        typer.Option(help="SpecSteer's threshold; repeat for a grid (default 0.1, 0.5, 1.0)."),
    ] = None,
    rtt: Annotated[
        list[float] | None,
        typer.Option(help="Simulated round trip in ms; repeat for several (default 0, 20, 80)."),
    ] = None,
    footing: FootingOpt = None,
    draft_tokens: Annotated[
        int | None,
        typer.Option("--draft-tokens", "-k", min=1, max=56, help="K of the first round."),
    ] = None,
    prompts: Annotated[
        int | None, typer.Option(min=1, max=8, help="How many prompts each method answers.")
    ] = None,
    length: Annotated[
        list[int] | None,
        typer.Option(help="Output lengths for the cost-per-token table; repeat (default 64, 512)."),
    ] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(min=1, max=2048, help="Tokens each answer runs to.")
    ] = None,
    subsystems: Annotated[
        bool, typer.Option(help="Also benchmark the memory store and the verify server.")
    ] = True,
    gateway: GatewayBenchOpt = False,
    cloud: CloudOpt = None,
    cloud_model: CloudModelOpt = None,
    wire: WireOpt = "auto",
    pair: PairOpt = None,
    tiny: TinyOpt = False,
) -> None:
    """Benchmark every method side by side in one run (and the other subsystems)."""
    from specsteer._bench_run import run_all

    command = " ".join(["specsteer", *sys.argv[1:]])
    try:
        if gateway:
            where = _cloud(cloud, cloud_model, wire)
            _bench_gateway(where, pair, tiny, quick, max_new_tokens, output, command)
            return
        if cloud is not None:
            _bench_remote(_cloud(cloud, cloud_model, wire), pair, tiny, quick, output, command)
            return
        plan = _bench_plan(quick, pair, tiny, lam, rtt, draft_tokens, prompts, length)
        changes: dict[str, Any] = {"subsystems": plan.subsystems and subsystems}
        if footing and not tiny:
            changes["footings"] = tuple(dict.fromkeys(footing))
        if max_new_tokens is not None:
            changes["max_new_tokens"] = max_new_tokens
        plan = replace(plan, **changes)
        run_all(console, plan=plan, output=output, command=command, models=_bench_models(tiny))
    except SpecSteerError as e:
        _fail(e)


def _bench_plan(
    quick: bool,
    pair: str | None,
    tiny: bool,
    lams: list[float] | None,
    rtts: list[float] | None,
    k: int | None,
    prompts: int | None,
    lengths: list[int] | None,
) -> Any:
    from specsteer._bench import BenchPlan

    if any(x <= 0 for x in lams or []) or any(x < 0 for x in rtts or []):
        _fail("--lam must be > 0 and --rtt >= 0")
    if any(n < 2 for n in lengths or []):
        _fail("--length must be at least 2 tokens")
    plan = BenchPlan.quick() if quick else BenchPlan()
    changes: dict[str, Any] = {"lams": lams, "rtts_ms": rtts, "lengths": lengths}
    changes = {key: tuple(sorted(set(v))) for key, v in changes.items() if v}
    if pair is not None or tiny:
        changes["pair"] = changes["length_pair"] = "tiny" if tiny else pair
        changes["other_pairs"] = ()
    if tiny:
        changes["subsystems"] = False
        changes["footings"] = ("calibrated",)
    if k is not None:
        changes["draft_tokens"] = k
    if prompts is not None:
        changes["prompts"] = prompts
    return replace(plan, **changes)


def _bench_models(tiny: bool) -> Any:
    if not tiny:
        return None
    from specsteer.testing import tiny_backend

    return lambda _pair, _footing: (tiny_backend(0), tiny_backend(1))


def _bench_gateway(
    where: Any,
    pair: str | None,
    tiny: bool,
    quick: bool,
    max_new_tokens: int | None,
    output: Path | None,
    command: str,
) -> None:
    """The gateway's overhead over the in-process assistant, on the pair (or tiny models)."""
    from specsteer import Assistant
    from specsteer.apps._assistants import build_assistant, describe
    from specsteer.apps.gateway._bench import BENCH_NOTES, render_gateway_bench, run_gateway_bench
    from specsteer.memory import HashEmbedder
    from specsteer.memory.testing import InMemoryStore

    built = build_assistant(cloud=where, pair=pair, tiny=tiny, progress=True)
    store = InMemoryStore(embedder=HashEmbedder())  # the bench user's notes, nothing on disk
    store.add_many("bench", list(BENCH_NOTES), progress=False)
    # No privacy layer: the bench leaves nothing in the audit log (both ways alike).
    assistant = Assistant(
        built.device,
        built.decoder.cloud,
        memory=store,
        user_id="bench",
        config=built.config,
        privacy=False,
        wire=where.wire,
    )
    assistant.decoder.model = built.decoder.model
    bench = run_gateway_bench(
        assistant,
        models=f"{describe(where, pair, tiny)} ({assistant.decoder.runtimes})",
        max_new_tokens=max_new_tokens or (16 if quick else 64),
        repeats=2 if quick else 5,
        progress=lambda msg: console.print(f"[dim]{msg}[/]"),
    )
    doc = render_gateway_bench(bench, command)
    console.print(doc, markup=False, highlight=False, soft_wrap=True)
    if output is not None:
        output.write_text(doc)
        console.print(f"wrote {output}")


def _bench_remote(
    where: Any, pair: str | None, tiny: bool, quick: bool, output: Path | None, command: str
) -> None:
    """The methods side by side against a real server (no simulated delay)."""
    from specsteer._bench import BENCH_PROMPTS, run_engine_bench
    from specsteer._bench_report import render_engine
    from specsteer._defaults import DEFAULT_CONFIG
    from specsteer._demo import DEMO_HISTORY
    from specsteer.apps._assistants import describe, device_model, http_verifier

    where.check()
    device = device_model(pair, tiny, progress=True)
    bench = run_engine_bench(
        device,
        http_verifier(where.url, device),
        pair=describe(where, pair, tiny),
        prompts=BENCH_PROMPTS[:2] if quick else BENCH_PROMPTS[:4],
        context="\n".join(f"- {line}" for line in DEMO_HISTORY),
        max_new_tokens=32 if quick else 64,
        rtt_ms=0.0,
        config=None if tiny else DEFAULT_CONFIG,
        wire=where.wire,
        progress=lambda msg: console.print(f"[dim]{msg}[/]"),
    )
    doc = f"# Benchmarks over HTTP\n\nProduced by `{command}`.\n\n{render_engine(bench)}"
    console.print(doc, markup=False, highlight=False, soft_wrap=True)
    if output is not None:
        output.write_text(doc)
        console.print(f"wrote {output}")


@app.command()
def serve(
    llm: Annotated[
        str | None,
        typer.Option(
            help="The cloud model: a HF model folder or .gguf file "
            "(default Qwen2.5-Coder-1.5B-Instruct, as in process)."
        ),
    ] = None,
    slm: Annotated[
        str | None, typer.Option(help="A copy of the public device model (folder or .gguf).")
    ] = None,
    tiny: Annotated[bool, typer.Option(help="Serve tiny test models built in code.")] = False,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, help="Port (0 picks a free one).")] = 8000,
    log_level: Annotated[str, typer.Option(help="Server log level.")] = "warning",
    model: Annotated[
        str | None,
        typer.Option(
            help="An embedded model by name, loaded as in process: Qwen2.5-Coder-1.5B-Instruct "
            "(the default), Qwen2.5-Coder-0.5B-Instruct or SmolLM2-135M-Instruct."
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(help="A file holding the bearer token (default: $SPECSTEER_SERVER_TOKEN)."),
    ] = None,
    token: Annotated[str | None, typer.Option(hidden=True)] = None,
) -> None:
    """Serve a cloud model for verification (the bearer token from $SPECSTEER_SERVER_TOKEN or
    --token-file, never the command line)."""
    from specsteer.cloud_adapter import server_main

    if token is not None:
        _fail(
            "--token would show the token to every user of this machine (the process list); "
            "set $SPECSTEER_SERVER_TOKEN, or write it in a file and pass --token-file PATH"
        )
    if model is not None:
        if tiny or llm is not None:
            _fail("pass one of --model, --llm and --tiny")
        _serve_named(
            model, slm=slm, host=host, port=port, log_level=log_level, token_file=token_file
        )
        return

    argv = ["--host", host, "--port", str(port), "--log-level", log_level]
    if token_file is not None:
        argv += ["--token-file", str(token_file)]
    if tiny:
        argv.append("--tiny")
    elif llm is not None:
        argv += ["--llm", llm]
    if slm is not None:
        argv += ["--slm", slm]
    code = server_main.main(argv)
    if code:
        raise typer.Exit(code=code)


def _serve_named(
    model: str, *, slm: str | None, host: str, port: int, log_level: str, token_file: Path | None
) -> None:
    from specsteer.apps._assistants import TOKEN_ENV, named_models
    from specsteer.cloud_adapter import run_server
    from specsteer.cloud_adapter._server import is_loopback
    from specsteer.cloud_adapter.server_main import server_token

    models = named_models()
    if model not in models:
        _fail(f"unknown model {model!r}; choose one of: {', '.join(models)}")
    try:
        token = server_token(None if token_file is None else str(token_file))
    except SpecSteerError as e:
        _fail(e)
    if token is None and not is_loopback(host):
        _fail(
            f"refusing to serve on {host} without a bearer token; set ${TOKEN_ENV} or pass "
            "--token-file PATH"
        )

    from specsteer.privacy._receipts import ReceiptSigner

    def ready(url: str) -> None:
        print(f"specsteer cloud server: {url}", flush=True)
        print(f"receipt key id: {receipts.key_id}", flush=True)

    try:
        receipts = ReceiptSigner.for_this_machine()
        llm = models[model]()
        run_server(
            llm,
            slm=slm,
            host=host,
            port=port,
            token=token,
            model_name=model,
            log_level=log_level,
            on_ready=ready,
            receipts=receipts,
        )
    except SpecSteerError as e:
        _fail(e)


@app.command()
def web(
    user: Annotated[str, typer.Option("--user", "-u", help="Whose memories.")] = "me",
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback: the page shows your memories).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, help="Port (0 picks a free one).")] = 8765,
    cloud: CloudOpt = None,
    cloud_model: CloudModelOpt = None,
    wire: WireOpt = "auto",
    pair: PairOpt = None,
    tiny: Annotated[
        bool,
        typer.Option(help="Tiny test models built in code (answers are noise; for trying it)."),
    ] = False,
    allow_remote: Annotated[
        bool,
        typer.Option(
            help="Listen on an address other hosts can reach (needs --allowed-host; the start "
            "URL printed then carries a one-time login)."
        ),
    ] = False,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="Off loopback: a host name the page is reached by (repeat for each name).",
        ),
    ] = None,
    remember: RememberOpt = False,
    remember_ttl: RememberTtlOpt = None,
    max_context_lift: LiftOpt = None,
) -> None:
    """Open the web app: chat, your memories, and every byte that left the device."""
    from specsteer.apps._assistants import describe
    from specsteer.apps.web import ChatSession, run_web
    from specsteer.cloud_adapter._server import is_loopback

    if not is_loopback(host) and not allow_remote:
        _fail(
            f"the page shows private memories; refusing to listen on {host} "
            "(use 127.0.0.1, or pass --allow-remote with --allowed-host NAME)"
        )
    if not is_loopback(host) and not allowed_host:
        _fail(
            f"off loopback the app answers only to host names you list; pass --allowed-host "
            f"NAME for each name the page is reached by (e.g. --allowed-host {host})"
        )
    where = _cloud(cloud, cloud_model, wire)
    policy = _remember(remember, remember_ttl)
    try:
        assistant = _interactive_assistant(where, pair, tiny, user, policy, max_context_lift)
        session = ChatSession(assistant, describe(where, pair, tiny))
        # Printed once, plainly (never wrapped): off loopback the URL holds the login secret.
        run_web(
            session,
            host=host,
            port=port,
            allowed_hosts=allowed_host or (),
            on_ready=lambda url: print(f"specsteer web: {url}  (Ctrl-C stops it)", flush=True),
        )
    except SpecSteerError as e:
        _fail(e)


GatewayUserOpt = Annotated[
    str,
    typer.Option("--user", "-u", help="Whose memories when a request names no user ('user')."),
]
TokenFileOpt = Annotated[
    Path | None,
    typer.Option(
        help="A file whose first line is the bearer token clients must send (default: "
        "$SPECSTEER_GATEWAY_TOKEN; required off loopback)."
    ),
]


@app.command()
def gateway(
    user: GatewayUserOpt = "me",
    host: Annotated[
        str, typer.Option(help="Address to listen on; any but loopback needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, help="Port (0 picks a free one).")] = 8080,
    remember: RememberOpt = False,
    remember_ttl: RememberTtlOpt = None,
    token_file: TokenFileOpt = None,
    model_name: Annotated[str, typer.Option(help="The model id clients ask for.")] = "specsteer",
    max_tokens: Annotated[int, typer.Option(min=1, help="The longest answer allowed.")] = 2048,
    cloud: CloudOpt = None,
    cloud_model: CloudModelOpt = None,
    wire: WireOpt = "auto",
    pair: PairOpt = None,
    tiny: Annotated[bool, typer.Option(help="Tiny test models built in code (noise).")] = False,
    log_level: Annotated[str, typer.Option(help="Server log level.")] = "warning",
    max_context_lift: LiftOpt = None,
) -> None:
    """Serve OpenAI's Chat Completions API on this device: any OpenAI client, private memories."""
    from specsteer.apps._assistants import describe
    from specsteer.apps.gateway import gateway_token, run_gateway
    from specsteer.cloud_adapter._server import is_loopback

    where = _cloud(cloud, cloud_model, wire)
    policy = _remember(remember, remember_ttl)
    try:
        token = gateway_token(token_file)
        if token is None and not is_loopback(host):
            _fail(
                f"refusing to serve on {host} without a bearer token (answers draw on private "
                "memories); set $SPECSTEER_GATEWAY_TOKEN or pass --token-file"
            )
        assistant = _interactive_assistant(where, pair, tiny, user, policy, max_context_lift)
        console.print(describe(where, pair, tiny), highlight=False)
        run_gateway(
            assistant,
            host=host,
            port=port,
            token=token,
            model_name=model_name,
            default_user=user,
            max_tokens=max_tokens,
            log_level=log_level,
            on_ready=lambda url: console.print(f"specsteer gateway: {url}  (Ctrl-C stops it)"),
        )
    except SpecSteerError as e:
        _fail(e)


memory_app = typer.Typer(help="Manage a user's private, encrypted memories on this device.")
app.add_typer(memory_app, name="memory")

UserOpt = Annotated[str, typer.Option("--user", "-u", help="Whose memories.")]


def _store() -> Any:
    from specsteer.memory import MemoryStore

    return MemoryStore()


ReinstateOpt = Annotated[
    bool,
    typer.Option(
        help="Let a forgotten user store memories again (under a new key; "
        "what was forgotten stays lost)."
    ),
]


def _reinstate(store: Any, user: str) -> None:
    # Only a forgotten user: reinstate_user() on a live user destroys their current key.
    if store.keyring.is_forgotten(user):
        store.reinstate_user(user)


def _fail_forgotten(user: str) -> NoReturn:
    _fail(
        f"user {user!r} was forgotten (their key was destroyed), so nothing was stored; pass "
        "--reinstate to store memories for this user again"
    )


@memory_app.command("add")
def memory_add(
    texts: Annotated[list[str], typer.Argument(help="One or more memories to store.")],
    user: UserOpt = "me",
    ttl: Annotated[float | None, typer.Option(help="Seconds until the memory expires.")] = None,
    reinstate: ReinstateOpt = False,
) -> None:
    """Store memories (encrypted; identical text is stored once)."""
    from specsteer.memory import UserForgottenError

    try:
        store = _store()
        if reinstate:
            _reinstate(store, user)
        for text in texts:
            memory = store.add(user, text, ttl=ttl)
            console.print(f"stored {memory.id}")
    except UserForgottenError:
        _fail_forgotten(user)
    except SpecSteerError as e:
        _fail(e)


@memory_app.command("search")
def memory_search(
    query: Annotated[str, typer.Argument(help="What to look for, by meaning.")],
    user: UserOpt = "me",
    k: Annotated[int, typer.Option(min=1, help="How many results.")] = 5,
) -> None:
    """Search a user's memories by meaning."""
    try:
        hits = _store().search(user, query, k=k)
    except SpecSteerError as e:
        _fail(e)
    table = Table("score", "id", "text")
    for hit in hits:
        table.add_row(f"{hit.score:.3f}", hit.id[:8], hit.text)
    console.print(table)


@memory_app.command("list")
def memory_list(user: UserOpt = "me") -> None:
    """List a user's memories."""
    try:
        memories = _store().memories(user)
    except SpecSteerError as e:
        _fail(e)
    table = Table("id", "text", title=f"{len(memories)} memories of {user!r}")
    for m in memories:
        table.add_row(m.id[:8], m.text)
    console.print(table)


@memory_app.command("forget")
def memory_forget(
    user: UserOpt,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Forget a user: destroy their key (crypto-shredding) and delete their memories."""
    if not yes:
        try:
            confirmed = typer.confirm(f"Forget every memory of {user!r}? This cannot be undone")
        except typer.Abort:  # no answer: stdin closed (not a terminal) or Ctrl-C
            err.print(
                "[bold red]error:[/] no answer to the confirmation question, so nothing was "
                "forgotten; pass --yes to forget without being asked"
            )
            raise typer.Exit(code=2) from None
        if not confirmed:
            console.print("nothing was forgotten")
            raise typer.Exit(code=1)
    try:
        _store().forget_user(user)
    except SpecSteerError as e:
        _fail(e)
    console.print(f"forgot {user!r}: key destroyed, memories deleted")


@memory_app.command("export")
def memory_export(
    path: Annotated[Path, typer.Argument(help="JSONL file to write (plain text: keep it safe).")],
    user: UserOpt = "me",
) -> None:
    """Export a user's memories to JSONL (lossless; re-import with `memory import`)."""
    try:
        n = _store().export(user, path)
    except SpecSteerError as e:
        _fail(e)
    console.print(f"exported {n} memories to {path}")


@memory_app.command("import")
def memory_import(
    path: Annotated[Path, typer.Argument(help="JSONL file from `memory export`.")],
    user: UserOpt = "me",
    reinstate: ReinstateOpt = False,
) -> None:
    """Import memories from a JSONL export."""
    from specsteer.memory import UserForgottenError

    try:
        store = _store()
        if reinstate:
            _reinstate(store, user)
        n = store.import_(user, path)
    except UserForgottenError:
        _fail_forgotten(user)
    except SpecSteerError as e:
        _fail(e)
    console.print(f"imported {n} memories")


persona_app = typer.Typer(
    help="Who you are when you write: your name, your sign-off, the people in your life. "
    "Kept encrypted with your memories; what you do not set is read from them."
)
app.add_typer(persona_app, name="persona")


def _persona_table(view: Any, user: str) -> Table:
    doc = view.to_json()
    table = Table("what", "value", "source", title=f"persona of {user!r}", title_justify="left")

    def source(item: dict[str, Any]) -> str:
        if item["source"] == "inferred" and item["memory_id"]:
            return f"inferred (memory {item['memory_id'][:8]})"
        return str(item["source"])

    for key, label in (("name", "name"), ("sign_off", "sign-off")):
        item = doc[key]
        table.add_row(label, item["value"] if item else "-", source(item) if item else "-")
    for person in doc["people"]:
        table.add_row(person["relation"], person["name"], source(person))
    for name in doc["hidden"]:
        table.add_row("hidden", name, "set (not used)")
    return table


def _person(value: str) -> Any:
    from specsteer.memory import Person

    relation, sep, name = value.partition("=")
    if not sep:
        _fail(f"--person takes RELATION=NAME (e.g. --person 'sister=Lena'), not {value!r}")
    try:
        return Person(name, relation)
    except SpecSteerError as e:
        _fail(f"--person {value!r}: {e}; write it as RELATION=NAME (e.g. 'sister=Lena')")


def _change_persona(user: str, change: Callable[[Any, Any], Any] | None = None) -> None:
    """Apply ``change(store, view) -> persona`` (None: only show), then print the persona in
    use."""
    try:
        store = _store()
        view = store.persona_view(user)
        if change is not None:
            store.set_persona(user, change(store, view))
            view = store.persona_view(user)
    except SpecSteerError as e:
        _fail(e)
    console.print(_persona_table(view, user))


@persona_app.command("show")
def persona_show(user: UserOpt = "me") -> None:
    """Show the persona in use: what you set and what was read from your memories."""
    _change_persona(user)


@persona_app.command("set")
def persona_set(
    user: UserOpt = "me",
    name: Annotated[str | None, typer.Option(help="The name you write as.")] = None,
    sign_off: Annotated[
        str | None, typer.Option(help="How you end a message, e.g. 'Cheers, Ines'.")
    ] = None,
    person: Annotated[
        list[str] | None,
        typer.Option(help="Someone in your life as RELATION=NAME ('sister=Lena'); repeat it."),
    ] = None,
) -> None:
    """Set your name, sign-off or people (what you set wins over what was inferred)."""
    from dataclasses import replace as with_fields

    people = [_person(item) for item in person or []]

    def change(store: Any, _view: Any) -> Any:
        persona = store.persona(user)
        if name is not None:
            persona = with_fields(persona, name=name)
        if sign_off is not None:
            persona = with_fields(persona, sign_off=sign_off)
        for one in people:
            persona = persona.with_person(one)
        return persona

    _change_persona(user, change)


@persona_app.command("drop")
def persona_drop(
    person: Annotated[str, typer.Argument(help="The person's name.")], user: UserOpt = "me"
) -> None:
    """Remove someone from your persona (an inferred person stays out from now on)."""
    try:
        _store().drop_person(user, person)
    except SpecSteerError as e:
        _fail(e)
    _change_persona(user)


@persona_app.command("keep")
def persona_keep(user: UserOpt = "me") -> None:
    """Keep what was inferred as set, so later memories do not change it."""
    _change_persona(user, lambda _store, view: view.persona)


@persona_app.command("clear")
def persona_clear(user: UserOpt = "me") -> None:
    """Remove what you set; what your memories say is used again."""
    from specsteer.memory import Persona

    _change_persona(user, lambda _store, _view: Persona())


audit_app = typer.Typer(help="Inspect the tamper-evident log of everything that left the device.")
app.add_typer(audit_app, name="audit")


@audit_app.command("show")
def audit_show(
    last: Annotated[int, typer.Option(min=0, help="How many records (0: all).")] = 20,
    payloads: Annotated[bool, typer.Option(help="Print each payload's bytes.")] = True,
    log: Annotated[
        Path | None, typer.Option(help="The log file (default: the state root's).")
    ] = None,
) -> None:
    """Show the newest audit records, with what each payload carried."""
    from specsteer.privacy import audit_show as show

    try:
        # soft_wrap: payloads print as the exact bytes sent, never broken at the console width.
        text = show(log, last=last, payloads=payloads)
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    except SpecSteerError as e:
        _fail(e)


@audit_app.command("verify")
def audit_verify(
    log: Annotated[
        Path | None, typer.Option(help="The log file (default: the state root's).")
    ] = None,
    witness: Annotated[
        Path | None, typer.Option(help="Checkpoints kept elsewhere (JSON or JSONL).")
    ] = None,
    public_key: Annotated[
        Path | None, typer.Option(help="Verify as an outside auditor with this PEM public key.")
    ] = None,
    receipts: Annotated[
        bool, typer.Option(help="Also check every record against the server's signed receipt.")
    ] = False,
    server_key_id: Annotated[
        str | None, typer.Option(help="The key id the server printed; receipts must match it.")
    ] = None,
    last_receipt: Annotated[
        Path | None,
        typer.Option(help="The server's last receipt for this device (catches a cut tail)."),
    ] = None,
) -> None:
    """Check the HMAC chain, signed checkpoints and (--receipts) the server's receipts; name the
    first bad record, and what the check cannot show. Exit 1 if bad."""
    from specsteer.privacy import audit_verify as verify

    try:
        report = verify(
            log,
            witness=witness,
            public_key=public_key,
            receipts=receipts,
            server_key_id=server_key_id,
            last_receipt=last_receipt,
        )
    except SpecSteerError as e:
        _fail(e)
    console.print(report.summary(), markup=False, highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(code=1)


@audit_app.command("protect")
def audit_protect() -> None:
    """Seal the audit signing key under a passphrase of its own (asked twice, never echoed)."""
    from specsteer.privacy import Keyring
    from specsteer.privacy._keyring import SIGNING_PASSPHRASE_ENV

    passphrase = typer.prompt("passphrase", hide_input=True, confirmation_prompt=True)
    try:
        Keyring().protect_signing_key(passphrase)
    except SpecSteerError as e:
        _fail(e)
    console.print(
        f"the audit signing key is sealed; set {SIGNING_PASSPHRASE_ENV} in the sessions that "
        "write the log (the key file alone can no longer re-sign it)"
    )


@audit_app.command("export")
def audit_export(
    dest: Annotated[Path, typer.Argument(help="Folder to write the auditor's bundle into.")],
    log: Annotated[
        Path | None, typer.Option(help="The log file (default: the state root's).")
    ] = None,
    decrypt: Annotated[bool, typer.Option(help="Include sealed payloads in clear.")] = False,
) -> None:
    """Export the log, checkpoints, public key and a verification report for an auditor."""
    from specsteer.privacy import audit_export as export

    try:
        out = export(dest, log, decrypt=decrypt)
    except SpecSteerError as e:
        _fail(e)
    console.print(f"exported to {out}")


DataOpt = Annotated[
    Path | None,
    typer.Option(
        help="LaMP-style JSONL dataset, or a shipped set: personal_writing (the default) or "
        "personal_requests (six kinds of personal writing, six phrasings each)."
    ),
]
LamOpt = Annotated[
    list[str] | None,
    typer.Option("--lam", help="SpecSteer's lambda; repeat it or give a comma list."),
]
TauOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tau",
        help="Context-lift thresholds in nats (the guard's max_context_lift), each a SpecSteer "
        "variant per lambda; repeat it or give a comma list.",
    ),
]


@app.command("eval")
def eval_(
    data: DataOpt = None,
    out: Annotated[
        Path, typer.Option(help="Folder for results.jsonl and summary.md; rerun to resume.")
    ] = Path("eval-results"),
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N examples.")] = None,
    methods: Annotated[
        str,
        typer.Option(
            help="Comma list of device_only, cloud_only, token_fusion, speculative, specsteer."
        ),
    ] = "device_only,cloud_only,token_fusion,speculative,specsteer",
    lam: LamOpt = None,
    tau: TauOpt = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Output length limit.")] = 64,
    seed: Annotated[int, typer.Option(min=0, help="Seed of every generation.")] = 0,
    tiny: Annotated[
        bool, typer.Option(help="Tiny test models and a hashing embedder built in code.")
    ] = False,
    pair: Annotated[
        str | None,
        typer.Option(
            help="The embedded model pair: qwen0.5b-qwen1.5b or smollm2-qwen1.5b "
            "(default: the default pair)."
        ),
    ] = None,
    cloud: CloudOpt = None,
    cloud_model: CloudModelOpt = None,
    rescore: Annotated[
        bool,
        typer.Option(
            help="Score the answers already in the folder again with the current metrics first."
        ),
    ] = False,
) -> None:
    """Score every method on personal writing tasks (ROUGE, fact recall, who the answer speaks
    to, refusals) and print a summary."""
    from specsteer._eval import load_examples, make_run_folder, run_eval

    chosen = [m.strip() for m in methods.split(",") if m.strip()]

    lams = _numbers(lam, "0.1,0.5", "--lam")
    try:
        examples = load_examples(data)
        make_run_folder(out)  # before minutes go into loading the models
        device, verifier, memory = _eval_models(tiny, pair, _cloud(cloud, cloud_model, "auto"))
        run_eval(
            examples,
            device=device,
            cloud=verifier,
            out_dir=out,
            methods=chosen,
            lams=lams,
            taus=[] if tau is None else _numbers(tau, "2", "--tau"),
            max_new_tokens=max_new_tokens,
            limit=limit,
            seed=seed,
            memory_factory=memory,
            rescore_done=rescore,
            progress=True if sys.stderr.isatty() else _ProgressLines(err),
        )
    except SpecSteerError as e:
        _fail(e)
    summary = (out / "summary.md").read_text(encoding="utf-8")
    console.print(summary, markup=False, highlight=False, soft_wrap=True)
    console.print(f"results: {out / 'results.jsonl'}; summary: {out / 'summary.md'}")


class _ProgressLines:
    """``specsteer eval``'s progress where stderr is no terminal (a log, CI): a line such as
    ``evaluating: 17/168 answers (10%), 95 s`` when the count reaches each tenth of the run
    (every answer when there are fewer than ten)."""

    def __init__(self, out: Console, clock: Callable[[], float] | None = None) -> None:
        self.out, self.clock = out, clock or time.monotonic
        self.start = self.clock()
        self._next = 1

    def __call__(self, done: int, total: int) -> None:
        if done * 10 < self._next * total and done != total:
            return
        while self._next * total <= done * 10:
            self._next += 1
        line = f"evaluating: {done}/{total} answers ({100 * done // total}%), "
        self.out.print(line + f"{self.clock() - self.start:.0f} s", markup=False, highlight=False)


def _numbers(values: list[str] | None, default: str, flag: str) -> list[float]:
    """Numbers from a repeatable option that also takes comma lists."""
    try:
        return [float(x) for item in (values or [default]) for x in item.split(",") if x.strip()]
    except ValueError:
        _fail(f"{flag} takes numbers (e.g. {flag} {default}), not {values!r}")


@app.command()
def attack(
    data: DataOpt = None,
    out: Annotated[
        Path, typer.Option(help="Folder for the answers and attack.md; rerun to resume.")
    ] = Path("attack-results"),
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N examples.")] = 40,
    methods: Annotated[
        str, typer.Option(help="Comma list of methods to attack.")
    ] = "cloud_only,device_only,speculative,specsteer",
    lam: LamOpt = None,
    tau: TauOpt = None,
    candidates: Annotated[int, typer.Option(min=2, help="Candidates per guess (chance 1/N).")] = 8,
    canaries: Annotated[
        int, typer.Option(min=0, help="Users who get a planted secret and ask for it.")
    ] = 16,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Output length limit.")] = 64,
    model_attacker: Annotated[
        bool, typer.Option(help="Also attack with the cloud model's likelihoods.")
    ] = True,
    tiny: Annotated[bool, typer.Option(help="Tiny test models built in code.")] = False,
) -> None:
    """What the cloud learns: attack what left the device for each answer (docs/privacy.md)."""
    from specsteer._attack_run import run_attack
    from specsteer._eval import load_examples

    try:
        examples = load_examples(data)
        device, cloud, memory = _eval_models(tiny, None, _cloud(None, None, "auto"))
        report = run_attack(
            examples,
            device=device,
            cloud=cloud,
            attacker_model=cloud if model_attacker else None,
            out_dir=out,
            methods=[m.strip() for m in methods.split(",") if m.strip()],
            lams=_numbers(lam, "0.1,0.5", "--lam"),
            taus=[] if tau is None else _numbers(tau, "2", "--tau"),
            candidates=candidates,
            canaries=canaries,
            limit=limit,
            max_new_tokens=max_new_tokens,
            memory_factory=memory,
        )
    except SpecSteerError as e:
        _fail(e)
    from specsteer._attack_report import render_markdown

    console.print(render_markdown(report), markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {out / 'attack.md'}; plot: {out / 'attack.png'}")


def _eval_models(tiny: bool, pair: str | None, where: Any) -> tuple[Any, Any, Any]:
    """(device, cloud, memory factory) for ``specsteer eval``: tiny ones, or an embedded pair;
    the cloud a server's client with ``--cloud``."""
    if where.url is not None:
        from specsteer.apps._assistants import device_model, http_verifier

        where.check()
        device = device_model(pair, tiny, progress=True)
        memory = _eval_models(True, None, where.__class__())[2] if tiny else None
        return device, http_verifier(where.url, device), memory
    if not tiny:
        from specsteer._defaults import DEFAULT_PAIR, default_models

        device, cloud = default_models(progress=True, pair=pair or DEFAULT_PAIR)
        return device, cloud, None
    from specsteer.testing import tiny_backend

    return tiny_backend(0), tiny_backend(1), _tiny_memory


def _tiny_memory(root: Path) -> Any:
    """An eval run's store with the hashing embedder (no model to load)."""
    from specsteer.memory import HashEmbedder, MemoryStore
    from specsteer.privacy import Keyring

    return MemoryStore(root / "memory", embedder=HashEmbedder(), keyring=Keyring(root / "keys"))


def main() -> None:
    """Entry point of the ``specsteer`` command."""
    app()
