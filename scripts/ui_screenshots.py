"""Screenshots of a sweep in the MLflow UI for the README: run the quickstart against a fresh
`mlflow server`, then take headless Chromium screenshots of the pages the agent links to.

    python scripts/ui_screenshots.py [--out docs/images] [--keep]

Needs the `chromium` Debian package (or Chrome) and Pillow. Writes ui-runs.png,
ui-description.png, ui-best-so-far.png and ui-registered-model.png, each a small PNG.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    argv = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'backend.db'}",
        "--default-artifact-root", (root / "art").as_uri(),
    ]  # fmt: skip
    log = open(root / "server.log", "wb")  # noqa: SIM115 - open while the server runs
    proc = subprocess.Popen(argv, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):  # a busy machine may take minutes
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    raise SystemExit("mlflow server did not answer")


def screenshot(
    url: str,
    path: Path,
    profile: Path,
    size: str = "1400,900",
    wait_ms: int = 20000,
    top: float = 0.0,
    bottom: float = 1.0,
) -> None:
    """A PNG of `url` from `top` to `bottom` (fractions of the height), scaled to 3/4."""
    browser = shutil.which("chromium") or shutil.which("google-chrome")
    argv = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        f"--user-data-dir={profile}", "--hide-scrollbars", f"--window-size={size}",
        f"--virtual-time-budget={wait_ms}", f"--screenshot={path}", url,
    ]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True, timeout=180)
    from PIL import Image

    image = Image.open(path).convert("RGB")
    image = image.crop((0, int(image.height * top), image.width, int(image.height * bottom)))
    image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS)
    image.quantize(colors=128).save(path, optimize=True)


def metric_page(url: str, parent_url: str, metric: str) -> str:
    """The MLflow UI's page of one metric's history on one run (its step chart, with points)."""
    experiment, run = re.search(r"/experiments/([^/]+)/runs/([^/?#]+)", parent_url).groups()
    keys = urllib.parse.quote(json.dumps([metric]))
    return (
        f"{url}/#/metric?runs={json.dumps([run])}&metric={urllib.parse.quote(json.dumps(metric))}"
        f"&experiments={json.dumps([experiment])}&plot_metric_keys={keys}&plot_layout={{}}"
        "&x_axis=step&y_axis_scale=linear&line_smoothness=1&show_point=true"
        "&deselected_curves=[]&last_linear_y_axis_range=[]"
    ).replace(" ", "")


def shoot(url: str, parent_url: str, runs_url: str, out: Path, work: Path) -> None:
    pages = {  # name: (page, window size, the part kept: top and bottom, fractions of the height)
        "ui-runs.png": (runs_url, "1400,900", 0.0, 1.0),
        "ui-description.png": (parent_url, "1400,2000", 0.42, 0.60),
        "ui-best-so-far.png": (metric_page(url, parent_url, "val/accuracy"), "2000,760", 0.0, 1.0),
        "ui-registered-model.png": (f"{url}/#/models/digits-sgd/versions/1", "1400,900", 0.0, 1.0),
    }
    for name, (page, size, top, bottom) in pages.items():
        screenshot(page, out / name, work / f"profile-{name}", size=size, top=top, bottom=bottom)
        print(name, page, (out / name).stat().st_size // 1024, "KiB")
    print(json.dumps(pages, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(REPO / "docs" / "images"))
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    out = Path(args.out)
    work = Path(tempfile.mkdtemp(prefix="ui-shots-"))
    server, url = start_server(work)
    try:
        config = (REPO / "examples" / "quickstart.yaml").read_text()
        config = config.replace('project: ".."', f'project: "{REPO}"')
        config += f'\nmlflow_storage: "{url}"\noutput_dir: "{work / "sweeps"}"\n'
        (work / "quickstart.yaml").write_text(config)
        done = subprocess.run(
            [sys.executable, "-m", "mlflow_sweeper", "sweep", str(work / "quickstart.yaml"), "-j", "2"],
            capture_output=True, text=True, cwd=work, timeout=1200,
        )  # fmt: skip
        print(done.stdout[-3000:], done.stderr[-3000:])
        if done.returncode != 0:
            raise SystemExit(f"the sweep exited {done.returncode}")
        said = done.stdout + done.stderr
        parent_url = re.search(r"parent run page: (\S+)", said).group(1)
        runs_url = re.search(r"runs \(trials nested\): (\S+)", said).group(1)
        shoot(url, parent_url, runs_url, out, work)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its workers
        server.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
