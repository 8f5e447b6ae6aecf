"""``fluxcompose run``: one job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import ChecksFailed, InputError
from ._common import (
    JobOptions,
    announce,
    job_options,
    json_option,
    load_recipe_arg,
    notice,
    print_json,
    recipe_option,
)


@click.command("run")
@click.argument("images", nargs=-1)
@recipe_option
@click.option(
    "-o",
    "--outdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("fluxcompose-out"),
    show_default=True,
    help="Where to write the outputs.",
)
@job_options
@click.option("--strict", is_flag=True, help="Exit 1 when the recipe's checks fail.")
@click.option("--dry-run", is_flag=True, help="Compose and print the request; send nothing.")
@json_option("Print the sidecar (or, with --dry-run, the request) as JSON.")
def run_cmd(
    images: tuple[str, ...],
    recipe: str | None,
    outdir: Path,
    opts: JobOptions,
    strict: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Run one edit: compose IMAGES, send the canvas with the recipe's prompt,
    download the result at once, compare it with its sources and write
    OUTDIR/<job>.<ext>, <job>.canvas.jpg (or .png; with --references separate,
    <job>.ref1.jpg, <job>.ref2.jpg, ...: the images as sent), <job>.sheet.png and
    <job>.json.

    \b
    Examples:
      fluxcompose run samples/pattern.png samples/model.jpg --recipe pattern-transfer
      fluxcompose run a.png b.jpg -r pattern-transfer --var placement="upper left" --seed 42
      fluxcompose run photo.jpg --prompt "make it a watercolour painting"
      fluxcompose run --prompt "a red fox in snow" --aspect-ratio 16:9 --output-format jpeg
      fluxcompose run a.png b.jpg -r style-fusion --dry-run
      fluxcompose run a.png b.jpg -r pattern-transfer --model flux-2-pro --references separate
    """
    backend, request, job, compose, candidates, stop_on_pass = opts
    from ..request import JobSpec
    from ..run import complete_job, prepare_job, warm_up

    spec = JobSpec(
        recipe=load_recipe_arg(recipe),
        sources=tuple(images),
        prompt=job.prompt,
        variables=job.variables,
        request=request,
        compose=compose,
        subject_box=job.subject_box,
    )
    if dry_run:
        name = backend.resolved_name()
        prepared = prepare_job(spec, backend_name=name)
        described = prepared.describe()
        notice(
            f"dry run: nothing sent (backend {name}, model {prepared.request.model}, "
            f"estimated cost ${prepared.price_usd:.3f})"
        )
        if as_json:
            print_json(described)
        else:
            _print_dry_run(described)
        return

    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"{outdir}: exists and is not a folder")
    backend_obj = backend.build()
    warm_up(backend_obj)  # the SDK's import and set-up, while the canvas composes
    prepared = prepare_job(spec, backend_name=backend_obj.name)
    announce(backend_obj, prepared.request.model, candidates, prepared.price_usd)

    def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
        notice(f"attempt {attempt} failed ({' '.join(str(exc).split())}); retrying in {delay:.1f}s")

    if candidates > 1:
        # Best-of-N: a layer above one job (DESIGN.md section 12).
        from ..candidates import CandidateHooks, choice_line, run_candidates

        got = run_candidates(
            prepared,
            backend_obj,
            outdir,
            n=candidates,
            stop_on_pass=stop_on_pass,
            compare=job.compare,
            hooks=CandidateHooks(on_retry=on_retry),
        )
        assert got is not None  # no journal, no budget, no stop: every candidate is drawn
        outcome = got[0]
        notice(choice_line(outcome.sidecar))
    else:
        outcome = complete_job(
            prepared, backend_obj, outdir, compare=job.compare, on_retry=on_retry
        )
    if as_json:
        print_json(outcome.sidecar)
    for warning in outcome.sidecar.get("backend_notes", {}).get("warnings") or []:
        notice(f"warning: {warning}")
    notice(f"wrote {outcome.output_path}")
    if outcome.sheet_path:
        notice(f"comparison sheet: {outcome.sheet_path}")
    notice(f"sidecar: {outcome.sidecar_path}")
    compare_error = (outcome.metrics or {}).get("error")
    if compare_error:
        if strict:
            raise ChecksFailed(
                f"{compare_error}; the checks could not be run", job_id=outcome.job_id
            )
        notice(f"warning: {compare_error}")
    elif outcome.checks_passed is False:
        from ..compare import checks_verdict

        checks = (outcome.metrics or {}).get("checks", {})
        message = checks_verdict(checks) or "recipe checks failed"
        if strict:
            raise ChecksFailed(message, job_id=outcome.job_id)
        notice(f"warning: {message} (see {outcome.sidecar_path.name})")
    elif outcome.checks_passed:
        notice("recipe checks passed")


def _print_dry_run(described: dict[str, Any]) -> None:
    req = described["request"]
    rows: list[tuple[str, Any]] = [
        ("job", described["job_id"]),
        ("backend", described["backend"]),
        ("recipe", described["recipe"] or "-"),
    ]
    rows += [
        (k, req[k])
        for k in (
            "model",
            "aspect_ratio",
            "seed",
            "safety_tolerance",
            "output_format",
            "prompt_upsampling",
        )
    ]
    if "width" in req:
        rows.append(("size", f"{req['width']}x{req['height']}"))
    for key in ("steps", "guidance"):
        if key in req:
            rows.append((key, req[key]))
    rows.append(("references", described.get("references", "stitched")))
    rows.append(("input_image", req["input_image"] or "(none: text-to-image)"))
    for i, more in enumerate(req.get("more_images") or [], start=2):
        rows.append((f"input_image_{i}", more))
    canvas = described.get("canvas")
    if canvas:
        rows.append(("canvas", f"{canvas['width']}x{canvas['height']} ({canvas['layout']})"))
    for ref in described.get("references_sent") or []:
        if described.get("references") == "separate":
            rows.append(
                (f"reference {ref['index']}", f"{ref['name']}: {ref['width']}x{ref['height']}")
            )
    rows.append(("estimated cost", f"${described['estimated_usd']:.3f}"))
    rows.append(("prompt", req["prompt"]))
    for key, value in rows:
        click.echo(f"{key + ':':<19}{value}")
