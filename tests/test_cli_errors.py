"""Every bad input on the command line: one ``Error: ...`` line, exit 1 (2 for typer usage
errors), no traceback, checked before expensive work; a failed ``cmrm eval`` start leaves
nothing that refuses the corrected command."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import torch
from click.testing import Result
from PIL import Image
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from cmrm.cli import app

FIX = Path(__file__).parent / "fixtures" / "benchmarks"
runner = CliRunner()
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
QUICK = ["--limit", "2", "--max-new-tokens", "3"]


def run(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def fails(result: Result, *fragments: str, code: int = 1) -> str:
    """Assert one ``Error:`` line holding every fragment, exit ``code``, no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    if code == 2:  # typer's usage errors: a boxed message, not our Error: line
        return result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def write_jsonl(folder: Path, rows: list[dict[str, object]], name: str = "data.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        image = row.get("image")
        if isinstance(image, str) and not image.startswith("missing"):
            Image.new("RGB", (16, 16), "blue").save(folder / image)
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def shift_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real organism shift (4 layers, hidden 64), calibrated on 4 anchors."""
    out = tmp_path_factory.mktemp("shift")
    result = run("calibrate", "organism", "--anchors", "organism:anchor", "--limit", "4", "-o", out)
    assert result.exit_code == 0, result.output
    return out


def _copy_shift(source: Path, target: Path) -> Path:
    target.mkdir()
    for name in ("shift.json", "shift.safetensors"):
        (target / name).write_bytes((source / name).read_bytes())
    return target


# ---------------------------------------------------------------- cmrm eval: failed starts


def test_unknown_benchmark_leaves_nothing_and_the_corrected_command_runs(tmp_path: Path) -> None:
    """The issue's reproduction, in the same run folder."""
    out = tmp_path / "r"
    fails(
        run("eval", "organism", "--bench", "nosuchbench", "--method", "none", *QUICK, "-o", out),
        "unknown benchmark 'nosuchbench'",
    )
    assert not out.exists()
    good = run(
        "eval", "organism", "--bench", "organism:harmful-image", "--method", "none", *QUICK,
        "-o", out,
    )  # fmt: skip
    assert good.exit_code == 0, good.output
    assert (out / "summary.json").is_file()


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--judge", "foo"], ["unknown judge 'foo'", "refusal"]),
        (["--judge", "organism:harmful-image=refusl"], ["Did you mean 'refusal'"]),
        (["--bench", "vlsafe:train"], ["unknown split 'train'", "anchor, eval"]),
        (["--judge-option", "model=x"], ["NAME.KEY=VALUE"]),
        (["--judge-option", "llm.model=x"], ["no benchmark of this run uses", "organism"]),
        (["--bench-option", "organism:harmful-image.pair=null"], ["unknown option(s) ['pair']"]),
        (["--bench-option", "xstest.pair=null"], ["not benchmarks of this run"]),
        (["--root", "xstest=/tmp"], ["not benchmarks of this run"]),
        (["--alpha", "1"], ["--alpha only applies to method dataset or sample"]),
        (["--method", "none,sample", "--shift", "S"], ["--shift only applies to method dataset"]),
        (["--method", "none,sample", "--layers", "3:1"], ["selects no layer"]),
        (["--device", "gpu"], ["unknown device 'gpu'"]),
        (["--dtype", "float8"], ["unknown dtype 'float8'"]),
        (["--null", "fog"], ["cannot parse null image 'fog'"]),
        (["--preset", "papr"], ["unknown preset 'papr'"]),
    ],
)
def test_eval_bad_flags_are_refused_before_anything_is_written(
    tmp_path: Path, extra: list[str], fragments: list[str]
) -> None:
    out = tmp_path / "r"
    base = ["eval", "organism", "--bench", "organism:harmful-image", "--method", "none", *QUICK]
    if extra[0] == "--bench":
        base[3] = extra[1]
        extra = []
    if "--method" in extra:
        base = base[:4] + base[6:]
    fails(run(*base, *extra, "-o", out), *fragments)
    assert not out.exists()


