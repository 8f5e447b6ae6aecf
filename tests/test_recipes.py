"""Recipes: loading, validation, rendering, the TOML writer, the CLI group and the wheel."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fluxcompose.cli.recipes_cmd import recipes as recipes_group
from fluxcompose.errors import InputError, RecipeError
from fluxcompose.recipes import (
    BUILTIN_PLACEHOLDERS,
    Recipe,
    builtin_dir,
    list_recipes,
    load_recipe,
    parse_vars,
    recipe_from_dict,
    template_placeholders,
    to_toml,
)

REPO = Path(__file__).resolve().parents[1]
BUILTINS = ("pattern-transfer", "side-by-side", "style-fusion")
PATTERN_PROMPT = (
    "Look at the left image and right image. Transfer the pattern/design from the left image "
    "to the clothes of the model in the right image, with the size being {size} of the width "
    "of the chest, located in the {placement}. Make it look natural and well-integrated."
)


def minimal(**extra: Any) -> dict[str, Any]:
    """A small valid recipe as TOML-shaped data."""
    data: dict[str, Any] = {
        "name": "mine",
        "description": "a user recipe",
        "sources": ["a", "b"],
        "prompt": "Make {thing} look {how}.",
        "variables": {"thing": "the cat", "how": "happy"},
        "compose": {"layout": "horizontal", "gutter": 0},
        "request": {"model": "flux-kontext-pro", "aspect_ratio": "match:b"},
        "checks": {"ssim_min": 0.3},
    }
    data.update(extra)
    return data


def write_recipe(tmp_path: Path, text: str, name: str = "user.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- built-ins


def test_builtin_dir_is_the_repo_folder_in_a_checkout() -> None:
    assert builtin_dir().resolve() == (REPO / "recipes").resolve()


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_loads_and_renders_with_defaults(name: str) -> None:
    recipe = load_recipe(name)
    assert recipe.name == name
    assert recipe.path is not None and recipe.path.stem == name
    assert recipe.description
    # Every key of DESIGN.md section 4 is present in each built-in.
    raw = tomllib.loads((REPO / "recipes" / f"{name}.toml").read_text(encoding="utf-8"))
    assert set(raw) == {
        "name",
        "description",
        "sources",
        "prompt",
        "prompt_separate",  # the prompt for separate references (DESIGN.md section 11)
        "variables",
        "compose",
        "request",
        "checks",
    }
    separate = recipe.render(separate=True)
    assert "image 1" in separate and "image 2" in separate
    assert "left" not in separate.replace("on the left", "")
    for key in ("model", "aspect_ratio", "safety_tolerance", "output_format", "prompt_upsampling"):
        assert key in recipe.request
    assert {"layout", "gutter"} <= set(recipe.compose)
    text = recipe.render()
    assert "{" not in text and "}" not in text
    for value in recipe.variables.values():
        assert value in text


def test_list_recipes_is_sorted_and_complete() -> None:
    names = [r.name for r in list_recipes()]
    assert names == sorted(names)
    assert set(BUILTINS) <= set(names)


def test_pattern_transfer_matches_the_design() -> None:
    r = load_recipe("pattern-transfer")
    assert r.sources == ("pattern", "target")
    assert r.prompt == PATTERN_PROMPT
    assert r.variables == {"size": "2/3", "placement": "middle"}
    assert r.compose == {"layout": "horizontal", "gutter": 0}
    assert r.request == {
        "model": "flux-kontext-pro",
        "aspect_ratio": "match:target",
        "safety_tolerance": 2,
        "output_format": "png",
        "prompt_upsampling": False,
    }
    assert r.checks == {  # DESIGN.md section 4
        "pattern_found": True,
        "pattern_width_fraction": [0.45, 0.8],
        "pattern_placement": 0.25,
        "pattern_on_garment": 0.85,
        "target_ssim_outside_edit": 0.6,
        "target_ssim_outside_garment": 0.8,
    }
    assert r.render() == (
        "Look at the left image and right image. Transfer the pattern/design from the left "
        "image to the clothes of the model in the right image, with the size being 2/3 of the "
        "width of the chest, located in the middle. Make it look natural and well-integrated."
    )


def test_style_fusion_and_side_by_side_shapes() -> None:
    style = load_recipe("style-fusion")
    assert style.sources == ("style", "target")
    assert style.request["aspect_ratio"] == "match:target"
    assert style.checks.get("style_closer") is True
    assert 0 < style.checks["ssim_min"] <= 0.5  # loose on purpose
    side = load_recipe("side-by-side")
    assert side.sources == ("left", "right")
    assert side.request["aspect_ratio"] == "canvas"
    assert "style" in side.placeholders()
    assert "as pencil sketch" in side.render({"style": "as pencil sketch"})


# --------------------------------------------------------------------------- rendering


def test_render_with_overrides_merges_over_defaults() -> None:
    r = load_recipe("pattern-transfer")
    text = r.render({"size": "1/2"})
    assert "with the size being 1/2 of the width" in text
    assert "located in the middle." in text  # the default that was not overridden
    assert r.render({"size": "1/2", "placement": "upper left"}).count("upper left") == 1


def test_render_prompt_replacement_uses_the_same_variables() -> None:
    r = load_recipe("pattern-transfer")
    assert r.render(prompt="Put it in the {placement}.") == "Put it in the middle."
    assert r.render({"placement": "top"}, prompt="Put it in the {placement}.") == (
        "Put it in the top."
    )
    # A replacement prompt may bring its own variables, given with --var.
    assert r.render({"colour": "red"}, prompt="Make it {colour}.") == "Make it red."
    assert r.render(prompt="No placeholders {{here}}.") == "No placeholders {here}."


def test_render_builtin_placeholders() -> None:
    r = recipe_from_dict(minimal(prompt="{n_images} images for {recipe}: {thing}"))
    assert r.render() == "2 images for mine: the cat"


def test_render_escapes_and_verbatim_values() -> None:
    r = recipe_from_dict(minimal(prompt="{{literal}} {thing}}}"))
    assert r.placeholders() == {"thing"}
    # Values are inserted as they are: braces in a value are not placeholders.
    assert r.render({"thing": "{how}"}) == "{literal} {how}}"


def test_unknown_override_names_it_and_lists_known() -> None:
    r = load_recipe("pattern-transfer")
    with pytest.raises(RecipeError) as info:
        r.render({"colour": "red"})
    msg = str(info.value)
    assert "'colour'" in msg and "placement" in msg and "size" in msg
    assert "\n" not in msg


def test_missing_value_in_replacement_prompt_names_the_placeholder() -> None:
    r = load_recipe("pattern-transfer")
    with pytest.raises(RecipeError, match=r"\{colour\}"):
        r.render(prompt="Make it {colour}.")


@pytest.mark.parametrize(
    "template",
    ["{a.b}", "{a[0]}", "{a:>9}", "{a!r}", "{}", "{0}", "{a", "a}", "{a:{b}}", "{ a }"],
)
def test_rejected_fields(template: str) -> None:
    with pytest.raises(RecipeError):
        template_placeholders(template)
    r = load_recipe("pattern-transfer")
    with pytest.raises(RecipeError):
        r.render(prompt=template)


def test_parse_vars() -> None:
    assert parse_vars(["a=1", "b=x=y", "a=2", "c="]) == {"a": "2", "b": "x=y", "c": ""}
    with pytest.raises(RecipeError, match="novalue"):
        parse_vars(["novalue"])
    with pytest.raises(RecipeError):
        parse_vars(["bad key=1"])


_SAFE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="{}"), max_size=40
)


@settings(max_examples=60, deadline=None)
@given(size=_SAFE_TEXT, placement=_SAFE_TEXT)
def test_render_never_leaves_a_placeholder(size: str, placement: str) -> None:
    r = load_recipe("pattern-transfer")
    text = r.render({"size": size, "placement": placement})
    assert re.search(r"\{[A-Za-z_][A-Za-z0-9_]*\}", text) is None
    assert f"being {size} of the width" in text
    assert f"located in the {placement}. Make" in text
    # Independent expectation: plain string replacement of the template.
    assert text == PATTERN_PROMPT.replace("{size}", size).replace("{placement}", placement)


# --------------------------------------------------------------------------- loading and errors


def test_user_recipe_by_path(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, to_toml(minimal()))
    for arg in (path, str(path)):
        r = load_recipe(arg)
        assert r.name == "mine" and r.path == path
        assert r.render({"how": "sad"}) == "Make the cat look sad."


def test_relative_toml_name_is_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_recipe(tmp_path, to_toml(minimal()), name="rel.toml")
    monkeypatch.chdir(tmp_path)
    assert load_recipe("rel.toml").name == "mine"
    with pytest.raises(RecipeError, match="not found"):
        load_recipe("missing.toml")


def test_name_defaults_to_file_stem(tmp_path: Path) -> None:
    data = minimal()
    del data["name"]
    assert load_recipe(write_recipe(tmp_path, to_toml(data), name="stemmy.toml")).name == "stemmy"


def test_unknown_builtin_lists_the_builtins() -> None:
    with pytest.raises(RecipeError) as info:
        load_recipe("no-such-recipe")
    msg = str(info.value)
    assert "no-such-recipe" in msg
    for name in BUILTINS:
        assert name in msg
    assert isinstance(info.value, InputError) and info.value.exit_code == 2


def test_malformed_toml_names_the_file_in_one_line(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, 'name = "x"\nprompt = "unterminated\n')
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert str(path) in msg and "line 2" in msg and "\n" not in msg


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.toml"
    path.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(RecipeError, match="UTF-8"):
        load_recipe(path)


@pytest.mark.parametrize(
    ("table", "key"),
    [(None, "colour"), ("compose", "gutterr"), ("request", "modle"), ("checks", "ssim_minimum")],
)
def test_unknown_key_names_key_and_table(tmp_path: Path, table: str | None, key: str) -> None:
    data = minimal()
    if table is None:
        data[key] = "x"
    else:
        data[table] = {**data[table], key: 1}
    with pytest.raises(RecipeError) as info:
        load_recipe(write_recipe(tmp_path, to_toml(data)))
    msg = str(info.value)
    assert repr(key) in msg
    assert (f"[{table}]" if table else "top level") in msg


def test_every_compare_check_is_accepted() -> None:
    from fluxcompose.compare import CHECKS

    names = set(CHECKS)
    assert {
        "pattern_found",
        "pattern_width_fraction",
        "pattern_center_offset_max",
        "target_ssim_outside_edit",
        "ssim_min",
        "ssim_max",
        "style_closer",
        "edit_area_min",
        "edit_area_max",
    } <= names
    good = {"bool": True, "min": 0.5, "max": 0.5, "range": [0.1, 0.9]}
    bad = {"bool": 1, "min": [0.1, 0.2], "max": True, "range": 0.5}
    for name, spec in CHECKS.items():
        kind = getattr(spec, "kind", None)
        if kind not in good:
            continue
        recipe_from_dict(minimal(checks={name: good[kind]}))
        with pytest.raises(RecipeError, match=repr(name)):
            recipe_from_dict(minimal(checks={name: bad[kind]}))


def test_unknown_placeholder_in_prompt_names_it(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, to_toml(minimal(prompt="Make {thing} {colour} and {shade}.")))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert "{colour}" in msg and "{shade}" in msg and "{thing}" not in msg
    assert str(path) in msg
    # A built-in placeholder needs no declaration.
    for name in BUILTIN_PLACEHOLDERS:
        recipe_from_dict(minimal(prompt=f"x {{{name}}}"))


def test_prompt_separate_is_checked_and_rendered_for_separate_references(
    tmp_path: Path,
) -> None:
    bad = minimal(prompt_separate="Give image 2 {thing} in {tint}.")
    with pytest.raises(RecipeError) as info:
        load_recipe(write_recipe(tmp_path, to_toml(bad)))
    assert "prompt_separate" in str(info.value) and "{tint}" in str(info.value)
    recipe = recipe_from_dict(minimal(prompt_separate="Give image 2 {thing}, {how}."))
    assert recipe.render({"how": "sad"}) == "Make the cat look sad."
    assert recipe.render({"how": "sad"}, separate=True) == "Give image 2 the cat, sad."
    # --prompt replaces either template; without prompt_separate, separate uses prompt
    assert recipe.render(None, "just {thing}", separate=True) == "just the cat"
    assert recipe_from_dict(minimal()).render(separate=True) == "Make the cat look happy."
    assert "prompt_separate" not in recipe_from_dict(minimal()).to_dict()
    assert recipe.to_dict()["prompt_separate"] == "Give image 2 {thing}, {how}."


BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"sources": "a,b"}, "sources"),
    ({"sources": ["a", 2]}, "sources"),
    ({"sources": []}, "sources"),
    ({"sources": [f"s{i}" for i in range(10)]}, "sources"),
    ({"sources": ["a", "a"]}, "duplicate"),
    ({"sources": ["a b", "b"]}, "a b"),
    ({"name": ""}, "name"),
    ({"name": 3}, "name"),
    ({"description": ["x"]}, "description"),
    ({"prompt": 5}, "prompt"),
    ({"prompt": "  "}, "prompt"),
    ({"variables": {"thing": 3, "how": "x"}}, "thing"),
    ({"variables": "x"}, "variables"),
    ({"variables": {"thing": "a", "how": "b", "bad-name": "c"}}, "bad-name"),
    ({"compose": {"layout": "diagonal"}}, "layout"),
    ({"compose": {"gutter": -1}}, "gutter"),
    ({"compose": {"gutter": 1.5}}, "gutter"),
    ({"compose": {"gutter": True}}, "gutter"),
    ({"compose": {"gutter_color": "notacolour"}}, "gutter_color"),
    ({"compose": {"background": 255}}, "background"),
    ({"compose": {"labels": ["only one"]}}, "labels"),
    ({"compose": {"labels": "yes"}}, "labels"),
    ({"compose": {"outline": 1}}, "outline"),
    ({"compose": {"megapixels": 0}}, "megapixels"),
    ({"compose": {"megapixels": "1"}}, "megapixels"),
    ({"compose": {"upscale": "no"}}, "upscale"),
    ({"compose": ["layout"]}, "compose"),
    ({"request": {"model": "flux-dev"}}, "model"),
    ({"request": {"aspect_ratio": "match:c"}}, "match:c"),
    ({"request": {"aspect_ratio": "8:3"}}, "aspect_ratio"),
    ({"request": {"aspect_ratio": "1:3"}}, "aspect_ratio"),
    ({"request": {"aspect_ratio": "wide"}}, "aspect_ratio"),
    ({"request": {"aspect_ratio": "1.5"}}, "aspect_ratio"),
    ({"request": {"aspect_ratio": 1}}, "aspect_ratio"),
    ({"request": {"safety_tolerance": 7}}, "safety_tolerance"),
    ({"request": {"safety_tolerance": -1}}, "safety_tolerance"),
    ({"request": {"safety_tolerance": True}}, "safety_tolerance"),
    ({"request": {"output_format": "gif"}}, "output_format"),
    ({"request": {"prompt_upsampling": "false"}}, "prompt_upsampling"),
    ({"request": {"seed": -3}}, "seed"),
    ({"request": {"seed": "42"}}, "seed"),
    ({"request": {"references": "stacked"}}, "references"),
    ({"request": {"reference_megapixels": 0}}, "reference_megapixels"),
    ({"request": {"reference_megapixels": 5}}, "reference_megapixels"),
    ({"request": {"steps": 0}}, "steps"),
    ({"request": {"steps": 2.5}}, "steps"),
    ({"request": {"guidance": 1.0}}, "guidance"),
    ({"request": {"guidance": "high"}}, "guidance"),
    ({"prompt_separate": 5}, "prompt_separate"),
    ({"prompt_separate": " "}, "prompt_separate"),
    ({"checks": {"ssim_min": "high"}}, "ssim_min"),
    ({"checks": {"pattern_width_fraction": [0.8, 0.45]}}, "pattern_width_fraction"),
    ({"checks": {"pattern_width_fraction": [0.4, 0.5, 0.6]}}, "pattern_width_fraction"),
    ({"checks": {"pattern_found": "yes"}}, "pattern_found"),
    ({"checks": {"style_closer": 1}}, "style_closer"),
]


@pytest.mark.parametrize(("change", "needle"), BAD_VALUES)
def test_bad_types_name_the_offender(tmp_path: Path, change: dict[str, Any], needle: str) -> None:
    data = minimal(**change)
    with pytest.raises(RecipeError) as info:
        load_recipe(write_recipe(tmp_path, to_toml(data)))
    msg = str(info.value)
    assert needle in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "request_table",
    [
        {"aspect_ratio": "canvas"},
        {"aspect_ratio": "match:a"},
        {"aspect_ratio": "16:9"},
        {"aspect_ratio": "3:7"},
        {"aspect_ratio": "7:3"},
        {"aspect_ratio": "1.91:1"},
        {"model": "flux-kontext-max", "safety_tolerance": 6, "output_format": "jpeg"},
        {"safety_tolerance": 0, "seed": 0, "prompt_upsampling": True},
        {"model": "flux-2-pro", "references": "separate", "reference_megapixels": 0.5},
        {"model": "flux-2-flex", "steps": 50, "guidance": 1.5},
        {"references": "stitched", "guidance": 10},
    ],
)
def test_good_request_values(request_table: dict[str, Any]) -> None:
    assert recipe_from_dict(minimal(request=request_table)).request == request_table


def test_good_compose_values() -> None:
    compose = {
        "layout": "grid",
        "gutter": 8,
        "gutter_color": "black",
        "background": "#102030",
        "labels": ["A", "B"],
        "outline": True,
        "megapixels": 0.5,
        "upscale": False,
    }
    assert recipe_from_dict(minimal(compose=compose)).compose == compose
    assert recipe_from_dict(minimal(compose={"labels": True})).compose == {"labels": True}


def test_missing_required_keys() -> None:
    for key in ("sources", "prompt"):
        data = minimal()
        del data[key]
        with pytest.raises(RecipeError, match=key):
            recipe_from_dict(data)


def test_loaded_recipe_is_independent_of_the_input() -> None:
    data = minimal()
    r = recipe_from_dict(data)
    data["request"]["model"] = "flux-kontext-max"
    r.to_dict()["compose"]["gutter"] = 99
    assert r.request["model"] == "flux-kontext-pro"
    assert r.compose["gutter"] == 0


# --------------------------------------------------------------------------- TOML writer


@pytest.mark.parametrize("name", BUILTINS)
def test_to_toml_round_trips_the_source_file(name: str) -> None:
    r = load_recipe(name)
    source = tomllib.loads((REPO / "recipes" / f"{name}.toml").read_text(encoding="utf-8"))
    assert tomllib.loads(r.to_toml()) == source
    assert r.to_dict() == source
    # And what it writes is itself a loadable recipe.
    assert recipe_from_dict(tomllib.loads(r.to_toml())) == r


def test_to_toml_layout_is_readable() -> None:
    text = load_recipe("pattern-transfer").to_toml()
    assert text.index("name =") < text.index("[variables]") < text.index("[compose]")
    assert text.index("[compose]") < text.index("[request]") < text.index("[checks]")
    # tomli_w writes arrays one item per line; the value must still sit under [checks].
    checks = text[text.index("[checks]") :]
    assert re.search(r"pattern_width_fraction = \[\s*0\.45,\s*0\.8,?\s*\]", checks)
    assert "prompt_upsampling = false" in text


@pytest.mark.parametrize("name", BUILTINS)
def test_cli_show_loads_back_to_the_same_recipe(name: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(recipes_group, ["show", name])
    assert result.exit_code == 0, result.output
    path = write_recipe(tmp_path, result.output, name=f"{name}.toml")
    assert load_recipe(path) == load_recipe(name)
    assert recipe_from_dict(tomllib.loads(result.output)) == load_recipe(name)


def test_to_toml_escapes_awkward_keys_and_strings() -> None:
    data = {"a b": 'quote " back \\ tab \t nl \n ctl \x01 del \x7f', "t": {"x.y": [1, {"k": "v"}]}}
    assert tomllib.loads(to_toml(data)) == data


_TOML_SCALARS = (
    st.text(max_size=30)
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
)
_KEYS = st.text(min_size=1, max_size=12)
_TOML_VALUES = st.recursive(
    _TOML_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_KEYS, _TOML_VALUES, max_size=6))
def test_to_toml_round_trips_arbitrary_data(data: dict[str, Any]) -> None:
    assert tomllib.loads(to_toml(data)) == data


@settings(max_examples=40, deadline=None)
@given(description=st.text(max_size=60), extra=st.text(max_size=60))
def test_recipe_round_trip_with_awkward_strings(description: str, extra: str) -> None:
    escaped = extra.replace("{", "{{").replace("}", "}}")
    r = recipe_from_dict(minimal(description=description, prompt=escaped + " {thing}"))
    back = recipe_from_dict(tomllib.loads(r.to_toml()))
    assert back == r
    assert back.render() == extra + " the cat"


# --------------------------------------------------------------------------- CLI


def test_cli_lists_builtins() -> None:
    result = CliRunner().invoke(recipes_group, [])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == len(list_recipes())
    by_name = {line.split()[0]: line for line in lines}
    for r in list_recipes():
        assert r.description in by_name[r.name]


def test_cli_lists_json() -> None:
    result = CliRunner().invoke(recipes_group, ["--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [row["name"] for row in rows] == [r.name for r in list_recipes()]
    pattern = next(row for row in rows if row["name"] == "pattern-transfer")
    assert pattern["sources"] == ["pattern", "target"]
    assert pattern["description"] == load_recipe("pattern-transfer").description


def test_cli_show_toml_and_json(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(recipes_group, ["show", "style-fusion"])
    assert result.exit_code == 0, result.output
    source = tomllib.loads((REPO / "recipes" / "style-fusion.toml").read_text(encoding="utf-8"))
    assert tomllib.loads(result.output) == source
    result = runner.invoke(recipes_group, ["show", "style-fusion", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == source
    path = write_recipe(tmp_path, to_toml(minimal()))
    result = runner.invoke(recipes_group, ["show", str(path)])
    assert result.exit_code == 0, result.output
    assert tomllib.loads(result.output) == minimal()


def test_cli_show_unknown_raises_recipe_error() -> None:
    result = CliRunner().invoke(recipes_group, ["show", "nope"])
    assert result.exit_code != 0
    assert isinstance(result.exception, RecipeError)
    assert "nope" in str(result.exception)


# --------------------------------------------------------------------------- the wheel


def test_wheel_ships_the_builtin_recipes(tmp_path: Path, built_wheel: Path) -> None:
    """An installed copy of the built wheel finds the built-ins."""
    with zipfile.ZipFile(built_wheel) as zf:
        names = set(zf.namelist())
        for name in BUILTINS:
            member = f"fluxcompose/_recipes/{name}.toml"
            assert member in names
            assert zf.read(member) == (REPO / "recipes" / f"{name}.toml").read_bytes()
        assert "fluxcompose/recipes.py" in names
        site = tmp_path / "site"
        zf.extractall(site)
    # The unpacked wheel, first on sys.path, must find its own packaged recipes.
    probe = (
        "import json, fluxcompose, fluxcompose.recipes as r;"
        "print(json.dumps([fluxcompose.__file__, str(r.builtin_dir()),"
        " sorted(p.stem for p in r.builtin_dir().glob('*.toml'))]))"
    )
    env_path = str(site)
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**_clean_env(), "PYTHONPATH": env_path},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    package_file, folder, names_found = json.loads(proc.stdout)
    assert Path(package_file).resolve().is_relative_to(site.resolve())
    assert Path(folder).resolve() == (site / "fluxcompose" / "_recipes").resolve()
    assert set(BUILTINS) <= set(names_found)


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_recipe_type_is_frozen() -> None:
    r = load_recipe("side-by-side")
    with pytest.raises(AttributeError):
        r.name = "other"  # type: ignore[misc]
    assert isinstance(r, Recipe)
