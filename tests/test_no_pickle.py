"""No project code outside tests/ may use pickle (checkpoints and data are loaded without it).

Flags, in every .py file of the checkout outside tests/, hidden folders (.venv, .git, ...)
and build outputs: imports of pickle-family modules (pickle, cPickle, _pickle, dill,
cloudpickle, joblib), calls of their load/loads functions, `allow_pickle=True`, and
`torch.load` / `pd.read_pickle`.
"""
import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_DIRS = {"tests", "build", "dist", "node_modules", "__pycache__"}
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve"}
TEXT_PATTERNS = [
    (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True"),
    (re.compile(r"\bread_pickle\s*\("), "read_pickle("),
    (re.compile(r"\btorch\.load\s*\("), "torch.load("),
]


def project_files(root=ROOT):
  for dirpath, dirnames, filenames in os.walk(root):
    rel = os.path.relpath(dirpath, root)
    dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS
                         and not d.endswith(".egg-info"))
    if rel == ".":
      dirnames[:] = [d for d in dirnames if d not in ("shared", "runs", "tmp")]
    for name in sorted(filenames):
      if name.endswith(".py"):
        yield os.path.join(dirpath, name)


def offences(path):
  """[(line, what)] for one file."""
  with open(path, encoding="utf-8", errors="replace") as f:
    source = f.read()
  found = []
  try:
    tree = ast.parse(source, filename=path)
  except SyntaxError as e:
    return [(e.lineno or 0, f"unparsable ({e.msg}): cannot check")]
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.split(".")[0] in PICKLE_MODULES:
          found.append((node.lineno, f"import {alias.name}"))
    elif isinstance(node, ast.ImportFrom):
      if (node.module or "").split(".")[0] in PICKLE_MODULES:
        found.append((node.lineno, f"from {node.module} import ..."))
    elif isinstance(node, ast.Call):
      func = node.func
      if (isinstance(func, ast.Attribute) and func.attr in ("load", "loads", "Unpickler")
          and isinstance(func.value, ast.Name) and func.value.id in PICKLE_MODULES):
        found.append((node.lineno, f"{func.value.id}.{func.attr}("))
      for kw in node.keywords:
        if (kw.arg == "allow_pickle" and isinstance(kw.value, ast.Constant)
            and kw.value.value is True):
          found.append((node.lineno, "allow_pickle=True"))
  for lineno, line in enumerate(source.splitlines(), 1):
    for pattern, what in TEXT_PATTERNS:
      if pattern.search(line) and (lineno, what) not in found:
        found.append((lineno, what))
  return sorted(set(found))


def scan(root=ROOT):
  out = []
  for path in project_files(root):
    for lineno, what in offences(path):
      out.append(f"{os.path.relpath(path, root)}:{lineno}: {what}")
  return out


def test_no_pickle_in_project_code():
  files = list(project_files())
  assert any(f.endswith(os.path.join("recsys_core", "train", "checkpoint.py")) for f in files)
  bad = scan()
  assert not bad, "pickle is not allowed outside tests/:\n" + "\n".join(bad)


def test_scanner_catches_offenders(tmp_path):
  pkg = tmp_path / "pkg"
  pkg.mkdir()
  (pkg / "a.py").write_text("import pickle\nx = pickle.loads(b'')\n")
  (pkg / "b.py").write_text("import numpy as np\nnp.load('f.npy', allow_pickle=True)\n")
  (pkg / "c.py").write_text(
      "from cloudpickle import loads\nimport pandas as pd\npd.read_pickle('x')\n")
  (pkg / "ok.py").write_text("import numpy as np\nnp.load('f.npz', allow_pickle=False)\n")
  (tmp_path / "tests").mkdir()
  (tmp_path / "tests" / "t.py").write_text("import pickle\n")      # tests/ are exempt
  (tmp_path / ".venv").mkdir()
  (tmp_path / ".venv" / "v.py").write_text("import pickle\n")      # so is the venv
  bad = scan(str(tmp_path))
  assert bad == [
      "pkg/a.py:1: import pickle",
      "pkg/a.py:2: pickle.loads(",
      "pkg/b.py:2: allow_pickle=True",
      "pkg/c.py:1: from cloudpickle import ...",
      "pkg/c.py:3: read_pickle(",
  ], bad