def test_the_default_method_is_named_and_never_hides_an_unknown_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "r"
    fails(
        run("eval", "organism", "--bench", "organism:harmful-image", "-o", out),
        "default methods none,dataset,sample",
        "--method none,sample",
    )
    fails(run("eval", "organism", "--bench", "nosuch", "-o", out), "unknown benchmark 'nosuch'")
    help_text = " ".join(run("eval", "--help").output.replace("│", " ").split())
    assert "(default: none,dataset,sample; dataset needs --shift or --anchors)" in help_text
    assert not out.exists()


def test_eval_data_errors_are_found_before_config_json(tmp_path: Path, shift_dir: Path) -> None:
    out = tmp_path / "r"
    data = tmp_path / "data"
    missing = write_jsonl(data, [{"id": "a", "prompt": "w1", "image": "missing.png"}], "m.jsonl")
    empty = write_jsonl(data, [{"id": "a", "prompt": "  ", "image": None}], "e.jsonl")
    nan = _copy_shift(shift_dir, tmp_path / "nan")
    tensors = load_file(str(nan / "shift.safetensors"))
    save_file({k: v * float("nan") for k, v in tensors.items()}, str(nan / "shift.safetensors"))
    cut = _copy_shift(shift_dir, tmp_path / "cut")
    (cut / "shift.safetensors").write_bytes((shift_dir / "shift.safetensors").read_bytes()[:100])
    cases = [
        (["--bench", missing, "--method", "none"], ["1 of 1 image file(s) do not exist", "'a'"]),
        (["--bench", empty, "--method", "none"], ["empty prompt"]),
        (["--bench", tmp_path / "nope.jsonl", "--method", "none"], ["nope.jsonl does not exist"]),
        (["--bench", "organism:harmful-image", "--method", "dataset", "--shift", nan],
         ["nan/shift.safetensors", "NaN"]),
        (["--bench", "organism:harmful-image", "--method", "dataset", "--shift", cut],
         ["shift.safetensors cannot be read", "truncated"]),
        (["--bench", "organism:harmful-image", "--method", "dataset", "--anchors",
          tmp_path / "anchors.jsonl"], ["anchors.jsonl does not exist"]),
    ]  # fmt: skip
    for args, fragments in cases:
        line = fails(run("eval", "organism", *args, *QUICK, "-o", out), *fragments)
        assert "upstream layout" not in line
        assert not out.exists()


def test_preset_paper_offline_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CMRM_CACHE", str(tmp_path / "cache"))

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("offline (test)")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr("huggingface_hub.hf_hub_download", offline)
    out = tmp_path / "r"
    fails(run("eval", "organism", "--preset", "paper", "-o", out), "could not download vlsafe")
    assert not out.exists()


def test_model_checks_after_config_json_remove_what_the_start_wrote(tmp_path: Path) -> None:
    """A layer range the model does not have is only known once it is loaded; the failed start
    then removes its config.json, and the corrected command runs in the same folder."""
    out = tmp_path / "r"
    base = ["eval", "organism", "--bench", "organism:harmful-image", "--method", "none,sample"]
    fails(
        run(*base, "--layers", "8:16", *QUICK, "-o", out),
        "layer slice '8:16' is out of range",
        "4 layers",
    )
    assert not out.exists()
    long = write_jsonl(tmp_path / "d", [{"id": "x", "prompt": "cat " * 300, "image": None}])
    fails(
        run("eval", "organism", "--bench", long, "--method", "none", "-o", out),
        "context of 128 positions",
        "'x'",
    )
    assert not out.exists()
    out.mkdir()  # an existing, empty folder stays, empty
    fails(run(*base, "--layers", "8:16", *QUICK, "-o", out), "out of range")
    assert out.is_dir() and not list(out.iterdir())
    good = run(*base, "--layers", "2:4", *QUICK, "-o", out)
    assert good.exit_code == 0, good.output
    assert "organism:harmful-image::sample@1.0" in good.stdout


