r"""Writes an example interaction file (CSV: user,item,rating,timestamp) to try the
bring-your-own-data path on (recsys_core.data.synthetic.example_events).

  python -m experiments.example_data runs/events.csv
"""
import os

from absl import app
from absl import flags

from recsys_core.data import synthetic

_USERS = flags.DEFINE_integer("num_users", 400, "Users in the file.", lower_bound=10)
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.", lower_bound=0)


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: python -m experiments.example_data OUT.csv")
  os.makedirs(os.path.dirname(os.path.abspath(argv[1])), exist_ok=True)
  n = synthetic.write_example_events(argv[1], num_users=_USERS.value, seed=_SEED.value)
  print(f"wrote {n} rows to {argv[1]}")


if __name__ == "__main__":
  app.run(main)
