"""The pose model as shipped and run (DESIGN.md s. 10): the file and its licence in the package
and in the wheel, one OpenCV wheel, mediapipe imported only when something is located, a
clean stderr, and threads that each get their own landmarker."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from fluxcompose.locate import locate
from fluxcompose.locate.pose import MODEL_FILE, MODEL_SHA256, model_bytes
from tests import people
from tests.paths import ROOT

MODEL_DIR = ROOT / "fluxcompose" / "data" / "models"
NOISE = ("INFO:", "WARNING:", "W0000", "I0000", "E0000", "Traceback", "Exception ignored")


def test_the_model_file_is_the_one_its_readme_names() -> None:
    data = (MODEL_DIR / MODEL_FILE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == MODEL_SHA256
    assert model_bytes() == data
    readme = (MODEL_DIR / "README.md").read_text()
    assert MODEL_SHA256 in readme and "build_pose_task.py" in readme
    assert "Apache License" in (MODEL_DIR / "LICENSE").read_text()
    assert "MediaPipe" in (MODEL_DIR / "NOTICE").read_text()


def test_the_wheel_ships_the_model_and_it_loads(built_wheel: Path) -> None:
    with zipfile.ZipFile(built_wheel) as whl:
        names = set(whl.namelist())
        prefix = "fluxcompose/data/models/"
        assert {prefix + n for n in (MODEL_FILE, "LICENSE", "NOTICE", "README.md")} <= names
        data = whl.read(prefix + MODEL_FILE)
    assert hashlib.sha256(data).hexdigest() == MODEL_SHA256
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.PoseLandmarkerOptions(
        base_options=BaseOptions(model_asset_buffer=data),
        running_mode=vision.RunningMode.IMAGE,
        num_poses=1,
    )
    with vision.PoseLandmarker.create_from_options(options) as landmarker:
        rgb = np.ascontiguousarray(people.photo("model_5"))
        result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
    assert len(result.pose_landmarks) == 1


def test_exactly_one_opencv_wheel_is_installed() -> None:
    """mediapipe requires opencv-contrib-python; a second OpenCV wheel would overwrite cv2."""
    names = {
        (d.metadata["Name"] or "").lower()
        for d in metadata.distributions()
        if (d.metadata["Name"] or "").lower().startswith("opencv")
    }
    assert names == {"opencv-contrib-python"}, names


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )


def test_commands_that_do_not_locate_do_not_import_mediapipe(tmp_path: Path) -> None:
    code = """
import sys
from click.testing import CliRunner
from fluxcompose.cli import cli
for args in (["--help"], ["size", "16:9"], ["compose", sys.argv[1], sys.argv[1], "-o", sys.argv[2]]):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, (args, result.output)
import fluxcompose.locate, fluxcompose.compare, fluxcompose.run
print("mediapipe" in sys.modules)
"""
    image = str(people.PEOPLE / "model_1.png")
    proc = _python(code, image, str(tmp_path / "canvas.png"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_locate_and_a_local_run_keep_stderr_clean(tmp_path: Path) -> None:
    """Only the program's own lines on stderr: no LiteRT/absl log lines from the model's
    load, none from its first detection, no exception from an unclosed landmarker at exit."""
    image = str(people.PEOPLE / "model_3.png")
    located = _python("from fluxcompose.cli import main; main()", "locate", image, "--json")
    assert located.returncode == 0, located.stderr
    assert located.stderr == ""
    assert '"found": true' in located.stdout
    run = _python(
        "from fluxcompose.cli import main; main()",
        "run",
        str(ROOT / "samples" / "pattern.png"),
        image,
        "-r",
        "pattern-transfer",
        "--backend",
        "local",
        "-o",
        str(tmp_path / "out"),
    )
    assert run.returncode in (0, 1), run.stderr  # 1: a check failed, still a clean run
    bad = [line for line in run.stderr.splitlines() if any(n in line for n in NOISE)]
    assert not bad, run.stderr


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return [np.ascontiguousarray(people.photo(n)) for n in ("model_2", "model_6")]


def test_eight_threads_locating_at_once_agree_with_one(photos: list[np.ndarray]) -> None:
    alone = [locate(p) for p in photos]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda i: locate(photos[i % 2]), range(8)))
    for i, s in enumerate(together):
        ref = alone[i % 2]
        assert s.to_dict() == ref.to_dict()
        assert s.mask is not None and ref.mask is not None
        assert np.array_equal(s.mask, ref.mask)
