"""The datasets every model's config file can run on: one row each (data + protocol).

A row sets only what differs from `recsys_core.data.source.DataConfig` and
`recsys_core.protocols.ProtocolConfig` defaults. Adding a dataset is one row here (or no
change: `dataset=file` with `--config.data.path=...` and the column flags).

Protocol A (strong generalisation; shared/docs/protocols.md): ratings above a threshold
count as positives, users with >= 5 of them, Recall@20/50 and NDCG@100, λ and epochs chosen
on NDCG@100 of the validation users. Protocol B (leave-one-out): the whole sequence, full
ranking with seen items excluded, selection on NDCG@10.
"""
from ml_collections import config_dict

from experiments.configs import common
from recsys_core.data.source import DataConfig
from recsys_core.protocols import ProtocolConfig

_STRONG = dict(name="strong_generalization", ks=(20, 50, 100), selection_metric="ndcg@100")
_LOO = dict(name="leave_one_out", ks=(5, 10, 20, 50), selection_metric="ndcg@10")

# name: (data fields, protocol fields)
DATASETS = {
    # Anime ratings are 1-10 (mean 7.8): positives are 8, 9 and 10.
    "anime": (dict(name="anime", rating_threshold=7.0, min_user_items=5), _STRONG),
    "ml100k": (dict(name="ml-100k", rating_threshold=3.5, min_user_items=5), _STRONG),
    "mlsmall": (dict(name="ml-latest-small", rating_threshold=3.5, min_user_items=5), _STRONG),
    "ml1m": (dict(name="ml-1m"), _LOO),
    "ml1m_full": (dict(name="ml-1m-full"), _LOO),
    "beauty": (dict(name="beauty"), _LOO),
    "sports": (dict(name="sports"), _LOO),
    # The user's own file: --config.data.path=events.csv (+ column names); leave-one-out
    # unless protocol=strong_generalization is given in the config argument.
    "file": (dict(name="file"), _LOO),
    "synthetic": (dict(name="synthetic"), _LOO),
}


def sections(dataset: str, protocol: str = "") -> tuple[config_dict.ConfigDict,
                                                        config_dict.ConfigDict]:
  """(data, protocol) sections of `dataset`, every field present; `protocol` ("" = the
  dataset's own) may switch between "leave_one_out" and "strong_generalization"."""
  if dataset not in DATASETS:
    raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(DATASETS)}")
  data, proto = DATASETS[dataset]
  if protocol:
    proto = {"leave_one_out": _LOO, "strong_generalization": _STRONG}.get(protocol)
    if proto is None:
      raise ValueError(f"unknown protocol {protocol!r}; known: leave_one_out, "
                       "strong_generalization")
  return (common.section(DataConfig(**{k: v for k, v in data.items()})),
          common.section(ProtocolConfig(**proto)))
