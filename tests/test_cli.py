"""The program as a user meets it: real processes, real pipes, real files."""
from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, assert_clean_error, run_dncli, synthetic_image, write_png


def read(path: Path) -> np.ndarray:
    from denoise_cli.imgio.codec import read_image

    return read_image(path).pixels


def test_version_and_help_list_every_command():
    version = run_dncli("--version")
    assert version.returncode == 0 and version.stdout.decode().startswith("dncli ")
    help_text = run_dncli("--help").stdout.decode()
    for command in ("denoise", "train", "degrade", "eval-psnr", "models", "doctor", "deblur", "map-train",
                    "blindspot-train"):
        assert command in help_text
    installed = subprocess.run(["dncli", "--version"], capture_output=True) if _on_path("dncli") else version
    assert installed.stdout == version.stdout


def _on_path(program: str) -> bool:
    return any((Path(d) / program).exists() for d in os.environ.get("PATH", "").split(os.pathsep))


def test_output_to_a_named_pipe_goes_into_the_pipe(tmp_path: Path):
    """``-o`` naming a pipe (or /dev/stdout, /dev/null, a shell's >(...)) writes into it: it must
    not be replaced by a renamed file, which the reader would never see."""
    import threading

    source, pipe = tmp_path / "in.png", tmp_path / "pipe"
    write_png(source, synthetic_image(40, 32, 3, 0))
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()
    result = run_dncli("degrade", str(source), "--noise", "gaussian:10", "-o", str(pipe))
    reader.join(timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert pipe.is_fifo() and sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "pipe"]
    from denoise_cli.imgio.codec import read_image

    image = read_image(received[0])
    assert (image.format, image.pixels.shape) == ("png", (40, 32, 3))