def test_a_failed_resume_keeps_the_run(tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = ["eval", "organism", "--bench", "organism:harmful-image", "--method", "none", *QUICK]
    assert run(*args, "-o", out).exit_code == 0
    before = sorted(p.name for p in out.iterdir())
    fails(run(*args, "--layers-path", "model.nope", "-o", out), "layers_path")
    assert sorted(p.name for p in out.iterdir()) == before


@pytest.mark.parametrize("command", ["eval", "calibrate", "gap"])
def test_output_that_is_a_file_or_unwritable(tmp_path: Path, command: str) -> None:
    file = tmp_path / "f"
    file.write_text("x")
    extra = {
        "eval": ["--bench", "organism:harmful-image", "--method", "none"],
        "calibrate": ["--anchors", "organism:anchor"],
        "gap": [],
    }[command]
    fails(run(command, "organism", *extra, "-o", file), "is an existing file")
    fails(run(command, "organism", *extra, "-o", file / "sub"), "is a file, not a folder")
    fails(run(command, "organism", *extra, "-o", "/proc/cmrm-test/out"), "cannot be written")
    assert file.read_text() == "x"


@NO_CUDA
@pytest.mark.parametrize("command", ["eval", "generate", "calibrate", "gap", "inspect"])
def test_cuda_without_cuda(tmp_path: Path, command: str) -> None:
    extra = {
        "eval": ["--bench", "organism:harmful-image", "--method", "none", "-o", tmp_path / "r"],
        "generate": ["hello"],
        "calibrate": ["--anchors", "organism:anchor", "-o", tmp_path / "s"],
        "gap": ["-o", tmp_path / "g"],
        "inspect": [],
    }[command]
    fails(run(command, "organism", *extra, "--device", "cuda"), "CUDA is not available")
    fails(run(command, "organism", *extra, "--device", "cuda:3"), "--device cuda:3")
    assert not list(tmp_path.iterdir())


def test_device_auto_falls_back_to_the_cpu_without_cuda() -> None:
    result = run("inspect", "organism", "--device", "auto")
    assert result.exit_code == 0, result.output
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert json.loads(result.stdout)["device"] == expected


# ---------------------------------------------------------------- cmrm generate


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["  "], ["the prompt is empty"]),
        (["cat " * 300], ["the prompt is", "context of 128 positions"]),
        (["hi", "--alpha", "1"], ["--alpha only applies with a shift"]),
        (["hi", "--positions", "last", "--layers", "1"], ["--positions, --layers only apply"]),
        (["hi", "--null", "noise"], ["--null only applies with --sample-level"]),
        (["hi", "--temperature", "0.7"], ["--temperature only applies with --sample"]),
        (["hi", "--seed", "3"], ["--seed only applies with --sample"]),
        (["hi", "--sample-level", "--layers", "8:16"], ["'8:16' is out of range", "4 layers"]),
        (["hi", "--sample-level", "--layers", "3:1"], ["selects no layer"]),
        (["hi", "--sample-level", "--layers", "99"], ["layer 99 is out of range"]),
        (["hi", "--sample-level", "--positions", "middle"], ["positions must be one of"]),
        (["hi", "--shift", "S", "--sample-level"], ["either --shift DIR", "or --sample-level"]),
        (["hi", "--dtype", "float8"], ["unknown dtype"]),
        (["hi", "--device", "tpu"], ["unknown device 'tpu'"]),
        (["hi", "--image", "nope.png"], ["nope.png does not exist"]),
        (["hi", "--image", "."], ["is a folder, not an image file"]),
    ],
)
def test_generate_bad_inputs(args: list[str], fragments: list[str], shift_dir: Path) -> None:
    args = [str(shift_dir) if a == "S" else a for a in args]
    fails(run("generate", "organism", *args), *fragments)


