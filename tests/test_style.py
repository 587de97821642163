"""Every Python source line of the project is at most 100 characters long.

Checks the tracked .py files (`git ls-files`); without git (or outside a git checkout) it
globs anime_ae/, phoenix/, recsys_core/, experiments/ and tests/ instead.
"""
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_LINE = 100
FALLBACK_DIRS = ("anime_ae", "phoenix", "recsys_core", "experiments", "tests")


def python_files(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
  """The repository's tracked .py files that exist in the working tree."""
  try:
    out = subprocess.run(["git", "ls-files", "*.py"], cwd=root, capture_output=True,
                         text=True, check=True).stdout
    files = [root / name for name in out.splitlines() if name]
  except (OSError, subprocess.CalledProcessError):
    files = [p for d in FALLBACK_DIRS for p in sorted((root / d).rglob("*.py"))]
  return [p for p in files if p.is_file()]


def long_lines(path, limit: int = MAX_LINE) -> list[tuple[int, int]]:
  """[(line number, length)] of the lines of `path` longer than `limit` characters."""
  found = []
  with open(path, encoding="utf-8", errors="replace") as f:
    for lineno, line in enumerate(f, 1):
      n = len(line.rstrip("\r\n"))
      if n > limit:
        found.append((lineno, n))
  return found


def test_no_line_longer_than_100_characters():
  files = python_files()
  assert any(p == ROOT / "recsys_core" / "train" / "checkpoint.py" for p in files)
  bad = [f"{p.relative_to(ROOT)}:{lineno} ({n} chars)"
         for p in files for lineno, n in long_lines(p)]
  assert not bad, f"lines longer than {MAX_LINE} characters:\n" + "\n".join(bad)


def test_long_lines_flags_only_over_long_lines(tmp_path):
  path = tmp_path / "m.py"
  path.write_text("x = 1\n" + "#" * 101 + "\n" + "#" * 100 + "\n" + "y = 2")
  assert long_lines(path) == [(2, 101)]