def test_help_does_not_import_torch():
    code = ("import sys; from denoise_cli.cli.app import main; main(['--help']); "
            "main(['denoise', '--help']); sys.exit(int('torch' in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert result.returncode == 0, "dncli --help imported torch"


def test_degrade_pipe_into_eval_psnr(tmp_path: Path):
    clean = write_png(tmp_path / "clean.png", synthetic_image(64, 80, 3))
    degrade = subprocess.Popen([sys.executable, "-m", "denoise_cli", "degrade", str(clean), "--noise", "gaussian:25",
                                "--seed", "3", "-o", "-", "--format", "npy"], stdout=subprocess.PIPE)
    evaluate = subprocess.run([sys.executable, "-m", "denoise_cli", "eval-psnr", "-", "--ref", str(clean), "--json"],
                              stdin=degrade.stdout, capture_output=True)
    degrade.stdout.close()
    assert degrade.wait() == 0 and evaluate.returncode == 0, evaluate.stderr.decode()
    score = json.loads(evaluate.stdout)["mean"]["psnr"]
    # float noise of sigma 25 rounded to 8 bits for the comparison: about 20.2 dB
    assert 19.5 < score < 21.0


def test_degrade_float_tiff_is_the_exact_seeded_noise(tmp_path: Path):
    pixels = synthetic_image(32, 48, 1)
    pixels[:4] = 0  # black rows: the noise must take them below zero, unclipped
    clean = write_png(tmp_path / "clean.png", pixels)
    result = run_dncli("degrade", str(clean), "--noise", "gaussian:15", "--seed", "7", "-o", str(tmp_path / "n.tif"))
    assert result.returncode == 0, result.stderr.decode()
    noisy = read(tmp_path / "n.tif")
    expected = pixels / 255.0 + np.random.default_rng([7, 0]).standard_normal(pixels.shape) * 15 / 255
    assert noisy.dtype == np.float32 and np.abs(noisy - expected).max() < 1e-6
    assert noisy.min() < 0


def test_degrade_blur_and_reproducible_noise(tmp_path: Path):
    clean = write_png(tmp_path / "clean.png", synthetic_image(40, 40, 3))
    outputs = []
    for name in ("a.png", "b.png"):
        result = run_dncli("degrade", str(clean), "--blur", "gaussian:1.5", "--noise", "poisson:50",
                           "--seed", "1", "-o", str(tmp_path / name))
        assert result.returncode == 0, result.stderr.decode()
        outputs.append(read(tmp_path / name))
    assert np.array_equal(outputs[0], outputs[1])
    assert not np.array_equal(outputs[0], read(clean))


def test_eval_psnr_matches_a_hand_computed_value(tmp_path: Path):
    reference = np.full((16, 16, 3), 100, np.uint8)
    estimate = reference.copy()
    estimate[::2] += 2  # half the pixels off by 2: MSE = 2
    write_png(tmp_path / "ref.png", reference)
    write_png(tmp_path / "out.png", estimate)
    result = run_dncli("eval-psnr", str(tmp_path / "out.png"), "--ref", str(tmp_path / "ref.png"), "--json")
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["mean"]["psnr"] == pytest.approx(10 * np.log10(255**2 / 2), abs=1e-9)


def test_eval_psnr_directories_csv_and_size_mismatch(tmp_path: Path):
    for index in range(2):
        write_png(tmp_path / "ref" / f"{index}.png", synthetic_image(20, 20, 1, index))
        write_png(tmp_path / "out" / f"{index}.png", synthetic_image(20, 20, 1, index + 5))
    result = run_dncli("eval-psnr", str(tmp_path / "out"), "--ref", str(tmp_path / "ref"), "--csv")
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "name,psnr,ssim" and lines[-1].startswith("mean,") and len(lines) == 4
    write_png(tmp_path / "small.png", synthetic_image(12, 20, 1))
    mismatch = run_dncli("eval-psnr", str(tmp_path / "small.png"), "--ref", str(tmp_path / "ref" / "0.png"))
    assert_clean_error(mismatch, 1, "size differs")


@pytest.mark.parametrize("content, fragment", [
    (b"", "small.png"), (b"not an image at all", "small.png"), (None, "small.png")])
def test_bad_inputs_give_one_line_errors(tmp_path: Path, content, fragment):
    path = tmp_path / "small.png"
    if content is None:  # truncated: the first half of a real PNG
        write_png(path, synthetic_image(32, 32, 3))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(content)
    result = run_dncli("degrade", str(path), "--noise", "gaussian:5", "-o", str(tmp_path / "out.png"))
    assert_clean_error(result, 1, fragment)
    assert not (tmp_path / "out.png").exists()


def test_missing_input_and_bad_options_are_usage_errors(tmp_path: Path):
    assert_clean_error(run_dncli("degrade", str(tmp_path / "nope.png"), "--noise", "gaussian:5"), 2, "nope.png")
    image = write_png(tmp_path / "a.png", synthetic_image(16, 16, 1))
    assert_clean_error(run_dncli("degrade", str(image), "--noise", "gaussian:-3", "-o", "x.png"), 2, "0..255")
    assert_clean_error(run_dncli("degrade", str(image), "--noise", "uniform:3", "-o", "x.png"), 2, "uniform")
    assert_clean_error(run_dncli("denoise", str(image), "-s", "300", "-o", "x.png"), 2, "out of range")



@pytest.mark.parametrize("command", ["train", "map-train"])
def test_trainers_reject_missing_or_empty_data_as_usage_errors(tmp_path: Path, command: str):
    output = tmp_path / "model.pt"
    missing = run_dncli(command, str(tmp_path / "nowhere"), "-o", str(output))
    assert_clean_error(missing, 2, "nowhere: no such file or directory")
    (tmp_path / "empty").mkdir()
    assert_clean_error(run_dncli(command, str(tmp_path / "empty"), "-o", str(output)), 2, "no usable images")
    assert not output.exists()

def test_training_mistakes_are_usage_errors_before_any_work(tmp_path: Path):
    for index in range(2):
        write_png(tmp_path / "data" / f"{index}.png", synthetic_image(24, 24, 3, index))
    data, output = str(tmp_path / "data"), str(tmp_path / "x.pt")
    for command, extra, message in (("train", ["--patch", "32"], "--patch 32"),
                                    ("map-train", ["--patch", "32"], "--patch 32"),
                                    ("train", ["--batch-size", "0"], "--batch-size must be at least 1"),
                                    ("blindspot-train", ["--lr", "-1"], "--lr must be positive"),
                                    ("train", ["--loss", "l3"], "--loss 'l3'"),
                                    ("train", ["--widths", "0,8,8"], "positive integers")):
        assert_clean_error(run_dncli(command, data, "-o", output, *extra), 2, message)
    image = str(tmp_path / "data" / "0.png")
    for extra, message in ((["--blur", "box:0"], "--blur"), (["--noise", "poisson:nan"], "peak"),
                           (["--noise", "gaussian:5", "--seed", "-1"], "--seed")):
        assert_clean_error(run_dncli("degrade", image, *extra, "-o", str(tmp_path / "o.png")), 2, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_resume_refuses_another_model_and_plain_weights(tmp_path: Path):
    for index in range(2):
        write_png(tmp_path / "data" / f"{index}.png", synthetic_image(24, 24, 1, index))
        write_png(tmp_path / "classes" / "a" / f"{index}.png", synthetic_image(16, 16, 3, index))
        write_png(tmp_path / "classes" / "b" / f"{index}.png", synthetic_image(16, 16, 3, index + 2))
    for name in ("blindspot-gray-s25", "unet3-gray", "segmenter-camvid"):
        (tmp_path / f"{name}.pt").write_bytes((ROOT / "weights" / f"{name}.pt").read_bytes())
    common = [str(tmp_path / "data"), "--channels", "1", "--resume", "--patch", "16", "--max-steps", "1"]
    other = run_dncli("train", *common, "-o", str(tmp_path / "blindspot-gray-s25.pt"))
    assert_clean_error(other, 2, "holds no 1-channel unet3 denoiser")
    plain = run_dncli("train", *common, "-o", str(tmp_path / "unet3-gray.pt"))
    assert_clean_error(plain, 1, "weights without training state", "--init")
    task = run_dncli("task-train", str(tmp_path / "classes"), "--task", "classify", "--resume",
                     "-o", str(tmp_path / "segmenter-camvid.pt"))
    assert_clean_error(task, 2, "holds no classifier-cnn of 2 classes")
    for name in ("blindspot-gray-s25", "unet3-gray", "segmenter-camvid"):
        assert (tmp_path / f"{name}.pt").read_bytes() == (ROOT / "weights" / f"{name}.pt").read_bytes()


def test_json_has_no_infinity_for_identical_images(tmp_path: Path):
    image = write_png(tmp_path / "a.png", synthetic_image(16, 16, 3))
    result = run_dncli("eval-psnr", str(image), "--ref", str(image), "--json")
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert report["images"][0]["psnr"] is None and report["mean"]["psnr"] is None


def test_input_is_never_overwritten(tmp_path: Path):
    image = write_png(tmp_path / "a.png", synthetic_image(16, 16, 3))
    before = image.read_bytes()
    assert_clean_error(run_dncli("degrade", str(image), "--noise", "gaussian:50", "-o", str(image)), 2, "--in-place")
    assert image.read_bytes() == before
    allowed = run_dncli("degrade", str(image), "--noise", "gaussian:50", "--in-place")
    assert allowed.returncode == 0 and image.read_bytes() != before


def test_batch_goes_past_a_bad_file_and_reports_it(tmp_path: Path):
    source = tmp_path / "in"
    for index in range(3):
        write_png(source / "sub" / f"good{index}.png", synthetic_image(24, 24, 3, index))
    (source / "sub" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = run_dncli("degrade", str(source), "-r", "--noise", "gaussian:10", "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert "bad.png" in stderr and "1 of 4" in stderr and "Traceback" not in stderr
    written = sorted(p.name for p in (tmp_path / "out" / "sub").iterdir())
    assert written == ["good0.png", "good1.png", "good2.png"]


def test_shards_split_a_folder_and_skip_existing_resumes(tmp_path: Path):
    source = tmp_path / "in"
    for index in range(5):
        write_png(source / f"{index}.png", synthetic_image(16, 16, 1, index))
    out = tmp_path / "out"
    for shard in ("0/2", "1/2"):
        result = run_dncli("degrade", str(source), "--noise", "gaussian:5", "-o", str(out), "--shard", shard)
        assert result.returncode == 0, result.stderr.decode()
    assert sorted(p.name for p in out.iterdir()) == [f"{i}.png" for i in range(5)]
    (out / "3.png").unlink()
    stamp = (out / "0.png").stat().st_mtime_ns
    resumed = run_dncli("degrade", str(source), "--noise", "gaussian:5", "-o", str(out), "--skip-existing")
    assert resumed.returncode == 0 and (out / "3.png").exists()
    assert (out / "0.png").stat().st_mtime_ns == stamp
    assert "4 skipped" in resumed.stderr.decode()


def test_denoise_through_pipes_keeps_alpha_and_size(tmp_path: Path, tiny_weights):
    weights = tiny_weights(3)
    rgba = np.concatenate([synthetic_image(36, 44, 3), np.full((36, 44, 1), 77, np.uint8)], axis=-1)
    source = write_png(tmp_path / "rgba.png", rgba)
    result = run_dncli("denoise", "-", "-s", "25", "--weights", str(weights), input=source.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    (tmp_path / "out.png").write_bytes(result.stdout)
    out = read(tmp_path / "out.png")
    assert out.shape == (36, 44, 4)
    assert np.array_equal(np.rint(out[..., 3] * 255), np.full((36, 44), 77))


def test_denoise_shipped_models_pick_by_channels_and_verify(tmp_path: Path, shipped_dir: Path):
    gray = write_png(tmp_path / "g.png", synthetic_image(64, 72, 1))
    env = {"DNCLI_WEIGHTS_DIR": str(shipped_dir)}
    result = run_dncli("denoise", str(gray), "-s", "auto", "-o", str(tmp_path / "g_out.png"), "--json", env=env)
    assert result.returncode == 0, result.stderr.decode()
    assert read(tmp_path / "g_out.png").shape == (64, 72, 1)
    assert json.loads(result.stdout)["images"][0]["sigma"] >= 0
    (shipped_dir / "unet3-gray.pt").write_bytes(b"tampered")
    tampered = run_dncli("denoise", str(gray), "-s", "10", "-o", str(tmp_path / "t.png"), env=env)
    assert_clean_error(tampered, 1, "sha256")


def test_unsafe_weights_are_refused(tmp_path: Path):
    import pickle

    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": "dncli-weights/1", "payload": Exploit()}))
    image = write_png(tmp_path / "a.png", synthetic_image(16, 16, 3))
    result = run_dncli("denoise", str(image), "-s", "10", "--weights", str(evil), "-o", str(tmp_path / "o.png"))
    assert_clean_error(result, 1, "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_cuda_requested_but_absent(tmp_path: Path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    image = write_png(tmp_path / "a.png", synthetic_image(16, 16, 3))
    result = run_dncli("denoise", str(image), "-s", "10", "--device", "cuda", "-o", str(tmp_path / "o.png"))
    assert_clean_error(result, 2, "CUDA is not available")


def test_refuses_to_write_binary_to_a_terminal(tmp_path: Path):
    image = write_png(tmp_path / "a.png", synthetic_image(16, 16, 3))
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "denoise_cli", "degrade", str(image), "--noise", "gaussian:5"],
                                stdout=terminal, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(terminal)
        os.close(controller)
    assert_clean_error(result, 2, "terminal")


def test_closed_pipe_ends_quietly(tmp_path: Path):
    image = write_png(tmp_path / "a.png", synthetic_image(256, 256, 3))
    pipeline = (f"{sys.executable} -m denoise_cli degrade {image} --noise gaussian:5 -o - --format npy "
                f"--depth 32f | head -c 100 > /dev/null")
    result = subprocess.run(["bash", "-c", f"set -o pipefail; {pipeline}"], capture_output=True, timeout=120)
    assert result.returncode == 141, result.stderr.decode()
    assert b"Traceback" not in result.stderr and b"rror" not in result.stderr


def test_output_through_dev_stdout_and_symbolic_links(tmp_path: Path):
    """-o /dev/stdout with stdout redirected to a file writes into that file; an output or an
    --in-place input that is a symbolic link has its target replaced and stays a link."""
    source = write_png(tmp_path / "in.png", synthetic_image(40, 32, 3))
    with open(tmp_path / "redirected.png", "wb") as stdout:
        result = subprocess.run([sys.executable, "-m", "denoise_cli", "degrade", str(source), "--noise",
                                 "gaussian:10", "-o", "/dev/stdout"], stdout=stdout, stderr=subprocess.PIPE, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    assert read(tmp_path / "redirected.png").shape == (40, 32, 3)

    target, link = write_png(tmp_path / "target.png", synthetic_image(40, 32, 3, 1)), tmp_path / "link.png"
    link.symlink_to(target.name)
    before = read(target)
    assert run_dncli("degrade", str(link), "--noise", "gaussian:10", "--in-place").returncode == 0
    assert link.is_symlink() and not np.array_equal(read(target), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "link.png", "redirected.png", "target.png"]


def test_json_is_refused_when_the_images_go_to_stdout_by_name(tmp_path: Path, tiny_weights):
    image = write_png(tmp_path / "a.png", synthetic_image(32, 32, 3))
    result = run_dncli("denoise", str(image), "-s", "10", "--weights", str(tiny_weights(3)), "--json", "-o", "/dev/stdout")
    assert_clean_error(result, 2, "--json prints to stdout")
    assert result.stdout == b""


def test_outputs_that_collide_or_cannot_hold_the_depth_are_refused_before_any_work(tmp_path: Path):
    write_png(tmp_path / "in" / "a.png", synthetic_image(16, 16, 3))
    write_png(tmp_path / "in" / "a.bmp", synthetic_image(16, 16, 3, 1))
    result = run_dncli("degrade", str(tmp_path / "in"), "--noise", "gaussian:5", "-f", "png", "-o", str(tmp_path / "out"))
    assert_clean_error(result, 2, "would both be written to", "a.png")
    result = run_dncli("degrade", str(tmp_path / "in" / "a.png"), "--noise", "gaussian:5", "--depth", "16",
                       "-o", str(tmp_path / "out" / "a.jpg"))
    assert_clean_error(result, 2, "--depth 16", "JPEG")
    result = run_dncli("degrade", str(tmp_path / "in"), "--noise", "gaussian:5", "--in-place", "--skip-existing")
    assert_clean_error(result, 2, "exclude each other")
    assert not (tmp_path / "out").exists()


def test_an_output_name_near_the_length_limit_is_written(tmp_path: Path):
    source = write_png(tmp_path / "in.png", synthetic_image(16, 16, 1))
    output = tmp_path / ("a" * 251 + ".png")  # 255 characters: NAME_MAX
    result = run_dncli("degrade", str(source), "--noise", "gaussian:5", "-o", str(output))
    assert result.returncode == 0, result.stderr.decode()
    assert read(output).shape == (16, 16, 1)


@pytest.mark.parametrize("command", ["denoise", "deblur"])
def test_models_that_are_not_denoisers_are_refused(tmp_path: Path, command: str):
    image = write_png(tmp_path / "a.png", synthetic_image(16, 16, 3))
    extra = ["--kernel", "gaussian:1"] if command == "deblur" else []
    for model, fragment in ((ROOT / "weights" / "dde-rings.pt", "not an image denoiser"),
                            (ROOT / "weights" / "classifier-cifar10.pt", "task network")):
        result = run_dncli(command, str(image), "-s", "5", *extra, "--weights", str(model), "-o", str(tmp_path / "o.png"))
        assert_clean_error(result, 2, fragment)


def test_interrupted_batch_exits_130_without_partial_files(tmp_path: Path):
    source = tmp_path / "in"
    pixels = synthetic_image(256, 256, 3)
    for index in range(300):
        write_png(source / f"{index:03d}.png", pixels)
    out = tmp_path / "out"
    # A job started in the background by a non-interactive shell (as CI may run us) inherits an
    # ignored SIGINT, which Python keeps: give the child the terminal's default instead.
    process = subprocess.Popen([sys.executable, "-m", "denoise_cli", "degrade", str(source), "-o", str(out),
                                "--blur", "box:41", "--noise", "gaussian:5"], stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out.exists() and any(out.glob("*.png"))):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and b"Traceback" not in stderr
    assert not [p for p in out.iterdir() if not p.name.endswith(".png")]
    for path in out.iterdir():
        assert read(path).shape == (256, 256, 3)


def test_man_pages_match_the_app(tmp_path: Path):
    from denoise_cli.cli.app import app
    from denoise_cli.cli.manpages import pages

    committed = {p.name: p.read_text() for p in (ROOT / "man").glob("*.1")}
    assert committed == pages(app), "man/ is stale: run python -m denoise_cli.cli.manpages man"


def test_doctor_reports_weights(shipped_dir: Path):
    result = run_dncli("doctor", "--json", env={"DNCLI_WEIGHTS_DIR": str(shipped_dir)})
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert report["weights"] == {"unet3-color": "ok", "unet3-gray": "ok"}
    assert report["device"] in ("cpu", "cuda")


def test_batched_folder_equals_one_by_one(tmp_path: Path, tiny_weights):
    weights = tiny_weights(3)
    for index in range(4):
        write_png(tmp_path / "in" / f"{index}.png", synthetic_image(40, 48, 3, index))
    write_png(tmp_path / "in" / "odd.png", synthetic_image(24, 24, 3))  # another size: its own batch
    for batch in ("1", "3"):
        result = run_dncli("denoise", str(tmp_path / "in"), "-s", "20", "--weights", str(weights),
                           "--batch-size", batch, "-o", str(tmp_path / f"out{batch}"), "--format", "tiff",
                           "--depth", "32f")
        assert result.returncode == 0, result.stderr.decode()
    for index in list(range(4)) + ["odd"]:
        single, batched = read(tmp_path / "out1" / f"{index}.tif"), read(tmp_path / "out3" / f"{index}.tif")
        assert np.abs(single - batched).max() < 1e-5


def test_eval_psnr_crop_and_luma(tmp_path: Path):
    reference = synthetic_image(32, 32, 3)
    estimate = reference.copy()
    estimate[:2] = 0  # damage only a 2-pixel border
    write_png(tmp_path / "ref.png", reference)
    write_png(tmp_path / "out.png", estimate)
    scores = {}
    for name, extra in (("plain", []), ("crop", ["--crop", "2"]), ("luma", ["--y"])):
        result = run_dncli("eval-psnr", str(tmp_path / "out.png"), "--ref", str(tmp_path / "ref.png"), "--json",
                           *extra)
        assert result.returncode == 0, result.stderr.decode()
        scores[name] = json.loads(result.stdout)["mean"]["psnr"]
    assert scores["crop"] is None and np.isfinite(scores["plain"])  # identical once cropped: infinite
    assert scores["luma"] != scores["plain"]


def test_quiet_silences_messages_but_not_errors(tmp_path: Path, tiny_weights):
    image = write_png(tmp_path / "a.png", synthetic_image(64, 64, 3))
    weights = str(tiny_weights(3))
    loud = run_dncli("denoise", str(image), "-s", "auto", "--weights", weights, "-o", str(tmp_path / "b.png"))
    assert b"estimated sigma" in loud.stderr
    quiet = run_dncli("denoise", str(image), "-s", "auto", "--weights", weights, "-o", str(tmp_path / "c.png"),
                      "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == b""
    assert_clean_error(run_dncli("--quiet", "denoise", str(tmp_path / "missing.png"), "-s", "5"), 2, "missing.png")
