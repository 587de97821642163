"""The README's commands run as written: its bring-your-own-data block trains EASE, the
autoencoder and Phoenix retrieval on the file it writes and prints their test metrics."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MARKER = "<!-- byo-example:"


def readme_blocks(marker: str, language: str = "bash") -> list[str]:
  """The fenced blocks right after each line holding `marker` in README.md."""
  with open(os.path.join(ROOT, "README.md")) as f:
    text = f.read()
  blocks, at = [], text.find(marker)
  while at >= 0:
    m = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, at)
    assert m and text[at:m.start()].count("\n") == 1, "a block must follow its marker line"
    blocks.append(m.group(1))
    at = text.find(marker, m.end())
  return blocks


def test_the_readme_starts_with_the_two_setup_commands():
  with open(os.path.join(ROOT, "README.md")) as f:
    block = re.search(r"```bash\n(.*?)```", f.read(), re.S).group(1)
  commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
  assert commands == ["make run", "make test"]


@pytest.mark.slow
def test_bring_your_own_data_block_runs_as_written():
  shutil.rmtree(os.path.join(ROOT, "runs", "example"), ignore_errors=True)
  [block] = readme_blocks(MARKER)
  proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=ROOT,
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
  # Then the Python snippets, as written, in one interpreter: the library call and serving
  # the Phoenix model just trained, on the file's own item ids.
  snippets = readme_blocks("<!-- readme-python:", "python")
  assert len(snippets) == 2
  proc = subprocess.run([sys.executable, "-c", "\n".join(snippets)], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  metrics_line, served = proc.stdout.strip().splitlines()[-2:]
  assert "'recall@20'" in metrics_line and "'ndcg@100'" in metrics_line
  served_ids = [int(v) for v in re.findall(r"\d+", served.split("]")[0])]
  assert len(served_ids) == 5 and not {1050, 1051, 1052} & set(served_ids)
  assert 1053 in served_ids      # the example's forward walk: 1050, 1051, 1052 -> 1053
