"""The README's commands run as written: its bring-your-own-data block trains EASE, the
autoencoder and Phoenix retrieval on the file it writes and prints their test metrics."""
import json
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MARKER = "<!-- byo-example:"


def readme_block(marker: str) -> str:
  """The fenced bash block right after the line holding `marker` in README.md."""
  with open(os.path.join(ROOT, "README.md")) as f:
    text = f.read()
  at = text.index(marker)
  m = re.compile(r"```bash\n(.*?)```", re.S).search(text, at)
  assert m and text[at:m.start()].count("\n") == 1, "the block must follow the marker line"
  return m.group(1)


def test_the_readme_starts_with_the_two_setup_commands():
  with open(os.path.join(ROOT, "README.md")) as f:
    block = re.search(r"```bash\n(.*?)```", f.read(), re.S).group(1)
  commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
  assert commands == ["make run", "make test"]


@pytest.mark.slow
def test_bring_your_own_data_block_runs_as_written():
  shutil.rmtree(os.path.join(ROOT, "runs", "example"), ignore_errors=True)
  proc = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_block(MARKER)], cwd=ROOT,
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  printed = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
  assert [p["model"] for p in printed] == ["ease", "anime_ae", "phoenix_retrieval"]
  assert all(p["dataset"] == "events" for p in printed)
  hr = {p["model"]: p["test"]["hr@10"] for p in printed}
  # The example file has structure to find (tastes, forward walks): popularity gets
  # HR@10 ~0.03 on it; every model must find it, the sequence model best.
  assert min(hr.values()) > 0.3, hr
  assert hr["phoenix_retrieval"] > hr["ease"], hr