def test_generate_takes_model_first_and_checks_the_shift(tmp_path: Path, shift_dir: Path) -> None:
    fails(run("generate", "-m", "organism", "hi"), code=2)
    cut = _copy_shift(shift_dir, tmp_path / "cut")
    (cut / "shift.safetensors").write_bytes(b"\x00" * 12)
    fails(run("generate", "organism", "hi", "--shift", cut), "cannot be read", "truncated")
    ok = run("generate", "organism", "sorry", "--shift", shift_dir, "--alpha", "0.5",
             "--layers", "2:4", "--max-new-tokens", "3")  # fmt: skip
    assert ok.exit_code == 0, ok.output


# ---------------------------------------------------------------- calibrate, gap, report, bench


def test_calibrate_bad_inputs(tmp_path: Path, saved_llava: Path) -> None:
    anchors = write_jsonl(tmp_path / "a", [{"id": "a", "prompt": "w1 w2", "image": "a.png"}])
    out = tmp_path / "s"
    base = ["calibrate", saved_llava, "--anchors", anchors, "-o", out]
    fails(run(*base, "--estimator", "median"), "--estimator must be one of mean, pc1")
    fails(run(*base, "--contrast", "nothing"), "--contrast must be one of null, image")
    fails(run(*base, "--read", "first"), "--read must be one of last, mean")
    # known from the model's config, before its weights are loaded: the tiny model has 3 layers
    fails(run(*base, "--layers", "8:16"), "'8:16' is out of range", "3 layers")
    fails(run(*base[:3], tmp_path / "a", "-o", out), "is a folder", "data.jsonl")
    noimg = write_jsonl(tmp_path / "b", [{"id": "b", "prompt": "w1", "image": "missing.png"}])
    fails(run(*base[:3], noimg, "-o", out), "image file(s) do not exist")
    assert not out.exists()


def test_gap_and_report_bad_inputs(tmp_path: Path, shift_dir: Path) -> None:
    fails(run("gap", "organism", "--alpha", "0.5", "-o", tmp_path / "g"), "--alpha only applies")
    fails(run("gap", "organism", "--null", "blank,blank:white", "-o", tmp_path / "g"), "repeat")
    fails(run("gap", "organism", "--null", ",", "-o", tmp_path / "g"), "one or more null images")
    fails(
        run("gap", "organism", "--shift", shift_dir, "--positions", "x", "-o", tmp_path / "g"),
        "positions must be one of",
    )
    file = tmp_path / "f.json"
    file.write_text("{}")
    fails(run("report", file), "is a file", "cmrm eval -o")
    fails(run("report", tmp_path / "nowhere"), "is not found")
    fails(run("report", tmp_path), "has no config.json")
    assert not (tmp_path / "g").exists()


def test_bench_bad_inputs(tmp_path: Path) -> None:
    fails(run("bench", "show", "vlsafe:train"), "unknown split 'train'")
    fails(
        run("bench", "show", "JailbreakLLM"), "Did you mean 'JailbreakLLMs' (forbidden-questions)"
    )
    file = tmp_path / "f"
    file.write_text("x")
    fails(run("bench", "export", "xstest", "--root", FIX / "xstest", "-o", file), "existing file")
    out = tmp_path / "out"
    fails(
        run("bench", "export", "vlsafe", "--root", FIX / "vlsafe", "-o", out),
        "image file(s) do not exist",
    )
    assert not out.exists()
    fails(run("bench", "show", "xstest", "-o", "pair=none"), code=2)  # -o is not --option


def test_organism_train_and_demo_check_the_output_first(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_text("x")
    fails(run("organism", "train", "--output", file, "--quick"), "organism folder", "existing file")
    fails(run("demo", "organism", "-o", file), "demo output folder", "existing file")
